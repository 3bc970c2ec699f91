//! The host's view of its transform registry.
//!
//! The repository directory is the TUF repository `kasane-registry` writes and clients fetch
//! (`metadata/…`, `targets/…`); module files are targets in it (`targets/<sha256>.<name>`).
//! On every login the host reads `metadata/timestamp.json` (a few hundred bytes) and, when
//! its hash changed, reloads the repository and checks it as a client would
//! ([`Repository::active`]: root chain, signatures, versions, hashes, expiry, delegations):
//! a publication or a revocation takes effect at the next login, with no restart.
//!
//! Active transforms are those a TUF lookup resolves (first-party, or through `authors` to
//! the author whose paths cover the name), minus revoked hashes and modules whose file is
//! missing. The choice is [`choose_weighted`] over those whose profile the client announced,
//! so a client without wasi support is never given a wasi transform. Tickets are signed with
//! the host's ticket key (`keys/ticket.pem`, listed in `kasane/host-keys.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kasane_registry::entry::{MAX_MODULE_LEN, TargetEntry};
use kasane_registry::repo::{Lifetimes, Repository, choose_weighted, target_file_path};
use kasane_registry::signing::{KeyFileSigner, Signer, TufSigner};
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_sandbox::{Limits, Sandbox, Transform};
use sha2::{Digest, Sha256};

use crate::HostError;
use crate::registry_source::RegistrySource;
use crate::upkeep::Upkeep;

/// Largest timestamp file read on each login.
const MAX_TIMESTAMP_READ: u64 = 16 * 1024;
/// The ticket key file in the keys directory.
pub const TICKET_KEY_FILE: &str = "ticket.pem";

/// Entries and the role that listed each (`targets`: first-party).
type Listed = Vec<(TargetEntry, String)>;
/// Active entries and the role that listed each (`targets`: first-party).
type Active = Arc<Listed>;

/// A loaded repository and what it makes active.
#[derive(Debug)]
struct Loaded {
    timestamp_sha256: [u8; 32],
    /// The earliest expiry of any role: the active set is recomputed from then on.
    valid_until: u64,
    repo: Arc<Repository>,
    active: Active,
    /// When `timestamp.json` was last found unchanged (or loaded).
    checked: std::time::Instant,
}

/// How long the message path trusts the active set without looking at `timestamp.json`
/// again ([`HostRegistry::session_transform`]).
pub const MESSAGE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the host is not ready (`GET /readyz`): one line, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The store did not answer `SELECT 1`.
    #[error("store unreachable")]
    StoreUnreachable,
    /// The registry does not load (a file is missing or a signature does not verify).
    #[error("registry: not loadable")]
    RegistryUnloadable,
    /// The registry makes no transform active.
    #[error("registry: no active transform")]
    NoActiveTransform,
    /// This role's metadata has expired (at this RFC 3339 time).
    #[error("registry: {role} expired at {since}")]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        since: String,
    },
    /// The TLS certificate served has expired (at this RFC 3339 time).
    #[error("TLS certificate expired at {since}")]
    TlsCertificateExpired {
        /// When it expired.
        since: String,
    },
}

/// The transform chosen for one login, its ticket and its loaded module.
#[derive(Clone)]
pub struct Chosen {
    /// The signed entry.
    pub entry: TargetEntry,
    /// The session ticket (signed by the host's ticket key) naming the client's nonce.
    pub ticket: Vec<u8>,
    /// The loaded module (shared, one per module hash).
    pub transform: Transform,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chosen")
            .field("entry", &self.entry.name)
            .finish_non_exhaustive()
    }
}

/// The host's registry: repository directory, the ticket key, the sandbox and one
/// [`Transform`] per module hash, profile and limits (the `InstancePre` cache).
pub struct HostRegistry {
    source: RegistrySource,
    /// `keys/ticket.pem`; `SIGHUP` may replace it ([`crate::rekey`]).
    ticket_key: arc_swap::ArcSwap<Box<dyn Signer>>,
    sandbox: Sandbox,
    loaded: Mutex<Option<Loaded>>,
    transforms: Mutex<HashMap<TransformKey, Transform>>,
    /// Whether each author module's output depends on its inputs ([`Self::input_dependent`]).
    verdicts: Mutex<HashMap<VerdictKey, bool>>,
    /// Test-only (`test-util`): behave like a compromised host that offers revoked modules.
    ignore_revocations: std::sync::atomic::AtomicBool,
    /// Online re-signing, expiry warnings, missing modules.
    upkeep: Upkeep,
}

impl std::fmt::Debug for HostRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRegistry")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What a loaded [`Transform`] is cached under: the module's hash with the profile and limits
/// its entry runs it under. Two entries with the same bytes and other limits get a transform
/// each, so the host runs every entry as its signed entry says, as the client does.
type TransformKey = ([u8; 32], kasane_abi::Profile, Limits);

/// The key an entry's loaded transform is kept under.
fn transform_key(entry: &TargetEntry) -> TransformKey {
    (entry.sha256.0, entry.profile, entry.limits())
}
/// What an input-dependence verdict is cached under: the transform and its params.
type VerdictKey = (TransformKey, Vec<u8>);

/// The module file of an entry in the repository: `<dir>/targets/<sha256>.<name>`.
#[must_use]
pub fn module_path(registry_dir: &Path, entry: &TargetEntry) -> PathBuf {
    registry_dir.join(target_file_path(&entry.name, &entry.sha256))
}

impl HostRegistry {
    /// Opens the registry in `dir`, signing tickets with `<keys_dir>/ticket.pem`. The
    /// repository is loaded and checked at `now`.
    pub fn open(
        dir: &Path,
        keys_dir: &Path,
        sandbox: Sandbox,
        now: u64,
    ) -> Result<Self, HostError> {
        let source = RegistrySource::Dir(dir.to_owned());
        Self::open_source(source, keys_dir, sandbox, now, Upkeep::default())
    }

    /// Like [`HostRegistry::open`], with the files from `source` (the directory, or the
    /// database through a mirror: [`crate::registry_source`]) and its `upkeep`: with an
    /// online key it re-signs timestamp and snapshot before they expire (see
    /// [`crate::upkeep`]), also here, before the first load — a host stopped for longer than
    /// the timestamp lives (or given an old backup of its registry) starts with fresh
    /// metadata instead of refusing to. With [`Upkeep::default`] the host only reads.
    pub fn open_source(
        source: RegistrySource,
        keys_dir: &Path,
        sandbox: Sandbox,
        now: u64,
        upkeep: Upkeep,
    ) -> Result<Self, HostError> {
        let ticket_key = KeyFileSigner::open(&keys_dir.join(TICKET_KEY_FILE), None)
            .map_err(RegistryError::from)?;
        let reg = Self {
            source,
            ticket_key: arc_swap::ArcSwap::from_pointee(Box::new(ticket_key)),
            sandbox,
            loaded: Mutex::new(None),
            transforms: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            ignore_revocations: std::sync::atomic::AtomicBool::new(false),
            upkeep,
        };
        // An expired offline role every login needs: the host starts unready (`/readyz`
        // names the role, as when it expires while the host runs) and serves again once it
        // is re-signed, with its metrics and health answering meanwhile. Anything else fails
        // the start.
        if let Err(e) = reg.current(now) {
            let expired = matches!(
                e,
                HostError::Registry(
                    RegistryError::Expired { .. }
                        | RegistryError::Tuf(kasane_registry::TufError::Expired { .. })
                )
            );
            if !expired {
                return Err(e);
            }
            tracing::error!(error = %e, "registry: starting unready until the role is re-signed");
        }
        Ok(reg)
    }

    /// The upkeep state (metrics, warnings).
    #[must_use]
    pub fn upkeep(&self) -> &Upkeep {
        &self.upkeep
    }

    /// A housekeeping pass: re-signs if due, reloads if the files changed, and logs roles
    /// that expire soon or have expired.
    pub fn maintain(&self, now: u64) {
        if let Err(e) = self.current(now) {
            tracing::warn!(error = %e, "registry does not load");
        }
        self.upkeep.warn_expiring(now);
    }

    /// The repository directory, `None` when the registry is in the database.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.source.dir()
    }

    /// Where the files come from.
    #[must_use]
    pub fn source(&self) -> &RegistrySource {
        &self.source
    }

    /// The key tickets are signed with now.
    pub(crate) fn ticket_key(&self) -> Arc<Box<dyn Signer>> {
        self.ticket_key.load_full()
    }

    /// Signs tickets with `key` from now on.
    pub(crate) fn set_ticket_key(&self, key: Box<dyn Signer>) {
        self.ticket_key.store(Arc::new(key));
    }

    /// The current repository, reloaded if it changed (as for a login at `now`).
    pub fn repository(&self, now: u64) -> Result<Arc<Repository>, HostError> {
        Ok(self.current(now)?.0)
    }

    /// With the registry in the database: re-signs if due and takes in a changed registry
    /// (see [`crate::registry_source`]), then reloads if it changed. Call it before serving
    /// from the registry. With a directory: nothing.
    pub async fn sync(&self, now: u64) {
        if matches!(self.source, RegistrySource::Database(_)) {
            self.source.sync(&self.upkeep, now).await;
            if let Err(e) = self.current(now) {
                tracing::warn!(error = %e, "registry does not load");
            }
        }
    }

    /// Forgets the loaded repository and the loaded modules, so that the next use reads
    /// both again even if `metadata/timestamp.json` did not change (`SIGHUP`).
    pub fn invalidate(&self) {
        use std::sync::PoisonError;
        *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.transforms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The current repository and its active transforms, reloaded (and checked at `now`) if
    /// `metadata/timestamp.json` changed since the last call.
    fn current(&self, now: u64) -> Result<(Arc<Repository>, Active), HostError> {
        self.source.resign_if_due(&self.upkeep, now);
        let bytes = self
            .source
            .read("metadata/timestamp.json", MAX_TIMESTAMP_READ, "timestamp")?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| HostError::Poisoned { what: "registry" })?;
        if let Some(l) = guard.as_mut()
            && l.timestamp_sha256 == hash
            && now < l.valid_until
        {
            l.checked = std::time::Instant::now();
            return Ok((l.repo.clone(), l.active.clone()));
        }
        let repo = self.source.load()?;
        self.upkeep.loaded(&repo);
        let (active, missing) = self.active_of(&repo, now)?;
        self.upkeep.missing(missing);
        self.forget_inactive(&active);
        let active = Arc::new(active);
        // Reloaded when the next role expires (an author's lapsing role takes its modules out
        // of the active set then); one already expired was applied by this load, so it does
        // not make every later request load again.
        let valid_until = repo
            .expiries()
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| *e > now)
            .min()
            .unwrap_or(u64::MAX);
        tracing::info!(
            timestamp = repo.timestamp().version,
            active = active.len(),
            "registry loaded"
        );
        let repo = Arc::new(repo);
        *guard = Some(Loaded {
            timestamp_sha256: hash,
            valid_until,
            repo: repo.clone(),
            active: active.clone(),
            checked: std::time::Instant::now(),
        });
        Ok((repo, active))
    }

    /// The loaded transform of a session's module (`sha256`, `name`) while it is active, or
    /// `None`: the message path's lookup. It uses the active set as checked against the
    /// registry within the last [`MESSAGE_RECHECK`] (logins check at every request), so a
    /// message costs no read of the registry's files, and a module revoked or withdrawn
    /// stops serving messages within that second.
    pub fn session_transform(
        &self,
        sha256: &[u8; 32],
        name: &str,
        now: u64,
    ) -> Result<Option<Transform>, HostError> {
        let active = match self.recent(now)? {
            Some(active) => active,
            None => self.current(now)?.1,
        };
        let found = active
            .iter()
            .find(|(e, _)| e.sha256.0 == *sha256 && e.name == name);
        match found {
            Some((entry, _)) => self.transform(entry).map(Some),
            None => Ok(None),
        }
    }

    /// The active set if it was checked within [`MESSAGE_RECHECK`] and has not expired.
    fn recent(&self, now: u64) -> Result<Option<Active>, HostError> {
        let guard = self
            .loaded
            .lock()
            .map_err(|_| HostError::Poisoned { what: "registry" })?;
        Ok(guard
            .as_ref()
            .filter(|l| now < l.valid_until && l.checked.elapsed() < MESSAGE_RECHECK)
            .map(|l| l.active.clone()))
    }

    /// The transforms `repo` makes active at `now`, and the names of those left out because
    /// their module file is missing.
    fn active_of(&self, repo: &Repository, now: u64) -> Result<(Listed, Vec<String>), HostError> {
        let (mut out, revoked) = repo.resolvable(now)?;
        let honest = !self
            .ignore_revocations
            .load(std::sync::atomic::Ordering::Relaxed);
        out.retain(|(e, _)| !honest || !revoked.is_revoked(&e.sha256));
        let (present, absent): (Vec<_>, Vec<_>) = out
            .into_iter()
            .partition(|(e, _)| self.source.has(&target_file_path(&e.name, &e.sha256)));
        let missing = absent.into_iter().map(|(e, _)| e.name).collect();
        let mut present: Listed = present
            .into_iter()
            .filter(|(e, role)| self.input_dependent(e, role))
            .collect();
        // What can be picked shares each author's cap (`kasane_registry::weights`).
        kasane_registry::weights::cap_per_delegation(&mut present, |role| {
            repo.delegation_cap(role)
        });
        Ok((present, missing))
    }

    /// Whether an author's module may be offered: its auth output must change with the
    /// responses and the session (`kasane_registry::dependence`, the check `add` runs), or a
    /// stolen author key could publish a module that lets a password alone log in. A module
    /// that fails is left out and logged. First-party modules (`targets`) pass. The verdict is
    /// cached per module hash, profile, limits and params, so each module is checked once.
    fn input_dependent(&self, entry: &TargetEntry, role: &str) -> bool {
        if role == "targets" {
            return true;
        }
        let key = (transform_key(entry), entry.params.clone());
        let cache = &self.verdicts;
        if let Some(v) = cache.lock().ok().and_then(|c| c.get(&key).copied()) {
            return v;
        }
        let probes = kasane_registry::dependence::probe_inputs(&entry.params);
        let verdict = match self.transform(entry) {
            // Not cached: the file may be readable at the next reload.
            Err(e) => Err(e.to_string()),
            Ok(t) => {
                let v = kasane_registry::dependence::check_dependence(&t, &probes);
                if let Ok(mut c) = cache.lock() {
                    c.insert(key, v.is_ok());
                }
                v.map_err(|e| e.to_string())
            }
        };
        if let Err(reason) = &verdict {
            tracing::error!(module = %entry.name, author = role, sha256 = %entry.sha256,
                %reason, "author module left out: its auth output fails the input check");
        }
        verdict.is_ok()
    }

    /// DANGER, tests only: from now on this host offers revoked modules too, as a
    /// compromised host would (clients must refuse them by their own trust state).
    #[cfg(feature = "test-util")]
    pub fn danger_ignore_revocations(&self) {
        self.ignore_revocations
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut guard) = self.loaded.lock() {
            *guard = None;
        }
    }

    /// Whether the registry can serve logins at `now`: every role every login needs is
    /// unexpired (clients refuse expired metadata, so a host serving it fails every login;
    /// an expired `authors` or author's role only withdraws its modules), it loads
    /// and checks as a client would, and it has an active transform.
    pub fn readiness(&self, now: u64) -> Result<(), NotReady> {
        let current = self.current(now);
        if let Some((role, at)) = self.upkeep.expired(now) {
            let since = crate::upkeep::rfc3339(at);
            tracing::error!(role = %role, since = %since, "readiness: registry {role} expired");
            return Err(NotReady::Expired { role, since });
        }
        let (_, active) = current.map_err(|e| {
            tracing::warn!(error = %e, "readiness: registry does not load");
            NotReady::RegistryUnloadable
        })?;
        if active.is_empty() {
            return Err(NotReady::NoActiveTransform);
        }
        Ok(())
    }

    /// The active transforms at `now` (after a reload if the timestamp changed).
    pub fn active(&self, now: u64) -> Result<Vec<TargetEntry>, HostError> {
        Ok(self
            .current(now)?
            .1
            .iter()
            .map(|(e, _)| e.clone())
            .collect())
    }

    /// Chooses a transform for a login by rollout weight among those the client can run,
    /// signs its ticket for `client_nonce`, valid `ticket_ttl` seconds, and loads it.
    pub fn choose(
        &self,
        profiles: &[kasane_protocol::Profile],
        client_nonce: [u8; 32],
        now: u64,
        ticket_ttl: u64,
        roll: u64,
    ) -> Result<Chosen, HostError> {
        let (repo, active) = self.current(now)?;
        let entry = choose_weighted(&active, profiles, roll)
            .ok_or(HostError::NoTransform)?
            .clone();
        let life = Lifetimes {
            ticket: ticket_ttl,
            ..Lifetimes::default()
        };
        let key = self.ticket_key.load();
        let signer = TufSigner(key.as_ref().as_ref());
        let ticket = repo.sign_ticket(client_nonce, &entry, &signer, now, &life)?;
        let transform = self.transform(&entry)?;
        Ok(Chosen {
            entry,
            ticket,
            transform,
        })
    }

    /// Drops the loaded transforms no `active` entry names (replaced, withdrawn, revoked, or
    /// limits changed): their compiled code and idle warm instances, each holding one of the
    /// sandbox pool's slots, would otherwise stay until a restart. A session still running one
    /// keeps its own handle; no lookup returns it again.
    fn forget_inactive(&self, active: &Listed) {
        let keep: std::collections::HashSet<TransformKey> =
            active.iter().map(|(e, _)| transform_key(e)).collect();
        if let Ok(mut cache) = self.transforms.lock() {
            cache.retain(|key, _| keep.contains(key));
        }
    }

    /// The loaded module of an entry: from the cache, or read (length and hash checked),
    /// validated and compiled once.
    pub fn transform(&self, entry: &TargetEntry) -> Result<Transform, HostError> {
        let key = transform_key(entry);
        if let Ok(cache) = self.transforms.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(t.clone());
        }
        let bytes = self.entry_bytes(entry)?;
        let t = self.sandbox.load(&bytes, entry.profile, entry.limits())?;
        if let Ok(mut cache) = self.transforms.lock() {
            cache.insert(key, t.clone());
        }
        Ok(t)
    }

    /// The bytes of an entry's module, length and hash checked.
    fn entry_bytes(&self, entry: &TargetEntry) -> Result<Vec<u8>, HostError> {
        let unavailable = |source| HostError::ModuleUnavailable {
            name: entry.name.clone(),
            source,
        };
        let path = target_file_path(&entry.name, &entry.sha256);
        let bytes = self
            .source
            .read(&path, MAX_MODULE_LEN, "module")
            .map_err(|e| unavailable(Some(e)))?;
        kasane_registry::trust::check_module(entry, &bytes).map_err(|e| unavailable(Some(e)))?;
        Ok(bytes)
    }

    /// The bytes of the active module with hash `sha256`, at `now`.
    pub fn module_bytes(&self, sha256: &Sha256Hash, now: u64) -> Result<Vec<u8>, HostError> {
        let (_, active) = self.current(now)?;
        let entry = active
            .iter()
            .map(|(e, _)| e)
            .find(|e| e.sha256 == *sha256)
            .ok_or_else(|| HostError::ModuleUnavailable {
                name: sha256.to_hex(),
                source: None,
            })?;
        self.entry_bytes(entry)
    }

    /// A repository file as clients fetch it (`metadata/3.root.json`,
    /// `metadata/timestamp.json`, `targets/kasane/<sha256>.host-keys.json`, …), or `None`
    /// for a path outside the repository's rules or a file that does not exist.
    #[must_use]
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        let (top, rest) = path.split_once('/')?;
        if !matches!(top, "metadata" | "targets") || rest.is_empty() || rest.len() > 256 {
            return None;
        }
        let safe = rest.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-%".contains(&b))
        });
        if !safe {
            return None;
        }
        self.source.read(path, 5_000_000, "file").ok()
    }
}
