//! kasane-tuf against vectors made by securesystemslib / python-tuf
//! (`tests/vectors/make_vectors.py`): canonical JSON, key ids, signatures, and whole
//! metadata files with unknown fields.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::PathBuf;

use kasane_tuf::canonical::canonical_json;
use kasane_tuf::verify::verify_delegate;
use kasane_tuf::{Key, KeyId, Metadata, Root, Snapshot, Targets, Timestamp, TufError};
use serde::Deserialize;

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct CanonicalVector {
    input: String,
    canonical: String,
}

#[test]
fn canonical_json_matches_securesystemslib() {
    let vectors: Vec<CanonicalVector> = serde_json::from_slice(&vector("canonical.json")).unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let value: serde_json::Value = serde_json::from_str(&v.input).unwrap();
        let got = canonical_json(&value).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            v.canonical,
            "input {}",
            v.input
        );
    }
}

#[derive(Deserialize)]
struct KeyVector {
    key: Key,
    keyid: KeyId,
    message: String,
    sig: String,
}

#[test]
fn key_ids_and_signatures_match_securesystemslib() {
    let vectors: Vec<KeyVector> = serde_json::from_slice(&vector("keys.json")).unwrap();
    let mut schemes = std::collections::BTreeSet::new();
    for v in vectors {
        schemes.insert(v.key.scheme.clone());
        assert_eq!(v.key.key_id(), v.keyid, "{}", v.key.scheme);
        let msg = hex::decode(&v.message).unwrap();
        let sig = hex::decode(&v.sig).unwrap();
        v.key.verify(&msg, &sig).unwrap();
        let mut wrong = msg.clone();
        wrong.push(b'!');
        assert!(matches!(
            v.key.verify(&wrong, &sig),
            Err(TufError::BadSignature { .. })
        ));
    }
    assert_eq!(schemes.len(), 3, "{schemes:?}");
}

#[test]
fn ecdsa_constructor_gives_the_securesystemslib_key_id() {
    let vectors: Vec<KeyVector> = serde_json::from_slice(&vector("keys.json")).unwrap();
    let v = vectors.iter().find(|v| v.key.keytype == "ecdsa").unwrap();
    let key = Key::ecdsa_p256_from_spki_pem(&v.key.keyval.public).unwrap();
    assert_eq!(key.key_id(), v.keyid);
    let v = vectors.iter().find(|v| v.key.keytype == "ed25519").unwrap();
    let public: [u8; 32] = hex::decode(&v.key.keyval.public)
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(Key::ed25519(&public).key_id(), v.keyid);
}

#[test]
fn python_tuf_metadata_parses_verifies_and_round_trips() {
    let root_bytes = vector("metadata/root.json");
    let (root, signed) = Metadata::<Root>::from_bytes_with_signed(&root_bytes).unwrap();
    verify_delegate(&root.signed, "root", &signed, &root.signatures).unwrap();
    // Unknown fields are kept, and part of what was signed.
    assert!(root.signed.unrecognized.contains_key("x-custom"));
    assert_eq!(root.unrecognized["x-envelope"], "kept");
    assert_eq!(root.signed_bytes().unwrap(), signed);
    for (role, bytes) in [
        ("timestamp", vector("metadata/timestamp.json")),
        ("snapshot", vector("metadata/snapshot.json")),
        ("targets", vector("metadata/targets.json")),
    ] {
        let (signed, sigs) = match role {
            "timestamp" => {
                let (m, s) = Metadata::<Timestamp>::from_bytes_with_signed(&bytes).unwrap();
                assert_eq!(m.signed_bytes().unwrap(), s);
                (s, m.signatures)
            }
            "snapshot" => {
                let (m, s) = Metadata::<Snapshot>::from_bytes_with_signed(&bytes).unwrap();
                assert_eq!(m.signed_bytes().unwrap(), s);
                (s, m.signatures)
            }
            _ => {
                let (m, s) = Metadata::<Targets>::from_bytes_with_signed(&bytes).unwrap();
                assert_eq!(m.signed_bytes().unwrap(), s);
                let file = &m.signed.targets["a/file.txt"];
                assert_eq!(file.custom.as_ref().unwrap()["app"], "x");
                assert_eq!(file.hashes.len(), 2);
                (s, m.signatures)
            }
        };
        verify_delegate(&root.signed, role, &signed, &sigs).unwrap();
    }
    // Writing and reading again keeps everything, so signatures still verify.
    let again = Metadata::<Root>::from_bytes(&root.to_bytes().unwrap()).unwrap();
    assert_eq!(again, root);
    verify_delegate(
        &again.signed,
        "root",
        &again.signed_bytes().unwrap(),
        &again.signatures,
    )
    .unwrap();
}

#[test]
fn changing_an_unknown_field_breaks_the_signature() {
    let root_bytes = vector("metadata/root.json");
    let mut value: serde_json::Value = serde_json::from_slice(&root_bytes).unwrap();
    value["signed"]["x-custom"] = serde_json::json!("changed");
    let bytes = serde_json::to_vec(&value).unwrap();
    let (root, signed) = Metadata::<Root>::from_bytes_with_signed(&bytes).unwrap();
    let err = verify_delegate(&root.signed, "root", &signed, &root.signatures).unwrap_err();
    assert!(matches!(
        err,
        TufError::ThresholdNotMet {
            valid: 0,
            threshold: 1,
            ..
        }
    ));
}
