//! Ed25519 keys: [`PublicKey`] (weak keys refused), [`KeyId`] (SHA-256 of the raw public key),
//! [`SecretKey`] (zeroized on drop, `Debug` redacted) and key files written atomically with
//! mode 0600.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{RegistryError, Result};
use crate::hexfmt;

/// Largest key file accepted.
pub const MAX_KEY_FILE_LEN: u64 = 4 * 1024;

/// A key id: the SHA-256 of the 32 raw bytes of an Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// Parses lowercase hex.
    pub fn from_hex(s: &str) -> Result<Self> {
        Ok(Self(hexfmt::decode32(s, "keyid")?))
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A public key as written in metadata: 32 bytes, not yet checked. [`PublicKey::from_bytes`]
/// turns it into a usable key (refusing invalid and weak keys with their own errors).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawKey(pub [u8; 32]);

impl From<PublicKey> for RawKey {
    fn from(k: PublicKey) -> Self {
        Self(k.to_bytes())
    }
}

impl RawKey {
    /// The checked key.
    pub fn check(&self) -> Result<PublicKey> {
        PublicKey::from_bytes(&self.0)
    }
}

impl Serialize for RawKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hexfmt::decode32(&s, "public key")
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 public key that is a valid point and not of small order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 32 raw bytes, refusing invalid points ([`RegistryError::BadKey`]) and weak
    /// (small-order) keys ([`RegistryError::WeakKey`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| RegistryError::BadKey)?;
        if vk.is_weak() {
            return Err(RegistryError::WeakKey);
        }
        Ok(Self(vk))
    }

    /// Parses lowercase hex of the 32 raw bytes.
    pub fn from_hex(s: &str) -> Result<Self> {
        Self::from_bytes(&hexfmt::decode32(s, "public key")?)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Lowercase hex of the raw bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// This key's id: SHA-256 of the raw bytes.
    pub fn key_id(&self) -> KeyId {
        KeyId(Sha256::digest(self.to_bytes()).into())
    }

    /// Verifies `sig` over `msg` with `verify_strict` (no malleable or small-order forms).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.0
            .verify_strict(msg, &Signature::from_bytes(sig))
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signing key. Zeroized on drop; its `Debug` shows only the key id.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed: for the simulator and tests only (a guessable seed is a
    /// known key). Other crates reach it as [`crate::danger::key_from_seed`].
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The public half's key id.
    pub fn key_id(&self) -> KeyId {
        self.public().key_id()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// The `ed25519-dalek` key itself (zeroized on drop), for a caller that signs with it
    /// directly (the host's identity key).
    pub fn into_signing_key(self) -> SigningKey {
        self.0
    }

    /// The key file's JSON (`{"keytype":"ed25519","public":…,"secret":…}`), in a buffer that
    /// is zeroized on drop.
    pub fn to_key_file(&self) -> Zeroizing<Vec<u8>> {
        let secret = Zeroizing::new(hex::encode(self.0.to_bytes()));
        let mut out = Zeroizing::new(Vec::with_capacity(200));
        out.extend_from_slice(br#"{"keytype":"ed25519","public":""#);
        out.extend_from_slice(self.public().to_hex().as_bytes());
        out.extend_from_slice(br#"","secret":""#);
        out.extend_from_slice(secret.as_bytes());
        out.extend_from_slice(b"\"}\n");
        out
    }

    /// Parses a key file written by [`SecretKey::to_key_file`]; the public half must match.
    pub fn from_key_file(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct KeyFile {
            keytype: String,
            public: String,
            secret: String,
        }
        impl Drop for KeyFile {
            fn drop(&mut self) {
                zeroize::Zeroize::zeroize(&mut self.secret);
            }
        }
        crate::json::check_len(bytes.len(), MAX_KEY_FILE_LEN, "key file")?;
        crate::json::check_no_duplicate_keys(bytes)?;
        let kf: KeyFile =
            serde_json::from_slice(bytes).map_err(|_| RegistryError::BadKeyFile("malformed"))?;
        if kf.keytype != "ed25519" {
            return Err(RegistryError::BadKeyFile("keytype is not ed25519"));
        }
        let seed = Zeroizing::new(
            hexfmt::decode32(&kf.secret, "secret")
                .map_err(|_| RegistryError::BadKeyFile("secret is not 32 bytes of hex"))?,
        );
        let key = Self(SigningKey::from_bytes(&seed));
        if key.public().to_hex() != kf.public {
            return Err(RegistryError::BadKeyFile(
                "public key does not match the secret",
            ));
        }
        Ok(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, secret redacted)", self.key_id())
    }
}

/// Writes `key` to `path` atomically with mode 0600, refusing to replace an existing file
/// (see [`crate::files`]).
pub fn write_key_file(path: &Path, key: &SecretKey) -> Result<()> {
    crate::files::write_private_new(path, &key.to_key_file())
}

/// Reads a key file written by [`write_key_file`].
pub fn read_key_file(path: &Path) -> Result<SecretKey> {
    let bytes = Zeroizing::new(crate::files::read_capped(
        path,
        MAX_KEY_FILE_LEN,
        "key file",
    )?);
    SecretKey::from_key_file(&bytes)
}

/// The public key file's JSON: `{"keytype":"ed25519","public":"<hex>"}` (what an author
/// hands the registry for `delegate`).
pub fn public_key_file(key: &PublicKey) -> Vec<u8> {
    format!(
        "{{\"keytype\":\"ed25519\",\"public\":\"{}\"}}\n",
        key.to_hex()
    )
    .into_bytes()
}

/// Writes a public key file (mode 0644, atomically).
pub fn write_public_key_file(path: &Path, key: &PublicKey) -> Result<()> {
    crate::files::write_public(path, &public_key_file(key))
}

/// Reads the public key from a public key file, or from a secret key file (its `public`
/// half, checked against the secret).
pub fn read_public_key_file(path: &Path) -> Result<PublicKey> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PublicFile {
        keytype: String,
        public: String,
    }
    let bytes = Zeroizing::new(crate::files::read_capped(
        path,
        MAX_KEY_FILE_LEN,
        "key file",
    )?);
    crate::json::check_no_duplicate_keys(&bytes)?;
    if let Ok(pf) = serde_json::from_slice::<PublicFile>(&bytes) {
        if pf.keytype != "ed25519" {
            return Err(RegistryError::BadKeyFile("keytype is not ed25519"));
        }
        return PublicKey::from_hex(&pf.public);
    }
    Ok(SecretKey::from_key_file(&bytes)?.public())
}

/// A host key (`kasane/host-keys.json`) given as 64 hex digits, or as a file holding it: a
/// public key file (PEM, or the JSON above) or a key file (only its public half is read).
pub fn read_host_public_key(arg: &str) -> Result<[u8; 32]> {
    let path = Path::new(arg);
    if !path.exists() && arg.len() == 64 {
        return crate::hexfmt::decode32(arg, "host public key");
    }
    if let Ok(k) = kasane_signer::PublicKey::read_pem_file(path) {
        return crate::documents::ed25519_public(&crate::signing::tuf_key(&k));
    }
    Ok(read_public_key_file(path)?.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_debug_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let k = SecretKey::generate();
        write_key_file(&p, &k).unwrap();
        let back = read_key_file(&p).unwrap();
        assert!(
            write_key_file(&p, &SecretKey::generate()).is_err(),
            "no overwrite"
        );
        assert_eq!(read_key_file(&p).unwrap().public(), k.public());
        assert_eq!(back.public(), k.public());
        let dbg = format!("{k:?}");
        let secret_hex = hex::encode(k.0.to_bytes());
        assert!(!dbg.contains(&secret_hex));
        assert!(dbg.contains(&k.key_id().to_hex()));
        // The public half, from either file.
        assert_eq!(read_public_key_file(&p).unwrap(), k.public());
        let pp = dir.path().join("k.pub");
        write_public_key_file(&pp, &k.public()).unwrap();
        assert_eq!(read_public_key_file(&pp).unwrap(), k.public());
        assert!(
            read_key_file(&pp).is_err(),
            "a public key file is no secret key"
        );
    }

    #[test]
    fn weak_and_invalid_keys_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_bytes(&identity),
            Err(RegistryError::WeakKey)
        ));
        let k = SecretKey::from_seed(&[7; 32]);
        assert!(PublicKey::from_bytes(&k.public().to_bytes()).is_ok());
    }
}
