//! `targets` and `authors/<id>`: module entries ([`TargetEntry`]) and delegations to authors.
//!
//! A delegation gives an author's keys a name prefix. The author signs its own
//! `authors/<id>` file; a delegated module is runnable only if the author's file lists it AND
//! the delegation's prefix covers its name. An author may sub-delegate a narrower prefix (a
//! team); the graph must be a tree (no author reached twice) of bounded size and depth.
//! Delegations are *terminating*: once a prefix matches, no later sibling is consulted.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{
    KeyMap, MAX_MODULE_LEN, Metadata, check_key_map, role_keys, validate_author_id, validate_name,
    validate_prefix,
};
use crate::envelope::RoleKeys;
use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::{Sha256Hash, hex_bytes};
use crate::keys::KeyId;

/// Most delegations in the whole graph.
pub const MAX_DELEGATIONS: usize = 64;
/// Deepest delegation chain (targets → author is depth 1).
pub const MAX_DELEGATION_DEPTH: usize = 4;

pub use kasane_abi::Profile;

/// One module as published: identity, limits and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// The name (see [`validate_name`]).
    pub name: String,
    /// The module's own version (informational; the hash is the identity).
    pub version: u64,
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
    #[serde(with = "hex_bytes")]
    pub params: Vec<u8>,
    /// Rollout weight (0 = published but never picked).
    pub rollout_weight: u32,
}

impl TargetEntry {
    /// Checks name, length and params bounds.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
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
}

/// A delegation of a name prefix to an author's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The author id; its file is `authors/<id>`.
    pub author: String,
    /// The prefix the author may publish under (ends with `/`).
    pub prefix: String,
    /// The author's keys.
    pub keys: KeyMap,
    /// Distinct author keys needed.
    pub threshold: u32,
}

impl Delegation {
    /// Checks the id, prefix and keys.
    pub fn validate(&self) -> Result<()> {
        validate_author_id(&self.author)?;
        validate_prefix(&self.prefix)?;
        check_key_map(&self.keys)?;
        self.role_keys().map(|_| ())
    }

    /// The author's keys as a checked role.
    pub fn role_keys(&self) -> Result<RoleKeys> {
        let ids: Vec<KeyId> = self.keys.keys().copied().collect();
        role_keys(
            RoleName::Author(self.author.clone()),
            &self.keys,
            &ids,
            self.threshold,
        )
    }

    /// True if the prefix covers `name`.
    pub fn covers(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }
}

fn check_unique_entries(entries: &[TargetEntry], delegations: &[Delegation]) -> Result<()> {
    let mut names = HashSet::new();
    for e in entries {
        e.validate()?;
        if !names.insert(e.name.as_str()) {
            return Err(RegistryError::DuplicateName {
                name: e.name.clone(),
            });
        }
    }
    let mut ids = HashSet::new();
    for d in delegations {
        d.validate()?;
        if !ids.insert(d.author.as_str()) {
            return Err(RegistryError::DuplicateName {
                name: d.author.clone(),
            });
        }
    }
    if delegations.len() > MAX_DELEGATIONS {
        return Err(RegistryError::DelegationCap {
            max: MAX_DELEGATIONS,
        });
    }
    Ok(())
}

/// The `targets` file's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Version.
    pub version: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// First-party modules.
    pub targets: Vec<TargetEntry>,
    /// Delegations to authors, in priority order.
    pub delegations: Vec<Delegation>,
}

impl Metadata for Targets {
    const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.targets.v1+json";
    const MAX_LEN: u64 = super::MAX_TARGETS_LEN;
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn validate(&self) -> Result<()> {
        check_unique_entries(&self.targets, &self.delegations)
    }
}

/// An `authors/<id>` file's payload, signed by the author's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorFile {
    /// The author id (must match the delegation and the file name).
    pub author: String,
    /// Version.
    pub version: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// The author's modules (each inside its delegated prefix).
    pub targets: Vec<TargetEntry>,
    /// Sub-delegations (each prefix inside the author's own).
    #[serde(default)]
    pub delegations: Vec<Delegation>,
}

impl Metadata for AuthorFile {
    const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.author.v1+json";
    const MAX_LEN: u64 = super::MAX_AUTHOR_LEN;
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn validate(&self) -> Result<()> {
        validate_author_id(&self.author)?;
        check_unique_entries(&self.targets, &self.delegations)
    }
}

impl AuthorFile {
    /// Refuses any entry or sub-delegation outside `prefix`, the prefix delegated to this
    /// author ([`RegistryError::DelegationPrefix`]).
    pub fn check_within(&self, prefix: &str) -> Result<()> {
        let outside = |name: &str| RegistryError::DelegationPrefix {
            author: self.author.clone(),
            name: name.to_owned(),
            prefix: prefix.to_owned(),
        };
        for e in &self.targets {
            if !e.name.starts_with(prefix) {
                return Err(outside(&e.name));
            }
        }
        for d in &self.delegations {
            if !d.prefix.starts_with(prefix) {
                return Err(outside(&d.prefix));
            }
        }
        Ok(())
    }
}
