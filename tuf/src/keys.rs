//! Public keys as TUF metadata lists them, their ids, and signature verification
//! (ed25519, ECDSA P-256 with SHA-256, RSASSA-PSS with SHA-256).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical;
use crate::error::{Result, TufError};

/// A key id: in metadata, whatever string the delegator uses; computed by [`Key::key_id`]
/// as the lowercase hex SHA-256 of the key's canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl KeyId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for KeyId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The `keyval` object of a key: the public part, plus any fields this crate does not know
/// (kept, since they are part of the key's canonical form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key: 64 hex characters (ed25519) or an SPKI PEM (ECDSA, RSA).
    pub public: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A public key as TUF metadata lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256`, `rsa`, ...
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256`, ...
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
    /// Fields this crate does not know (for example `keyid_hash_algorithms`).
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

const ED25519: &str = "ed25519";
const ECDSA_P256: &str = "ecdsa-sha2-nistp256";
const RSA_PSS_SHA256: &str = "rsassa-pss-sha256";

impl Key {
    /// An ed25519 key (`keytype` and `scheme` `ed25519`, public as hex).
    pub fn ed25519(public: &[u8; 32]) -> Key {
        Key::new(ED25519, ED25519, hex::encode(public))
    }

    /// An ECDSA P-256 key from an SPKI PEM public key (`keytype` `ecdsa`,
    /// `scheme` `ecdsa-sha2-nistp256`); the PEM is normalised to what securesystemslib writes.
    pub fn ecdsa_p256_from_spki_pem(pem: &str) -> Result<Key> {
        use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
        let key = p256::PublicKey::from_public_key_pem(pem.trim())
            .map_err(|e| TufError::malformed("ECDSA P-256 public key", e))?;
        let pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| TufError::malformed("ECDSA P-256 public key", e))?;
        Ok(Key::new("ecdsa", ECDSA_P256, pem))
    }

    fn new(keytype: &str, scheme: &str, public: String) -> Key {
        Key {
            keytype: keytype.to_owned(),
            scheme: scheme.to_owned(),
            keyval: KeyVal {
                public,
                unrecognized: BTreeMap::new(),
            },
            unrecognized: BTreeMap::new(),
        }
    }

    /// The key's id: lowercase hex SHA-256 of its canonical JSON (unknown fields included).
    pub fn key_id(&self) -> KeyId {
        // A Key holds only strings and JSON values that came from JSON: if canonical JSON
        // refuses one of them (a float), hash the ordinary JSON form instead.
        let bytes = to_canonical(self)
            .or_else(|_| serde_json::to_vec(self))
            .unwrap_or_default();
        KeyId(hex::encode(Sha256::digest(bytes)))
    }

    /// The key's public material in one form however its JSON spells it (hex in either
    /// case, PEM wrapped or trimmed differently, `ecdsa` or `ecdsa-sha2-nistp256`, a
    /// compressed or uncompressed point): the algorithm and the decoded key. What counts one
    /// key once in a threshold. `None` if it does not decode (it verifies nothing then).
    pub fn material(&self) -> Option<(&'static str, Vec<u8>)> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => Some((ED25519, hex::decode(&self.keyval.public).ok()?)),
            ("ecdsa" | ECDSA_P256, ECDSA_P256) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint as _;
                use p256::pkcs8::DecodePublicKey as _;
                let key = p256::PublicKey::from_public_key_pem(self.keyval.public.trim()).ok()?;
                Some((ECDSA_P256, key.to_encoded_point(false).as_bytes().to_vec()))
            }
            ("rsa", RSA_PSS_SHA256) => {
                use rsa::pkcs8::DecodePublicKey as _;
                use rsa::traits::PublicKeyParts as _;
                let key = rsa::RsaPublicKey::from_public_key_pem(self.keyval.public.trim()).ok()?;
                let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
                // Length-prefixed: no (n, e) pair reads as another.
                let mut m = u32::try_from(n.len()).ok()?.to_be_bytes().to_vec();
                m.extend(n);
                m.extend(e);
                Some(("rsa", m))
            }
            _ => None,
        }
    }

    /// Checks that `sig` is this key's signature over `msg`.
    /// A check that passed is remembered ([`crate::memo`]).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let key = crate::memo::digest(&[
            self.keytype.as_bytes(),
            self.scheme.as_bytes(),
            self.keyval.public.as_bytes(),
            msg,
            sig,
        ]);
        crate::memo::verified(key, || self.verify_uncached(msg, sig))
    }

    fn verify_uncached(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => self.verify_ed25519(msg, sig),
            ("ecdsa" | ECDSA_P256, ECDSA_P256) => self.verify_p256(msg, sig),
            ("rsa", RSA_PSS_SHA256) => self.verify_rsa_pss(msg, sig),
            _ => Err(TufError::UnsupportedKey {
                keytype: self.keytype.clone(),
                scheme: self.scheme.clone(),
            }),
        }
    }

    fn bad_signature(&self) -> TufError {
        TufError::BadSignature {
            keyid: self.key_id().0,
        }
    }

    fn verify_ed25519(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let public: [u8; 32] = hex::decode(&self.keyval.public)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TufError::malformed("ed25519 key", "public is not 64 hex characters"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|e| TufError::malformed("ed25519 key", e))?;
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| self.bad_signature())?;
        key.verify_strict(msg, &sig)
            .map_err(|_| self.bad_signature())
    }

    fn verify_p256(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::PublicKey::from_public_key_pem(self.keyval.public.trim())
            .map_err(|e| TufError::malformed("ECDSA P-256 key", e))?;
        let key = p256::ecdsa::VerifyingKey::from(&key);
        let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| self.bad_signature())?;
        key.verify(msg, &sig).map_err(|_| self.bad_signature())
    }

    fn verify_rsa_pss(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let key = rsa::RsaPublicKey::from_public_key_pem(self.keyval.public.trim())
            .map_err(|e| TufError::malformed("RSA key", e))?;
        let key = rsa::pss::VerifyingKey::<Sha256>::new(key);
        let sig = rsa::pss::Signature::try_from(sig).map_err(|_| self.bad_signature())?;
        key.verify(msg, &sig).map_err(|_| self.bad_signature())
    }
}
