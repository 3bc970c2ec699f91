//! The root, timestamp and snapshot payloads, and the meta-file entries that pin versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{SPEC_VERSION, SignedRole, TOP_LEVEL_ROLES, check_unique_keyids, expires_format};
use crate::error::{Result, TufError};
use crate::keys::{Key, KeyId};

/// Implements [`SignedRole`]'s accessors for a payload with the four common fields.
macro_rules! signed_role_common {
    ($ty:literal) => {
        const TYPE: &'static str = $ty;
        fn type_field(&self) -> &str {
            &self.type_
        }
        fn spec_version(&self) -> &str {
            &self.spec_version
        }
        fn version(&self) -> u64 {
            self.version
        }
        fn expires(&self) -> OffsetDateTime {
            self.expires
        }
    };
}
pub(super) use signed_role_common;

/// The keys and threshold a delegator gives one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Ids of the keys whose signatures count (unique).
    pub keyids: Vec<KeyId>,
    /// How many distinct listed keys must sign (at least 1).
    pub threshold: u64,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Role {
    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        check_unique_keyids(what, &self.keyids)?;
        if self.threshold < 1 {
            return Err(TufError::malformed(what, "threshold must be at least 1"));
        }
        Ok(())
    }
}

/// The root role's payload: the keys and thresholds of the top-level roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF version the metadata follows (major version 1).
    pub spec_version: String,
    /// The metadata version (> 0).
    pub version: u64,
    /// When the metadata stops being trusted.
    #[serde(with = "expires_format")]
    pub expires: OffsetDateTime,
    /// Whether metadata and target files are published under versioned / hashed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// The keys, by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<String, Role>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Root {
    /// A root of version 1 with no keys and thresholds of 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        let roles = TOP_LEVEL_ROLES
            .iter()
            .map(|r| {
                let role = Role {
                    keyids: Vec::new(),
                    threshold: 1,
                    unrecognized: BTreeMap::new(),
                };
                ((*r).to_owned(), role)
            })
            .collect();
        Self {
            type_: "root".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: 1,
            expires,
            consistent_snapshot: Some(true),
            keys: BTreeMap::new(),
            roles,
            unrecognized: BTreeMap::new(),
        }
    }

    /// `consistent_snapshot`, false when absent.
    pub fn consistent_snapshot(&self) -> bool {
        self.consistent_snapshot.unwrap_or(false)
    }

    /// Adds `key` to the keys and to `role`'s key ids (once).
    pub fn add_key(&mut self, role: &str, key: Key) -> Result<()> {
        let id = key.key_id();
        let entry = self
            .roles
            .get_mut(role)
            .ok_or_else(|| TufError::NotDelegated {
                role: role.to_owned(),
                delegator: "root".to_owned(),
            })?;
        if !entry.keyids.contains(&id) {
            entry.keyids.push(id.clone());
        }
        self.keys.insert(id, key);
        Ok(())
    }
}

impl SignedRole for Root {
    signed_role_common!("root");

    fn validate(&self) -> Result<()> {
        let names: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        let mut expected = TOP_LEVEL_ROLES.to_vec();
        expected.sort_unstable();
        if names != expected {
            return Err(TufError::malformed(
                "root",
                "roles must be the four top-level roles",
            ));
        }
        for (name, role) in &self.roles {
            role.validate(name)?;
        }
        Ok(())
    }
}

/// What a referring role says about a metadata file: its version, and optionally its
/// length and hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The version the file must have (> 0).
    pub version: u64,
    /// Its length in bytes, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes (algorithm → hex), if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl MetaFile {
    /// A meta entry pinning only the version.
    pub fn new(version: u64) -> Self {
        Self {
            version,
            length: None,
            hashes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Checks `data` against the length and hashes, where given.
    pub fn verify_length_and_hashes(&self, what: &str, data: &[u8]) -> Result<()> {
        if let Some(expected) = self.length {
            crate::hashes::check_length(what, expected, data)?;
        }
        if let Some(hashes) = &self.hashes {
            crate::hashes::check_hashes(what, hashes, data)?;
        }
        Ok(())
    }

    fn validate(&self, what: &str) -> Result<()> {
        if self.version == 0 {
            return Err(TufError::malformed(what, "meta version must be > 0"));
        }
        if self.hashes.as_ref().is_some_and(BTreeMap::is_empty) {
            return Err(TufError::malformed(what, "hashes must not be empty"));
        }
        Ok(())
    }
}

/// The timestamp role's payload: which snapshot is current.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF version the metadata follows (major version 1).
    pub spec_version: String,
    /// The metadata version (> 0).
    pub version: u64,
    /// When the metadata stops being trusted.
    #[serde(with = "expires_format")]
    pub expires: OffsetDateTime,
    /// `snapshot.json` → its meta entry.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Timestamp {
    /// A timestamp of version 1 naming snapshot `snapshot_meta`.
    pub fn new(expires: OffsetDateTime, snapshot_meta: MetaFile) -> Self {
        Self {
            type_: "timestamp".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: 1,
            expires,
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot_meta)]),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The meta entry of `snapshot.json` (present: checked when parsed).
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        self.meta
            .get("snapshot.json")
            .ok_or_else(|| TufError::malformed("timestamp", "meta has no snapshot.json"))
    }
}

impl SignedRole for Timestamp {
    signed_role_common!("timestamp");

    fn validate(&self) -> Result<()> {
        self.snapshot_meta()?.validate("timestamp")
    }
}

/// The snapshot role's payload: the version of every targets metadata file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF version the metadata follows (major version 1).
    pub spec_version: String,
    /// The metadata version (> 0).
    pub version: u64,
    /// When the metadata stops being trusted.
    #[serde(with = "expires_format")]
    pub expires: OffsetDateTime,
    /// `<role>.json` → its meta entry.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Snapshot {
    /// A snapshot of version 1 listing `targets.json` version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Self {
            type_: "snapshot".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: 1,
            expires,
            meta: BTreeMap::from([("targets.json".to_owned(), MetaFile::new(1))]),
            unrecognized: BTreeMap::new(),
        }
    }
}

impl SignedRole for Snapshot {
    signed_role_common!("snapshot");

    fn validate(&self) -> Result<()> {
        self.meta.iter().try_for_each(|(name, m)| m.validate(name))
    }
}
