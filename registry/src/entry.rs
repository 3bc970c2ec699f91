//! A transform as the registry publishes it: a TUF target whose `custom.kasane` object carries
//! the sandbox profile, limits, parameters and rollout weight.
//!
//! ```json
//! "acme/ocra-v2": {"length": 5123, "hashes": {"sha256": "…"},
//!   "custom": {"kasane": {"profile": "pure", "fuel": 2000000, "memory": 16777216,
//!                         "params": "4f4352412d31", "rollout_weight": 5}}}
//! ```
//!
//! `custom.kasane` refuses unknown fields: a limit an older client would ignore could make it
//! run a module under weaker terms than its publisher meant.

use std::collections::BTreeMap;

use kasane_tuf::metadata::TargetFile;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::hexfmt::{Sha256Hash, hex_bytes};
use crate::layout::validate_module_name;

pub use kasane_abi::Profile;

/// Cap on a module (DESIGN §2: module size 1 MiB).
pub const MAX_MODULE_LEN: u64 = 1024 * 1024;

/// One module as published: identity, limits and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEntry {
    /// The target path (see [`validate_module_name`]).
    pub name: String,
    /// SHA-256 of the module bytes.
    pub sha256: Sha256Hash,
    /// Length of the module in bytes.
    pub length: u64,
    /// Sandbox profile.
    pub profile: Profile,
    /// Fuel budget.
    pub fuel: u64,
    /// Linear memory limit, bytes.
    pub memory: u64,
    /// Parameters passed in `DeriveInput.params`.
    pub params: Vec<u8>,
    /// Rollout weight (0 = published but never picked).
    pub rollout_weight: u32,
}

/// `custom.kasane` of a transform target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KasaneFields {
    profile: Profile,
    fuel: u64,
    memory: u64,
    #[serde(with = "hex_bytes")]
    params: Vec<u8>,
    rollout_weight: u32,
}

impl TargetEntry {
    /// Checks name, length and params bounds.
    pub fn validate(&self) -> Result<()> {
        validate_module_name(&self.name)?;
        if self.length == 0 || self.length > MAX_MODULE_LEN {
            return Err(RegistryError::Invalid {
                field: "length",
                reason: "module length out of range",
            });
        }
        if self.params.len() > kasane_abi::v1::MAX_PARAMS_LEN {
            return Err(RegistryError::TooLarge {
                what: "params".into(),
                len: self.params.len() as u64,
                max: kasane_abi::v1::MAX_PARAMS_LEN as u64,
            });
        }
        Ok(())
    }

    /// The TUF target file entry: length, SHA-256 and `custom.kasane`.
    pub fn to_target_file(&self) -> TargetFile {
        let fields = KasaneFields {
            profile: self.profile,
            fuel: self.fuel,
            memory: self.memory,
            params: self.params.clone(),
            rollout_weight: self.rollout_weight,
        };
        let custom = serde_json::json!({ "kasane": fields });
        TargetFile {
            length: self.length,
            hashes: BTreeMap::from([("sha256".to_owned(), self.sha256.to_hex())]),
            custom: Some(custom),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The entry a verified TUF target describes, refusing a target that is not a transform
    /// (no SHA-256, no or malformed `custom.kasane`) or whose fields are out of range.
    pub fn from_target(name: &str, file: &TargetFile) -> Result<Self> {
        let sha256 = file
            .hashes
            .get("sha256")
            .ok_or(RegistryError::Invalid {
                field: "hashes",
                reason: "a transform target needs a sha256 hash",
            })
            .and_then(|h| Sha256Hash::from_hex(h))?;
        let kasane = file.custom.as_ref().and_then(|c| c.get("kasane")).ok_or(
            RegistryError::NotATransform {
                name: name.chars().take(200).collect(),
            },
        )?;
        let f: KasaneFields = serde_json::from_value(kasane.clone())?;
        let entry = Self {
            name: name.to_owned(),
            sha256,
            length: file.length,
            profile: f.profile,
            fuel: f.fuel,
            memory: f.memory,
            params: f.params,
            rollout_weight: f.rollout_weight,
        };
        entry.validate()?;
        Ok(entry)
    }

    /// The sandbox limits this entry asks for: its fuel and memory, the rest the sandbox's
    /// defaults (capped later by the sandbox's configuration). The one definition the host and
    /// the client both run an entry under.
    #[cfg(feature = "sandbox")]
    #[must_use]
    pub fn limits(&self) -> kasane_sandbox::Limits {
        kasane_sandbox::Limits {
            fuel: self.fuel,
            memory_bytes: self.memory,
            ..kasane_sandbox::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> TargetEntry {
        TargetEntry {
            name: "acme/ocra-v2".into(),
            sha256: Sha256Hash([7; 32]),
            length: 100,
            profile: Profile::Pure,
            fuel: 1_000_000,
            memory: 1 << 20,
            params: b"OCRA-1".to_vec(),
            rollout_weight: 5,
        }
    }

    #[test]
    fn round_trips_through_a_tuf_target() {
        let e = entry();
        let back = TargetEntry::from_target(&e.name, &e.to_target_file()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn refuses_unknown_kasane_fields_and_plain_targets() {
        let mut file = entry().to_target_file();
        file.custom.as_mut().unwrap()["kasane"]["sandbox"] = serde_json::json!("off");
        assert!(matches!(
            TargetEntry::from_target("acme/ocra-v2", &file),
            Err(RegistryError::Json(_))
        ));
        let plain = TargetFile::from_data(b"not a transform");
        assert!(matches!(
            TargetEntry::from_target("x", &plain),
            Err(RegistryError::NotATransform { .. })
        ));
    }
}
