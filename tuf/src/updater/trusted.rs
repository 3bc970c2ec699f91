//! The trusted metadata set (spec §5.3–5.6, as python-tuf's `TrustedMetadataSet`): each
//! update verifies new metadata against what is already trusted, in workflow order.

use std::collections::BTreeMap;

use crate::error::{Result, TufError};
use crate::metadata::{Metadata, Root, Signature, SignedRole, Snapshot, Targets, Timestamp};
use crate::verify::{Delegator, verify_delegate};

/// A targets role as trusted: the payload, what verified it and through which delegator.
#[derive(Clone, Debug)]
struct TrustedTargets {
    targets: Targets,
    signed_bytes: Vec<u8>,
    signatures: Vec<Signature>,
    delegator: String,
}

/// The metadata trusted so far in one update, and the time it is judged at.
#[derive(Clone, Debug)]
pub struct TrustedSet {
    now: i64,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: BTreeMap<String, TrustedTargets>,
}

/// Parses `bytes` as metadata of type `T`; if `delegator` is given, verifies the
/// signatures meet its threshold for `role`. Returns the metadata and its signed bytes.
fn load<T: SignedRole>(
    bytes: &[u8],
    delegator: Option<&dyn Delegator>,
    role: &str,
) -> Result<(Metadata<T>, Vec<u8>)> {
    let (md, signed_bytes) = Metadata::<T>::from_bytes_with_signed(bytes)?;
    if let Some(delegator) = delegator {
        verify_delegate(delegator, role, &signed_bytes, &md.signatures)?;
    }
    Ok((md, signed_bytes))
}

fn out_of_order(step: &str, reason: &str) -> TufError {
    TufError::OutOfOrder {
        step: step.to_owned(),
        reason: reason.to_owned(),
    }
}

impl TrustedSet {
    /// Starts from a trusted root (verified only by itself; expiry is checked later, on
    /// the final root), judging expiry at `now` (unix seconds).
    pub fn new(root_bytes: &[u8], now: i64) -> Result<Self> {
        let (root, signed_bytes) = load::<Root>(root_bytes, None, "root")?;
        verify_delegate(&root.signed, "root", &signed_bytes, &root.signatures)?;
        Ok(Self {
            now,
            root: root.signed,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The trusted timestamp, if loaded.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The trusted targets role `role` (`targets` or a delegated role), if loaded.
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role).map(|t| &t.targets)
    }

    /// Verifies and trusts the next root version: signed by the trusted root's threshold
    /// AND by its own, version exactly one more. An expired intermediate root is fine.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Root> {
        if self.timestamp.is_some() {
            return Err(out_of_order("update_root", "timestamp already loaded"));
        }
        let (new, signed_bytes) = load::<Root>(bytes, Some(&self.root), "root")?;
        let expected = self.root.version.saturating_add(1);
        if new.signed.version != expected {
            return Err(TufError::VersionMismatch {
                role: "root".to_owned(),
                expected,
                got: new.signed.version,
            });
        }
        verify_delegate(&new.signed, "root", &signed_bytes, &new.signatures)?;
        self.root = new.signed;
        Ok(&self.root)
    }

    /// Verifies and trusts a timestamp. Refuses it if the final root has expired, if its
    /// version or its snapshot version goes back; [`TufError::EqualVersion`] if its
    /// version is the trusted one (the trusted one stays). A new but expired timestamp is
    /// kept (for rollback checks) and reported as [`TufError::Expired`].
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&Timestamp> {
        if self.snapshot.is_some() {
            return Err(out_of_order("update_timestamp", "snapshot already loaded"));
        }
        if self.root.is_expired(self.now) {
            return Err(TufError::Expired {
                role: "root".to_owned(),
            });
        }
        let (new, _) = load::<Timestamp>(bytes, Some(&self.root), "timestamp")?;
        let new = new.signed;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(TufError::Rollback {
                    role: "timestamp".to_owned(),
                    trusted: old.version,
                    new: new.version,
                });
            }
            if new.version == old.version {
                return Err(TufError::EqualVersion {
                    role: "timestamp".to_owned(),
                    version: new.version,
                });
            }
            let (old_snap, new_snap) = (old.snapshot_meta()?.version, new.snapshot_meta()?.version);
            if new_snap < old_snap {
                return Err(TufError::Rollback {
                    role: "snapshot".to_owned(),
                    trusted: old_snap,
                    new: new_snap,
                });
            }
        }
        let timestamp = self.timestamp.insert(new);
        if timestamp.is_expired(self.now) {
            return Err(TufError::Expired {
                role: "timestamp".to_owned(),
            });
        }
        Ok(timestamp)
    }

    fn final_timestamp(&self) -> Result<&Timestamp> {
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or_else(|| out_of_order("update_snapshot", "no timestamp loaded"))?;
        if timestamp.is_expired(self.now) {
            return Err(TufError::Expired {
                role: "timestamp".to_owned(),
            });
        }
        Ok(timestamp)
    }

    /// Verifies and trusts a snapshot. `trusted` bytes (stored earlier after verification)
    /// skip the length/hash check against the timestamp. Refuses a snapshot that drops a
    /// listed role or lowers a listed version. A new snapshot that is expired or whose
    /// version is not the timestamp's is kept (for rollback checks) and reported.
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted: bool) -> Result<&Snapshot> {
        if self.targets.contains_key("targets") {
            return Err(out_of_order("update_snapshot", "targets already loaded"));
        }
        let meta = self.final_timestamp()?.snapshot_meta()?;
        if !trusted {
            meta.verify_length_and_hashes("snapshot", bytes)?;
        }
        let (new, _) = load::<Snapshot>(bytes, Some(&self.root), "snapshot")?;
        let new = new.signed;
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.meta {
                let new_meta = new
                    .meta
                    .get(name)
                    .ok_or_else(|| TufError::RoleRemoved { role: name.clone() })?;
                if new_meta.version < old_meta.version {
                    return Err(TufError::Rollback {
                        role: name.clone(),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.final_snapshot()
    }

    fn final_snapshot(&self) -> Result<&Snapshot> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| out_of_order("update_targets", "no snapshot loaded"))?;
        if snapshot.is_expired(self.now) {
            return Err(TufError::Expired {
                role: "snapshot".to_owned(),
            });
        }
        let expected = self.final_timestamp()?.snapshot_meta()?.version;
        if snapshot.version != expected {
            return Err(TufError::VersionMismatch {
                role: "snapshot".to_owned(),
                expected,
                got: snapshot.version,
            });
        }
        Ok(snapshot)
    }

    fn delegator(&self, name: &str) -> Result<&dyn Delegator> {
        if name == "root" {
            return Ok(&self.root);
        }
        match self.targets.get(name) {
            Some(t) => Ok(&t.targets),
            None => Err(out_of_order("update_targets", "delegator not loaded")),
        }
    }

    /// Verifies and trusts targets metadata for `role`, delegated by `delegator` (`root`
    /// for the top-level `targets`): length/hashes and version as the snapshot lists
    /// them, signatures as the delegator requires, not expired.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&Targets> {
        let snapshot = self.final_snapshot()?;
        let parent = self.delegator(delegator)?;
        let meta =
            snapshot
                .meta
                .get(&format!("{role}.json"))
                .ok_or_else(|| TufError::NotInSnapshot {
                    role: role.to_owned(),
                })?;
        meta.verify_length_and_hashes(role, bytes)?;
        let (new, signed_bytes) = load::<Targets>(bytes, Some(parent), role)?;
        if new.signed.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: role.to_owned(),
                expected: meta.version,
                got: new.signed.version,
            });
        }
        if new.signed.is_expired(self.now) {
            return Err(TufError::Expired {
                role: role.to_owned(),
            });
        }
        let trusted = TrustedTargets {
            targets: new.signed,
            signed_bytes,
            signatures: new.signatures,
            delegator: delegator.to_owned(),
        };
        self.targets.insert(role.to_owned(), trusted);
        self.targets(role).ok_or_else(|| TufError::NotInSnapshot {
            role: role.to_owned(),
        })
    }

    /// The already trusted `role`, re-verified against `delegator` when it was trusted
    /// through another delegator (a role delegated from two places gets no authority from
    /// the first path on the second). None if `role` is not loaded.
    pub fn cached_targets(&mut self, role: &str, delegator: &str) -> Result<Option<&Targets>> {
        let Some(cached) = self.targets.get(role) else {
            return Ok(None);
        };
        if cached.delegator != delegator {
            let parent = self.delegator(delegator)?;
            verify_delegate(parent, role, &cached.signed_bytes, &cached.signatures)?;
        }
        Ok(self.targets(role))
    }
}
