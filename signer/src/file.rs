//! [`KeyFileSigner`]: a private key in a PKCS#8 PEM file, Ed25519 or ECDSA P-256.
//!
//! With a passphrase the file is an encrypted PKCS#8 document
//! (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with scrypt and AES-256-CBC); without one
//! it is a plain `-----BEGIN PRIVATE KEY-----`. Both are what Python's `cryptography`
//! (`serialization.load_pem_private_key`) and OpenSSL read, and files written by them
//! (`BestAvailableEncryption`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC) open here.
//! New files have mode 0600 and never replace an existing file.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncryptedPrivateKeyInfo};
use pkcs8::{PrivateKeyInfo, SecretDocument};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

use crate::public::{EC_PUBLIC_KEY_OID, ED25519_OID, P256_OID};
use crate::{KeyKind, PublicKey, Signer, SignerError};

/// scrypt cost of new encrypted key files: N = 2^14, r = 8, p = 1 (16 MiB, the classic
/// interactive setting). OpenSSL derives no key needing more than 32 MiB (`openssl pkcs8`
/// fails with "memory limit exceeded"), which rules out N = 2^15 with r = 8; staying under it
/// keeps key files readable by OpenSSL tools as well as by Python's `cryptography`.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// AES-256 key length.
const SCRYPT_KEY_LEN: usize = 32;

const PEM_PLAIN: &str = "PRIVATE KEY";
const PEM_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// The private key itself; both variants zeroize their secret on drop.
enum SecretKey {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// A signer whose private key is read from a PKCS#8 PEM file (see the module docs).
///
/// The secret key zeroizes itself when the signer is dropped; `Debug` shows only the path and
/// the public key.
pub struct KeyFileSigner {
    key: SecretKey,
    public: PublicKey,
    path: Option<PathBuf>,
}

impl fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileSigner")
            .field("path", &self.path)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyFileSigner {
    /// Generates a new key of `kind` and writes it to `path` (mode 0600, encrypted under
    /// `passphrase` if one is given), failing with [`SignerError::KeyFileExists`] rather than
    /// replacing any existing file.
    pub fn generate(
        kind: KeyKind,
        path: &Path,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, SignerError> {
        let key = match kind {
            KeyKind::Ed25519 => SecretKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            KeyKind::EcdsaP256 => SecretKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut OsRng)),
        };
        let signer = Self::from_secret(key, Some(path.to_owned()));
        let pem = signer.to_pkcs8_pem(passphrase)?;
        kasane_os::fs::write_private_new(path, pem.as_bytes()).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SignerError::KeyFileExists {
                    path: path.to_owned(),
                }
            } else {
                SignerError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Ok(signer)
    }

    /// Opens the key file at `path`. An encrypted file needs `passphrase`
    /// ([`SignerError::PassphraseRequired`], [`SignerError::WrongPassphrase`]); a plain one
    /// must not be given one ([`SignerError::NotEncrypted`]), so a key an operator believes
    /// protected is never silently read in the clear.
    pub fn open(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, SignerError> {
        let pem = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| SignerError::Io {
                path: path.to_owned(),
                source,
            })?;
        let mut signer = Self::from_pkcs8_pem(&pem, passphrase)?;
        signer.path = Some(path.to_owned());
        Ok(signer)
    }

    /// Decodes a PKCS#8 PEM document (plain or encrypted) held in memory; the rules for
    /// `passphrase` are those of [`KeyFileSigner::open`].
    pub fn from_pkcs8_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, SignerError> {
        let (label, doc) = SecretDocument::from_pem(pem.trim_start())
            .map_err(|e| SignerError::malformed("private key PEM", e))?;
        let key = match (label, passphrase) {
            (PEM_ENCRYPTED, Some(passphrase)) => decrypt(doc.as_bytes(), passphrase)?,
            (PEM_ENCRYPTED, None) => return Err(SignerError::PassphraseRequired),
            (PEM_PLAIN, None) => decode_pkcs8_der(doc.as_bytes())?,
            (PEM_PLAIN, Some(_)) => return Err(SignerError::NotEncrypted),
            (other, _) => {
                return Err(SignerError::malformed(
                    "private key PEM",
                    format!("PEM label {other:?}; expected a PKCS#8 private key"),
                ));
            }
        };
        Ok(Self::from_secret(key, None))
    }

    /// The file this key was read from or written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The algorithm of this key.
    pub fn kind(&self) -> KeyKind {
        match self.key {
            SecretKey::Ed25519(_) => KeyKind::Ed25519,
            SecretKey::EcdsaP256(_) => KeyKind::EcdsaP256,
        }
    }

    /// The private key as a PKCS#8 PEM document, encrypted under `passphrase` if given. The
    /// result zeroizes itself when dropped.
    pub fn to_pkcs8_pem(
        &self,
        passphrase: Option<&[u8]>,
    ) -> Result<Zeroizing<String>, SignerError> {
        let der = match &self.key {
            SecretKey::Ed25519(key) => ed25519_pkcs8_v1(key),
            SecretKey::EcdsaP256(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| SignerError::encode("PKCS#8 private key", e))?;
        let (label, doc) = match passphrase {
            None => (PEM_PLAIN, der),
            Some([]) => return Err(SignerError::EmptyPassphrase),
            Some(passphrase) => (PEM_ENCRYPTED, encrypt(&der, passphrase)?),
        };
        doc.to_pem(label, LineEnding::LF)
            .map_err(|e| SignerError::encode("private key PEM", e))
    }

    fn from_secret(key: SecretKey, path: Option<PathBuf>) -> Self {
        let public = match &key {
            SecretKey::Ed25519(key) => PublicKey::Ed25519(key.verifying_key().to_bytes()),
            SecretKey::EcdsaP256(key) => PublicKey::EcdsaP256(key.verifying_key().into()),
        };
        Self { key, public, path }
    }
}

impl Signer for KeyFileSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(match &self.key {
            SecretKey::Ed25519(key) => key.sign(msg).to_bytes().to_vec(),
            SecretKey::EcdsaP256(key) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(key, msg);
                sig.to_der().as_bytes().to_vec()
            }
        })
    }
}

/// RFC 8410 PKCS#8 v1 (`PrivateKeyInfo` without the optional public key) for an Ed25519
/// key: what OpenSSL and Python's `cryptography` write, and the only form the latter reads.
/// `KeypairBytes` wipes its copy of the secret on drop (the `ed25519` crate's `zeroize`).
fn ed25519_pkcs8_v1(key: &ed25519_dalek::SigningKey) -> pkcs8::Result<SecretDocument> {
    ed25519::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_der()
}

/// Encrypts a PKCS#8 DER private key: PBES2, scrypt, AES-256-CBC, fresh salt and IV.
fn encrypt(der: &SecretDocument, passphrase: &[u8]) -> Result<SecretDocument, SignerError> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY_LEN)
        .map_err(|e| SignerError::encode("scrypt parameters", e.to_string()))?;
    let params = pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv)
        .map_err(|e| SignerError::encode("PBES2 parameters", e.to_string()))?;
    PrivateKeyInfo::try_from(der.as_bytes())
        .and_then(|info| info.encrypt_with_params(params, passphrase))
        .map_err(|e| SignerError::encode("encrypted PKCS#8 private key", e))
}

/// Decrypts an EncryptedPrivateKeyInfo and decodes the key inside.
fn decrypt(der: &[u8], passphrase: &[u8]) -> Result<SecretKey, SignerError> {
    let info = EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| SignerError::malformed("encrypted PKCS#8 private key", e))?;
    let plain = info.decrypt(passphrase).map_err(|e| match e {
        // pkcs5 0.7 reports a bad CBC padding (the sign of a wrong passphrase) as
        // `EncryptFailed`; a later release may say `DecryptFailed`.
        pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        ) => SignerError::WrongPassphrase,
        // The envelope itself parsed above, so a DER error here is about the plaintext:
        // a wrong passphrase passes the CBC padding check about once in 256 tries and
        // `decrypt` then fails to read what it "decrypted" as DER.
        pkcs8::Error::Asn1(_) => SignerError::WrongPassphrase,
        other => SignerError::malformed("encrypted PKCS#8 private key", other),
    })?;
    // The same chance miss may also decode as DER yet not be a PrivateKeyInfo.
    if PrivateKeyInfo::try_from(plain.as_bytes()).is_err() {
        return Err(SignerError::WrongPassphrase);
    }
    decode_pkcs8_der(plain.as_bytes())
}

/// Decodes a DER PrivateKeyInfo holding an Ed25519 or P-256 key.
fn decode_pkcs8_der(der: &[u8]) -> Result<SecretKey, SignerError> {
    let info = PrivateKeyInfo::try_from(der)
        .map_err(|e| SignerError::malformed("PKCS#8 private key", e))?;
    let oid = info.algorithm.oid;
    if oid == ED25519_OID {
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map_err(|e| SignerError::malformed("ed25519 private key", e))?;
        return Ok(SecretKey::Ed25519(key));
    }
    if oid == EC_PUBLIC_KEY_OID {
        let curve = info.algorithm.parameters_oid().ok();
        if curve != Some(P256_OID) {
            return Err(SignerError::UnsupportedKeyType(format!(
                "EC key on curve {curve:?}; only P-256 is supported"
            )));
        }
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(der)
            .map_err(|e| SignerError::malformed("P-256 private key", e))?;
        return Ok(SecretKey::EcdsaP256(key));
    }
    Err(SignerError::UnsupportedKeyType(format!(
        "private key algorithm {oid}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrong passphrase passes the CBC padding check about once in 256 tries; every one
    /// of a thousand wrong passphrases must still be reported as `WrongPassphrase` (CI once
    /// saw that chance miss come back as a malformed key). Cheap scrypt keeps this fast.
    #[test]
    fn every_wrong_passphrase_is_reported_as_such() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let der = ed25519_pkcs8_v1(&key).expect("encode");
        let cost = scrypt::Params::new(1, 1, 1, SCRYPT_KEY_LEN).expect("params");
        let params =
            pbes2::Parameters::scrypt_aes256cbc(cost, &[1u8; 16], &[2u8; 16]).expect("pbes2");
        let enc = PrivateKeyInfo::try_from(der.as_bytes())
            .and_then(|info| info.encrypt_with_params(params, b"right"))
            .expect("encrypt");
        assert!(decrypt(enc.as_bytes(), b"right").is_ok());
        for i in 0..1000u32 {
            let wrong = format!("wrong {i}");
            let err = decrypt(enc.as_bytes(), wrong.as_bytes()).err();
            assert!(
                matches!(err, Some(SignerError::WrongPassphrase)),
                "passphrase {wrong:?}: {err:?}"
            );
        }
    }
}
