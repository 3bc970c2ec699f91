//! Property tests for every decoder of untrusted bytes: arbitrary input never panics, signed
//! files round-trip, and no single-byte change to a signed file yields a different payload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use kasane_registry::Sha256Hash;
use kasane_registry::documents::{HostKeys, RevocationList};
use kasane_registry::entry::{Profile, TargetEntry};
use kasane_registry::ticket::Ticket;
use kasane_tuf::metadata::{Ed25519Signer, Metadata, Root, Signer, Snapshot, Targets, Timestamp};
use kasane_tuf::verify::verify_delegate;
use proptest::prelude::*;
use time::OffsetDateTime;

/// A targets key, and a root that lists it for `targets`.
fn keys() -> (Ed25519Signer, Root) {
    let k = Ed25519Signer::from_secret(&[42; 32]);
    let mut root = Root::new(OffsetDateTime::UNIX_EPOCH);
    root.add_key("targets", k.key()).unwrap();
    (k, root)
}

fn entry() -> impl Strategy<Value = TargetEntry> {
    (
        "[a-z0-9]{1,8}(/[a-z0-9_-]{1,8}){0,2}",
        any::<[u8; 32]>(),
        1u64..=1 << 20,
        any::<bool>(),
        (any::<u64>(), any::<u64>()),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<u32>(),
    )
        .prop_filter("kasane/ is reserved", |e| !e.0.starts_with("kasane/"))
        .prop_map(
            |(name, sha, length, wasi, (fuel, memory), params, w)| TargetEntry {
                name,
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
        1..=u64::MAX,
        0i64..4_102_444_800, // up to 2100: TUF's expiry format has four year digits
        proptest::collection::vec(entry(), 0..4),
    )
        .prop_map(|(version, expires, entries)| {
            let mut t = Targets::new(OffsetDateTime::from_unix_timestamp(expires).unwrap());
            t.version = version;
            for e in entries {
                t.targets.insert(e.name.clone(), e.to_target_file());
            }
            t
        })
}

/// Parses `bytes` as targets and verifies them with `root`'s targets keys.
fn verify(bytes: &[u8], root: &Root) -> kasane_tuf::Result<Targets> {
    let (m, signed) = Metadata::<Targets>::from_bytes_with_signed(bytes)?;
    verify_delegate(root, "targets", &signed, &m.signatures)?;
    Ok(m.signed)
}

fn signed_file(t: &Targets, k: &Ed25519Signer) -> Vec<u8> {
    let mut m = Metadata::new(t.clone());
    m.sign(k).unwrap();
    m.to_bytes().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (k, root) = keys();
        prop_assert!(verify(&bytes, &root).is_err());
        let _ = Metadata::<Root>::from_bytes(&bytes);
        let _ = Metadata::<Snapshot>::from_bytes(&bytes);
        let _ = Metadata::<Timestamp>::from_bytes(&bytes);
        let _ = Ticket::verify(&bytes, &[k.key()]);
        let _ = HostKeys::from_bytes(&bytes);
        let _ = RevocationList::from_bytes(&bytes);
        let _ = kasane_registry::keys::SecretKey::from_key_file(&bytes);
        let _ = kasane_registry::repo::cosign(&bytes, &k);
    }

    #[test]
    fn arbitrary_payloads_under_a_valid_signature_never_panic(s in "\\PC{0,256}") {
        // The signature holds, so the JSON parser and the field checks see hostile input.
        let (k, root) = keys();
        for ty in ["targets", "root", "snapshot", "timestamp"] {
            let mut signed = serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s.clone()));
            if let Some(o) = signed.as_object_mut() {
                o.insert("_type".into(), ty.into());
            }
            let Ok(msg) = kasane_tuf::canonical::canonical_json(&signed) else {
                continue; // not canonical JSON (a float): nothing could have signed it
            };
            let sig = hex::encode(k.sign(&msg).unwrap());
            let env = serde_json::json!({
                "signed": signed,
                "signatures": [{"keyid": k.key().key_id(), "sig": sig}],
            });
            let bytes = serde_json::to_vec(&env).unwrap();
            let _ = verify(&bytes, &root);
            let _ = Metadata::<Root>::from_bytes(&bytes);
            let _ = Metadata::<Snapshot>::from_bytes(&bytes);
            let _ = Metadata::<Timestamp>::from_bytes(&bytes);
            let _ = kasane_registry::repo::cosign(&bytes, &k);
        }
    }

    #[test]
    fn targets_round_trip(t in targets()) {
        let (k, root) = keys();
        let got = verify(&signed_file(&t, &k), &root).unwrap();
        prop_assert_eq!(&got, &t);
        for (name, file) in &got.targets {
            let e = TargetEntry::from_target(name, file).unwrap();
            prop_assert_eq!(&e.to_target_file(), file);
        }
    }

    #[test]
    fn no_single_byte_change_yields_another_payload(
        t in targets(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (k, root) = keys();
        let mut bytes = signed_file(&t, &k);
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(got) = verify(&bytes, &root) {
            prop_assert_eq!(got, t);
        }
    }
}
