//! The TUF client workflow (spec §5.3–5.7, as python-tuf's `Updater`): update the root
//! chain, timestamp, snapshot and targets, find a target through delegations, download and
//! check it. No network code: the caller brings a [`Fetcher`].

mod store;
mod trusted;

use std::collections::BTreeSet;

pub use store::{DirectoryStore, MetadataStore, encode_role_name};
pub use trusted::TrustedSet;

use crate::error::{Result, TufError};
use crate::metadata::{Root, TargetFile, Targets};

/// Fetches repository files.
pub trait Fetcher {
    /// The file at `path` (relative to the metadata or targets base), at most `max_len`
    /// bytes (more is [`TufError::TooLarge`]); None if the repository does not have it
    /// (HTTP 404 / 403).
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>>;
}

impl<T: Fetcher + ?Sized> Fetcher for &T {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        (**self).fetch(path, max_len)
    }
}

/// Limits and options of an [`Updater`]; the defaults are python-tuf's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdaterConfig {
    /// Most root versions loaded in one refresh (256).
    pub max_root_rotations: u32,
    /// Most roles visited in one target search, beyond the first (32).
    pub max_delegations: u32,
    /// Largest root file (512000 bytes).
    pub root_max_length: u64,
    /// Largest timestamp file (16384 bytes).
    pub timestamp_max_length: u64,
    /// Largest snapshot file when the timestamp gives no length (2000000 bytes).
    pub snapshot_max_length: u64,
    /// Largest targets file when the snapshot gives no length (5000000 bytes).
    pub targets_max_length: u64,
    /// With consistent snapshots, fetch targets as `<dir>/<hash>.<name>` (true).
    pub prefix_targets_with_hash: bool,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        Self {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            prefix_targets_with_hash: true,
        }
    }
}

/// A target found by [`Updater::get_targetinfo`]: its path and the trusted entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// The target path.
    pub path: String,
    /// Length, hashes and custom data as the trusted targets role lists them.
    pub file: TargetFile,
    /// The targets role that listed it (`targets`, or a delegated role).
    pub role: String,
}

/// A TUF client over one repository.
pub struct Updater<F: Fetcher, S: MetadataStore> {
    fetcher: F,
    store: S,
    config: UpdaterConfig,
    trusted: TrustedSet,
}

impl<F: Fetcher, S: MetadataStore> Updater<F, S> {
    /// An updater trusting the root in `store`, judging expiry at `now` (unix seconds).
    pub fn new(fetcher: F, store: S, config: UpdaterConfig, now: i64) -> Result<Self> {
        let root = store.load("root")?.ok_or(TufError::NoTrustedRoot)?;
        let trusted = TrustedSet::new(&root, now)?;
        Ok(Self {
            fetcher,
            store,
            config,
            trusted,
        })
    }

    /// An updater trusting `root` (for example one shipped with the application), which it
    /// stores as the trusted root.
    pub fn with_root(
        root: &[u8],
        fetcher: F,
        store: S,
        config: UpdaterConfig,
        now: i64,
    ) -> Result<Self> {
        let trusted = TrustedSet::new(root, now)?;
        store.store("root", root)?;
        Ok(Self {
            fetcher,
            store,
            config,
            trusted,
        })
    }

    /// The metadata trusted so far.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// Loads the trusted timestamp, snapshot and top-level targets from the store, as an
    /// earlier [`Updater::refresh`] left them, fetching nothing unless the stored top-level
    /// targets no longer verify: for lookups between refreshes (an application that
    /// refreshed moments ago and now resolves a target).
    pub fn load_local(&mut self) -> Result<()> {
        let local = |role: &str| self.store.load(role).ok().flatten();
        let timestamp = local("timestamp").ok_or_else(|| TufError::OutOfOrder {
            step: "load_local".to_owned(),
            reason: "no trusted timestamp stored".to_owned(),
        })?;
        self.trusted.update_timestamp(&timestamp)?;
        let snapshot = local("snapshot").ok_or_else(|| TufError::OutOfOrder {
            step: "load_local".to_owned(),
            reason: "no trusted snapshot stored".to_owned(),
        })?;
        self.trusted.update_snapshot(&snapshot, true)?;
        self.load_targets("targets", "root")?;
        Ok(())
    }

    /// Updates root, timestamp, snapshot and top-level targets, in that order, storing each
    /// as soon as it verifies. Call once per updater.
    pub fn refresh(&mut self) -> Result<()> {
        self.load_root()?;
        self.load_timestamp()?;
        self.load_snapshot()?;
        self.load_targets("targets", "root")?;
        Ok(())
    }

    fn fetch_metadata(
        &self,
        role: &str,
        version: Option<u64>,
        max: u64,
    ) -> Result<Option<Vec<u8>>> {
        let name = encode_role_name(role);
        let path = match version {
            Some(v) => format!("{v}.{name}.json"),
            None => format!("{name}.json"),
        };
        self.fetcher.fetch(&path, max)
    }

    fn fetch_required(&self, role: &str, version: Option<u64>, max: u64) -> Result<Vec<u8>> {
        self.fetch_metadata(role, version, max)?
            .ok_or_else(|| TufError::NotFound {
                what: format!("{role} metadata"),
            })
    }

    fn load_root(&mut self) -> Result<()> {
        let lower = self.trusted.root().version.saturating_add(1);
        let upper = lower.saturating_add(u64::from(self.config.max_root_rotations));
        for version in lower..upper {
            let Some(bytes) =
                self.fetch_metadata("root", Some(version), self.config.root_max_length)?
            else {
                break;
            };
            let old = self.trusted.root().clone();
            let new = self.trusted.update_root(&bytes)?;
            let rotated =
                keys_rotated(&old, new, "timestamp") || keys_rotated(&old, new, "snapshot");
            self.store.store("root", &bytes)?;
            if rotated {
                // Fast-forward attack recovery (§5.3.11): the new keys start a new history.
                self.store.delete("timestamp")?;
                self.store.delete("snapshot")?;
            }
        }
        Ok(())
    }

    fn load_timestamp(&mut self) -> Result<()> {
        if let Some(local) = self.store.load("timestamp").ok().flatten() {
            // A stored timestamp that no longer verifies (or has expired) is only skipped:
            // if it loaded it still guards against rollback.
            let _ = self.trusted.update_timestamp(&local);
        }
        let bytes = self.fetch_required("timestamp", None, self.config.timestamp_max_length)?;
        match self.trusted.update_timestamp(&bytes) {
            Ok(_) => self.store.store("timestamp", &bytes),
            Err(TufError::EqualVersion { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn load_snapshot(&mut self) -> Result<()> {
        if let Some(local) = self.store.load("snapshot").ok().flatten()
            && self.trusted.update_snapshot(&local, true).is_ok()
        {
            return Ok(());
        }
        let meta = self
            .trusted
            .timestamp()
            .ok_or_else(|| TufError::OutOfOrder {
                step: "load_snapshot".to_owned(),
                reason: "no timestamp loaded".to_owned(),
            })?
            .snapshot_meta()?
            .clone();
        let max = meta.length.unwrap_or(self.config.snapshot_max_length);
        let version = self
            .trusted
            .root()
            .consistent_snapshot()
            .then_some(meta.version);
        let bytes = self.fetch_required("snapshot", version, max)?;
        self.trusted.update_snapshot(&bytes, false)?;
        self.store.store("snapshot", &bytes)
    }

    fn load_targets(&mut self, role: &str, delegator: &str) -> Result<Targets> {
        if let Some(cached) = self.trusted.cached_targets(role, delegator)? {
            return Ok(cached.clone());
        }
        if let Some(local) = self.store.load(role).ok().flatten()
            && let Ok(targets) = self
                .trusted
                .update_delegated_targets(&local, role, delegator)
        {
            return Ok(targets.clone());
        }
        let snapshot = self
            .trusted
            .snapshot()
            .ok_or_else(|| TufError::OutOfOrder {
                step: "load_targets".to_owned(),
                reason: "no snapshot loaded".to_owned(),
            })?;
        let meta =
            snapshot
                .meta
                .get(&format!("{role}.json"))
                .ok_or_else(|| TufError::NotInSnapshot {
                    role: role.to_owned(),
                })?;
        let max = meta.length.unwrap_or(self.config.targets_max_length);
        let version = self
            .trusted
            .root()
            .consistent_snapshot()
            .then_some(meta.version);
        let bytes = self.fetch_required(role, version, max)?;
        let targets = self
            .trusted
            .update_delegated_targets(&bytes, role, delegator)?
            .clone();
        self.store.store(role, &bytes)?;
        Ok(targets)
    }

    /// Finds `path` by pre-order depth-first search of the delegations (in their order,
    /// stopping at a terminating role that covers the path, skipping roles already
    /// visited), loading delegated metadata as needed. Refreshes first if not done yet.
    pub fn get_targetinfo(&mut self, path: &str) -> Result<TargetInfo> {
        if self.trusted.targets("targets").is_none() {
            self.refresh()?;
        }
        let mut to_visit = vec![("targets".to_owned(), "root".to_owned())];
        let mut visited = BTreeSet::new();
        while visited.len() <= self.config.max_delegations as usize {
            let Some((role, parent)) = to_visit.pop() else {
                return Err(TufError::UnknownTarget {
                    path: path.to_owned(),
                });
            };
            if visited.contains(&role) {
                continue;
            }
            let targets = self.load_targets(&role, &parent)?;
            if let Some(file) = targets.targets.get(path) {
                return Ok(TargetInfo {
                    path: path.to_owned(),
                    file: file.clone(),
                    role,
                });
            }
            let mut children = Vec::new();
            if let Some(delegations) = &targets.delegations {
                for child in delegations.roles_for_target(path) {
                    children.push((child.name.clone(), role.clone()));
                    if child.terminating {
                        to_visit.clear();
                        break;
                    }
                }
            }
            visited.insert(role);
            to_visit.extend(children.into_iter().rev());
        }
        if to_visit.is_empty() {
            return Err(TufError::UnknownTarget {
                path: path.to_owned(),
            });
        }
        Err(TufError::DelegationLimit {
            path: path.to_owned(),
            max: self.config.max_delegations,
        })
    }

    /// The path to fetch `info` at, relative to the targets base: with consistent
    /// snapshots, the last component gets the prefix `<hash>.`.
    pub fn target_fetch_path(&self, info: &TargetInfo) -> String {
        let hash = info.file.hashes.values().next();
        match hash {
            Some(hash)
                if self.trusted.root().consistent_snapshot()
                    && self.config.prefix_targets_with_hash =>
            {
                match info.path.rsplit_once('/') {
                    Some((dir, name)) => format!("{dir}/{hash}.{name}"),
                    None => format!("{hash}.{}", info.path),
                }
            }
            _ => info.path.clone(),
        }
    }

    /// Fetches the target `info` with `fetcher` (relative to the targets base) and checks
    /// its length, then its hashes.
    pub fn download_target(&self, info: &TargetInfo, fetcher: &dyn Fetcher) -> Result<Vec<u8>> {
        let fetch_path = self.target_fetch_path(info);
        let data = fetcher
            .fetch(&fetch_path, info.file.length)?
            .ok_or_else(|| TufError::NotFound {
                what: format!("target {}", info.path),
            })?;
        info.file.verify_length_and_hashes(&info.path, &data)?;
        Ok(data)
    }
}

/// Whether `role`'s keys (ids, threshold or key material) differ between two roots.
fn keys_rotated(old: &Root, new: &Root, role: &str) -> bool {
    let (Some(a), Some(b)) = (old.roles.get(role), new.roles.get(role)) else {
        return true;
    };
    let ids = |r: &crate::metadata::Role| r.keyids.iter().cloned().collect::<BTreeSet<_>>();
    if ids(a) != ids(b) || a.threshold != b.threshold {
        return true;
    }
    a.keyids
        .iter()
        .any(|id| old.keys.get(id) != new.keys.get(id))
}
