//! [`PublicKey`]: the public half of a signing key, as TUF writes it and as PEM files hold it.

use std::path::Path;

use ed25519_dalek::Verifier as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePublicKey as _, EncodePublicKey as _, ObjectIdentifier};

use crate::SignerError;

/// RFC 8410 `id-Ed25519`.
pub(crate) const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// RFC 5480 `id-ecPublicKey`.
pub(crate) const EC_PUBLIC_KEY_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// RFC 5480 `secp256r1` (`prime256v1`, NIST P-256).
pub(crate) const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The public half of a signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 public key (the 32-byte compressed Edwards point).
    Ed25519([u8; 32]),
    /// An ECDSA public key on NIST P-256.
    EcdsaP256(p256::PublicKey),
}

impl PublicKey {
    /// TUF `keytype`: `"ed25519"` or `"ecdsa"`.
    pub fn tuf_keytype(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "ed25519",
            Self::EcdsaP256(_) => "ecdsa",
        }
    }

    /// TUF `scheme`: `"ed25519"` or `"ecdsa-sha2-nistp256"`.
    pub fn tuf_scheme(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "ed25519",
            Self::EcdsaP256(_) => "ecdsa-sha2-nistp256",
        }
    }

    /// TUF `keyval.public`: for Ed25519 64 lowercase hex characters; for ECDSA the
    /// SubjectPublicKeyInfo PEM exactly as securesystemslib (Python's `cryptography`) writes
    /// it: `-----BEGIN PUBLIC KEY-----\n`, base64 in 64-character lines,
    /// `-----END PUBLIC KEY-----\n`.
    pub fn tuf_public(&self) -> String {
        match self {
            Self::Ed25519(bytes) => hex::encode(bytes),
            Self::EcdsaP256(key) => p256_spki_pem(key),
        }
    }

    /// Parses TUF's `keytype`, `scheme` and `keyval.public` (the inverse of the `tuf_*`
    /// methods). Any other combination is [`SignerError::UnsupportedKeyType`].
    pub fn from_tuf(keytype: &str, scheme: &str, public: &str) -> Result<Self, SignerError> {
        match (keytype, scheme) {
            ("ed25519", "ed25519") => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(public, &mut bytes)
                    .map_err(|e| SignerError::malformed("ed25519 public key hex", e))?;
                Ok(Self::Ed25519(bytes))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                match Self::from_pem(public)? {
                    key @ Self::EcdsaP256(_) => Ok(key),
                    Self::Ed25519(_) => Err(SignerError::UnsupportedKeyType(
                        "ed25519 key under keytype ecdsa".into(),
                    )),
                }
            }
            _ => Err(SignerError::UnsupportedKeyType(format!(
                "TUF keytype {keytype:?} with scheme {scheme:?}"
            ))),
        }
    }

    /// The key as a SubjectPublicKeyInfo PEM document (`-----BEGIN PUBLIC KEY-----`), LF line
    /// endings: what a public-key file holds.
    pub fn to_pem(&self) -> Result<String, SignerError> {
        match self {
            Self::Ed25519(bytes) => ed25519_verifying_key(bytes)?
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| SignerError::encode("ed25519 public key PEM", e)),
            Self::EcdsaP256(key) => Ok(p256_spki_pem(key)),
        }
    }

    /// Parses a SubjectPublicKeyInfo PEM document (`-----BEGIN PUBLIC KEY-----`) holding an
    /// Ed25519 or P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, SignerError> {
        let (label, doc) = pkcs8::Document::from_pem(pem.trim_start())
            .map_err(|e| SignerError::malformed("public key PEM", e))?;
        if label != "PUBLIC KEY" {
            return Err(SignerError::malformed(
                "public key PEM",
                format!("PEM label {label:?}, expected \"PUBLIC KEY\""),
            ));
        }
        Self::from_spki_der(doc.as_bytes())
    }

    /// Parses a DER SubjectPublicKeyInfo holding an Ed25519 or P-256 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignerError> {
        let spki = pkcs8::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| SignerError::malformed("SubjectPublicKeyInfo", e))?;
        let oid = spki.algorithm.oid;
        if oid == ED25519_OID {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map_err(|e| SignerError::malformed("ed25519 public key", e))?;
            return Ok(Self::Ed25519(key.to_bytes()));
        }
        if oid == EC_PUBLIC_KEY_OID {
            let curve = spki.algorithm.parameters_oid().ok();
            if curve != Some(P256_OID) {
                return Err(SignerError::UnsupportedKeyType(format!(
                    "EC key on curve {curve:?}; only P-256 is supported"
                )));
            }
            let key = p256::PublicKey::from_public_key_der(der)
                .map_err(|e| SignerError::malformed("P-256 public key", e))?;
            return Ok(Self::EcdsaP256(key));
        }
        Err(SignerError::UnsupportedKeyType(format!(
            "public key algorithm {oid}"
        )))
    }

    /// Reads a public-key file (SubjectPublicKeyInfo PEM).
    pub fn read_pem_file(path: &Path) -> Result<Self, SignerError> {
        let pem = std::fs::read_to_string(path).map_err(|source| SignerError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem)
    }

    /// Checks `sig` over `msg` as securesystemslib does: Ed25519 over `msg` (strict: no
    /// small-order keys, canonical encodings only); ECDSA P-256 over SHA-256(`msg`) with the
    /// signature in ASN.1 DER. Any failure is [`SignerError::BadSignature`].
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignerError> {
        match self {
            Self::Ed25519(bytes) => {
                let key = ed25519_verifying_key(bytes).map_err(|_| SignerError::BadSignature)?;
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| SignerError::BadSignature)?;
                key.verify_strict(msg, &sig)
                    .map_err(|_| SignerError::BadSignature)
            }
            Self::EcdsaP256(key) => {
                let sig =
                    p256::ecdsa::Signature::from_der(sig).map_err(|_| SignerError::BadSignature)?;
                p256::ecdsa::VerifyingKey::from(key)
                    .verify(msg, &sig)
                    .map_err(|_| SignerError::BadSignature)
            }
        }
    }
}

fn ed25519_verifying_key(bytes: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey, SignerError> {
    ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|e| SignerError::malformed("ed25519 public key", e))
}

/// P-256 SPKI PEM. Encoding a valid point into SPKI cannot fail; the fallback keeps this
/// function total without `unwrap`.
fn p256_spki_pem(key: &p256::PublicKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}
