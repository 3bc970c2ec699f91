//! A tiny in-memory TUF repository, fetcher and store for the workflow tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "test helpers: each test binary uses part of them"
)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use kasane_tuf::metadata::SignedRole;
use kasane_tuf::{
    Ed25519Signer, MetaFile, Metadata, MetadataStore, Result, Root, Signer, Snapshot, TargetFile,
    Targets, Timestamp, TufError, Updater, UpdaterConfig,
};
use time::OffsetDateTime;

pub const NOW: i64 = 1_900_000_000;

pub fn signer(n: u8) -> Ed25519Signer {
    Ed25519Signer::from_secret(&[n; 32])
}

pub fn in_days(days: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW + days * 86_400).unwrap()
}

/// Files served by path; counts requests.
#[derive(Clone, Default)]
pub struct MemFetcher {
    pub files: Rc<RefCell<BTreeMap<String, Vec<u8>>>>,
    pub requests: Rc<RefCell<Vec<String>>>,
}

impl kasane_tuf::Fetcher for MemFetcher {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        self.requests.borrow_mut().push(path.to_owned());
        let Some(data) = self.files.borrow().get(path).cloned() else {
            return Ok(None);
        };
        if data.len() as u64 > max_len {
            return Err(TufError::TooLarge {
                what: path.to_owned(),
                max: max_len,
            });
        }
        Ok(Some(data))
    }
}

#[derive(Clone, Default)]
pub struct MemStore {
    pub files: Rc<RefCell<BTreeMap<String, Vec<u8>>>>,
}

impl MetadataStore for MemStore {
    fn load(&self, role: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.files.borrow().get(role).cloned())
    }
    fn store(&self, role: &str, bytes: &[u8]) -> Result<()> {
        self.files
            .borrow_mut()
            .insert(role.to_owned(), bytes.to_vec());
        Ok(())
    }
    fn delete(&self, role: &str) -> Result<()> {
        self.files.borrow_mut().remove(role);
        Ok(())
    }
}

pub struct Repo {
    pub root: Root,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
    pub signers: BTreeMap<String, Vec<Ed25519Signer>>,
    pub fetcher: MemFetcher,
    pub targets_fetcher: MemFetcher,
}

pub fn sign<T: SignedRole + Clone>(signed: &T, signers: &[&Ed25519Signer]) -> Vec<u8> {
    let mut md = Metadata::new(signed.clone());
    for s in signers {
        md.sign(*s).unwrap();
    }
    md.to_bytes().unwrap()
}

impl Repo {
    pub fn new() -> Repo {
        let mut root = Root::new(in_days(365));
        let mut signers = BTreeMap::new();
        for (n, role) in [
            (1u8, "root"),
            (2, "timestamp"),
            (3, "snapshot"),
            (4, "targets"),
        ] {
            root.add_key(role, signer(n).key()).unwrap();
            signers.insert(role.to_owned(), vec![signer(n)]);
        }
        let mut repo = Repo {
            root,
            timestamp: Timestamp::new(in_days(1), MetaFile::new(1)),
            snapshot: Snapshot::new(in_days(7)),
            targets: Targets::new(in_days(30)),
            signers,
            fetcher: MemFetcher::default(),
            targets_fetcher: MemFetcher::default(),
        };
        repo.put_root();
        repo.put("targets");
        repo.put("snapshot");
        repo.put("timestamp");
        repo
    }

    pub fn signed_by(&self, role: &str) -> Vec<&Ed25519Signer> {
        self.signers[role].iter().collect()
    }

    pub fn put_root(&mut self) {
        let bytes = sign(&self.root, &self.signed_by("root"));
        self.serve(&format!("{}.root.json", self.root.version), bytes);
    }

    pub fn serve(&self, path: &str, bytes: Vec<u8>) {
        self.fetcher
            .files
            .borrow_mut()
            .insert(path.to_owned(), bytes);
    }

    /// Signs and serves the current `role` (no version bump).
    pub fn put(&mut self, role: &str) {
        let signers = self.signed_by(role);
        let (path, bytes) = match role {
            "timestamp" => ("timestamp.json".to_owned(), sign(&self.timestamp, &signers)),
            "snapshot" => (
                format!("{}.snapshot.json", self.snapshot.version),
                sign(&self.snapshot, &signers),
            ),
            "targets" => (
                format!("{}.targets.json", self.targets.version),
                sign(&self.targets, &signers),
            ),
            _ => panic!("no role {role}"),
        };
        self.serve(&path, bytes);
    }

    /// Bumps targets, snapshot and timestamp, pointing each at the next.
    pub fn publish_all(&mut self) {
        self.targets.version += 1;
        self.put("targets");
        self.snapshot.version += 1;
        self.snapshot
            .meta
            .insert("targets.json".into(), MetaFile::new(self.targets.version));
        self.put("snapshot");
        self.timestamp.version += 1;
        self.timestamp
            .meta
            .insert("snapshot.json".into(), MetaFile::new(self.snapshot.version));
        self.put("timestamp");
    }

    pub fn publish_root(&mut self) {
        self.root.version += 1;
        self.put_root();
    }

    pub fn add_target(&mut self, path: &str, data: &[u8]) {
        self.targets
            .targets
            .insert(path.to_owned(), TargetFile::from_data(data));
        let hash = TargetFile::from_data(data).hashes["sha256"].clone();
        let fetch_path = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/{hash}.{name}"),
            None => format!("{hash}.{path}"),
        };
        self.targets_fetcher
            .files
            .borrow_mut()
            .insert(fetch_path, data.to_vec());
    }

    pub fn initial_root(&self) -> Vec<u8> {
        self.fetcher.files.borrow()["1.root.json"].clone()
    }

    pub fn updater(&self, store: &MemStore) -> Updater<MemFetcher, MemStore> {
        self.updater_at(store, NOW)
    }

    pub fn updater_at(&self, store: &MemStore, now: i64) -> Updater<MemFetcher, MemStore> {
        if store.files.borrow().get("root").is_none() {
            store.store("root", &self.initial_root()).unwrap();
        }
        Updater::new(
            self.fetcher.clone(),
            store.clone(),
            UpdaterConfig::default(),
            now,
        )
        .unwrap()
    }

    pub fn stored_version(store: &MemStore, role: &str) -> Option<u64> {
        let bytes = store.files.borrow().get(role).cloned()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["signed"]["version"].as_u64()
    }
}
