//! A repository simulator for tests, after python-tuf's `RepositorySimulator`: an in-memory
//! [`Repository`] that holds every role's keys, a [`FakeClock`], and a [`Fetcher`] view whose
//! files a test can override (to play the attacker), plus helpers to make client trust stores.
//!
//! Keys come from fixed seeds: a simulator is for tests, never for a real repository, hence
//! the `test-util` feature.

use std::collections::BTreeMap;

use kasane_tuf::TufError;
use kasane_tuf::metadata::{Ed25519Signer, Signer, Targets};

use crate::entry::{Profile, TargetEntry};
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::repo::{
    InitSigners, Lifetimes, Repository, RoleSetup, Setup, metadata_path, target_file_path,
};
use crate::trust::{Clock, Fetcher, Pin, TrustStore};

/// The simulator's starting time (2023-11-14).
pub const T0: u64 = 1_700_000_000;

/// A clock tests move by hand; clones share the same time.
pub type FakeClock = kasane_os::ManualClock;

/// A role's signing keys.
pub type Keys = Vec<Ed25519Signer>;

/// The keys of every role the registry holds.
#[derive(Debug)]
pub struct RoleSecrets {
    /// Root keys.
    pub root: Keys,
    /// Targets keys.
    pub targets: Keys,
    /// Timestamp and snapshot (online) keys.
    pub online: Keys,
    /// Revocations keys.
    pub revocations: Keys,
    /// Authors keys.
    pub authors: Keys,
    /// The host's ticket key.
    pub ticket: Ed25519Signer,
    /// The host's identity key (raw Ed25519 secret).
    pub host_identity: [u8; 32],
}

/// `keys` as the signer slices the repository takes.
pub fn refs(keys: &[Ed25519Signer]) -> Vec<&dyn Signer> {
    keys.iter().map(|k| k as &dyn Signer).collect()
}

fn setup_of(keys: &[Ed25519Signer], threshold: u64) -> RoleSetup {
    RoleSetup {
        keys: keys.iter().map(Signer::key).collect(),
        threshold,
    }
}

/// The simulator. See the module documentation.
#[derive(Debug)]
pub struct RepositorySimulator {
    /// The repository as the registry publishes it.
    pub repo: Repository,
    /// Every role's keys.
    pub keys: RoleSecrets,
    /// Author keys, by author id.
    pub author_keys: BTreeMap<String, Keys>,
    /// Module bytes by target path, served under `targets/`.
    pub modules: BTreeMap<String, Vec<u8>>,
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
    pub fn with_root_keys(n: u8, threshold: u64) -> Self {
        let mut seed = 0u8;
        let mut next = || {
            seed += 1;
            Ed25519Signer::from_secret(&[seed; 32])
        };
        let keys = RoleSecrets {
            root: (0..n).map(|_| next()).collect(),
            targets: vec![next()],
            online: vec![next()],
            revocations: vec![next()],
            authors: vec![next()],
            ticket: next(),
            host_identity: [0xee; 32],
        };
        let setup = Setup {
            root: setup_of(&keys.root, threshold),
            targets: setup_of(&keys.targets, 1),
            online: setup_of(&keys.online, 1),
            revocations: setup_of(&keys.revocations, 1),
            authors: setup_of(&keys.authors, 1),
        };
        let life = Lifetimes::default();
        let (r, t, o, v, a) = (
            refs(&keys.root),
            refs(&keys.targets),
            refs(&keys.online),
            refs(&keys.revocations),
            refs(&keys.authors),
        );
        let signers = InitSigners {
            root: &r,
            targets: &t,
            online: &o,
            revocations: &v,
            authors: &a,
        };
        let identity = ed25519_dalek::SigningKey::from_bytes(&keys.host_identity);
        let host = crate::documents::HostKeys::new(
            identity.verifying_key().as_bytes(),
            &ticket_public(&keys.ticket),
        );
        let repo = match Repository::init(&setup, &signers, &host, T0, &life) {
            Ok(repo) => repo,
            // Fixed, valid inputs: init cannot fail.
            Err(e) => unreachable!("simulator init: {e}"),
        };
        Self {
            repo,
            keys,
            author_keys: BTreeMap::new(),
            modules: BTreeMap::new(),
            clock: FakeClock::new(T0),
            life,
            overrides: BTreeMap::new(),
            seed,
        }
    }

    /// A fresh deterministic key (distinct from every earlier one of this simulator).
    pub fn new_key(&mut self) -> Ed25519Signer {
        self.seed = self.seed.wrapping_add(1);
        Ed25519Signer::from_secret(&[self.seed; 32])
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The first root file (what a client pins).
    pub fn root1(&self) -> Vec<u8> {
        self.repo.first_root_bytes().to_vec()
    }

    /// A new trust store in `dir`, pinned to root 1, on the simulator's clock.
    pub fn client(&self, dir: &std::path::Path) -> Result<TrustStore<FakeClock>> {
        TrustStore::init(dir, &self.root1(), Pin::File, self.clock.clone())
    }

    /// The entry for `module` under `name`: pure profile, default limits, `weight`.
    pub fn entry(name: &str, module: &[u8], weight: u32) -> TargetEntry {
        TargetEntry {
            name: name.to_owned(),
            sha256: Sha256Hash::of(module),
            length: module.len() as u64,
            profile: Profile::Pure,
            fuel: 1_000_000,
            memory: 1 << 24,
            params: Vec::new(),
            rollout_weight: weight,
        }
    }

    /// Publishes a first-party module and re-snapshots.
    pub fn publish(&mut self, name: &str, module: &[u8]) -> Result<TargetEntry> {
        let e = Self::entry(name, module, 100);
        self.modules.insert(name.to_owned(), module.to_vec());
        self.publish_entry(e.clone())?;
        Ok(e)
    }

    /// Publishes `entry` as a first-party module and re-snapshots.
    pub fn publish_entry(&mut self, entry: TargetEntry) -> Result<()> {
        let now = self.now();
        let t = refs(&self.keys.targets);
        self.repo.add_target(&entry, &t, now, &self.life)?;
        self.snapshot()
    }

    /// Re-signs the snapshot and timestamp.
    pub fn snapshot(&mut self) -> Result<()> {
        let now = self.now();
        let o = refs(&self.keys.online);
        self.repo.snapshot(&o, now, &self.life)
    }

    /// Re-signs targets and revocations with fresh expiries, then the snapshot.
    pub fn refresh(&mut self) -> Result<()> {
        let now = self.now();
        let host = self.repo.host_keys()?;
        let t = refs(&self.keys.targets);
        self.repo.set_host_keys(&host, &t, now, &self.life)?;
        let v = refs(&self.keys.revocations);
        self.repo.revoke_hash(None, &v, now, &self.life)?;
        self.snapshot()
    }

    /// Delegates `<id>/*` to a new author `id` with one fresh key; returns the key.
    pub fn add_author(&mut self, id: &str) -> Result<Ed25519Signer> {
        let key = self.new_key();
        let setup = RoleSetup::single(key.key());
        let now = self.now();
        let a = refs(&self.keys.authors);
        self.repo.delegate(id, &setup, &a, now, &self.life)?;
        self.author_keys.insert(
            id.to_owned(),
            vec![Ed25519Signer::from_secret(&[self.seed; 32])],
        );
        self.snapshot()?;
        Ok(key)
    }

    /// Edits author `id`'s role file, has the author sign it (next version), stores it in the
    /// repository and re-snapshots.
    pub fn edit_author(&mut self, id: &str, f: impl FnOnce(&mut Targets)) -> Result<()> {
        let mut t = self.repo.author_template(id, self.now(), &self.life)?;
        f(&mut t);
        let keys = self
            .author_keys
            .get(id)
            .ok_or_else(|| RegistryError::NotListed { name: id.into() })?;
        let mut m = kasane_tuf::metadata::Metadata::new(t);
        for k in keys {
            m.sign(k)?;
        }
        self.repo.put_author_role(id, &m.to_bytes()?)?;
        self.snapshot()
    }

    /// Author `id` publishes `module` under `name` (in its own role) and the registry
    /// re-snapshots.
    pub fn author_publish(&mut self, id: &str, name: &str, module: &[u8]) -> Result<TargetEntry> {
        let e = Self::entry(name, module, 10);
        let file = e.to_target_file();
        self.modules.insert(name.to_owned(), module.to_vec());
        self.edit_author(id, |t| {
            t.targets.insert(name.to_owned(), file);
        })?;
        Ok(e)
    }

    /// Revokes a module hash and re-snapshots.
    pub fn revoke(&mut self, hash: Sha256Hash) -> Result<()> {
        let now = self.now();
        let v = refs(&self.keys.revocations);
        self.repo.revoke_hash(Some(hash), &v, now, &self.life)?;
        self.snapshot()
    }

    /// Replaces a top-level role's keys with one fresh key (threshold 1): a new root signed
    /// by the old root keys (and the new one, for `root`), then what the role signs re-signed
    /// with the new key, and a snapshot. `role` is `root`, `targets`, or `online`
    /// (timestamp and snapshot).
    pub fn rotate_keys(&mut self, role: &str) -> Result<()> {
        self.retire_keys(role).map(drop)
    }

    /// [`RepositorySimulator::rotate_keys`], returning the retired keys (for a test to play
    /// an attacker who still holds them).
    pub fn retire_keys(&mut self, role: &str) -> Result<Keys> {
        let new = self.new_key();
        let mut next = self.repo.next_root(self.now(), &self.life)?;
        let roles: &[&str] = match role {
            "root" => &["root"],
            "targets" => &["targets"],
            "online" => &["timestamp", "snapshot"],
            _ => {
                return Err(RegistryError::Invalid {
                    field: "role",
                    reason: "root, targets or online",
                });
            }
        };
        for r in roles {
            if let Some(spec) = next.roles.get_mut(*r) {
                spec.keyids = vec![new.key().key_id()];
                spec.threshold = 1;
            }
        }
        next.keys.insert(new.key().key_id(), new.key());
        let used: Vec<_> = next.roles.values().flat_map(|r| r.keyids.clone()).collect();
        next.keys.retain(|id, _| used.contains(id));
        let mut signers = refs(&self.keys.root);
        if role == "root" {
            signers.push(&new);
        }
        self.repo.rotate_root(next, &signers)?;
        let old = match role {
            "root" => std::mem::replace(&mut self.keys.root, vec![new]),
            "targets" => {
                let old = std::mem::replace(&mut self.keys.targets, vec![new]);
                self.refresh()?;
                old
            }
            _ => std::mem::replace(&mut self.keys.online, vec![new]),
        };
        self.snapshot()?;
        Ok(old)
    }

    /// Re-signs the root unchanged with a new version and expiry.
    pub fn bump_root(&mut self) -> Result<()> {
        let next = self.repo.next_root(self.now(), &self.life)?;
        let r = refs(&self.keys.root);
        self.repo.rotate_root(next, &r)
    }

    /// A ticket for `nonce` naming `name`, signed with the host's ticket key.
    pub fn ticket(&self, nonce: [u8; 32], name: &str) -> Result<Vec<u8>> {
        let entry = self.repo.find_entry(name, self.now())?;
        self.repo
            .sign_ticket(nonce, &entry, &self.keys.ticket, self.now(), &self.life)
    }

    /// Serves `bytes` at `path` instead of the repository's file.
    pub fn serve(&mut self, path: &str, bytes: Vec<u8>) {
        self.overrides.insert(path.to_owned(), Some(bytes));
    }

    /// Serves `path` as missing.
    pub fn hide(&mut self, path: &str) {
        self.overrides.insert(path.to_owned(), None);
    }

    /// The repository path of a role's metadata as the simulator serves it now.
    pub fn role_path(&self, role: &str) -> String {
        let version = match role {
            "root" => Some(self.repo.root().version),
            "timestamp" => None,
            "snapshot" => Some(self.repo.current_snapshot().version),
            "targets" => Some(self.repo.targets().version),
            other => self.repo.delegated(other).map(|t| t.version),
        };
        metadata_path(role, version)
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(bytes) = self.repo.files().ok()?.get(path) {
            return Some(bytes.clone());
        }
        self.modules
            .iter()
            .find(|(name, bytes)| target_file_path(name, &Sha256Hash::of(bytes)) == path)
            .map(|(_, bytes)| bytes.clone())
    }
}

/// The raw public key of an Ed25519 signer.
fn ticket_public(s: &Ed25519Signer) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(b) = hex::decode(&s.key().keyval.public)
        && b.len() == 32
    {
        out.copy_from_slice(&b);
    }
    out
}

impl Fetcher for RepositorySimulator {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        let bytes = match self.overrides.get(path) {
            Some(o) => o.clone(),
            None => self.file(path),
        };
        match bytes {
            Some(b) if b.len() as u64 > max_len => Err(TufError::TooLarge {
                what: path.to_owned(),
                max: max_len,
            }),
            other => Ok(other),
        }
    }
}
