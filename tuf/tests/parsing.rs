//! Metadata parsing refusals, the threshold rule, the publisher API, and a property test
//! that no input makes parsing panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{in_days, signer};
use kasane_tuf::verify::verify_delegate;
use kasane_tuf::{Metadata, Root, Signer, Snapshot, Targets, Timestamp, TufError};
use proptest::prelude::*;
use serde_json::{Value, json};

fn signed_root() -> (Metadata<Root>, Value) {
    let mut root = Root::new(in_days(10));
    for (n, role) in [
        (1u8, "root"),
        (2, "timestamp"),
        (3, "snapshot"),
        (4, "targets"),
    ] {
        root.add_key(role, signer(n).key()).unwrap();
    }
    let mut md = Metadata::new(root);
    md.sign(&signer(1)).unwrap();
    let value = serde_json::to_value(&md).unwrap();
    (md, value)
}

/// A named change to a metadata document.
type Change = Box<dyn Fn(&mut Value)>;

fn parse_root(value: &Value) -> Result<Metadata<Root>, TufError> {
    Metadata::<Root>::from_bytes(&serde_json::to_vec(value).unwrap())
}

#[test]
fn publisher_round_trip() {
    let (md, value) = signed_root();
    let parsed = parse_root(&value).unwrap();
    assert_eq!(parsed, md);
    let signed = parsed.signed_bytes().unwrap();
    verify_delegate(&parsed.signed, "root", &signed, &parsed.signatures).unwrap();
    assert_eq!(parsed.signatures[0].keyid, signer(1).key().key_id());
}

#[test]
fn malformed_inputs_are_refused() {
    assert!(matches!(
        Metadata::<Root>::from_bytes(b"{"),
        Err(TufError::Malformed { .. })
    ));
    assert!(matches!(
        Metadata::<Root>::from_bytes(b"[]"),
        Err(TufError::Malformed { .. })
    ));
    let (_, value) = signed_root();
    let cases: Vec<(&str, Change)> = vec![
        ("version 0", Box::new(|v| v["signed"]["version"] = json!(0))),
        (
            "negative version",
            Box::new(|v| v["signed"]["version"] = json!(-1)),
        ),
        (
            "bad expires",
            Box::new(|v| v["signed"]["expires"] = json!("2030-01-01")),
        ),
        ("no roles", Box::new(|v| v["signed"]["roles"] = json!({}))),
        (
            "threshold 0",
            Box::new(|v| v["signed"]["roles"]["root"]["threshold"] = json!(0)),
        ),
        (
            "duplicate role keyids",
            Box::new(|v| {
                let id = v["signed"]["roles"]["root"]["keyids"][0].clone();
                v["signed"]["roles"]["root"]["keyids"] = json!([id, id]);
            }),
        ),
        (
            "duplicate signature keyids",
            Box::new(|v| {
                let sig = v["signatures"][0].clone();
                v["signatures"] = json!([sig, sig]);
            }),
        ),
        (
            "signatures not a list",
            Box::new(|v| v["signatures"] = json!({})),
        ),
    ];
    for (what, change) in cases {
        let mut v = value.clone();
        change(&mut v);
        assert!(
            matches!(parse_root(&v), Err(TufError::Malformed { .. })),
            "{what}"
        );
    }
}

#[test]
fn wrong_type_and_spec_version_are_refused() {
    let (_, value) = signed_root();
    let mut v = value.clone();
    v["signed"]["_type"] = json!("targets");
    assert!(matches!(parse_root(&v), Err(TufError::WrongType { ref got, .. }) if got == "targets"));
    for bad in ["2.0.0", "1", "1.x.0", "1.0.0.0"] {
        let mut v = value.clone();
        v["signed"]["spec_version"] = json!(bad);
        assert!(
            matches!(parse_root(&v), Err(TufError::UnsupportedSpecVersion { .. })),
            "{bad}"
        );
    }
    let mut v = value;
    v["signed"]["spec_version"] = json!("1.0");
    parse_root(&v).unwrap();
}

#[test]
fn delegated_role_needs_exactly_one_of_paths_and_prefixes() {
    let mut targets = serde_json::to_value(Targets::new(in_days(1))).unwrap();
    let role = json!({"name": "a", "keyids": [], "threshold": 1, "terminating": false});
    for (extra, ok) in [
        (json!({}), false),
        (json!({"paths": ["*"], "path_hash_prefixes": ["ab"]}), false),
        (json!({"paths": ["*"]}), true),
        (json!({"path_hash_prefixes": ["ab"]}), true),
    ] {
        let mut r = role.clone();
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        targets["delegations"] = json!({"keys": {}, "roles": [r]});
        let bytes = serde_json::to_vec(&json!({"signed": targets, "signatures": []})).unwrap();
        assert_eq!(
            Metadata::<Targets>::from_bytes(&bytes).is_ok(),
            ok,
            "{extra}"
        );
    }
    targets["delegations"] = json!({"keys": {}, "roles": [
        {"name": "targets", "keyids": [], "threshold": 1, "terminating": false, "paths": []}]});
    let bytes = serde_json::to_vec(&json!({"signed": targets, "signatures": []})).unwrap();
    assert!(matches!(
        Metadata::<Targets>::from_bytes(&bytes),
        Err(TufError::Malformed { .. })
    ));
}

#[test]
fn threshold_counts_distinct_listed_keys() {
    let mut root = Root::new(in_days(10));
    root.add_key("root", signer(1).key()).unwrap();
    root.add_key("root", signer(2).key()).unwrap();
    root.roles.get_mut("root").unwrap().threshold = 2;
    let mut md = Metadata::new(root);
    md.sign(&signer(1)).unwrap();
    md.sign(&signer(9)).unwrap(); // not listed: ignored
    let signed = md.signed_bytes().unwrap();
    let err = verify_delegate(&md.signed, "root", &signed, &md.signatures).unwrap_err();
    assert!(matches!(
        err,
        TufError::ThresholdNotMet {
            valid: 1,
            threshold: 2,
            ..
        }
    ));
    // The same key's signature twice still counts once.
    let mut twice = md.signatures.clone();
    twice.push(md.signatures[0].clone());
    let err = verify_delegate(&md.signed, "root", &signed, &twice).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, .. }));
    // A listed key id given twice by the delegator also counts once.
    let mut dup = md.signed.clone();
    let id = signer(1).key().key_id();
    dup.roles.get_mut("root").unwrap().keyids = vec![id.clone(), id];
    let err = verify_delegate(&dup, "root", &signed, &md.signatures).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, .. }));
    md.sign(&signer(2)).unwrap();
    verify_delegate(&md.signed, "root", &signed, &md.signatures).unwrap();
    // A garbage signature by a listed key does not count, and does not fail the rest.
    md.add_signature(signer(2).key().key_id(), b"not a signature");
    let err = verify_delegate(&md.signed, "root", &signed, &md.signatures).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, .. }));
    let err = verify_delegate(&md.signed, "nobody", &signed, &md.signatures).unwrap_err();
    assert!(matches!(err, TufError::NotDelegated { .. }));
}

/// The same public key listed under two key ids (one its real id, one made up) is one vote,
/// even with a valid signature under each id.
#[test]
fn one_key_under_two_key_ids_counts_once() {
    // The same key spelled as given, and in upper-case hex.
    let same: fn(&mut kasane_tuf::Key) = |_| {};
    let upper: fn(&mut kasane_tuf::Key) = |k| k.keyval.public = k.keyval.public.to_uppercase();
    for respell in [same, upper] {
        use kasane_tuf::KeyId;
        let mut root = Root::new(in_days(10));
        root.add_key("root", signer(1).key()).unwrap();
        let alias = KeyId("aa".repeat(32));
        let mut again = signer(1).key();
        respell(&mut again);
        root.keys.insert(alias.clone(), again);
        let r = root.roles.get_mut("root").unwrap();
        r.keyids.push(alias.clone());
        r.threshold = 2;
        let mut md = Metadata::new(root);
        md.sign(&signer(1)).unwrap();
        let sig = hex::decode(&md.signatures[0].sig).unwrap();
        md.add_signature(alias, &sig);
        let signed = md.signed_bytes().unwrap();
        let err = verify_delegate(&md.signed, "root", &signed, &md.signatures).unwrap_err();
        assert!(
            matches!(
                err,
                TufError::ThresholdNotMet {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn one_ecdsa_key_spelled_two_ways_is_one_key() {
    use p256::pkcs8::EncodePublicKey as _;
    let secret = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    let pem = secret
        .public_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let a = kasane_tuf::Key::ecdsa_p256_from_spki_pem(&pem).unwrap();
    let mut b = a.clone();
    b.keytype = if a.keytype == "ecdsa" {
        "ecdsa-sha2-nistp256"
    } else {
        "ecdsa"
    }
    .into();
    b.keyval.public = format!("\n{pem}\n");
    assert_ne!(a.key_id(), b.key_id());
    assert_eq!(a.material(), b.material());
    assert!(a.material().is_some());
    assert_ne!(a.material(), signer(1).key().material());
}

#[test]
fn is_expired_at_and_after_expiry() {
    use kasane_tuf::SignedRole;
    let ts = Timestamp::new(in_days(1), kasane_tuf::MetaFile::new(1));
    let at = ts.expires.unix_timestamp();
    assert!(!ts.is_expired(at - 1));
    assert!(ts.is_expired(at));
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Metadata::<Root>::from_bytes(&bytes);
        let _ = Metadata::<Timestamp>::from_bytes(&bytes);
        let _ = Metadata::<Snapshot>::from_bytes(&bytes);
        let _ = Metadata::<Targets>::from_bytes(&bytes);
    }

    #[test]
    fn parsing_mutated_metadata_never_panics(pos in 0usize..2048, byte in any::<u8>()) {
        let (md, _) = signed_root();
        let mut bytes = md.to_bytes().unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok((m, signed)) = Metadata::<Root>::from_bytes_with_signed(&bytes) {
            let _ = verify_delegate(&m.signed, "root", &signed, &m.signatures);
        }
    }
}
