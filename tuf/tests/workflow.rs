//! The client workflow against an in-memory repository: each refusal comes back as its
//! typed error, and the store keeps what python-tuf would keep.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{MemStore, NOW, Repo, in_days, sign, signer};
use kasane_tuf::{DelegatedRole, Delegations, MetaFile, Signer, Targets, TufError};

#[test]
fn refresh_then_download() {
    let mut repo = Repo::new();
    repo.add_target("dir/a.txt", b"hello");
    repo.publish_all();
    let store = MemStore::default();
    let mut updater = repo.updater(&store);
    updater.refresh().unwrap();
    for role in ["root", "timestamp", "snapshot", "targets"] {
        assert!(store.files.borrow().contains_key(role), "{role} stored");
    }
    let info = updater.get_targetinfo("dir/a.txt").unwrap();
    assert_eq!(info.file.length, 5);
    assert_eq!(
        updater
            .download_target(&info, &repo.targets_fetcher)
            .unwrap(),
        b"hello"
    );
    assert!(matches!(
        updater.get_targetinfo("nope"),
        Err(TufError::UnknownTarget { .. })
    ));
}

#[test]
fn target_length_and_hash_are_checked() {
    let mut repo = Repo::new();
    repo.add_target("a.txt", b"hello");
    repo.publish_all();
    let store = MemStore::default();
    let mut updater = repo.updater(&store);
    let mut info = updater.get_targetinfo("a.txt").unwrap();
    let path = updater.target_fetch_path(&info);
    repo.targets_fetcher
        .files
        .borrow_mut()
        .insert(path.clone(), b"hellO".to_vec());
    let err = updater
        .download_target(&info, &repo.targets_fetcher)
        .unwrap_err();
    assert!(matches!(err, TufError::HashMismatch { ref algorithm, .. } if algorithm == "sha256"));
    repo.targets_fetcher
        .files
        .borrow_mut()
        .insert(path, b"hell".to_vec());
    let err = updater
        .download_target(&info, &repo.targets_fetcher)
        .unwrap_err();
    assert!(matches!(
        err,
        TufError::LengthMismatch {
            expected: 5,
            got: 4,
            ..
        }
    ));
    info.file.length = 3;
    let err = updater
        .download_target(&info, &repo.targets_fetcher)
        .unwrap_err();
    assert!(matches!(err, TufError::TooLarge { max: 3, .. }));
}

#[test]
fn unsigned_timestamp_is_refused() {
    let mut repo = Repo::new();
    repo.publish_all();
    repo.serve("timestamp.json", sign(&repo.timestamp, &[&signer(9)]));
    let store = MemStore::default();
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(
        matches!(err, TufError::ThresholdNotMet { ref role, valid: 0, threshold: 1 } if role == "timestamp")
    );
    assert!(!store.files.borrow().contains_key("timestamp"));
}

#[test]
fn timestamp_rollback_and_equal_version() {
    let mut repo = Repo::new();
    repo.publish_all();
    let store = MemStore::default();
    repo.updater(&store).refresh().unwrap();
    let stored = store.files.borrow()["timestamp"].clone();
    // Same version again: fine, the trusted one is kept.
    repo.updater(&store).refresh().unwrap();
    assert_eq!(store.files.borrow()["timestamp"], stored);
    repo.timestamp.version = 1;
    repo.put("timestamp");
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(
        matches!(err, TufError::Rollback { ref role, trusted: 2, new: 1 } if role == "timestamp")
    );
}

#[test]
fn snapshot_version_rollback_in_timestamp() {
    let mut repo = Repo::new();
    repo.publish_all();
    let store = MemStore::default();
    repo.updater(&store).refresh().unwrap();
    repo.timestamp.version += 1;
    repo.timestamp
        .meta
        .insert("snapshot.json".into(), MetaFile::new(1));
    repo.put("timestamp");
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(
        matches!(err, TufError::Rollback { ref role, trusted: 2, new: 1 } if role == "snapshot")
    );
}

#[test]
fn expired_timestamp_is_refused() {
    let repo = Repo::new();
    let store = MemStore::default();
    let err = repo
        .updater_at(&store, NOW + 2 * 86_400)
        .refresh()
        .unwrap_err();
    assert!(matches!(err, TufError::Expired { ref role } if role == "timestamp"));
}

#[test]
fn expired_root_is_refused_at_timestamp_step() {
    let repo = Repo::new();
    let store = MemStore::default();
    let err = repo
        .updater_at(&store, NOW + 400 * 86_400)
        .refresh()
        .unwrap_err();
    assert!(matches!(err, TufError::Expired { ref role } if role == "root"));
}

#[test]
fn root_version_must_be_next() {
    let mut repo = Repo::new();
    repo.root.version = 3;
    let bytes = sign(&repo.root, &repo.signed_by("root"));
    repo.serve("2.root.json", bytes);
    let store = MemStore::default();
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(matches!(
        err,
        TufError::VersionMismatch {
            expected: 2,
            got: 3,
            ..
        }
    ));
}

#[test]
fn root_rotation_needs_old_and_new_keys() {
    let mut repo = Repo::new();
    repo.root.roles.get_mut("root").unwrap().keyids.clear();
    repo.root.add_key("root", signer(10).key()).unwrap();
    repo.root.version = 2;
    // Signed by the new key only: the old root's threshold is not met.
    repo.serve("2.root.json", sign(&repo.root, &[&signer(10)]));
    let store = MemStore::default();
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { ref role, valid: 0, .. } if role == "root"));
    // Signed by the old key only: the new root's own threshold is not met.
    repo.serve("2.root.json", sign(&repo.root, &[&signer(1)]));
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { ref role, .. } if role == "root"));
    // Both: accepted.
    repo.serve("2.root.json", sign(&repo.root, &[&signer(1), &signer(10)]));
    repo.updater(&store).refresh().unwrap();
    assert_eq!(Repo::stored_version(&store, "root"), Some(2));
}

#[test]
fn timestamp_key_rotation_recovers_from_fast_forward() {
    let mut repo = Repo::new();
    for _ in 0..5 {
        repo.timestamp.version += 1;
    }
    repo.put("timestamp");
    let store = MemStore::default();
    repo.updater(&store).refresh().unwrap();
    assert_eq!(Repo::stored_version(&store, "timestamp"), Some(6));
    // New timestamp key, timestamp back to version 1.
    repo.root.roles.get_mut("timestamp").unwrap().keyids.clear();
    repo.root.add_key("timestamp", signer(11).key()).unwrap();
    repo.signers.insert("timestamp".into(), vec![signer(11)]);
    repo.publish_root();
    repo.timestamp.version = 1;
    repo.put("timestamp");
    repo.updater(&store).refresh().unwrap();
    assert_eq!(Repo::stored_version(&store, "timestamp"), Some(1));
}

#[test]
fn snapshot_may_not_drop_a_role_or_lower_its_version() {
    let mut repo = Repo::new();
    repo.publish_all();
    let store = MemStore::default();
    repo.updater(&store).refresh().unwrap();
    repo.snapshot.version += 1;
    repo.snapshot
        .meta
        .insert("targets.json".into(), MetaFile::new(1));
    repo.put("snapshot");
    repo.timestamp.version += 1;
    repo.timestamp
        .meta
        .insert("snapshot.json".into(), MetaFile::new(repo.snapshot.version));
    repo.put("timestamp");
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(
        matches!(err, TufError::Rollback { ref role, trusted: 2, new: 1 } if role == "targets.json")
    );
    repo.snapshot.meta.clear();
    repo.put("snapshot");
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(matches!(err, TufError::RoleRemoved { ref role } if role == "targets.json"));
}

#[test]
fn snapshot_length_is_checked_against_timestamp() {
    let mut repo = Repo::new();
    repo.timestamp.version += 1;
    repo.timestamp.meta.get_mut("snapshot.json").unwrap().length = Some(10_000);
    repo.put("timestamp");
    let store = MemStore::default();
    let err = repo.updater(&store).refresh().unwrap_err();
    assert!(matches!(
        err,
        TufError::LengthMismatch {
            expected: 10_000,
            ..
        }
    ));
}

fn delegate(repo: &mut Repo, name: &str, terminating: bool, paths: &[&str]) {
    let key = signer(20).key();
    let delegations = repo.targets.delegations.get_or_insert_with(|| Delegations {
        keys: Default::default(),
        roles: vec![],
        unrecognized: Default::default(),
    });
    delegations.keys.insert(key.key_id(), key.clone());
    delegations.roles.push(DelegatedRole {
        name: name.to_owned(),
        keyids: vec![key.key_id()],
        threshold: 1,
        terminating,
        paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
        path_hash_prefixes: None,
        unrecognized: Default::default(),
    });
}

fn serve_delegated(repo: &mut Repo, name: &str, targets: &Targets) {
    let bytes = sign(targets, &[&signer(20)]);
    repo.serve(&format!("{}.{name}.json", targets.version), bytes);
    repo.snapshot
        .meta
        .insert(format!("{name}.json"), MetaFile::new(targets.version));
}

#[test]
fn delegated_target_found_and_terminating_stops_search() {
    let mut repo = Repo::new();
    delegate(&mut repo, "first", true, &["a/*"]);
    delegate(&mut repo, "second", false, &["a/*"]);
    let first = Targets::new(in_days(30));
    let mut second = Targets::new(in_days(30));
    second
        .targets
        .insert("a/x".into(), kasane_tuf::TargetFile::from_data(b"x"));
    serve_delegated(&mut repo, "first", &first);
    serve_delegated(&mut repo, "second", &second);
    repo.publish_all();
    let store = MemStore::default();
    let mut updater = repo.updater(&store);
    let err = updater.get_targetinfo("a/x").unwrap_err();
    assert!(matches!(err, TufError::UnknownTarget { .. }));
    assert!(store.files.borrow().contains_key("first"));
    assert!(
        !repo
            .fetcher
            .requests
            .borrow()
            .iter()
            .any(|r| r.contains("second"))
    );
}

#[test]
fn delegated_role_must_be_in_snapshot() {
    let mut repo = Repo::new();
    delegate(&mut repo, "team", false, &["*"]);
    repo.publish_all();
    let store = MemStore::default();
    let err = repo.updater(&store).get_targetinfo("x").unwrap_err();
    assert!(matches!(err, TufError::NotInSnapshot { ref role } if role == "team"));
}

#[test]
fn delegation_search_is_capped() {
    let mut repo = Repo::new();
    for i in 0..40 {
        let name = format!("r{i}");
        delegate(&mut repo, &name, false, &["*"]);
        serve_delegated(&mut repo, &name, &Targets::new(in_days(30)));
    }
    repo.publish_all();
    let store = MemStore::default();
    let err = repo.updater(&store).get_targetinfo("x").unwrap_err();
    assert!(matches!(err, TufError::DelegationLimit { max: 32, .. }));
}

#[test]
fn missing_trusted_root_is_an_error() {
    let repo = Repo::new();
    let store = MemStore::default();
    let res = kasane_tuf::Updater::new(repo.fetcher.clone(), store, Default::default(), NOW);
    assert!(matches!(res, Err(TufError::NoTrustedRoot)));
}
