//! A repository simulator for tests, after python-tuf's `RepositorySimulator`: an in-memory
//! [`Repository`] that holds every role's keys, a [`FakeClock`], and a [`Fetcher`] view whose
//! files a test can override (to play the attacker), plus helpers to make client trust stores.
//!
//! Keys come from fixed seeds ([`crate::danger::key_from_seed`]): a simulator is for tests,
//! never for a real repository, hence the `test-util` feature.

use std::collections::BTreeMap;

use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::Sha256Hash;
use crate::keys::{PublicKey, SecretKey};
use crate::metadata::targets::{AuthorFile, Profile, TargetEntry};
use crate::repo::{
    InitSigners, Lifetimes, Repository, RoleSetup, RootSetup, author_sign, delegation, target_entry,
};
use crate::trust::{Clock, Fetcher, Pin, TrustStore};

/// The simulator's starting time (2023-11-14).
pub const T0: u64 = 1_700_000_000;

/// A clock tests move by hand; clones share the same time.
pub type FakeClock = kasane_os::ManualClock;

/// The secret keys of every top-level role.
#[derive(Clone, Debug)]
pub struct RoleSecrets {
    /// Root keys.
    pub root: Vec<SecretKey>,
    /// Targets keys.
    pub targets: Vec<SecretKey>,
    /// Snapshot (online) keys.
    pub snapshot: Vec<SecretKey>,
    /// Revocations keys.
    pub revocations: Vec<SecretKey>,
    /// Host keys.
    pub host: Vec<SecretKey>,
}

fn refs(keys: &[SecretKey]) -> Vec<&SecretKey> {
    keys.iter().collect()
}

fn pubs(keys: &[SecretKey]) -> Vec<PublicKey> {
    keys.iter().map(SecretKey::public).collect()
}

/// The simulator. See the module documentation.
#[derive(Debug)]
pub struct RepositorySimulator {
    /// The repository as the registry publishes it.
    pub repo: Repository,
    /// Every role's keys.
    pub keys: RoleSecrets,
    /// Root threshold used when building new roots.
    pub root_threshold: u32,
    /// Author keys, by author id.
    pub author_keys: BTreeMap<String, Vec<SecretKey>>,
    /// Author files as last signed, by id.
    pub author_files: BTreeMap<String, AuthorFile>,
    /// The shared clock.
    pub clock: FakeClock,
    /// Lifetimes for new files.
    pub life: Lifetimes,
    /// Files served instead of the repository's (`None`: served as missing).
    pub overrides: BTreeMap<String, Option<Vec<u8>>>,
    seed: u8,
}

impl Default for RepositorySimulator {
    fn default() -> Self {
        Self::new()
    }
}

impl RepositorySimulator {
    /// A repository with one key per role (threshold 1) at time [`T0`].
    pub fn new() -> Self {
        Self::with_root_keys(1, 1)
    }

    /// A repository with `n` root keys and root threshold `threshold`.
    pub fn with_root_keys(n: u8, threshold: u32) -> Self {
        let mut seed = 0u8;
        let mut next = || {
            seed += 1;
            SecretKey::from_seed(&[seed; 32])
        };
        let keys = RoleSecrets {
            root: (0..n).map(|_| next()).collect(),
            targets: vec![next()],
            snapshot: vec![next()],
            revocations: vec![next()],
            host: vec![next()],
        };
        let setup = RootSetup {
            root: RoleSetup {
                keys: pubs(&keys.root),
                threshold,
            },
            targets: RoleSetup::single(&keys.targets[0].public()),
            snapshot: RoleSetup::single(&keys.snapshot[0].public()),
            revocations: RoleSetup::single(&keys.revocations[0].public()),
            host: RoleSetup::single(&keys.host[0].public()),
        };
        let life = Lifetimes::default();
        let clock = FakeClock::new(T0);
        let (r, t, rv, s) = (
            refs(&keys.root),
            refs(&keys.targets),
            refs(&keys.revocations),
            refs(&keys.snapshot),
        );
        let signers = InitSigners {
            root: &r,
            targets: &t,
            revocations: &rv,
            snapshot: &s,
        };
        let repo = match Repository::init(&setup, signers, T0, &life) {
            Ok(repo) => repo,
            // Fixed, valid inputs: init cannot fail.
            Err(e) => unreachable!("simulator init: {e}"),
        };
        Self {
            repo,
            keys,
            root_threshold: threshold,
            author_keys: BTreeMap::new(),
            author_files: BTreeMap::new(),
            clock,
            life,
            overrides: BTreeMap::new(),
            seed,
        }
    }

    /// A fresh deterministic key (distinct from every earlier one of this simulator).
    pub fn new_key(&mut self) -> SecretKey {
        self.seed = self.seed.wrapping_add(1);
        SecretKey::from_seed(&[self.seed; 32])
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The first root file (what a client pins).
    pub fn root1(&self) -> Vec<u8> {
        self.repo
            .files()
            .get(&crate::trust::root_path(1))
            .cloned()
            .unwrap_or_default()
    }

    /// A new trust store in `dir`, pinned to root 1, on the simulator's clock.
    pub fn client(&self, dir: &std::path::Path) -> Result<TrustStore<FakeClock>> {
        TrustStore::init(dir, &self.root1(), Pin::File, self.clock.clone())
    }

    /// Publishes a first-party module (pure profile, default limits) and re-snapshots.
    pub fn publish(&mut self, name: &str, module: &[u8]) -> Result<TargetEntry> {
        let e = target_entry(name, module, Profile::Pure, 1_000_000, 1 << 24, vec![], 100)?;
        self.publish_entry(e.clone())?;
        Ok(e)
    }

    /// Publishes `entry` as a first-party module and re-snapshots.
    pub fn publish_entry(&mut self, entry: TargetEntry) -> Result<()> {
        let now = self.now();
        self.repo
            .add_target(entry, &refs(&self.keys.targets), now, &self.life)?;
        self.snapshot()
    }

    /// Re-signs the snapshot.
    pub fn snapshot(&mut self) -> Result<()> {
        let now = self.now();
        self.repo
            .snapshot(&refs(&self.keys.snapshot), now, &self.life)
    }

    /// Re-signs targets, revocations and snapshot with fresh expiries.
    pub fn refresh(&mut self) -> Result<()> {
        let now = self.now();
        self.repo
            .refresh_targets(&refs(&self.keys.targets), now, &self.life)?;
        self.repo
            .refresh_revocations(&refs(&self.keys.revocations), now, &self.life)?;
        self.snapshot()
    }

    /// Delegates `prefix` to a new author `id` with one fresh key; returns it.
    pub fn add_author(&mut self, id: &str, prefix: &str) -> Result<SecretKey> {
        let key = self.new_key();
        let d = delegation(id, prefix, &[key.public()], 1)?;
        let now = self.now();
        self.repo
            .delegate(d, &refs(&self.keys.targets), now, &self.life)?;
        self.author_keys.insert(id.to_owned(), vec![key.clone()]);
        self.author_files.insert(
            id.to_owned(),
            AuthorFile {
                author: id.to_owned(),
                version: 0,
                expires: 0,
                targets: vec![],
                delegations: vec![],
            },
        );
        self.snapshot()?;
        Ok(key)
    }

    /// Edits author `id`'s file, bumps its version, has the author sign it, stores it in the
    /// repository and re-snapshots.
    pub fn edit_author(&mut self, id: &str, f: impl FnOnce(&mut AuthorFile)) -> Result<()> {
        let mut file = self
            .author_files
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotListed { name: id.into() })?;
        f(&mut file);
        file.version = file.version.saturating_add(1);
        file.expires = self.now().saturating_add(self.life.targets);
        let keys = self.author_keys.get(id).cloned().unwrap_or_default();
        let bytes = author_sign(&file, &refs(&keys))?;
        self.repo.put_author_file(bytes)?;
        self.author_files.insert(id.to_owned(), file);
        self.snapshot()
    }

    /// Author `id` publishes `module` under `name` (in its own file) and the registry
    /// re-snapshots.
    pub fn author_publish(&mut self, id: &str, name: &str, module: &[u8]) -> Result<TargetEntry> {
        let e = target_entry(name, module, Profile::Pure, 1_000_000, 1 << 24, vec![], 10)?;
        let entry = e.clone();
        self.edit_author(id, |f| {
            f.targets.retain(|x| x.name != entry.name);
            f.targets.push(entry);
        })?;
        Ok(e)
    }

    /// Revokes a module hash and re-snapshots.
    pub fn revoke(&mut self, hash: Sha256Hash) -> Result<()> {
        let now = self.now();
        self.repo
            .revoke_hash(hash, &refs(&self.keys.revocations), now, &self.life)?;
        self.snapshot()
    }

    /// Rotates the snapshot (online) key: see [`RepositorySimulator::rotate_keys`].
    pub fn rotate_snapshot_key(&mut self) -> Result<()> {
        self.rotate_keys(&RoleName::Snapshot)
    }

    /// Replaces `role`'s keys with one fresh key (threshold 1; for `root`, the configured root
    /// threshold is kept only if still reachable): a new root signed by the old and the new
    /// root keys, then every file the role signs re-signed with the new key, and a snapshot.
    pub fn rotate_keys(&mut self, role: &RoleName) -> Result<()> {
        let new = self.new_key();
        let mut next = self.repo.next_root(self.now(), &self.life);
        let spec = match role {
            RoleName::Root => &mut next.roles.root,
            RoleName::Targets => &mut next.roles.targets,
            RoleName::Snapshot | RoleName::Ticket => &mut next.roles.snapshot,
            RoleName::Revocations => &mut next.roles.revocations,
            RoleName::Host => &mut next.roles.host,
            RoleName::Author(_) => {
                return Err(RegistryError::Invalid {
                    field: "role",
                    reason: "author keys are rotated by delegating again",
                });
            }
        };
        spec.keyids = vec![new.key_id()];
        spec.threshold = 1;
        next.keys.insert(new.key_id(), new.public().into());
        // Drop keys no role uses any more.
        let used: Vec<_> = [
            &next.roles.root,
            &next.roles.targets,
            &next.roles.snapshot,
            &next.roles.revocations,
            &next.roles.host,
        ]
        .iter()
        .flat_map(|r| r.keyids.iter().copied())
        .collect();
        next.keys.retain(|id, _| used.contains(id));
        let mut signers = refs(&self.keys.root);
        if *role == RoleName::Root {
            signers.push(&new);
        }
        self.repo.rotate_root(next, &signers)?;
        let now = self.now();
        match role {
            RoleName::Root => {
                self.keys.root = vec![new];
                self.root_threshold = 1;
            }
            RoleName::Targets => {
                self.keys.targets = vec![new];
                self.repo
                    .refresh_targets(&refs(&self.keys.targets), now, &self.life)?;
            }
            RoleName::Revocations => {
                self.keys.revocations = vec![new];
                self.repo
                    .refresh_revocations(&refs(&self.keys.revocations), now, &self.life)?;
            }
            RoleName::Host => self.keys.host = vec![new],
            _ => self.keys.snapshot = vec![new],
        }
        self.snapshot()
    }

    /// Re-signs the root unchanged with a new version and expiry.
    pub fn bump_root(&mut self) -> Result<()> {
        let next = self.repo.next_root(self.now(), &self.life);
        self.repo.rotate_root(next, &refs(&self.keys.root))
    }

    /// A ticket for `nonce` naming `name`, signed with the current snapshot keys.
    pub fn ticket(&self, nonce: [u8; 32], name: &str) -> Result<Vec<u8>> {
        self.repo.sign_ticket(
            nonce,
            name,
            &refs(&self.keys.snapshot),
            self.now(),
            &self.life,
        )
    }

    /// Serves `bytes` at `path` instead of the repository's file.
    pub fn serve(&mut self, path: &str, bytes: Vec<u8>) {
        self.overrides.insert(path.to_owned(), Some(bytes));
    }

    /// Serves `path` as missing.
    pub fn hide(&mut self, path: &str) {
        self.overrides.insert(path.to_owned(), None);
    }
}

impl Fetcher for RepositorySimulator {
    fn fetch(&self, path: &str, _max_len: u64) -> Result<Option<Vec<u8>>> {
        if let Some(o) = self.overrides.get(path) {
            return Ok(o.clone());
        }
        Ok(self.repo.files().get(path).cloned())
    }
}
