//! Property tests for the trust store's state file (`state.json`): what an update saves, a
//! later open loads back; arbitrary, truncated or hostile files never panic and are refused
//! with a typed error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::path::Path;

use kasane_registry::RegistryError;
use kasane_registry::simulator::{FakeClock, RepositorySimulator};
use kasane_registry::trust::{STATE_FILE, TrustStore};
use proptest::prelude::*;

/// A registry with `modules` published, `revoked` of them revoked, and one delegated author
/// listing one more; a client in `dir` that has updated.
fn updated_client(dir: &Path, modules: &[Vec<u8>], revoked: usize) -> TrustStore<FakeClock> {
    let mut sim = RepositorySimulator::new();
    for (i, m) in modules.iter().enumerate() {
        sim.publish(&format!("m{i}"), m).unwrap();
    }
    for m in modules.iter().take(revoked) {
        sim.revoke(kasane_registry::Sha256Hash::of(m)).unwrap();
    }
    sim.add_author("acme", "acme/").unwrap();
    sim.author_publish("acme", "acme/x", b"\0asm\x01\0\0\0author module")
        .unwrap();
    sim.clock.advance(60);
    let mut store = sim.client(dir).unwrap();
    store.update(&sim).unwrap();
    store
}

fn open(dir: &Path) -> Result<TrustStore<FakeClock>, RegistryError> {
    TrustStore::open(dir, FakeClock::new(kasane_registry::simulator::T0 + 3600))
}

fn modules() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 1..4).prop_map(
        |mut ms| {
            // One hash per module: revoking one must not revoke another.
            ms.sort();
            ms.dedup();
            ms
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn what_an_update_saves_an_open_loads(ms in modules(), revoked in 0usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let saved = updated_client(dir.path(), &ms, revoked);
        let loaded = open(dir.path()).unwrap();
        prop_assert_eq!(loaded.root().version, saved.root().version);
        prop_assert_eq!(loaded.snapshot(), saved.snapshot());
        prop_assert!(saved.snapshot().is_some());
        prop_assert_eq!(loaded.latest_time(), saved.latest_time());
        for name in ["root", "snapshot", "targets", "revocations", "authors/acme"] {
            prop_assert!(saved.floor(name).is_some(), "{}", name);
            prop_assert_eq!(loaded.floor(name), saved.floor(name), "{}", name);
        }
        prop_assert_eq!(loaded.runnable(), saved.runnable());
        prop_assert_eq!(saved.runnable().len(), ms.len() - revoked.min(ms.len()) + 1);
    }

    #[test]
    fn a_truncated_state_file_is_refused_as_malformed_json(cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        updated_client(dir.path(), &[b"module".to_vec()], 0);
        let path = dir.path().join(STATE_FILE);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..cut.index(full.len())]).unwrap();
        let err = open(dir.path()).expect_err("a truncated state file was accepted");
        prop_assert!(
            matches!(&err, RegistryError::Json(e) if e.is_eof()),
            "{:?}",
            err
        );
    }

    #[test]
    fn arbitrary_bytes_are_refused_as_malformed(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), &bytes).unwrap();
        let err = open(dir.path()).expect_err("arbitrary bytes were accepted");
        prop_assert!(
            matches!(err, RegistryError::Json(_) | RegistryError::DuplicateKey { .. }),
            "{:?}",
            err
        );
    }

    #[test]
    fn a_well_formed_state_with_hostile_files_is_refused(
        format in 0u32..3,
        latest_time in any::<u64>(),
        root in proptest::collection::vec(any::<u8>(), 0..256),
        snapshot in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut files = serde_json::Map::new();
        files.insert("root".into(), hex::encode(&root).into());
        if let Some(s) = &snapshot {
            files.insert("snapshot".into(), hex::encode(s).into());
        }
        let state = serde_json::json!({
            "format": format,
            "latest_time": latest_time,
            "floors": {"root": 1},
            "files": files,
        });
        std::fs::write(dir.path().join(STATE_FILE), state.to_string()).unwrap();
        let err = open(dir.path()).expect_err("a state whose root is garbage was accepted");
        if format != 1 {
            prop_assert!(
                matches!(err, RegistryError::Invalid { field: "format", .. }),
                "{:?}",
                err
            );
        } else {
            prop_assert!(!matches!(err, RegistryError::Io { .. }), "{:?}", err);
        }
    }
}
