//! Kasane's own documents, published as TUF targets and resolved like any target:
//! `kasane/host-keys.json` (signed through `targets`) and `kasane/revocations.json` (signed
//! through the `revocations` role). Both parse strictly: unknown fields and duplicate keys are
//! refused, and each has a size cap.

use std::collections::BTreeSet;

use kasane_tuf::keys::Key;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;

/// Cap on `kasane/host-keys.json`.
pub const MAX_HOST_KEYS_LEN: u64 = 64 * 1024;
/// Cap on `kasane/revocations.json`.
pub const MAX_REVOCATIONS_LEN: u64 = 256 * 1024;

/// `kasane/host-keys.json`: the host's identity keys (one signs each login's start response)
/// and its ticket keys (one signs each login's session ticket). Ed25519 only: the protocol
/// verifies them directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeys {
    /// Identity keys (TUF key objects).
    pub identity: Vec<Key>,
    /// Ticket keys (TUF key objects).
    pub tickets: Vec<Key>,
}

impl HostKeys {
    /// A document with one identity key and one ticket key.
    pub fn new(identity: &[u8; 32], ticket: &[u8; 32]) -> Self {
        Self {
            identity: vec![Key::ed25519(identity)],
            tickets: vec![Key::ed25519(ticket)],
        }
    }

    /// Parses and checks the document (non-empty lists of Ed25519 keys).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let doc: Self = crate::json::from_slice_strict(bytes, MAX_HOST_KEYS_LEN, "host keys")?;
        for k in doc.identity.iter().chain(&doc.tickets) {
            ed25519_public(k)?;
        }
        if doc.identity.is_empty() || doc.tickets.is_empty() {
            return Err(RegistryError::Invalid {
                field: "host keys",
                reason: "at least one identity key and one ticket key",
            });
        }
        Ok(doc)
    }

    /// The identity keys as raw Ed25519 public keys.
    pub fn identity_keys(&self) -> Result<Vec<[u8; 32]>> {
        self.identity.iter().map(ed25519_public).collect()
    }

    /// The bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of key objects (strings and maps of strings) always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// The 32 public bytes of an Ed25519 TUF key.
pub fn ed25519_public(key: &Key) -> Result<[u8; 32]> {
    if key.keytype != "ed25519" || key.scheme != "ed25519" {
        return Err(RegistryError::Invalid {
            field: "host keys",
            reason: "host keys must be ed25519",
        });
    }
    crate::hexfmt::decode32(&key.keyval.public, "ed25519 public key")
}

/// `kasane/revocations.json`: module hashes no client may run, even from its cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// Revoked module hashes (SHA-256, lowercase hex), sorted, no repeats.
    pub modules: Vec<Sha256Hash>,
}

impl RevocationList {
    /// Parses and checks the document (no hash twice).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let doc: Self = crate::json::from_slice_strict(bytes, MAX_REVOCATIONS_LEN, "revocations")?;
        let mut seen = BTreeSet::new();
        if !doc.modules.iter().all(|h| seen.insert(*h)) {
            return Err(RegistryError::DuplicateName {
                name: "revoked hash".into(),
            });
        }
        Ok(doc)
    }

    /// True if `hash` is revoked.
    pub fn is_revoked(&self, hash: &Sha256Hash) -> bool {
        self.modules.contains(hash)
    }

    /// Adds `hash` (sorted; no effect if it is already listed).
    pub fn add(&mut self, hash: Sha256Hash) {
        if let Err(at) = self.modules.binary_search(&hash) {
            self.modules.insert(at, hash);
        }
    }

    /// The bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A list of hex strings always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_round_trip_and_refuse_other_key_types() {
        let doc = HostKeys::new(&[1; 32], &[2; 32]);
        let back = HostKeys::from_bytes(&doc.to_bytes()).unwrap();
        assert_eq!(back.identity_keys().unwrap(), vec![[1; 32]]);
        let mut bad = serde_json::to_value(&doc).unwrap();
        bad["tickets"][0]["keytype"] = "rsa".into();
        let bytes = serde_json::to_vec(&bad).unwrap();
        assert!(HostKeys::from_bytes(&bytes).is_err());
    }

    #[test]
    fn revocations_refuse_repeats_and_duplicate_keys() {
        let mut list = RevocationList::default();
        list.add(Sha256Hash([3; 32]));
        list.add(Sha256Hash([1; 32]));
        list.add(Sha256Hash([3; 32]));
        assert_eq!(list.modules, vec![Sha256Hash([1; 32]), Sha256Hash([3; 32])]);
        assert_eq!(RevocationList::from_bytes(&list.to_bytes()).unwrap(), list);
        let h = Sha256Hash([1; 32]).to_hex();
        let twice = format!(r#"{{"modules": ["{h}", "{h}"]}}"#);
        assert!(matches!(
            RevocationList::from_bytes(twice.as_bytes()),
            Err(RegistryError::DuplicateName { .. })
        ));
        let dup_key = format!(r#"{{"modules": [], "modules": ["{h}"]}}"#);
        assert!(matches!(
            RevocationList::from_bytes(dup_key.as_bytes()),
            Err(RegistryError::DuplicateKey { .. })
        ));
    }
}
