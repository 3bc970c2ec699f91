//! Signers: one trait for every signing path of Kasane's registry (TUF metadata for root,
//! targets, timestamp, snapshot and delegated authors; session tickets), so a key can live in
//! a file, on a hardware token or in an HSM without the caller knowing which.
//!
//! # Module map
//! - [`Signer`] (here): the trait; [`KeyKind`]: which algorithm a new key uses.
//! - [`public`]: [`PublicKey`], its TUF fields (`keytype`, `scheme`, `keyval.public`), SPKI
//!   PEM in and out, and signature verification (tests and self-checks).
//! - [`file`](mod@file): [`KeyFileSigner`], a PKCS#8 PEM key file, encrypted at rest (PBES2: scrypt +
//!   AES-256-CBC) when it has a passphrase; readable by Python's `cryptography`.
//! - `pkcs11` (cargo feature `pkcs11`): `Pkcs11Signer`, a key on a PKCS#11 token (hardware
//!   token, HSM; SoftHSM2 in tests), through `cryptoki`.
//! - [`error`]: [`SignerError`], the one error type.
//!
//! # Signatures
//! Both algorithms sign exactly what `securesystemslib` signs and checks: Ed25519 signs the
//! message itself (64 bytes); ECDSA P-256 signs the SHA-256 of the message and the signature
//! is ASN.1 DER (`SEQUENCE { r INTEGER, s INTEGER }`).
#![forbid(unsafe_code)]

pub mod error;
pub mod file;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod public;

pub use error::SignerError;
pub use file::KeyFileSigner;
#[cfg(feature = "pkcs11")]
pub use pkcs11::Pkcs11Signer;
pub use public::PublicKey;

/// Which signature algorithm a new key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519 (TUF keytype and scheme `ed25519`).
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256 (TUF keytype `ecdsa`, scheme `ecdsa-sha2-nistp256`).
    EcdsaP256,
}

/// Something that signs with one private key, wherever the key lives.
///
/// Implementations are shared between threads (`Send + Sync`); a signer whose backend is not
/// reentrant (a PKCS#11 session) serializes its calls itself.
pub trait Signer: Send + Sync {
    /// The public half of the signing key.
    fn public_key(&self) -> &PublicKey;

    /// Signs `msg`.
    ///
    /// Ed25519: the 64-byte signature of `msg`. ECDSA P-256: the signature of SHA-256(`msg`),
    /// in ASN.1 DER (what securesystemslib makes and checks).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError>;
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        (**self).sign(msg)
    }
}

impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        (**self).sign(msg)
    }
}
