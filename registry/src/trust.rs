//! The client-side trust store: a pinned root, persisted version floors and hashes, the latest
//! trusted time, and module admission.
//!
//! [`TrustStore::update`] walks the root chain one version at a time (at most
//! [`MAX_ROOT_CHAIN`] per update), then verifies snapshot → targets, revocations → author files,
//! refusing rollback (a version under a floor, even when the trusted copy has expired),
//! freeze (expired metadata), mix-and-match (a file that is not the one the snapshot names),
//! and a clock set back before the latest trusted time. Nothing is persisted unless the whole
//! update holds; the state file is written atomically, mode 0600.
//!
//! [`TrustStore::admit`] checks a session ticket and the module bytes (length, then hash)
//! before anything compiles them; [`TrustStore::admit_cached`] re-checks revocations for a
//! module already in a cache.
//!
//! # Example
//!
//! A registry publishes a module; a client updates, then admits it for one login.
//!
//! ```
//! use kasane_registry::simulator::RepositorySimulator;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = RepositorySimulator::new();
//! let module: &[u8] = b"\0asm\x01\0\0\0 a transform";
//! registry.publish("sha256-chain", module)?;
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = registry.client(dir.path())?; // pinned to root 1
//! store.update(&registry)?;
//!
//! let nonce = [7u8; 32]; // this login's client nonce
//! let ticket = registry.ticket(nonce, "sha256-chain")?;
//! let admitted = store.admit(&ticket, &nonce, module)?;
//! assert_eq!(admitted.entry.name, "sha256-chain");
//! // Only `admitted.bytes` may now go to the sandbox, with `admitted.entry`'s limits.
//! assert!(store.admit(&ticket, &[8u8; 32], module).is_err()); // another login's nonce
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envelope::RoleKeys;
use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::Sha256Hash;
use crate::metadata::revocations::Revocations;
use crate::metadata::root::{Root, fingerprint};
use crate::metadata::snapshot::{MetaInfo, Snapshot};
use crate::metadata::targets::{
    AuthorFile, Delegation, MAX_DELEGATION_DEPTH, MAX_DELEGATIONS, TargetEntry, Targets,
};
use crate::metadata::ticket::Ticket;
use crate::metadata::{
    MAX_AUTHOR_LEN, MAX_REVOCATIONS_LEN, MAX_ROOT_LEN, MAX_SNAPSHOT_LEN, MAX_TARGETS_LEN, Metadata,
    verify,
};

/// Most new root versions one update walks.
pub const MAX_ROOT_CHAIN: u32 = 32;
/// How far a ticket's issue time may be ahead of the client's clock, seconds.
pub const TICKET_CLOCK_SKEW: u64 = 60;
/// The state file inside a trust store directory.
pub const STATE_FILE: &str = "state.json";
/// Cap on the state file: it holds every trusted file in hex, so twice the sum of the caps
/// (targets, revocations, snapshot, root, and up to `MAX_DELEGATIONS` author files).
const MAX_STATE_LEN: u64 = 2
    * (MAX_TARGETS_LEN
        + MAX_REVOCATIONS_LEN
        + MAX_SNAPSHOT_LEN
        + MAX_ROOT_LEN
        + MAX_DELEGATIONS as u64 * MAX_AUTHOR_LEN)
    + 64 * 1024;
const STATE_FORMAT: u32 = 1;

pub use kasane_os::clock::{Clock, SystemClock};

/// Where an update gets repository files: `N.root.json`, `snapshot.json`, `targets.json`,
/// `revocations.json`, `authors/<id>.json`.
pub trait Fetcher {
    /// The file at `path`, or `None` if the repository has no such file. An implementation
    /// should stop reading after `max_len + 1` bytes; the caller refuses anything longer than
    /// it expects, with the error for that file.
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>>;
}

/// A [`Fetcher`] over a repository directory on disk.
#[derive(Clone, Debug)]
pub struct DirFetcher {
    dir: PathBuf,
}

impl DirFetcher {
    /// Reads from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl Fetcher for DirFetcher {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        crate::metadata::validate_name(path)?;
        let p = self.dir.join(path);
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::io(&p, e)),
        };
        // One byte past the limit, so the caller can tell "longer" from "exactly".
        let mut buf = Vec::new();
        f.take(max_len.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| RegistryError::io(&p, e))?;
        Ok(Some(buf))
    }
}

/// The repository path of root version `version`.
pub fn root_path(version: u64) -> String {
    format!("{version}.root.json")
}

/// Refuses a view whose targets or revocations expired at `now` (the snapshot's own expiry is
/// checked where it is fetched).
fn check_unexpired(view: &View, now: u64) -> Result<()> {
    if let Some(t) = &view.targets
        && t.expires <= now
    {
        return Err(RegistryError::Expired {
            role: RoleName::Targets,
        });
    }
    if let Some(r) = &view.revocations
        && r.expires <= now
    {
        return Err(RegistryError::Expired {
            role: RoleName::Revocations,
        });
    }
    Ok(())
}

/// The repository path of a snapshot entry (`targets` → `targets.json`).
pub fn meta_path(name: &str) -> String {
    format!("{name}.json")
}

/// What a trust store persists: floors, trusted files and the latest trusted time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    /// The latest clock reading seen by a successful update.
    latest_time: u64,
    /// Version floor per file (`root`, `snapshot`, `targets`, `revocations`, `authors/<id>`).
    floors: BTreeMap<String, u64>,
    /// The trusted files (hex of the bytes as fetched), same names.
    files: BTreeMap<String, String>,
}

/// A verified author file and the prefix delegated to it.
#[derive(Clone, Debug)]
struct AuthorNode {
    file: AuthorFile,
    prefix: String,
}

/// The parsed, verified view of the trusted files.
#[derive(Clone, Debug)]
struct View {
    root: Root,
    /// Snapshot, its hash; `None` before the first update.
    snapshot: Option<(Snapshot, Sha256Hash)>,
    targets: Option<Targets>,
    revocations: Option<Revocations>,
    authors: BTreeMap<String, AuthorNode>,
    /// Authors whose unrevoked keys can no longer meet their threshold.
    distrusted: BTreeSet<String>,
}

impl View {
    /// Only a root: nothing is admitted until an update succeeds.
    fn empty(root: Root) -> Self {
        Self {
            root,
            snapshot: None,
            targets: None,
            revocations: None,
            authors: BTreeMap::new(),
            distrusted: BTreeSet::new(),
        }
    }
}

/// A module admitted for this login: its signed entry, and the bytes now known to match it.
#[derive(Clone, Debug)]
pub struct AdmittedModule<'a> {
    /// The signed entry (limits, params, profile).
    pub entry: TargetEntry,
    /// The author whose file listed it (`None`: first-party).
    pub author: Option<String>,
    /// The module bytes (length and SHA-256 checked).
    pub bytes: &'a [u8],
}

/// How the first root is pinned.
#[derive(Clone, Copy, Debug)]
pub enum Pin {
    /// The root file itself was delivered out of band and is trusted as given.
    File,
    /// The root file must hash (SHA-256, as stored) to this fingerprint.
    Fingerprint(Sha256Hash),
}

/// The client's trust store. See the module documentation.
#[derive(Debug)]
pub struct TrustStore<C: Clock> {
    dir: PathBuf,
    clock: C,
    state: State,
    view: View,
    /// The latest trusted time as last written to disk.
    saved_latest: u64,
}

/// An update that finds nothing new writes the latest trusted time to disk only once it has
/// moved this far (seconds) since it was last written: a login then costs no disk write, and
/// a clock set back across a restart is still caught unless by less than this.
pub const LATEST_TIME_SAVE_STEP: u64 = 3600;

impl<C: Clock> TrustStore<C> {
    /// Creates a trust store in `dir` (created if needed) pinned to `root_bytes`, which must be
    /// signed by a threshold of its own root keys (and match the fingerprint, if given).
    /// Any existing state in `dir` is replaced.
    pub fn init(dir: &Path, root_bytes: &[u8], pin: Pin, clock: C) -> Result<Self> {
        if let Pin::Fingerprint(fp) = pin
            && fingerprint(root_bytes) != fp
        {
            return Err(RegistryError::FingerprintMismatch);
        }
        let root = Root::verify_self_signed(root_bytes)?;
        crate::files::create_private_dir(dir)?;
        let mut state = State {
            format: STATE_FORMAT,
            latest_time: clock.now(),
            ..State::default()
        };
        state.floors.insert("root".into(), root.version);
        state.files.insert("root".into(), hex::encode(root_bytes));
        let mut store = Self {
            dir: dir.to_owned(),
            clock,
            state,
            view: View::empty(root),
            saved_latest: 0,
        };
        store.save()?;
        Ok(store)
    }

    /// Opens the trust store in `dir`, re-verifying every stored file.
    pub fn open(dir: &Path, clock: C) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let bytes = crate::files::read_capped(&path, MAX_STATE_LEN, "trust state")?;
        let state: State = crate::json::from_slice_strict(&bytes, MAX_STATE_LEN, "trust state")?;
        if state.format != STATE_FORMAT {
            return Err(RegistryError::Invalid {
                field: "format",
                reason: "unknown trust state format",
            });
        }
        let file = |name: &str| -> Result<Option<Vec<u8>>> {
            state
                .files
                .get(name)
                .map(|h| crate::hexfmt::decode(h, "state file"))
                .transpose()
        };
        let root_bytes = file("root")?.ok_or(RegistryError::Missing {
            path: "root".into(),
        })?;
        let root = Root::verify_self_signed(&root_bytes)?;
        let view = match file("snapshot")? {
            None => View::empty(root),
            Some(snap_bytes) => {
                let stored = (|| {
                    let snap: Snapshot = verify(&snap_bytes, &root.role_keys(RoleName::Snapshot)?)?;
                    let hash = Sha256Hash::of(&snap_bytes);
                    verify_set(root.clone(), snap, hash, &mut |name, meta, max| {
                        let b = file(name)?.ok_or_else(|| RegistryError::Missing {
                            path: name.to_owned(),
                        })?;
                        check_against(name, &b, meta, max)?;
                        Ok(b)
                    })
                })();
                match stored {
                    Ok((view, _)) => view,
                    // The stored files no longer verify under the stored root (an update
                    // rotated a role's keys, then failed before the role was re-signed). The
                    // floors stay; the store admits nothing until the next update succeeds.
                    Err(_) => View::empty(root),
                }
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            clock,
            saved_latest: state.latest_time,
            state,
            view,
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.view.root
    }

    /// The trusted snapshot's version and hash (what a host must name in a ticket), if any.
    pub fn snapshot(&self) -> Option<(u64, Sha256Hash)> {
        self.view.snapshot.as_ref().map(|(s, h)| (s.version, *h))
    }

    /// The checked keys of a role of the trusted root (e.g. [`RoleName::Host`], to verify the
    /// host's signed ephemeral login key).
    pub fn role_keys(&self, role: RoleName) -> Result<crate::envelope::RoleKeys> {
        self.view.root.role_keys(role)
    }

    /// The latest trusted time (unix seconds).
    pub fn latest_time(&self) -> u64 {
        self.state.latest_time
    }

    /// The version floor of a file (`root`, `snapshot`, `targets`, `revocations`,
    /// `authors/<id>`), if one is recorded.
    pub fn floor(&self, name: &str) -> Option<u64> {
        self.state.floors.get(name).copied()
    }

    /// Every module the trusted metadata makes runnable now: first-party entries, then
    /// delegated ones, with the author that listed them. Revoked hashes are left out.
    pub fn runnable(&self) -> Vec<(TargetEntry, Option<String>)> {
        let mut out = Vec::new();
        let Some(t) = &self.view.targets else {
            return out;
        };
        for e in &t.targets {
            out.push((e.clone(), None));
        }
        for node in self.view.authors.values() {
            for e in &node.file.targets {
                if let Ok((entry, author)) = self.resolve(&e.name)
                    && author.as_deref() == Some(node.file.author.as_str())
                {
                    out.push((entry, author));
                }
            }
        }
        out.retain(|(e, _)| !self.is_revoked(&e.sha256));
        out
    }

    fn now_checked(&self) -> Result<u64> {
        let now = self.clock.now();
        if now < self.state.latest_time {
            return Err(RegistryError::ClockSetBack {
                now,
                latest: self.state.latest_time,
            });
        }
        Ok(now)
    }

    fn save(&mut self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.state)?;
        crate::files::write_private(&self.dir.join(STATE_FILE), &bytes)?;
        self.saved_latest = self.state.latest_time;
        Ok(())
    }

    /// Raises the latest trusted time to `now`, writing it to disk once it has moved
    /// [`LATEST_TIME_SAVE_STEP`] since it was last written.
    fn advance_time(&mut self, now: u64) -> Result<()> {
        self.state.latest_time = self.state.latest_time.max(now);
        if self.state.latest_time >= self.saved_latest.saturating_add(LATEST_TIME_SAVE_STEP) {
            self.save()?;
        }
        Ok(())
    }

    /// Brings the trust store up to date from `fetcher`. On any error nothing changes, except
    /// that newly verified root versions are kept (each was signed by the previous one).
    /// When the root and the snapshot are the ones already trusted, the files the snapshot
    /// names are not fetched again (they were verified, and are re-verified at
    /// [`open`](Self::open)); [`update_all`](Self::update_all) fetches and checks them anyway.
    pub fn update(&mut self, fetcher: &dyn Fetcher) -> Result<()> {
        self.update_with(fetcher, false)
    }

    /// [`update`](Self::update), fetching and checking every file the snapshot names even
    /// when nothing changed: what an audit of a repository (`kasane-registry verify`) wants.
    pub fn update_all(&mut self, fetcher: &dyn Fetcher) -> Result<()> {
        self.update_with(fetcher, true)
    }

    fn update_with(&mut self, fetcher: &dyn Fetcher, all: bool) -> Result<()> {
        let now = self.now_checked()?;
        let root_before = self.view.root.version;
        let root = self.walk_root_chain(fetcher)?;
        if root.expires <= now {
            return Err(RegistryError::Expired {
                role: RoleName::Root,
            });
        }
        let (snap, snap_bytes) = self.fetch_snapshot(fetcher, &root, now)?;
        let unchanged = self
            .view
            .snapshot
            .as_ref()
            .is_some_and(|(_, hash)| *hash == Sha256Hash::of(&snap_bytes));
        if unchanged && root.version == root_before && !all {
            // The same snapshot under the same root: every file it names is one this store
            // verified (and re-verifies at open). Only time has moved.
            check_unexpired(&self.view, now)?;
            return self.advance_time(now);
        }
        let (view, files) = self.verify_named(fetcher, root, snap, &snap_bytes, now)?;
        self.commit(view, &snap_bytes, files, now)
    }

    /// Step 1: the root chain, one version at a time (at most [`MAX_ROOT_CHAIN`]). Each new
    /// root is kept and saved at once: it was signed by the previous one. Returns the newest.
    fn walk_root_chain(&mut self, fetcher: &dyn Fetcher) -> Result<Root> {
        let mut root = self.view.root.clone();
        let mut root_bytes = None;
        let mut snapshot_keys_rotated = false;
        for step in 0..=MAX_ROOT_CHAIN {
            let next_version = root.version.saturating_add(1);
            let Some(bytes) = fetcher.fetch(&root_path(next_version), MAX_ROOT_LEN)? else {
                break;
            };
            if step == MAX_ROOT_CHAIN {
                return Err(RegistryError::RootChainTooLong {
                    max: MAX_ROOT_CHAIN,
                });
            }
            let next = root.verify_successor(&bytes)?;
            snapshot_keys_rotated |= root.role_changed(&next, RoleName::Snapshot);
            root = next;
            root_bytes = Some(bytes);
        }
        if let Some(bytes) = root_bytes {
            self.state.floors.insert("root".into(), root.version);
            self.state.files.insert("root".into(), hex::encode(&bytes));
            if snapshot_keys_rotated {
                // Fast-forward recovery: a snapshot signed by a compromised online key may have
                // pushed the floor arbitrarily high. Once root rotates that key, the floor and
                // the snapshot it came from are dropped (as TUF does).
                self.state.floors.remove("snapshot");
                self.state.files.remove("snapshot");
                self.view.snapshot = None;
            }
            self.view.root = root.clone();
            self.save()?;
        }
        Ok(root)
    }

    /// Step 2: the snapshot — signature, its floor, no file's floor above what it lists,
    /// expiry. Returns it and its bytes.
    fn fetch_snapshot(
        &self,
        fetcher: &dyn Fetcher,
        root: &Root,
        now: u64,
    ) -> Result<(Snapshot, Vec<u8>)> {
        let snap_bytes =
            fetch_required(fetcher, "snapshot.json", MAX_SNAPSHOT_LEN, MAX_SNAPSHOT_LEN)?;
        let snap: Snapshot = verify(&snap_bytes, &root.role_keys(RoleName::Snapshot)?)?;
        self.check_floor(&RoleName::Snapshot, "snapshot", snap.version, &snap_bytes)?;
        for (name, floor) in &self.state.floors {
            if name == "root" || name == "snapshot" {
                continue;
            }
            let role = role_of(name);
            let Some(meta) = snap.meta.get(name) else {
                return Err(RegistryError::MissingFromSnapshot { role });
            };
            if meta.version < *floor {
                return Err(RegistryError::Rollback {
                    role,
                    trusted: *floor,
                    got: meta.version,
                });
            }
        }
        if snap.expires <= now {
            return Err(RegistryError::Expired {
                role: RoleName::Snapshot,
            });
        }
        Ok((snap, snap_bytes))
    }

    /// Step 3: everything the snapshot names, fetched and checked against it, against the
    /// floors, and for expiry.
    fn verify_named(
        &self,
        fetcher: &dyn Fetcher,
        root: Root,
        snap: Snapshot,
        snap_bytes: &[u8],
        now: u64,
    ) -> Result<(View, Vec<VerifiedFile>)> {
        let snap_hash = Sha256Hash::of(snap_bytes);
        let (view, files) = verify_set(root, snap, snap_hash, &mut |name, meta, max| {
            // Ask for no more than the snapshot's length; anything else is a mismatch.
            let b = fetch_required(fetcher, &meta_path(name), max.min(meta.length), max)?;
            check_against(name, &b, meta, max)?;
            Ok(b)
        })?;
        for (name, bytes, version) in &files {
            self.check_floor(&role_of(name), name, *version, bytes)?;
        }
        check_unexpired(&view, now)?;
        Ok((view, files))
    }

    /// Step 4: the new floors, files and latest time are saved; only then does the new view
    /// replace the old one.
    fn commit(
        &mut self,
        view: View,
        snap_bytes: &[u8],
        files: Vec<VerifiedFile>,
        now: u64,
    ) -> Result<()> {
        let mut state = self.state.clone();
        state.latest_time = state.latest_time.max(now);
        state
            .floors
            .insert("snapshot".into(), view_snapshot_version(&view));
        state
            .files
            .insert("snapshot".into(), hex::encode(snap_bytes));
        for (name, bytes, version) in files {
            state.floors.insert(name.clone(), version);
            state.files.insert(name, hex::encode(&bytes));
        }
        let old = std::mem::replace(&mut self.state, state);
        if let Err(e) = self.save() {
            self.state = old;
            return Err(e);
        }
        self.view = view;
        Ok(())
    }

    /// Refuses a version under the floor, and the floor's version with other content.
    fn check_floor(&self, role: &RoleName, name: &str, version: u64, bytes: &[u8]) -> Result<()> {
        let Some(&floor) = self.state.floors.get(name) else {
            return Ok(());
        };
        if version < floor {
            return Err(RegistryError::Rollback {
                role: role.clone(),
                trusted: floor,
                got: version,
            });
        }
        if version == floor
            && let Some(h) = self.state.files.get(name)
            && *h != hex::encode(bytes)
        {
            return Err(RegistryError::VersionReuse {
                role: role.clone(),
                version,
            });
        }
        Ok(())
    }

    /// Checks the trusted metadata is usable now (not expired, an update has run).
    fn check_fresh(&self, now: u64) -> Result<(&Snapshot, Sha256Hash, &Targets)> {
        let (snap, hash) = self
            .view
            .snapshot
            .as_ref()
            .ok_or(RegistryError::NotInitialized)?;
        let targets = self
            .view
            .targets
            .as_ref()
            .ok_or(RegistryError::NotInitialized)?;
        for (role, expires) in [
            (RoleName::Root, self.view.root.expires),
            (RoleName::Snapshot, snap.expires),
            (RoleName::Targets, targets.expires),
            (
                RoleName::Revocations,
                self.view.revocations.as_ref().map_or(0, |r| r.expires),
            ),
        ] {
            if expires <= now {
                return Err(RegistryError::Expired { role });
            }
        }
        Ok((snap, *hash, targets))
    }

    fn is_revoked(&self, hash: &Sha256Hash) -> bool {
        self.view
            .revocations
            .as_ref()
            .is_some_and(|r| r.is_revoked(hash))
    }

    /// The entry for `name` under the AND rule, and the author that listed it.
    fn resolve(&self, name: &str) -> Result<(TargetEntry, Option<String>)> {
        let not_listed = || RegistryError::NotListed {
            name: name.chars().take(200).collect(),
        };
        let targets = self.view.targets.as_ref().ok_or_else(not_listed)?;
        if let Some(e) = targets.targets.iter().find(|e| e.name == name) {
            return Ok((e.clone(), None));
        }
        let mut delegations: &[Delegation] = &targets.delegations;
        for _ in 0..=MAX_DELEGATION_DEPTH {
            // Terminating: the first delegation whose prefix covers the name decides.
            let Some(d) = delegations.iter().find(|d| d.covers(name)) else {
                return Err(not_listed());
            };
            if self.view.distrusted.contains(&d.author) {
                return Err(RegistryError::AuthorRevoked {
                    author: d.author.clone(),
                });
            }
            let node = self.view.authors.get(&d.author).ok_or_else(not_listed)?;
            if node.file.expires <= self.clock.now() {
                return Err(RegistryError::Expired {
                    role: RoleName::Author(d.author.clone()),
                });
            }
            if let Some(e) = node.file.targets.iter().find(|e| e.name == name) {
                // The AND rule's second half, checked again here: verify_set already refused
                // any author file with an entry outside its prefix.
                if !e.name.starts_with(&node.prefix) {
                    return Err(RegistryError::DelegationPrefix {
                        author: d.author.clone(),
                        name: e.name.clone(),
                        prefix: node.prefix.clone(),
                    });
                }
                return Ok((e.clone(), Some(d.author.clone())));
            }
            delegations = &node.file.delegations;
        }
        Err(not_listed())
    }

    /// Checks a session ticket for this login (signature by the snapshot role, the client's
    /// own nonce, expiry, the trusted snapshot) and returns the module's signed entry, after
    /// the AND rule and revocations. Does not look at module bytes: see [`TrustStore::admit`].
    pub fn check_ticket(
        &self,
        ticket_bytes: &[u8],
        client_nonce: &[u8; 32],
    ) -> Result<(Ticket, TargetEntry, Option<String>)> {
        let now = self.now_checked()?;
        let (_, snap_hash, _) = self.check_fresh(now)?;
        let snap_version = view_snapshot_version(&self.view);
        let ticket = Ticket::verify(ticket_bytes, &self.view.root.role_keys(RoleName::Ticket)?)?;
        if ticket.client_nonce.0 != *client_nonce {
            return Err(RegistryError::NonceMismatch);
        }
        if now >= ticket.expires || now.saturating_add(TICKET_CLOCK_SKEW) < ticket.issued_at {
            return Err(RegistryError::TicketExpired);
        }
        if ticket.snapshot_version != snap_version || ticket.snapshot_sha256 != snap_hash {
            return Err(RegistryError::SnapshotMismatch {
                role: RoleName::Ticket,
                what: "ticket names another snapshot",
            });
        }
        let (entry, author) = self.resolve(&ticket.module.name)?;
        if self.is_revoked(&entry.sha256) {
            return Err(RegistryError::Revoked {
                sha256: entry.sha256.to_hex(),
            });
        }
        if ticket.module.length != entry.length {
            return Err(RegistryError::LengthMismatch {
                expected: entry.length,
                got: ticket.module.length,
            });
        }
        if ticket.module.sha256 != entry.sha256 {
            return Err(RegistryError::HashMismatch);
        }
        Ok((ticket, entry, author))
    }

    /// Admits `module` for this login: [`TrustStore::check_ticket`], then the length and the
    /// SHA-256 of the bytes against the signed entry. Only the returned bytes may be compiled.
    pub fn admit<'a>(
        &self,
        ticket_bytes: &[u8],
        client_nonce: &[u8; 32],
        module: &'a [u8],
    ) -> Result<AdmittedModule<'a>> {
        let (_, entry, author) = self.check_ticket(ticket_bytes, client_nonce)?;
        // Length first: a longer module is refused before it is even hashed.
        if module.len() as u64 != entry.length {
            return Err(RegistryError::LengthMismatch {
                expected: entry.length,
                got: module.len() as u64,
            });
        }
        if Sha256Hash::of(module) != entry.sha256 {
            return Err(RegistryError::HashMismatch);
        }
        Ok(AdmittedModule {
            entry,
            author,
            bytes: module,
        })
    }

    /// Re-checks a module held in a cache (compiled or not) under `name` and `sha256`:
    /// refused if the hash is revoked, the name no longer resolves to that hash under the AND
    /// rule, or the metadata is stale.
    pub fn admit_cached(&self, name: &str, sha256: &Sha256Hash) -> Result<TargetEntry> {
        let now = self.now_checked()?;
        // Revocation first: it holds whatever else the metadata says.
        if self.is_revoked(sha256) {
            return Err(RegistryError::Revoked {
                sha256: sha256.to_hex(),
            });
        }
        self.check_fresh(now)?;
        let (entry, _) = self.resolve(name)?;
        if entry.sha256 != *sha256 {
            return Err(RegistryError::HashMismatch);
        }
        Ok(entry)
    }
}

/// `verify`: checks a repository directory the way a client would. A trust store is created
/// in `state_dir` (replacing any there), pinned to the repository's `1.root.json`, which must
/// hash to `pin`, and updated from the directory. Returns the runnable modules.
pub fn verify_repository<C: Clock>(
    repo_dir: &Path,
    state_dir: &Path,
    pin: Sha256Hash,
    clock: C,
) -> Result<Vec<(TargetEntry, Option<String>)>> {
    verify_repository_pinned(repo_dir, state_dir, Pin::Fingerprint(pin), clock)
}

/// [`verify_repository`] with any [`Pin`]; `Pin::File` trusts the directory's own root (see
/// `danger::verify_repository_unpinned`, feature `test-util`).
pub(crate) fn verify_repository_pinned<C: Clock>(
    repo_dir: &Path,
    state_dir: &Path,
    pin: Pin,
    clock: C,
) -> Result<Vec<(TargetEntry, Option<String>)>> {
    let fetcher = DirFetcher::new(repo_dir);
    let root1 = fetcher
        .fetch(&root_path(1), MAX_ROOT_LEN)?
        .ok_or_else(|| RegistryError::Missing { path: root_path(1) })?;
    crate::json::check_len(root1.len(), MAX_ROOT_LEN, "root")?;
    let mut store = TrustStore::init(state_dir, &root1, pin, clock)?;
    store.update(&fetcher)?;
    Ok(store.runnable())
}

fn view_snapshot_version(view: &View) -> u64 {
    view.snapshot.as_ref().map_or(0, |(s, _)| s.version)
}

/// Fetches `path`, asking for at most `hint` bytes and refusing more than `max`.
fn fetch_required(fetcher: &dyn Fetcher, path: &str, hint: u64, max: u64) -> Result<Vec<u8>> {
    let b = fetcher
        .fetch(path, hint)?
        .ok_or_else(|| RegistryError::Missing {
            path: path.to_owned(),
        })?;
    crate::json::check_len(b.len(), max, path)?;
    Ok(b)
}

/// The role named by a snapshot entry.
fn role_of(name: &str) -> RoleName {
    match name {
        "targets" => RoleName::Targets,
        "revocations" => RoleName::Revocations,
        "snapshot" => RoleName::Snapshot,
        "root" => RoleName::Root,
        other => RoleName::Author(other.strip_prefix("authors/").unwrap_or(other).to_owned()),
    }
}

/// Checks fetched bytes against the snapshot's record: cap, length, hash.
fn check_against(name: &str, bytes: &[u8], meta: &MetaInfo, max: u64) -> Result<()> {
    crate::json::check_len(bytes.len(), max, name)?;
    let role = role_of(name);
    if bytes.len() as u64 != meta.length {
        return Err(RegistryError::SnapshotMismatch {
            role,
            what: "length",
        });
    }
    if Sha256Hash::of(bytes) != meta.sha256 {
        return Err(RegistryError::SnapshotMismatch { role, what: "hash" });
    }
    Ok(())
}

/// A file checked by [`verify_set`]: name, bytes, version.
type VerifiedFile = (String, Vec<u8>, u64);

type FileGetter<'a> = dyn FnMut(&str, &MetaInfo, u64) -> Result<Vec<u8>> + 'a;

/// Verifies everything `snap` names under `root`: signatures, versions equal to the
/// snapshot's, the delegation tree. Returns the view and the files read (name, bytes,
/// version). Floors and expiry are the caller's.
fn verify_set(
    root: Root,
    snap: Snapshot,
    snap_hash: Sha256Hash,
    get: &mut FileGetter<'_>,
) -> Result<(View, Vec<VerifiedFile>)> {
    let mut reader = SnapshotReader {
        snap: &snap,
        get,
        files: Vec::new(),
    };
    let targets: Targets = reader.read(
        "targets",
        MAX_TARGETS_LEN,
        &root.role_keys(RoleName::Targets)?,
    )?;
    let revocations: Revocations = reader.read(
        "revocations",
        MAX_REVOCATIONS_LEN,
        &root.role_keys(RoleName::Revocations)?,
    )?;
    let tree = walk_delegations(&targets, &revocations, &mut reader)?;
    let files = reader.files;
    Ok((
        View {
            root,
            snapshot: Some((snap, snap_hash)),
            targets: Some(targets),
            revocations: Some(revocations),
            authors: tree.authors,
            distrusted: tree.distrusted,
        },
        files,
    ))
}

/// Reads the files a snapshot names, each verified and required to carry the version the
/// snapshot records; keeps what it read.
struct SnapshotReader<'s, 'g> {
    snap: &'s Snapshot,
    get: &'s mut FileGetter<'g>,
    files: Vec<VerifiedFile>,
}

impl SnapshotReader<'_, '_> {
    fn read<M: Metadata>(&mut self, name: &str, max: u64, keys: &RoleKeys) -> Result<M> {
        let meta = *self
            .snap
            .meta
            .get(name)
            .ok_or_else(|| RegistryError::MissingFromSnapshot {
                role: role_of(name),
            })?;
        let bytes = (self.get)(name, &meta, max)?;
        let m: M = verify(&bytes, keys)?;
        if m.version() != meta.version {
            return Err(RegistryError::SnapshotMismatch {
                role: role_of(name),
                what: "version",
            });
        }
        self.files.push((name.to_owned(), bytes, m.version()));
        Ok(m)
    }
}

/// The verified delegation tree.
struct Delegated {
    authors: BTreeMap<String, AuthorNode>,
    /// Authors whose unrevoked keys can no longer meet their threshold.
    distrusted: BTreeSet<String>,
}

/// Walks the delegation tree depth first, each author reached at most once, within
/// [`MAX_DELEGATIONS`] and [`MAX_DELEGATION_DEPTH`].
fn walk_delegations(
    targets: &Targets,
    revocations: &Revocations,
    reader: &mut SnapshotReader<'_, '_>,
) -> Result<Delegated> {
    let revoked = revocations.revoked_keys();
    let mut tree = Delegated {
        authors: BTreeMap::new(),
        distrusted: BTreeSet::new(),
    };
    let mut seen = HashSet::new();
    let mut count = 0usize;
    let mut stack: Vec<(Delegation, usize)> = targets
        .delegations
        .iter()
        .rev()
        .map(|d| (d.clone(), 1))
        .collect();
    while let Some((d, depth)) = stack.pop() {
        count += 1;
        if count > MAX_DELEGATIONS || depth > MAX_DELEGATION_DEPTH {
            return Err(RegistryError::DelegationCap {
                max: if count > MAX_DELEGATIONS {
                    MAX_DELEGATIONS
                } else {
                    MAX_DELEGATION_DEPTH
                },
            });
        }
        if !seen.insert(d.author.clone()) {
            return Err(RegistryError::DelegationCycle {
                author: d.author.clone(),
            });
        }
        let keys = d.role_keys()?.without(&revoked);
        if (keys.keys().len() as u64) < u64::from(keys.threshold()) {
            tree.distrusted.insert(d.author.clone());
            continue;
        }
        let Some(file) = read_author(reader, &d, &keys)? else {
            continue;
        };
        for child in file.delegations.iter().rev() {
            stack.push((child.clone(), depth + 1));
        }
        let prefix = d.prefix;
        tree.authors.insert(d.author, AuthorNode { file, prefix });
    }
    Ok(tree)
}

/// The author file of delegation `d`, checked against it; `None` when the snapshot lists no
/// file for the author yet (delegated, but nothing signed: the author lists no module).
fn read_author(
    reader: &mut SnapshotReader<'_, '_>,
    d: &Delegation,
    keys: &RoleKeys,
) -> Result<Option<AuthorFile>> {
    let name = format!("authors/{}", d.author);
    if !reader.snap.meta.contains_key(&name) {
        return Ok(None);
    }
    let file: AuthorFile = reader.read(&name, MAX_AUTHOR_LEN, keys)?;
    if file.author != d.author {
        return Err(RegistryError::Invalid {
            field: "author",
            reason: "author file names another author",
        });
    }
    file.check_within(&d.prefix)?;
    Ok(Some(file))
}
