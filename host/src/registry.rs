//! The host's view of its transform registry.
//!
//! The repository directory is the one `kasane-registry` writes (and clients fetch); module
//! files live beside it in the modules directory as `<sha256 hex>.wasm`. On every login the
//! host reads `snapshot.json` (a few kilobytes) and, when its hash changed, reloads the
//! repository and checks every signature again ([`Repository::load`]): a publication or a
//! revocation takes effect at the next login, with no restart.
//!
//! Active transforms are the first-party entries and the entries of delegated author files
//! within their prefix, minus revoked hashes and modules whose file is missing. The choice is
//! [`choose_weighted`] over those whose profile the client announced, so a client without
//! wasi support is never given a wasi transform.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kasane_registry::keys::{SecretKey, read_key_file};
use kasane_registry::metadata::targets::TargetEntry;
use kasane_registry::repo::{Lifetimes, Repository, choose_weighted};
use kasane_registry::trust::meta_path;
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_sandbox::{Limits, Sandbox, Transform};
use sha2::{Digest, Sha256};

use crate::HostError;

/// Largest snapshot file read on each login.
const MAX_SNAPSHOT_READ: u64 = 1 << 20;

/// Active entries and the author that listed each (`None`: first-party).
type Active = Arc<Vec<(TargetEntry, Option<String>)>>;

/// A loaded repository and what it makes active.
#[derive(Debug)]
struct Loaded {
    snapshot_sha256: [u8; 32],
    repo: Arc<Repository>,
    active: Active,
}

/// Why the host is not ready (`GET /readyz`): one line, nothing secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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
    /// This role's metadata has expired.
    #[error("registry: {0} expired")]
    Expired(&'static str),
}

/// The transform chosen for one login, its ticket and its loaded module.
#[derive(Clone)]
pub struct Chosen {
    /// The signed entry.
    pub entry: TargetEntry,
    /// The session ticket (signed by the online key) naming the client's nonce.
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

/// The host's registry: repository directory, modules, the online key, the sandbox and one
/// [`Transform`] per module hash, profile and limits (the `InstancePre` cache).
pub struct HostRegistry {
    dir: PathBuf,
    modules_dir: PathBuf,
    snapshot_key: SecretKey,
    sandbox: Sandbox,
    loaded: Mutex<Option<Loaded>>,
    transforms: Mutex<HashMap<TransformKey, Transform>>,
    /// Test-only (`test-util`): behave like a compromised host that offers revoked modules.
    ignore_revocations: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for HostRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRegistry")
            .field("dir", &self.dir)
            .field("modules_dir", &self.modules_dir)
            .finish_non_exhaustive()
    }
}

/// The limits a registry entry asks for (capped later by the sandbox's configuration).
#[must_use]
pub fn entry_limits(e: &TargetEntry) -> Limits {
    Limits {
        fuel: e.fuel,
        memory_bytes: e.memory,
        ..Limits::default()
    }
}

/// What a loaded [`Transform`] is cached under: the module's hash with the profile and limits
/// its entry runs it under. Two entries with the same bytes and other limits get a transform
/// each, so the host runs every entry as its signed entry says, as the client does.
type TransformKey = ([u8; 32], kasane_abi::Profile, Limits);

/// The module file of a hash: `<modules_dir>/<sha256 hex>.wasm`.
#[must_use]
pub fn module_path(modules_dir: &Path, sha256: &Sha256Hash) -> PathBuf {
    modules_dir.join(format!("{}.wasm", sha256.to_hex()))
}

impl HostRegistry {
    /// Opens the registry in `dir` with modules in `modules_dir`, signing tickets with
    /// `<keys_dir>/snapshot.key`. The repository is loaded (and verified) now.
    pub fn open(
        dir: &Path,
        modules_dir: &Path,
        keys_dir: &Path,
        sandbox: Sandbox,
    ) -> Result<Self, HostError> {
        let snapshot_key = read_key_file(&keys_dir.join("snapshot.key"))?;
        let reg = Self {
            dir: dir.to_owned(),
            modules_dir: modules_dir.to_owned(),
            snapshot_key,
            sandbox,
            loaded: Mutex::new(None),
            transforms: Mutex::new(HashMap::new()),
            ignore_revocations: std::sync::atomic::AtomicBool::new(false),
        };
        reg.current()?;
        Ok(reg)
    }

    /// The repository directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The modules directory.
    #[must_use]
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// The current repository and its active transforms, reloaded if `snapshot.json`
    /// changed since the last call.
    fn current(&self) -> Result<(Arc<Repository>, Active), HostError> {
        let path = self.dir.join(meta_path("snapshot"));
        let bytes = kasane_registry::files::read_capped(&path, MAX_SNAPSHOT_READ, "snapshot")?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| HostError::Poisoned { what: "registry" })?;
        if let Some(l) = guard.as_ref()
            && l.snapshot_sha256 == hash
        {
            return Ok((l.repo.clone(), l.active.clone()));
        }
        let repo = Repository::load(&self.dir)?;
        let active = Arc::new(self.active_of(&repo));
        tracing::info!(
            snapshot = repo.snapshot_info().0.version,
            active = active.len(),
            "registry loaded"
        );
        let repo = Arc::new(repo);
        *guard = Some(Loaded {
            snapshot_sha256: hash,
            repo: repo.clone(),
            active: active.clone(),
        });
        Ok((repo, active))
    }

    fn active_of(&self, repo: &Repository) -> Vec<(TargetEntry, Option<String>)> {
        let revoked = &repo.revocations().hashes;
        let revoked_keys = &repo.revocations().author_keys;
        let mut out: Vec<(TargetEntry, Option<String>)> = repo
            .targets()
            .targets
            .iter()
            .map(|e| (e.clone(), None))
            .collect();
        for d in &repo.targets().delegations {
            // An author with a revoked key is dropped as a whole (conservative).
            if d.keys.keys().any(|k| revoked_keys.contains(k)) {
                continue;
            }
            if let Some(a) = repo.author(&d.author) {
                for e in &a.targets {
                    if e.name.starts_with(&d.prefix) {
                        out.push((e.clone(), Some(d.author.clone())));
                    }
                }
            }
        }
        let honest = !self
            .ignore_revocations
            .load(std::sync::atomic::Ordering::Relaxed);
        out.retain(|(e, _)| {
            (!honest || !revoked.contains(&e.sha256))
                && module_path(&self.modules_dir, &e.sha256).is_file()
        });
        out
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

    /// Whether the registry can serve logins at `now`: it loads, has an active transform, and
    /// its root, snapshot, targets and revocations are unexpired (clients refuse expired
    /// metadata, so a host serving it fails every login).
    pub fn readiness(&self, now: u64) -> Result<(), NotReady> {
        let (repo, active) = self.current().map_err(|e| {
            tracing::warn!(error = %e, "readiness: registry does not load");
            NotReady::RegistryUnloadable
        })?;
        if active.is_empty() {
            return Err(NotReady::NoActiveTransform);
        }
        for (role, expires) in [
            ("root", repo.root().expires),
            ("snapshot", repo.snapshot_info().0.expires),
            ("targets", repo.targets().expires),
            ("revocations", repo.revocations().expires),
        ] {
            if expires <= now {
                return Err(NotReady::Expired(role));
            }
        }
        Ok(())
    }

    /// The active transforms now (after a reload if the snapshot changed).
    pub fn active(&self) -> Result<Vec<TargetEntry>, HostError> {
        Ok(self.current()?.1.iter().map(|(e, _)| e.clone()).collect())
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
        let (repo, active) = self.current()?;
        let entry = choose_weighted(&active, profiles, roll)
            .ok_or(HostError::NoTransform)?
            .clone();
        let life = Lifetimes {
            ticket: ticket_ttl,
            ..Lifetimes::default()
        };
        let ticket =
            repo.sign_ticket(client_nonce, &entry.name, &[&self.snapshot_key], now, &life)?;
        let transform = self.transform(&entry)?;
        Ok(Chosen {
            entry,
            ticket,
            transform,
        })
    }

    /// The loaded module of an entry: from the cache, or read (length and hash checked),
    /// validated and compiled once.
    pub fn transform(&self, entry: &TargetEntry) -> Result<Transform, HostError> {
        let key: TransformKey = (entry.sha256.0, entry.profile, entry_limits(entry));
        if let Ok(cache) = self.transforms.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(t.clone());
        }
        let bytes = self.module_bytes(&entry.sha256)?;
        if bytes.len() as u64 != entry.length || Sha256Hash::of(&bytes) != entry.sha256 {
            return Err(HostError::ModuleUnavailable {
                name: entry.name.clone(),
                source: None,
            });
        }
        let t = self
            .sandbox
            .load(&bytes, entry.profile, entry_limits(entry))?;
        if let Ok(mut cache) = self.transforms.lock() {
            cache.insert(key, t.clone());
        }
        Ok(t)
    }

    /// The bytes of module `sha256` from the modules directory.
    pub fn module_bytes(&self, sha256: &Sha256Hash) -> Result<Vec<u8>, HostError> {
        let path = module_path(&self.modules_dir, sha256);
        let max = kasane_registry::metadata::MAX_MODULE_LEN;
        kasane_registry::files::read_capped(&path, max, "module").map_err(|e| match e {
            RegistryError::Io { .. } | RegistryError::Missing { .. } => {
                HostError::ModuleUnavailable {
                    name: sha256.to_hex(),
                    source: Some(e),
                }
            }
            other => HostError::Registry(other),
        })
    }

    /// A repository file as clients fetch it (`root.json`, `3.root.json`, `snapshot.json`,
    /// `authors/acme.json`…), or `None` for a name outside the repository's rules.
    #[must_use]
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        kasane_registry::metadata::validate_name(path).ok()?;
        if !path.ends_with(".json") {
            return None;
        }
        kasane_registry::files::read_capped(&self.dir.join(path), 1 << 20, "file").ok()
    }
}
