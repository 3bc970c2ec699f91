//! The publisher's side: a standard TUF repository in Kasane's layout ([`crate::layout`]),
//! and one method per change (`init`, `add`, `revoke`, `delegate`, `author-sign`,
//! `rotate-root`, `snapshot`, `sign-ticket`). Each method takes the signers of the role it
//! re-signs, so offline keys are needed only for the commands that change offline roles.
//!
//! Layout on disk (what clients fetch; consistent snapshots):
//!
//! ```text
//! metadata/N.root.json        every root version (and root.json, a copy of the latest)
//! metadata/timestamp.json
//! metadata/N.snapshot.json    N.targets.json, N.revocations.json, N.authors.json, N.<author>.json
//! targets/<sha256>.<name>     modules, and targets/kasane/<sha256>.host-keys.json, …
//! ```
//!
//! Old versions stay on disk, so a client reading while a publish happens finds every file
//! the timestamp it read names. A role once listed in the snapshot stays listed (clients
//! refuse a snapshot that drops one), even after its author's delegation is removed.

mod edit;
mod init;
mod online;

use std::collections::BTreeMap;
use std::path::Path;

use kasane_tuf::metadata::{Metadata, Root, SignedRole, Snapshot, Targets, Timestamp};
use kasane_tuf::updater::{TargetInfo, Updater, UpdaterConfig};
use time::OffsetDateTime;

use crate::documents::{HostKeys, RevocationList};
use crate::entry::TargetEntry;
use crate::error::{RegistryError, Result};
use crate::files::Visibility;
use crate::hexfmt::Sha256Hash;
use crate::layout::{HOST_KEYS_PATH, REVOCATIONS_PATH};
use crate::memory::{MemoryFetcher, MemoryStore};

pub use edit::{choose_weighted, cosign};
pub use init::{DEV_KEY_FILES, InitSigners, Lifetimes, RoleSetup, Setup, dev_init};
pub use online::{LOCK_FILE, RepoLock, Resigned, online_due_at, resign_online_if_due};

/// A resolver over a repository's own files: the TUF client workflow, run in memory.
pub type Resolver<'a> = Updater<MemoryFetcher<'a>, MemoryStore>;

/// A signed repository in memory. See the module documentation.
#[derive(Clone, Debug)]
pub struct Repository {
    /// Every root version's bytes, version 1 first.
    roots: Vec<Vec<u8>>,
    root: Metadata<Root>,
    timestamp: Metadata<Timestamp>,
    snapshot: Metadata<Snapshot>,
    targets: Metadata<Targets>,
    /// Delegated targets roles by name: `revocations`, `authors`, and each author.
    delegated: BTreeMap<String, Metadata<Targets>>,
    /// Kasane's documents by target path.
    documents: BTreeMap<String, Vec<u8>>,
    /// The bytes each role was loaded with, by (role, version): written back unchanged (a
    /// repository made by another tool keeps the bytes its snapshot and timestamp pin).
    loaded: BTreeMap<(String, u64), Vec<u8>>,
}

/// Unix seconds as a TUF expiry.
pub(crate) fn expiry(unix: u64) -> Result<OffsetDateTime> {
    let secs = i64::try_from(unix).map_err(|_| RegistryError::Invalid {
        field: "expires",
        reason: "out of range",
    })?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| RegistryError::Invalid {
        field: "expires",
        reason: "out of range",
    })
}

/// A TUF expiry as unix seconds (0 before 1970).
pub fn unix(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

/// The repository path of a metadata file (`metadata/3.targets.json`).
pub fn metadata_path(role: &str, version: Option<u64>) -> String {
    let name = kasane_tuf::updater::encode_role_name(role);
    match version {
        Some(v) => format!("metadata/{v}.{name}.json"),
        None => format!("metadata/{name}.json"),
    }
}

/// The repository path of a target file under consistent snapshots
/// (`targets/acme/<sha256>.ocra-v2`).
pub fn target_file_path(name: &str, sha256: &Sha256Hash) -> String {
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("targets/{dir}/{}.{base}", sha256.to_hex()),
        None => format!("targets/{}.{name}", sha256.to_hex()),
    }
}

impl Repository {
    /// The bytes of `role` as published: as loaded if unchanged since, else serialized.
    pub(crate) fn role_bytes<T: SignedRole>(&self, role: &str, m: &Metadata<T>) -> Result<Vec<u8>> {
        match self.loaded.get(&(role.to_owned(), m.signed.version())) {
            Some(bytes) => Ok(bytes.clone()),
            None => Ok(m.to_bytes()?),
        }
    }
}

impl Repository {
    /// The latest root.
    pub fn root(&self) -> &Root {
        &self.root.signed
    }

    /// The latest root's bytes (what a client pins).
    pub fn root_bytes(&self) -> &[u8] {
        self.roots.last().map_or(&[], Vec::as_slice)
    }

    /// The first root's bytes (a client pinned to it walks the whole chain).
    pub fn first_root_bytes(&self) -> &[u8] {
        self.roots.first().map_or(&[], Vec::as_slice)
    }

    /// The top-level targets role.
    pub fn targets(&self) -> &Targets {
        &self.targets.signed
    }

    /// A delegated role (`revocations`, `authors`, an author id).
    pub fn delegated(&self, role: &str) -> Option<&Targets> {
        self.delegated.get(role).map(|m| &m.signed)
    }

    /// The timestamp.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp.signed
    }

    /// The current snapshot.
    pub fn current_snapshot(&self) -> &Snapshot {
        &self.snapshot.signed
    }

    /// The timestamp and snapshot versions (what a ticket names).
    pub fn versions(&self) -> (u64, u64) {
        (self.timestamp.signed.version, self.snapshot.signed.version)
    }

    /// `kasane/host-keys.json`, parsed.
    pub fn host_keys(&self) -> Result<HostKeys> {
        HostKeys::from_bytes(self.document(HOST_KEYS_PATH)?)
    }

    /// `kasane/revocations.json`, parsed.
    pub fn revocations(&self) -> Result<RevocationList> {
        RevocationList::from_bytes(self.document(REVOCATIONS_PATH)?)
    }

    fn document(&self, path: &str) -> Result<&[u8]> {
        self.documents
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| RegistryError::Missing {
                path: path.to_owned(),
            })
    }

    /// Every file of the repository by path (metadata of every version this repository
    /// holds, and Kasane's documents), as [`Repository::save`] writes them.
    pub fn files(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for (i, bytes) in self.roots.iter().enumerate() {
            out.insert(metadata_path("root", Some(i as u64 + 1)), bytes.clone());
        }
        out.insert(metadata_path("root", None), self.root_bytes().to_vec());
        let ts = self.role_bytes("timestamp", &self.timestamp)?;
        out.insert(metadata_path("timestamp", None), ts);
        let snap = &self.snapshot;
        out.insert(
            metadata_path("snapshot", Some(snap.signed.version)),
            self.role_bytes("snapshot", snap)?,
        );
        let t = &self.targets;
        out.insert(
            metadata_path("targets", Some(t.signed.version)),
            self.role_bytes("targets", t)?,
        );
        for (role, m) in &self.delegated {
            let bytes = self.role_bytes(role, m)?;
            out.insert(metadata_path(role, Some(m.signed.version)), bytes);
        }
        for (path, bytes) in &self.documents {
            let p = target_file_path(path, &Sha256Hash::of(bytes));
            out.insert(p, bytes.clone());
        }
        Ok(out)
    }

    /// Writes every file into `dir`, creating `metadata/` and `targets/…` as needed (public
    /// files, 0644, unless `dir` itself is private: see [`Visibility::of_root`]; existing versions are left as they are, and `timestamp.json` is replaced
    /// last, so readers never see a half publish).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let files = self.files()?;
        let vis = Visibility::of_root(dir);
        let ts = metadata_path("timestamp", None);
        for (path, bytes) in files.iter().filter(|(p, _)| **p != ts) {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                crate::files::create_repo_dir(parent, vis)?;
            }
            crate::files::write_repo_file(&full, bytes, vis)?;
        }
        if let Some(bytes) = files.get(&ts) {
            crate::files::write_repo_file(&dir.join(&ts), bytes, vis)?;
        }
        Ok(())
    }

    /// A TUF client over this repository's own files, trusting its first root and refreshed
    /// at `now`: every signature, version, hash and expiry checked as a client would.
    pub fn resolver<'a>(
        &self,
        files: &'a BTreeMap<String, Vec<u8>>,
        now: u64,
    ) -> Result<Resolver<'a>> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let mut u = Updater::with_root(
            self.first_root_bytes(),
            MemoryFetcher::new(files, "metadata/"),
            MemoryStore::default(),
            UpdaterConfig::default(),
            now,
        )?;
        u.refresh()?;
        Ok(u)
    }

    /// Checks the whole repository at `now` as a client would (root chain, timestamp,
    /// snapshot, every role a lookup reaches, Kasane's documents) and returns the transforms
    /// it makes runnable, with the role that listed each, revoked hashes left out. Weights are
    /// the effective ones: capped by the author's delegation, each and all of an author's
    /// together ([`crate::weights`]; [`Repository::resolvable`] caps each only).
    pub fn active(&self, now: u64) -> Result<Vec<(TargetEntry, String)>> {
        let (mut all, revoked) = self.resolvable(now)?;
        all.retain(|(e, _)| !revoked.is_revoked(&e.sha256));
        crate::weights::cap_per_delegation(&mut all, |role| self.delegation_cap(role));
        Ok(all)
    }

    /// The rollout-weight cap of the entries `role` lists: `None` for `targets`
    /// (first-party), the cap of `authors`' delegation to it, else 0 (as
    /// [`crate::weights::role_cap`] reads it from a client's trusted metadata).
    pub fn delegation_cap(&self, role: &str) -> Option<u32> {
        if role == "targets" {
            return None;
        }
        let cap = self
            .delegated(crate::layout::AUTHORS_ROLE)
            .and_then(|a| a.delegations.as_ref())
            .and_then(|d| d.roles.iter().find(|r| r.name == role))
            .map_or(0, crate::weights::delegation_cap);
        Some(cap)
    }

    /// [`Repository::active`] before revocations are applied, and the revocation list.
    pub fn resolvable(&self, now: u64) -> Result<(Vec<(TargetEntry, String)>, RevocationList)> {
        let files = self.files()?;
        let mut resolver = self.resolver(&files, now)?;
        let targets = MemoryFetcher::new(&files, "targets/");
        let revoked = resolve_document(&mut resolver, &targets, REVOCATIONS_PATH)
            .and_then(|b| RevocationList::from_bytes(&b))?;
        resolve_document(&mut resolver, &targets, HOST_KEYS_PATH)
            .and_then(|b| HostKeys::from_bytes(&b))?;
        let mut out = Vec::new();
        for name in self.candidate_names() {
            // A name that no longer resolves (its author lost the delegation, or the path is
            // outside it) is simply not runnable.
            let Ok(info) = resolver.get_targetinfo(&name) else {
                continue;
            };
            let entry = crate::weights::effective_entry(&info, resolver.trusted())?;
            out.push((entry, info.role));
        }
        Ok((out, revoked))
    }

    /// Every role's expiry (unix seconds): root, timestamp, snapshot, targets, then each
    /// delegated role some role still delegates to (a revoked author's stale file does not
    /// count: no lookup reaches it).
    pub fn expiries(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("root".to_owned(), unix(self.root.signed.expires)),
            ("timestamp".to_owned(), unix(self.timestamp.signed.expires)),
            ("snapshot".to_owned(), unix(self.snapshot.signed.expires)),
            ("targets".to_owned(), unix(self.targets.signed.expires)),
        ];
        let delegated: std::collections::BTreeSet<&str> = std::iter::once(&self.targets.signed)
            .chain(self.delegated.values().map(|m| &m.signed))
            .filter_map(|t| t.delegations.as_ref())
            .flat_map(|d| d.roles.iter().map(|r| r.name.as_str()))
            .collect();
        for (role, m) in &self.delegated {
            if delegated.contains(role.as_str()) {
                out.push((role.clone(), unix(m.signed.expires)));
            }
        }
        out
    }

    /// Every transform name any role of this repository lists.
    pub fn candidate_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::iter::once(&self.targets.signed)
            .chain(self.delegated.values().map(|m| &m.signed))
            .flat_map(|t| t.targets.keys())
            .filter(|n| !n.starts_with(crate::layout::RESERVED_PREFIX))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The entry a client would resolve for `name` at `now` (weight capped by its delegation).
    pub fn find_entry(&self, name: &str, now: u64) -> Result<TargetEntry> {
        let files = self.files()?;
        let mut resolver = self.resolver(&files, now)?;
        let info = resolver.get_targetinfo(name)?;
        crate::weights::effective_entry(&info, resolver.trusted())
    }
}

/// Resolves and downloads one of Kasane's documents through `resolver`.
pub fn resolve_document(
    resolver: &mut Resolver<'_>,
    targets: &MemoryFetcher<'_>,
    path: &str,
) -> Result<Vec<u8>> {
    let info: TargetInfo = resolver.get_targetinfo(path)?;
    Ok(resolver.download_target(&info, targets)?)
}
