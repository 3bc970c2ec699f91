//! A new repository (`init`), the development setup (`dev_init`), and loading one from disk.

use std::collections::BTreeMap;
use std::path::Path;

use kasane_tuf::keys::Key;
use kasane_tuf::metadata::{
    DelegatedRole, Delegations, Metadata, Root, Signer, Snapshot, Targets, Timestamp,
};

use super::{Repository, expiry, metadata_path};
use crate::documents::{HostKeys, RevocationList};
use crate::error::{RegistryError, Result};
use crate::layout::{AUTHORS_PATHS, AUTHORS_ROLE, REVOCATIONS_PATH, REVOCATIONS_ROLE};
use crate::signing::{KeyFileSigner, KeyKind, TufSigner};

const DAY: u64 = 24 * 60 * 60;

/// How long each role's metadata stays valid after signing, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// `root` (default 365 days).
    pub root: u64,
    /// `targets` (default 90 days).
    pub targets: u64,
    /// `revocations` (default 30 days).
    pub revocations: u64,
    /// `authors` and each author's role (default 90 days).
    pub authors: u64,
    /// `snapshot` and `timestamp` (default 7 days: the online key re-signs them).
    pub snapshot: u64,
    /// Session tickets (default 120 s).
    pub ticket: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            root: 365 * DAY,
            targets: 90 * DAY,
            revocations: 30 * DAY,
            authors: 90 * DAY,
            snapshot: 7 * DAY,
            ticket: 120,
        }
    }
}

/// A role's public keys and threshold.
#[derive(Clone, Debug)]
pub struct RoleSetup {
    /// The keys.
    pub keys: Vec<Key>,
    /// Distinct keys needed.
    pub threshold: u64,
}

impl RoleSetup {
    /// One key, threshold 1.
    pub fn single(key: Key) -> Self {
        Self {
            keys: vec![key],
            threshold: 1,
        }
    }

    pub(super) fn check(&self, role: &str) -> Result<()> {
        if self.threshold == 0 || self.threshold > self.keys.len() as u64 {
            return Err(RegistryError::BadThreshold {
                role: role.to_owned(),
                threshold: self.threshold,
                keys: self.keys.len(),
            });
        }
        Ok(())
    }
}

/// Every role's keys for a new repository.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `root` (offline).
    pub root: RoleSetup,
    /// `targets` (offline).
    pub targets: RoleSetup,
    /// `timestamp` and `snapshot` (one online key set, held by the host).
    pub online: RoleSetup,
    /// `revocations` (delegated by targets).
    pub revocations: RoleSetup,
    /// `authors` (delegated by targets; delegates each author).
    pub authors: RoleSetup,
}

/// The signers `init` needs: a threshold of each role.
pub struct InitSigners<'a> {
    /// Root.
    pub root: &'a [&'a dyn Signer],
    /// Targets.
    pub targets: &'a [&'a dyn Signer],
    /// Timestamp and snapshot.
    pub online: &'a [&'a dyn Signer],
    /// Revocations.
    pub revocations: &'a [&'a dyn Signer],
    /// Authors.
    pub authors: &'a [&'a dyn Signer],
}

/// Signs `m` with each of `signers`.
pub(crate) fn sign_all<T: kasane_tuf::metadata::SignedRole>(
    m: &mut Metadata<T>,
    signers: &[&dyn Signer],
) -> Result<()> {
    for s in signers {
        m.sign(*s)?;
    }
    Ok(())
}

/// A delegation to `name` with `setup`'s keys.
pub(crate) fn delegated_role(
    name: &str,
    setup: &RoleSetup,
    paths: Vec<String>,
    terminating: bool,
) -> (DelegatedRole, Vec<Key>) {
    let role = DelegatedRole {
        name: name.to_owned(),
        keyids: setup.keys.iter().map(Key::key_id).collect(),
        threshold: setup.threshold,
        terminating,
        paths: Some(paths),
        path_hash_prefixes: None,
        unrecognized: BTreeMap::new(),
    };
    (role, setup.keys.clone())
}

fn root_of(setup: &Setup, now: u64, life: &Lifetimes) -> Result<Root> {
    let mut root = Root::new(expiry(now.saturating_add(life.root))?);
    for (role, s) in [
        ("root", &setup.root),
        ("targets", &setup.targets),
        ("timestamp", &setup.online),
        ("snapshot", &setup.online),
    ] {
        s.check(role)?;
        for k in &s.keys {
            root.add_key(role, k.clone())?;
        }
        if let Some(r) = root.roles.get_mut(role) {
            r.threshold = s.threshold;
        }
    }
    Ok(root)
}

fn top_targets(setup: &Setup, host: &HostKeys, now: u64, life: &Lifetimes) -> Result<Targets> {
    setup.revocations.check(REVOCATIONS_ROLE)?;
    setup.authors.check(AUTHORS_ROLE)?;
    let mut targets = Targets::new(expiry(now.saturating_add(life.targets))?);
    let host_bytes = host.to_bytes();
    targets.targets.insert(
        crate::layout::HOST_KEYS_PATH.to_owned(),
        kasane_tuf::metadata::TargetFile::from_data(&host_bytes),
    );
    let revs = delegated_role(
        REVOCATIONS_ROLE,
        &setup.revocations,
        vec![REVOCATIONS_PATH.to_owned()],
        true,
    );
    let authors = delegated_role(
        AUTHORS_ROLE,
        &setup.authors,
        vec![AUTHORS_PATHS.to_owned()],
        false,
    );
    let mut delegations = Delegations {
        keys: BTreeMap::new(),
        roles: Vec::new(),
        unrecognized: BTreeMap::new(),
    };
    for (role, keys) in [revs, authors] {
        for k in keys {
            delegations.keys.insert(k.key_id(), k);
        }
        delegations.roles.push(role);
    }
    targets.delegations = Some(delegations);
    Ok(targets)
}

impl Repository {
    /// A new repository: root 1, targets 1 (listing `kasane/host-keys.json` and delegating
    /// `revocations` and `authors`), an empty revocation list, an empty `authors` role, and
    /// snapshot and timestamp 1. Signed by the given signers.
    pub fn init(
        setup: &Setup,
        signers: &InitSigners<'_>,
        host: &HostKeys,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Self> {
        let mut root = Metadata::new(root_of(setup, now, life)?);
        sign_all(&mut root, signers.root)?;
        let mut targets = Metadata::new(top_targets(setup, host, now, life)?);
        sign_all(&mut targets, signers.targets)?;
        let revocations = RevocationList::default().to_bytes();
        let mut revs = Targets::new(expiry(now.saturating_add(life.revocations))?);
        revs.targets.insert(
            REVOCATIONS_PATH.to_owned(),
            kasane_tuf::metadata::TargetFile::from_data(&revocations),
        );
        let mut revs = Metadata::new(revs);
        sign_all(&mut revs, signers.revocations)?;
        let mut authors = Metadata::new(Targets::new(expiry(now.saturating_add(life.authors))?));
        sign_all(&mut authors, signers.authors)?;
        let placeholder = Metadata::new(Snapshot::new(expiry(now)?));
        let ts = Timestamp::new(expiry(now)?, kasane_tuf::metadata::MetaFile::new(1));
        let mut repo = Self {
            roots: vec![root.to_bytes()?],
            root,
            timestamp: Metadata::new(ts),
            snapshot: placeholder,
            targets,
            delegated: BTreeMap::from([
                (REVOCATIONS_ROLE.to_owned(), revs),
                (AUTHORS_ROLE.to_owned(), authors),
            ]),
            documents: BTreeMap::from([
                (crate::layout::HOST_KEYS_PATH.to_owned(), host.to_bytes()),
                (REVOCATIONS_PATH.to_owned(), revocations),
            ]),
            loaded: BTreeMap::new(),
        };
        repo.snapshot_first(signers.online, now, life)?;
        Ok(repo)
    }

    /// Loads the repository saved in `dir`: every root version, the timestamp, the snapshot
    /// it names, every role that snapshot lists, and Kasane's documents. Only the form is
    /// checked here; [`Repository::active`] checks signatures and versions as a client would.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(|path, max| crate::files::read_capped(&dir.join(path), max, path))
    }

    /// Like [`Repository::load`], from files by repository path (`metadata/timestamp.json`,
    /// `targets/kasane/<sha256>.host-keys.json`, …) held in memory, e.g. read from a
    /// database: the same files in the same layout, with the same size caps.
    pub fn load_files(files: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        Self::load_with(|path, max| {
            let bytes = files.get(path).ok_or_else(|| RegistryError::Missing {
                path: path.to_owned(),
            })?;
            crate::json::check_len(bytes.len(), max, path)?;
            Ok(bytes.clone())
        })
    }

    /// The one loader behind [`Repository::load`] and [`Repository::load_files`]: `read`
    /// gives a file's bytes by repository path, at most `max` bytes of them.
    fn load_with(read_file: impl Fn(&str, u64) -> Result<Vec<u8>>) -> Result<Self> {
        let read = |path: &str| read_file(path, MAX_FILE);
        let mut roots = Vec::new();
        while let Ok(bytes) = read(&metadata_path("root", Some(roots.len() as u64 + 1))) {
            roots.push(bytes);
        }
        let last = roots.last().ok_or_else(|| RegistryError::Missing {
            path: metadata_path("root", Some(1)),
        })?;
        let root = Metadata::<Root>::from_bytes(last)?;
        let mut loaded = BTreeMap::new();
        let mut keep = |role: &str, version: u64, bytes: Vec<u8>| {
            loaded.insert((role.to_owned(), version), bytes);
        };
        let ts_bytes = read(&metadata_path("timestamp", None))?;
        let timestamp = Metadata::<Timestamp>::from_bytes(&ts_bytes)?;
        keep("timestamp", timestamp.signed.version, ts_bytes);
        let sv = timestamp.signed.snapshot_meta()?.version;
        let snap_bytes = read(&metadata_path("snapshot", Some(sv)))?;
        let snapshot = Metadata::<Snapshot>::from_bytes(&snap_bytes)?;
        keep("snapshot", snapshot.signed.version, snap_bytes);
        let mut targets = None;
        let mut delegated = BTreeMap::new();
        for (file, meta) in &snapshot.signed.meta {
            let role = file.strip_suffix(".json").unwrap_or(file);
            let bytes = read(&metadata_path(role, Some(meta.version)))?;
            let m = Metadata::<Targets>::from_bytes(&bytes)?;
            keep(role, m.signed.version, bytes);
            if role == "targets" {
                targets = Some(m);
            } else {
                delegated.insert(role.to_owned(), m);
            }
        }
        let targets = targets.ok_or_else(|| RegistryError::Missing {
            path: metadata_path("targets", None),
        })?;
        let mut repo = Self {
            roots,
            root,
            timestamp,
            snapshot,
            targets,
            delegated,
            documents: BTreeMap::new(),
            loaded,
        };
        repo.load_documents(&read_file)?;
        Ok(repo)
    }

    fn load_documents(&mut self, read_file: impl Fn(&str, u64) -> Result<Vec<u8>>) -> Result<()> {
        let listed = [
            (crate::layout::HOST_KEYS_PATH, Some(&self.targets.signed)),
            (REVOCATIONS_PATH, self.delegated(REVOCATIONS_ROLE)),
        ];
        let mut docs = BTreeMap::new();
        for (path, role) in listed {
            let file =
                role.and_then(|t| t.targets.get(path))
                    .ok_or_else(|| RegistryError::NotListed {
                        name: path.to_owned(),
                    })?;
            let sha = file
                .hashes
                .get("sha256")
                .map(String::as_str)
                .unwrap_or_default();
            let hash = crate::hexfmt::Sha256Hash::from_hex(sha)?;
            let on_disk = super::target_file_path(path, &hash);
            let bytes = read_file(&on_disk, file.length)?;
            file.verify_length_and_hashes(path, &bytes)?;
            docs.insert(path.to_owned(), bytes);
        }
        self.documents = docs;
        Ok(())
    }
}

/// Cap on any metadata file read by [`Repository::load`].
pub(super) const MAX_FILE: u64 = 5_000_000;

/// The key files [`dev_init`] writes in the keys directory: one PKCS#8 PEM key per role
/// (unencrypted: a development setup), the ticket key, and the host's identity key.
pub const DEV_KEY_FILES: [&str; 7] = [
    "root.pem",
    "targets.pem",
    "online.pem",
    "revocations.pem",
    "authors.pem",
    "ticket.pem",
    "host.key",
];

/// `init` with development keys: one fresh Ed25519 key per role (threshold 1), written to
/// `keys_dir` as [`DEV_KEY_FILES`] (mode 0600, never replacing a file), and a new repository
/// saved in `repo_dir`. Not for real deployments: docs/REGISTRY.md describes the ceremony.
pub fn dev_init(
    repo_dir: &Path,
    keys_dir: &Path,
    now: u64,
    life: &Lifetimes,
) -> Result<Repository> {
    crate::files::create_private_dir(keys_dir)?;
    let mut signers = Vec::new();
    for name in &DEV_KEY_FILES[..6] {
        signers.push(KeyFileSigner::generate(
            KeyKind::Ed25519,
            &keys_dir.join(name),
            None,
        )?);
    }
    let host = crate::keys::SecretKey::generate();
    crate::keys::write_key_file(&keys_dir.join(DEV_KEY_FILES[6]), &host)?;
    let tuf: Vec<TufSigner<'_>> = signers.iter().map(|s| TufSigner(s)).collect();
    let key = |i: usize| RoleSetup::single(tuf[i].key());
    let setup = Setup {
        root: key(0),
        targets: key(1),
        online: key(2),
        revocations: key(3),
        authors: key(4),
    };
    let host_keys = HostKeys::new(&host.public().to_bytes(), &tuf[5].ed25519_public()?);
    let one = |i: usize| -> [&dyn Signer; 1] { [&tuf[i]] };
    let (r, t, o, v, a) = (one(0), one(1), one(2), one(3), one(4));
    let signers = InitSigners {
        root: &r,
        targets: &t,
        online: &o,
        revocations: &v,
        authors: &a,
    };
    let repo = Repository::init(&setup, &signers, &host_keys, now, life)?;
    repo.save(repo_dir)?;
    Ok(repo)
}
