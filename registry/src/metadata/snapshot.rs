//! `snapshot`: the version, hash and length of every other file (except root), so a client
//! never combines files from different moments of the repository (no mix-and-match).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Metadata, validate_author_id};
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;

/// What the snapshot records for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaInfo {
    /// The file's version.
    pub version: u64,
    /// SHA-256 of the file as stored.
    pub sha256: Sha256Hash,
    /// Length of the file as stored.
    pub length: u64,
}

impl MetaInfo {
    /// Describes a stored file.
    pub fn of(version: u64, bytes: &[u8]) -> Self {
        Self {
            version,
            sha256: Sha256Hash::of(bytes),
            length: bytes.len() as u64,
        }
    }
}

/// The `snapshot` file's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Version.
    pub version: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// File name (`targets`, `revocations`, `authors/<id>`) → what it must be.
    pub meta: BTreeMap<String, MetaInfo>,
}

impl Metadata for Snapshot {
    const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.snapshot.v1+json";
    const MAX_LEN: u64 = super::MAX_SNAPSHOT_LEN;
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn validate(&self) -> Result<()> {
        for name in ["targets", "revocations"] {
            if !self.meta.contains_key(name) {
                return Err(RegistryError::MissingFromSnapshot {
                    role: if name == "targets" {
                        crate::error::RoleName::Targets
                    } else {
                        crate::error::RoleName::Revocations
                    },
                });
            }
        }
        for name in self.meta.keys() {
            match name.strip_prefix("authors/") {
                Some(id) => validate_author_id(id)?,
                None if name == "targets" || name == "revocations" => {}
                None => {
                    return Err(RegistryError::BadName {
                        name: name.chars().take(200).collect(),
                        reason: "not a snapshot entry",
                    });
                }
            }
        }
        Ok(())
    }
}
