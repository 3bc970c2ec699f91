//! Property tests for every decoder of untrusted bytes: arbitrary input never panics, signed
//! files round-trip, and no single-byte change to a signed file yields a different payload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use kasane_registry::Sha256Hash;
use kasane_registry::danger::key_from_seed;
use kasane_registry::envelope::{Envelope, RoleKeys};
use kasane_registry::error::RoleName;
use kasane_registry::keys::SecretKey;
use kasane_registry::metadata::revocations::Revocations;
use kasane_registry::metadata::root::Root;
use kasane_registry::metadata::snapshot::Snapshot;
use kasane_registry::metadata::targets::{AuthorFile, Profile, TargetEntry, Targets};
use kasane_registry::metadata::ticket::Ticket;
use kasane_registry::metadata::{self, Metadata};
use proptest::prelude::*;

fn keys() -> (SecretKey, RoleKeys) {
    let k = key_from_seed(&[42; 32]);
    let rk = RoleKeys::new(RoleName::Targets, vec![k.public()], 1).unwrap();
    (k, rk)
}

fn entry() -> impl Strategy<Value = TargetEntry> {
    (
        "[a-z0-9]{1,8}(/[a-z0-9_-]{1,8}){0,2}",
        any::<u64>(),
        any::<[u8; 32]>(),
        1u64..=1 << 20,
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<u32>(),
    )
        .prop_map(
            |(name, version, sha, length, wasi, fuel, memory, params, w)| TargetEntry {
                name,
                version,
                sha256: Sha256Hash(sha),
                length,
                profile: if wasi { Profile::Wasi } else { Profile::Pure },
                fuel,
                memory,
                params,
                rollout_weight: w,
            },
        )
}

fn targets() -> impl Strategy<Value = Targets> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(entry(), 0..4),
    )
        .prop_map(|(version, expires, mut targets)| {
            targets.sort_by(|a, b| a.name.cmp(&b.name));
            targets.dedup_by(|a, b| a.name == b.name);
            Targets {
                version,
                expires,
                targets,
                delegations: vec![],
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (_, rk) = keys();
        let _ = Envelope::from_bytes(&bytes, 1 << 20, "x");
        let _ = metadata::verify::<Targets>(&bytes, &rk);
        let _ = metadata::verify::<Root>(&bytes, &rk);
        let _ = metadata::verify::<Snapshot>(&bytes, &rk);
        let _ = metadata::verify::<AuthorFile>(&bytes, &rk);
        let _ = metadata::verify::<Revocations>(&bytes, &rk);
        let _ = metadata::parse_unverified::<Root>(&bytes, "x");
        let _ = Ticket::verify(&bytes, &rk);
        let _ = SecretKey::from_key_file(&bytes);
        let _ = kasane_registry::repo::inspect(&bytes);
    }

    #[test]
    fn arbitrary_payloads_under_a_valid_signature_never_panic(s in "\\PC{0,256}") {
        // The signature holds, so the JSON parser and the field checks see hostile input.
        let (k, rk) = keys();
        for ty in [Targets::PAYLOAD_TYPE, Root::PAYLOAD_TYPE, Snapshot::PAYLOAD_TYPE] {
            let env = Envelope::sign(ty, s.clone().into_bytes(), &[&k]).to_bytes();
            let _ = metadata::verify::<Targets>(&env, &rk);
            let _ = metadata::verify::<Root>(&env, &rk);
            let _ = metadata::verify::<Snapshot>(&env, &rk);
        }
    }

    #[test]
    fn targets_round_trip(t in targets()) {
        let (k, rk) = keys();
        let bytes = t.sign_to_bytes(&[&k]);
        prop_assert_eq!(metadata::verify::<Targets>(&bytes, &rk).unwrap(), t);
    }

    #[test]
    fn no_single_byte_change_yields_another_payload(
        t in targets(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (k, rk) = keys();
        let mut bytes = t.sign_to_bytes(&[&k]);
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(got) = metadata::verify::<Targets>(&bytes, &rk) {
            prop_assert_eq!(got, t);
        }
    }
}
