//! `root`: the keys and thresholds of every role, and the rotation rule.
//!
//! Root N+1 is trusted only if a threshold of root N's root keys AND a threshold of its own
//! root keys signed it, and it carries version N+1 exactly ([`Root::verify_successor`]).

use serde::{Deserialize, Serialize};

use super::{KeyMap, Metadata, check_key_map, role_keys};
use crate::envelope::RoleKeys;
use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::Sha256Hash;
use crate::keys::KeyId;

/// Spec version written in every root.
pub const SPEC_VERSION: u32 = 1;

/// A role's key ids and threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Key ids (each must be in [`Root::keys`]).
    pub keyids: Vec<KeyId>,
    /// Distinct keys needed (at least 1).
    pub threshold: u32,
}

/// The roles a root defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Signs root files (offline keys).
    pub root: RoleSpec,
    /// Signs `targets` (offline keys).
    pub targets: RoleSpec,
    /// Signs `snapshot` and session tickets (the online key).
    pub snapshot: RoleSpec,
    /// Signs `revocations`.
    pub revocations: RoleSpec,
    /// The host's identity (signs its ephemeral login keys, §4).
    pub host: RoleSpec,
}

/// The `root` file's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// Always [`SPEC_VERSION`].
    pub spec_version: u32,
    /// Version, starting at 1, each rotation exactly one more.
    pub version: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// Every key any role uses.
    pub keys: KeyMap,
    /// Keys and thresholds per role.
    pub roles: Roles,
}

impl Metadata for Root {
    const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.root.v1+json";
    const MAX_LEN: u64 = super::MAX_ROOT_LEN;
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn validate(&self) -> Result<()> {
        if self.spec_version != SPEC_VERSION {
            return Err(RegistryError::Invalid {
                field: "spec_version",
                reason: "unsupported",
            });
        }
        if self.version == 0 {
            return Err(RegistryError::Invalid {
                field: "version",
                reason: "versions start at 1",
            });
        }
        check_key_map(&self.keys)?;
        for role in [
            RoleName::Root,
            RoleName::Targets,
            RoleName::Snapshot,
            RoleName::Revocations,
            RoleName::Host,
        ] {
            self.role_keys(role)?;
        }
        Ok(())
    }
}

impl Root {
    /// The checked keys of one of the five top-level roles (an author or ticket role is an
    /// error: use the snapshot role for tickets).
    pub fn role_keys(&self, role: RoleName) -> Result<RoleKeys> {
        let spec = match role {
            RoleName::Root => &self.roles.root,
            RoleName::Targets => &self.roles.targets,
            RoleName::Snapshot | RoleName::Ticket => &self.roles.snapshot,
            RoleName::Revocations => &self.roles.revocations,
            RoleName::Host => &self.roles.host,
            RoleName::Author(_) => {
                return Err(RegistryError::Invalid {
                    field: "role",
                    reason: "authors are delegated by targets, not root",
                });
            }
        };
        role_keys(role, &self.keys, &spec.keyids, spec.threshold)
    }

    /// Parses a root trusted out of band (the pinned first root) and checks that it is signed
    /// by a threshold of its own root keys.
    pub fn verify_self_signed(bytes: &[u8]) -> Result<Self> {
        let (root, _) = super::parse_unverified::<Self>(bytes, "root")?;
        let own = root.role_keys(RoleName::Root)?;
        super::verify::<Self>(bytes, &own)
    }

    /// Verifies `bytes` as the successor of `self`: signed by a threshold of this root's root
    /// keys, then by a threshold of its own, with version `self.version + 1`.
    pub fn verify_successor(&self, bytes: &[u8]) -> Result<Self> {
        // Old keys first: nothing of the new file is parsed before the trusted keys accept it.
        let next: Self = super::verify(bytes, &self.role_keys(RoleName::Root)?)?;
        super::verify::<Self>(bytes, &next.role_keys(RoleName::Root)?)?;
        let Some(expected) = self.version.checked_add(1) else {
            return Err(RegistryError::RootVersionGap {
                expected: self.version,
                got: next.version,
            });
        };
        if next.version != expected {
            return Err(RegistryError::RootVersionGap {
                expected,
                got: next.version,
            });
        }
        Ok(next)
    }

    /// True if `role`'s keys or threshold differ between `self` and `other` (a rotation).
    pub fn role_changed(&self, other: &Self, role: RoleName) -> bool {
        match (self.role_keys(role.clone()), other.role_keys(role)) {
            (Ok(a), Ok(b)) => {
                let mut ka: Vec<_> = a.keys().iter().map(|k| k.to_bytes()).collect();
                let mut kb: Vec<_> = b.keys().iter().map(|k| k.to_bytes()).collect();
                ka.sort_unstable();
                kb.sort_unstable();
                ka != kb || a.threshold() != b.threshold()
            }
            _ => true,
        }
    }
}

/// The fingerprint of a root file: SHA-256 of its bytes as stored. Pin it out of band.
pub fn fingerprint(root_bytes: &[u8]) -> Sha256Hash {
    Sha256Hash::of(root_bytes)
}
