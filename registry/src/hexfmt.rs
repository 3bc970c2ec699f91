//! Lowercase hex: [`Sha256Hash`] and the strict decoders every hex field goes through.
//!
//! Only lowercase is accepted, so each value has exactly one spelling in signed JSON.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};

/// Decodes lowercase hex.
pub(crate) fn decode(s: &str, field: &'static str) -> Result<Vec<u8>> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RegistryError::BadHex { field });
    }
    hex::decode(s).map_err(|_| RegistryError::BadHex { field })
}

/// Decodes exactly 32 bytes of lowercase hex.
pub(crate) fn decode32(s: &str, field: &'static str) -> Result<[u8; 32]> {
    decode(s, field)?
        .try_into()
        .map_err(|_| RegistryError::BadHex { field })
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Hash(pub [u8; 32]);

impl Sha256Hash {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        Ok(Self(decode32(s, "sha256")?))
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl Serialize for Sha256Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "hex_bytes")]` for `Vec<u8>` fields written as lowercase hex.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::decode(&s, "bytes").map_err(serde::de::Error::custom)
    }
}
