//! `revocations`: module hashes and author keys that are no longer trusted.
//!
//! It can only take trust away: a revoked hash is refused wherever it is listed (and from a
//! client's cache); a revoked author key stops counting toward any author threshold.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::Metadata;
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::keys::KeyId;

/// The `revocations` file's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// Version.
    pub version: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// Revoked module hashes.
    pub hashes: Vec<Sha256Hash>,
    /// Revoked author key ids.
    pub author_keys: Vec<KeyId>,
}

impl Metadata for Revocations {
    const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.revocations.v1+json";
    const MAX_LEN: u64 = super::MAX_REVOCATIONS_LEN;
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn validate(&self) -> Result<()> {
        let mut h = HashSet::new();
        if !self.hashes.iter().all(|x| h.insert(*x)) {
            return Err(RegistryError::DuplicateName {
                name: "revoked hash".into(),
            });
        }
        let mut k = HashSet::new();
        if !self.author_keys.iter().all(|x| k.insert(*x)) {
            return Err(RegistryError::DuplicateName {
                name: "revoked author key".into(),
            });
        }
        Ok(())
    }
}

impl Revocations {
    /// True if `hash` is revoked.
    pub fn is_revoked(&self, hash: &Sha256Hash) -> bool {
        self.hashes.contains(hash)
    }

    /// The revoked author keys as a set.
    pub fn revoked_keys(&self) -> HashSet<KeyId> {
        self.author_keys.iter().copied().collect()
    }
}
