//! [`SignerError`]: every way loading a key or signing can fail.

use std::path::PathBuf;

/// A boxed cause, kept so the caller (and logs) see what went wrong underneath.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every way loading a key, generating one or signing can fail.
///
/// No variant ever carries secret material (passphrases, PINs, key bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A new key file would overwrite an existing file; nothing was written.
    #[error("key file {path} already exists; refusing to overwrite a key")]
    KeyFileExists {
        /// The file that exists.
        path: PathBuf,
    },
    /// The key (file, PEM, DER or token attribute) is not well formed.
    #[error("malformed key: {what}")]
    MalformedKey {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// The key file is encrypted and no passphrase was given.
    #[error("the key file is encrypted: a passphrase is required")]
    PassphraseRequired,
    /// A passphrase was given but the key file is not encrypted.
    #[error("a passphrase was given but the key file is not encrypted")]
    NotEncrypted,
    /// An empty passphrase was given for a new key file (Python's `cryptography` refuses
    /// those, and an empty passphrase protects nothing).
    #[error("empty passphrase: give a real passphrase or none")]
    EmptyPassphrase,
    /// The passphrase does not decrypt the key file.
    #[error("wrong passphrase for the encrypted key file")]
    WrongPassphrase,
    /// The key is of an algorithm or curve Kasane does not sign with (only Ed25519 and ECDSA
    /// P-256 are supported).
    #[error("unsupported key type: {0}")]
    UnsupportedKeyType(String),
    /// A signature did not verify (or is not a well-formed signature for the key).
    #[error("signature does not verify")]
    BadSignature,
    /// Encrypting a new key file or encoding a key failed.
    #[error("cannot encode the key: {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: BoxError,
    },
    /// The PKCS#11 module (shared library) could not be loaded or initialized.
    #[error("PKCS#11 module {module} cannot be loaded: {source}")]
    ModuleLoad {
        /// The module's path.
        module: PathBuf,
        /// The loader's or `C_Initialize`'s error.
        #[source]
        source: BoxError,
    },
    /// No slot has a token with this label.
    #[error("no PKCS#11 token labelled {label:?}")]
    TokenNotFound {
        /// The label looked for.
        label: String,
    },
    /// The token refused the user PIN (incorrect, locked or expired).
    #[error("the token refused the PIN: {source}")]
    BadPin {
        /// The token's answer.
        #[source]
        source: BoxError,
    },
    /// The token has no private key (or no matching public key) with this label.
    #[error("no {class} labelled {label:?} on the token")]
    KeyNotFound {
        /// The label looked for.
        label: String,
        /// `private key` or `public key`.
        class: &'static str,
    },
    /// More than one object of the class carries this label, so which key to use is unclear.
    #[error("{count} {class} objects labelled {label:?} on the token; labels must be unique")]
    AmbiguousKey {
        /// The label looked for.
        label: String,
        /// `private key` or `public key`.
        class: &'static str,
        /// How many objects carry it.
        count: usize,
    },
    /// A key pair with this label already exists on the token; nothing was generated.
    #[error("a private key labelled {label:?} already exists on the token")]
    KeyLabelExists {
        /// The label.
        label: String,
    },
    /// Any other failure reported by the token or module.
    #[error("PKCS#11 token error while {context}: {source}")]
    Token {
        /// What Kasane was doing.
        context: &'static str,
        /// The token's error.
        #[source]
        source: BoxError,
    },
}

impl SignerError {
    pub(crate) fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::MalformedKey {
            what,
            source: source.into(),
        }
    }

    pub(crate) fn encode(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Encode {
            what,
            source: source.into(),
        }
    }
}
