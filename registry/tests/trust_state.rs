//! Property tests for what a trust store keeps on disk (`state.json` and the trusted TUF
//! metadata): what an update saves, a later open loads back; arbitrary, truncated or hostile
//! files never panic and are refused with a typed error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::path::Path;

use kasane_registry::simulator::{FakeClock, RepositorySimulator, T0};
use kasane_registry::trust::{METADATA_DIR, STATE_FILE, TrustStore};
use kasane_registry::{RegistryError, Sha256Hash};
use proptest::prelude::*;

const AUTHOR_MODULE: &[u8] = b"\0asm\x01\0\0\0author module";

/// A registry with `modules` published as `m<i>`, `revoked` of them revoked, and one
/// delegated author listing one more; a client in `dir` that has updated.
fn updated_client(
    dir: &Path,
    modules: &[Vec<u8>],
    revoked: usize,
) -> (RepositorySimulator, TrustStore<FakeClock>) {
    let mut sim = RepositorySimulator::new();
    for (i, m) in modules.iter().enumerate() {
        sim.publish(&format!("m{i}"), m).unwrap();
    }
    for m in modules.iter().take(revoked) {
        sim.revoke(Sha256Hash::of(m)).unwrap();
    }
    sim.add_author("acme").unwrap();
    sim.author_publish("acme", "acme/x", AUTHOR_MODULE).unwrap();
    sim.clock.advance(60);
    let mut store = sim.client(dir).unwrap();
    store.update(&sim).unwrap();
    (sim, store)
}

fn open(dir: &Path) -> Result<TrustStore<FakeClock>, RegistryError> {
    TrustStore::open(dir, FakeClock::new(T0 + 3600))
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
        let (sim, saved) = updated_client(dir.path(), &ms, revoked);
        let mut loaded = TrustStore::open(dir.path(), sim.clock.clone()).unwrap();
        prop_assert_eq!(loaded.root_version().unwrap(), saved.root_version().unwrap());
        prop_assert_eq!(loaded.latest_time(), saved.latest_time());
        // Nothing is admitted before an update; after one, the same view as before.
        prop_assert_eq!(loaded.versions(), None);
        loaded.update(&sim).unwrap();
        prop_assert_eq!(loaded.versions(), saved.versions());
        for (i, m) in ms.iter().enumerate() {
            let n = [i as u8; 32];
            let t = sim.ticket(n, &format!("m{i}")).unwrap();
            let r = loaded.admit(&t, &n, m, &sim);
            if i < revoked {
                prop_assert!(matches!(r, Err(RegistryError::Revoked { .. })), "{:?}", r);
            } else {
                prop_assert_eq!(r.unwrap().role, "targets");
            }
        }
        // What a client warms before a ticket names a module: the first-party transforms
        // not revoked; neither Kasane's own documents nor an author's module.
        let listed: Vec<String> =
            loaded.first_party_modules(&sim).unwrap().into_iter().map(|e| e.name).collect();
        let expected: Vec<String> = (revoked.min(ms.len())..ms.len()).map(|i| format!("m{i}")).collect();
        prop_assert_eq!(listed, expected);
        let t = sim.ticket([0xaa; 32], "acme/x").unwrap();
        let admitted = loaded.admit(&t, &[0xaa; 32], AUTHOR_MODULE, &sim).unwrap();
        prop_assert_eq!(admitted.role, "acme");
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
    fn a_well_formed_state_with_hostile_metadata_is_refused(
        format in 0u32..4,
        latest_time in prop_oneof![Just(T0), any::<u64>()],
        root in proptest::collection::vec(any::<u8>(), 0..256),
        timestamp in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let state = serde_json::json!({"format": format, "latest_time": latest_time});
        std::fs::write(dir.path().join(STATE_FILE), state.to_string()).unwrap();
        let meta = dir.path().join(METADATA_DIR);
        std::fs::create_dir(&meta).unwrap();
        std::fs::write(meta.join("root.json"), &root).unwrap();
        if let Some(t) = &timestamp {
            std::fs::write(meta.join("timestamp.json"), t).unwrap();
        }
        let opened = open(dir.path());
        if format != 2 {
            prop_assert!(
                matches!(opened, Err(RegistryError::Invalid { field: "format", .. })),
                "{:?}",
                opened
            );
            return Ok(());
        }
        // The files are only read at the next update, which refuses them.
        let err = opened.unwrap().update(&RepositorySimulator::new()).expect_err("garbage root");
        if latest_time > T0 + 3600 {
            prop_assert!(matches!(err, RegistryError::ClockSetBack { .. }), "{:?}", err);
        } else {
            prop_assert!(
                matches!(err, RegistryError::Tuf(
                    kasane_tuf::TufError::Malformed { .. } | kasane_tuf::TufError::DuplicateKey { .. }
                )),
                "{:?}",
                err
            );
        }
    }

    #[test]
    fn an_old_format_state_file_is_refused(latest_time in any::<u64>()) {
        // Format 1 kept floors and files in the state; they are TUF metadata now.
        let dir = tempfile::tempdir().unwrap();
        let state = serde_json::json!({
            "format": 1, "latest_time": latest_time, "floors": {"root": 1}, "files": {},
        });
        std::fs::write(dir.path().join(STATE_FILE), state.to_string()).unwrap();
        prop_assert!(matches!(open(dir.path()), Err(RegistryError::Json(_))));
    }
}
