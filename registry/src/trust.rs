//! The client-side trust store: TUF's client workflow (`kasane-tuf`) over a pinned root, and
//! Kasane's admission rules on top.
//!
//! [`TrustStore::update`] refreshes root (version by version), timestamp, snapshot and
//! top-level targets — each persisted as soon as it verifies — then resolves Kasane's two
//! documents, `kasane/host-keys.json` and `kasane/revocations.json`, like any target.
//! Rollback, freeze, mix-and-match, fast-forward recovery and key rotation are TUF's rules,
//! refused with `kasane_tuf`'s typed errors inside [`RegistryError::Tuf`]. On top, a clock
//! set back before the latest time a successful update saw is refused.
//!
//! [`TrustStore::check_ticket`] checks a session ticket (a host ticket key, the client's own
//! nonce, expiry, the trusted timestamp and snapshot versions) and resolves the module it
//! names by TUF's delegation search, fetching delegated roles it does not hold yet.
//! [`TrustStore::admit`] then checks the module bytes (length, then hash) before anything
//! compiles them; [`TrustStore::admit_cached`] re-checks revocations for a cached module.
//!
//! # Example
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
//! let admitted = store.admit(&ticket, &nonce, module, &registry)?;
//! assert_eq!(admitted.entry.name, "sha256-chain");
//! // Only `admitted.bytes` may now go to the sandbox, with `admitted.entry`'s limits.
//! assert!(store.admit(&ticket, &[8u8; 32], module, &registry).is_err()); // another login's nonce
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use kasane_tuf::TufError;
use kasane_tuf::updater::{DirectoryStore, MetadataStore, TargetInfo, Updater, UpdaterConfig};
use serde::{Deserialize, Serialize};

use crate::documents::{HostKeys, MAX_HOST_KEYS_LEN, MAX_REVOCATIONS_LEN, RevocationList};
use crate::entry::{MAX_MODULE_LEN, TargetEntry};
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::layout::{HOST_KEYS_PATH, REVOCATIONS_PATH};
use crate::memory::MemoryStore;
use crate::ticket::Ticket;

pub use kasane_os::clock::{Clock, SystemClock};
pub use kasane_tuf::updater::Fetcher;

/// How far the client's clock may be off the host's, either way, for a ticket's times,
/// seconds. A ticket names this login's fresh nonce, so its times add no replay protection;
/// they only bound its use to this login's minutes, and a device clock a few minutes off
/// must not fail every login.
pub const TICKET_CLOCK_SKEW: u64 = 300;
/// The state file inside a trust store directory (the latest trusted time).
pub const STATE_FILE: &str = "state.json";
/// The trusted metadata inside a trust store directory (`root.json`, `timestamp.json`, …).
pub const METADATA_DIR: &str = "metadata";
/// An update that finds nothing new writes the latest trusted time to disk only once it has
/// moved this far (seconds) since it was last written: a login then costs no disk write, and
/// a clock set back across a restart is still caught unless by less than this.
pub const LATEST_TIME_SAVE_STEP: u64 = 3600;
const STATE_FORMAT: u32 = 2;

/// A [`Fetcher`] over a repository directory on disk (`metadata/…`, `targets/…`).
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
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Ok(None);
        }
        match crate::files::read_capped(&self.dir.join(path), max_len, path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(RegistryError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(RegistryError::TooLarge { max, .. }) => Err(TufError::TooLarge {
                what: path.to_owned(),
                max,
            }),
            Err(e) => Err(TufError::Fetch {
                what: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A fetcher seen under a prefix: the updater asks for `timestamp.json`, the repository
/// serves `metadata/timestamp.json`.
struct Prefixed<'a> {
    inner: &'a dyn Fetcher,
    prefix: &'static str,
}

impl Fetcher for Prefixed<'_> {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        self.inner.fetch(&format!("{}{path}", self.prefix), max_len)
    }
}

/// How the first root is pinned.
#[derive(Clone, Copy, Debug)]
pub enum Pin {
    /// The root file itself was delivered out of band and is trusted as given.
    File,
    /// The root file must hash (SHA-256, as stored) to this fingerprint.
    Fingerprint(Sha256Hash),
}

/// What a trust store persists beside the metadata: the latest trusted time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    latest_time: u64,
}

/// What the last successful update established.
#[derive(Clone, Debug)]
struct View {
    /// Trusted (timestamp, snapshot) versions.
    versions: (u64, u64),
    host_keys: HostKeys,
    revocations: RevocationList,
}

/// A module admitted for this login: its signed entry, and the bytes now known to match it.
#[derive(Clone, Debug)]
pub struct AdmittedModule<'a> {
    /// The signed entry (limits, params, profile).
    pub entry: TargetEntry,
    /// The role that listed it (`targets`, or an author id).
    pub role: String,
    /// The module bytes (length and SHA-256 checked).
    pub bytes: &'a [u8],
}

/// The client's trust store. See the module documentation.
pub struct TrustStore<C: Clock> {
    /// `None`: kept in memory only (no-cache mode).
    dir: Option<PathBuf>,
    store: Box<dyn MetadataStore + Send>,
    clock: C,
    state: State,
    saved_latest: u64,
    view: Option<View>,
}

impl<C: Clock> std::fmt::Debug for TrustStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("dir", &self.dir)
            .field("latest_time", &self.state.latest_time)
            .finish_non_exhaustive()
    }
}

fn now_i64(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

impl<C: Clock> TrustStore<C> {
    /// Creates a trust store in `dir` (created if needed, mode 0700) pinned to `root_bytes`,
    /// which must be signed by a threshold of its own root keys (and match the fingerprint,
    /// if given). Any metadata already in `dir` is replaced by the new root alone.
    pub fn init(dir: &Path, root_bytes: &[u8], pin: Pin, clock: C) -> Result<Self> {
        crate::files::create_private_dir(dir)?;
        let meta = dir.join(METADATA_DIR);
        if meta.is_dir() {
            std::fs::remove_dir_all(&meta).map_err(|e| RegistryError::io(&meta, e))?;
        }
        crate::files::create_private_dir(&meta)?;
        let store = Box::new(DirectoryStore::new(meta));
        let mut s = Self::pinned(store, root_bytes, pin, clock)?;
        s.dir = Some(dir.to_owned());
        s.save()?;
        Ok(s)
    }

    /// A trust store kept in memory only (nothing is written anywhere), pinned to
    /// `root_bytes`: for a client that must leave nothing on disk.
    pub fn in_memory(root_bytes: &[u8], pin: Pin, clock: C) -> Result<Self> {
        Self::pinned(Box::<MemoryStore>::default(), root_bytes, pin, clock)
    }

    fn pinned(
        store: Box<dyn MetadataStore + Send>,
        root_bytes: &[u8],
        pin: Pin,
        clock: C,
    ) -> Result<Self> {
        if let Pin::Fingerprint(fp) = pin
            && Sha256Hash::of(root_bytes) != fp
        {
            return Err(RegistryError::FingerprintMismatch);
        }
        // Checks the root's own signatures (expiry is checked at the first update).
        kasane_tuf::updater::TrustedSet::new(root_bytes, 0)?;
        store.store("root", root_bytes)?;
        // Nothing is trusted yet: the clock's high-water mark starts at the first update that
        // succeeds (a clock far ahead at first use must not refuse every later, correct one).
        let latest_time = 0;
        Ok(Self {
            dir: None,
            store,
            clock,
            state: State {
                format: STATE_FORMAT,
                latest_time,
            },
            saved_latest: 0,
            view: None,
        })
    }

    /// Opens the trust store in `dir`. Nothing is admitted until the next successful update.
    pub fn open(dir: &Path, clock: C) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let bytes = crate::files::read_capped(&path, 4096, "trust state")?;
        let state: State = crate::json::from_slice_strict(&bytes, 4096, "trust state")?;
        if state.format != STATE_FORMAT {
            return Err(RegistryError::Invalid {
                field: "format",
                reason: "unknown trust state format (re-pin the registry root)",
            });
        }
        Ok(Self {
            dir: Some(dir.to_owned()),
            store: Box::new(DirectoryStore::new(dir.join(METADATA_DIR))),
            clock,
            saved_latest: state.latest_time,
            state,
            view: None,
        })
    }

    /// The latest trusted time (unix seconds).
    pub fn latest_time(&self) -> u64 {
        self.state.latest_time
    }

    /// The trusted (timestamp, snapshot) versions, once an update succeeded.
    pub fn versions(&self) -> Option<(u64, u64)> {
        self.view.as_ref().map(|v| v.versions)
    }

    /// The host identity keys of `kasane/host-keys.json` (one must sign the host's start
    /// response), once an update succeeded.
    pub fn host_identity_keys(&self) -> Result<Vec<[u8; 32]>> {
        self.view()?.host_keys.identity_keys()
    }

    /// The trusted root version.
    pub fn root_version(&self) -> Result<u64> {
        let bytes = self
            .store
            .load("root")?
            .ok_or(RegistryError::NotInitialized)?;
        let root =
            kasane_tuf::metadata::Metadata::<kasane_tuf::metadata::Root>::from_bytes(&bytes)?;
        Ok(root.signed.version)
    }

    fn view(&self) -> Result<&View> {
        self.view.as_ref().ok_or(RegistryError::NotInitialized)
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
        if let Some(dir) = &self.dir {
            let bytes = serde_json::to_vec(&self.state)?;
            crate::files::write_private(&dir.join(STATE_FILE), &bytes)?;
        }
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

    fn updater<'a>(
        &'a self,
        fetcher: &'a dyn Fetcher,
        now: u64,
    ) -> Result<Updater<Prefixed<'a>, &'a dyn MetadataStore>> {
        let metadata = Prefixed {
            inner: fetcher,
            prefix: "metadata/",
        };
        let store: &dyn MetadataStore = self.store.as_ref();
        Ok(Updater::new(
            metadata,
            store,
            UpdaterConfig::default(),
            now_i64(now),
        )?)
    }

    /// Brings the trust store up to date from `fetcher` (TUF's client workflow), then
    /// resolves `kasane/host-keys.json` and `kasane/revocations.json`. Each role is stored as
    /// soon as it verifies; the view used for admission changes only when all of it holds.
    pub fn update(&mut self, fetcher: &dyn Fetcher) -> Result<()> {
        self.take_up(fetcher, |u| u.refresh())
    }

    /// Takes up the metadata an earlier [`TrustStore::update`] stored, fetching nothing
    /// (unless Kasane's documents are missing from the store), with every check of the
    /// update but the download: signatures, versions and expiry. Fails where that metadata
    /// is missing or expired (then run [`TrustStore::update`]). For a client that lets a
    /// login's ticket say when to update: the ticket names the timestamp and snapshot
    /// versions the host holds, and [`TrustStore::check_ticket`] refuses any other.
    pub fn resume(&mut self, fetcher: &dyn Fetcher) -> Result<()> {
        self.take_up(fetcher, |u| u.load_local())
    }

    /// [`update`](Self::update) and [`resume`](Self::resume): `trust` brings the updater's
    /// metadata up (downloaded and checked, or loaded and checked), then the view is taken
    /// from it and the clock's high-water mark advanced.
    fn take_up(
        &mut self,
        fetcher: &dyn Fetcher,
        trust: impl FnOnce(
            &mut Updater<Prefixed<'_>, &dyn MetadataStore>,
        ) -> std::result::Result<(), TufError>,
    ) -> Result<()> {
        let now = self.now_checked()?;
        let view = {
            let mut u = self.updater(fetcher, now)?;
            trust(&mut u)?;
            self.view_from(&mut u, fetcher)?
        };
        self.view = Some(view);
        self.advance_time(now)
    }

    /// The view of what `u` trusts: its versions, and Kasane's two documents.
    fn view_from(
        &self,
        u: &mut Updater<Prefixed<'_>, &dyn MetadataStore>,
        fetcher: &dyn Fetcher,
    ) -> Result<View> {
        let host = self.document(u, fetcher, HOST_KEYS_PATH, MAX_HOST_KEYS_LEN)?;
        let revs = self.document(u, fetcher, REVOCATIONS_PATH, MAX_REVOCATIONS_LEN)?;
        let t = u.trusted();
        let versions = (
            t.timestamp().map_or(0, |t| t.version),
            t.snapshot().map_or(0, |s| s.version),
        );
        Ok(View {
            versions,
            host_keys: HostKeys::from_bytes(&host)?,
            revocations: RevocationList::from_bytes(&revs)?,
        })
    }

    /// One of Kasane's documents: resolved by TUF, read from the store when a verified copy
    /// is there (checked against the trusted length and hash again), else downloaded.
    fn document(
        &self,
        u: &mut Updater<Prefixed<'_>, &dyn MetadataStore>,
        fetcher: &dyn Fetcher,
        path: &str,
        max: u64,
    ) -> Result<Vec<u8>> {
        let info: TargetInfo = u.get_targetinfo(path)?;
        if info.file.length > max {
            return Err(RegistryError::TooLarge {
                what: path.to_owned(),
                len: info.file.length,
                max,
            });
        }
        let sha = info.file.hashes.get("sha256").cloned().unwrap_or_default();
        let cache_name = format!("kasane-document-{sha}");
        if let Some(bytes) = self.store.load(&cache_name)?
            && info.file.verify_length_and_hashes(path, &bytes).is_ok()
        {
            return Ok(bytes);
        }
        let targets = Prefixed {
            inner: fetcher,
            prefix: "targets/",
        };
        let bytes = u.download_target(&info, &targets)?;
        self.store.store(&cache_name, &bytes)?;
        Ok(bytes)
    }

    /// Checks a session ticket for this login — signed by a ticket key of
    /// `kasane/host-keys.json`, the client's own nonce, unexpired, naming the trusted
    /// timestamp and snapshot versions — and resolves the module it names (TUF's delegation
    /// search, fetching through `fetcher` the delegated roles not held yet). Revoked hashes
    /// are refused. Does not look at module bytes: see [`TrustStore::admit`].
    ///
    /// [`RegistryError::TicketVersions`] (update, then check again) for a ticket naming other
    /// versions than the trusted ones, also when no ticket key trusted here signed it: after
    /// a ticket key rotation only the newer registry lists the key.
    pub fn check_ticket(
        &mut self,
        ticket_bytes: &[u8],
        client_nonce: &[u8; 32],
        fetcher: &dyn Fetcher,
    ) -> Result<(Ticket, TargetEntry, String)> {
        let now = self.now_checked()?;
        let view = self.view()?;
        let ticket = match Ticket::verify(ticket_bytes, &view.host_keys.tickets) {
            Err(RegistryError::TicketSignature) => {
                return Err(unknown_ticket_signer(ticket_bytes, view.versions));
            }
            verified => verified?,
        };
        if ticket.client_nonce.0 != *client_nonce {
            return Err(RegistryError::NonceMismatch);
        }
        if now >= ticket.expires.saturating_add(TICKET_CLOCK_SKEW)
            || now.saturating_add(TICKET_CLOCK_SKEW) < ticket.issued_at
        {
            return Err(RegistryError::TicketExpired);
        }
        let named = (ticket.timestamp_version, ticket.snapshot_version);
        if named != view.versions {
            return Err(RegistryError::TicketVersions {
                ticket: named,
                trusted: view.versions,
            });
        }
        let (entry, role) = self.resolve(&ticket.module.name, fetcher, now)?;
        if self.is_revoked(&entry.sha256) {
            return Err(RegistryError::Revoked {
                sha256: entry.sha256.to_hex(),
            });
        }
        if ticket.module.length != entry.length || ticket.module.sha256 != entry.sha256 {
            return Err(RegistryError::TicketModule);
        }
        Ok((ticket, entry, role))
    }

    /// The trusted entry for `name` (weight capped by its delegation, as the host caps it) and
    /// the role that listed it.
    fn resolve(
        &self,
        name: &str,
        fetcher: &dyn Fetcher,
        now: u64,
    ) -> Result<(TargetEntry, String)> {
        let mut u = self.updater(fetcher, now)?;
        u.load_local()?;
        let info = u.get_targetinfo(name).map_err(|e| match e {
            TufError::UnknownTarget { .. } => RegistryError::NotListed {
                name: name.chars().take(200).collect(),
            },
            other => other.into(),
        })?;
        let entry = crate::weights::effective_entry(&info, u.trusted())?;
        Ok((entry, info.role))
    }

    /// The transforms the top-level `targets` role lists, unrevoked, from the metadata held
    /// (`fetcher` is asked only for what the store lacks). Not an admission: a login's
    /// ticket still decides what runs ([`TrustStore::check_ticket`]). For a client that
    /// warms what it may be asked to run while the password's argon2id runs; authors'
    /// modules are not looked up (that could mean a download).
    pub fn first_party_modules(&self, fetcher: &dyn Fetcher) -> Result<Vec<TargetEntry>> {
        let now = self.now_checked()?;
        let mut u = self.updater(fetcher, now)?;
        u.load_local()?;
        let Some(targets) = u.trusted().targets("targets") else {
            return Ok(Vec::new());
        };
        Ok(targets
            .targets
            .iter()
            .filter_map(|(name, file)| TargetEntry::from_target(name, file).ok())
            .filter(|e| !self.is_revoked(&e.sha256))
            .collect())
    }

    /// [`TrustStore::check_ticket`], then the module bytes: length first (no hashing of an
    /// oversized blob), then SHA-256. Only the returned bytes may be compiled.
    pub fn admit<'a>(
        &mut self,
        ticket_bytes: &[u8],
        client_nonce: &[u8; 32],
        module: &'a [u8],
        fetcher: &dyn Fetcher,
    ) -> Result<AdmittedModule<'a>> {
        let (_, entry, role) = self.check_ticket(ticket_bytes, client_nonce, fetcher)?;
        check_module(&entry, module)?;
        Ok(AdmittedModule {
            entry,
            role,
            bytes: module,
        })
    }

    /// For a module already in a local cache: refuses it if its hash is now revoked.
    pub fn admit_cached(&self, sha256: &Sha256Hash) -> Result<()> {
        if self.is_revoked(sha256) {
            return Err(RegistryError::Revoked {
                sha256: sha256.to_hex(),
            });
        }
        Ok(())
    }

    fn is_revoked(&self, hash: &Sha256Hash) -> bool {
        self.view
            .as_ref()
            .is_some_and(|v| v.revocations.is_revoked(hash))
    }
}

/// Checks module bytes against their signed entry: length, then SHA-256.
pub fn check_module(entry: &TargetEntry, module: &[u8]) -> Result<()> {
    let got = module.len() as u64;
    if got != entry.length || got > MAX_MODULE_LEN {
        return Err(RegistryError::LengthMismatch {
            expected: entry.length,
            got,
        });
    }
    if Sha256Hash::of(module) != entry.sha256 {
        return Err(RegistryError::HashMismatch);
    }
    Ok(())
}

/// Audits a repository directory as a fresh client would: a new trust store in `state_dir`
/// (replacing any there), pinned to the repository's `metadata/1.root.json`, which must hash
/// to `pin`, updated from the directory. Returns the transforms a client could be given
/// (resolved one by one through the delegations, revoked hashes left out).
pub fn verify_repository<C: Clock>(
    repo_dir: &Path,
    state_dir: &Path,
    pin: Sha256Hash,
    clock: C,
) -> Result<Vec<(TargetEntry, String)>> {
    verify_repository_pinned(repo_dir, state_dir, Pin::Fingerprint(pin), clock)
}

/// [`verify_repository`] with any [`Pin`]; `Pin::File` trusts the directory's own root (see
/// `danger::verify_repository_unpinned`, feature `test-util`).
pub(crate) fn verify_repository_pinned<C: Clock>(
    repo_dir: &Path,
    state_dir: &Path,
    pin: Pin,
    clock: C,
) -> Result<Vec<(TargetEntry, String)>> {
    let fetcher = DirFetcher::new(repo_dir);
    let first = crate::repo::metadata_path("root", Some(1));
    let root1 = fetcher
        .fetch(&first, UpdaterConfig::default().root_max_length)?
        .ok_or(RegistryError::Missing { path: first })?;
    let mut store = TrustStore::init(state_dir, &root1, pin, clock)?;
    store.update(&fetcher)?;
    let now = store.now_checked()?;
    let mut out = Vec::new();
    for name in crate::repo::Repository::load(repo_dir)?.candidate_names() {
        match store.resolve(&name, &fetcher, now) {
            Ok((entry, role)) if !store.is_revoked(&entry.sha256) => out.push((entry, role)),
            Ok(_) | Err(RegistryError::NotListed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
/// The refusal of a ticket that no ticket key trusted here signed. When it names other
/// registry versions than the trusted ones it is `TicketVersions`, on which a client updates
/// and checks the ticket again: after a ticket key rotation, the host signs with a key that
/// only the newer `kasane/host-keys.json` lists. Otherwise (or if the claim does not parse)
/// `TicketSignature`. The claim is unverified: at worst it costs the client one update.
fn unknown_ticket_signer(ticket_bytes: &[u8], trusted: (u64, u64)) -> RegistryError {
    match Ticket::claimed_versions(ticket_bytes) {
        Some(claimed) if claimed != trusted => RegistryError::TicketVersions {
            ticket: claimed,
            trusted,
        },
        _ => RegistryError::TicketSignature,
    }
}
