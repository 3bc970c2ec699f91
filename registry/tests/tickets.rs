//! Property tests for session tickets: sign → encode → decode → verify gives the ticket back
//! (alone, and through a client's trust store); decoding arbitrary bytes never panics and is
//! refused; a ticket with one byte changed is refused unless its payload is unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use kasane_registry::simulator::RepositorySimulator;
use kasane_registry::ticket::{MAX_TICKET_LIFETIME, Ticket, TicketModule};
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_tuf::keys::Key;
use kasane_tuf::metadata::{Ed25519Signer, Signer};
use proptest::prelude::*;

fn ticket_key() -> (Ed25519Signer, Vec<Key>) {
    let k = Ed25519Signer::from_secret(&[9; 32]);
    let public = vec![k.key()];
    (k, public)
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (
        any::<[u8; 32]>(),
        (any::<u64>(), any::<u64>()),
        "[a-z0-9]{1,8}(/[a-z0-9_-]{1,8}){0,2}",
        any::<[u8; 32]>(),
        any::<u64>(),
        0..=u64::MAX - MAX_TICKET_LIFETIME,
        0..=MAX_TICKET_LIFETIME,
    )
        .prop_filter("kasane/ is reserved", |t| !t.2.starts_with("kasane/"))
        .prop_map(|(nonce, versions, name, sha, length, issued_at, life)| {
            let module = TicketModule {
                name,
                sha256: Sha256Hash(sha),
                length,
            };
            Ticket::new(nonce, versions, module, issued_at, life)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ticket_round_trips(t in ticket()) {
        let (k, keys) = ticket_key();
        let bytes = t.sign(&k).unwrap();
        prop_assert_eq!(Ticket::verify(&bytes, &keys).unwrap(), t);
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let (_, keys) = ticket_key();
        prop_assert!(Ticket::verify(&bytes, &keys).is_err());
    }

    #[test]
    fn arbitrary_payloads_under_a_valid_signature_are_refused(s in "\\PC{0,256}") {
        // The signature holds, so the strict JSON parser and the field checks see the input.
        let (k, keys) = ticket_key();
        let signed = serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
        let Ok(msg) = kasane_tuf::canonical::canonical_json(&signed) else {
            return Ok(()); // not canonical JSON (a float): nothing could have signed it
        };
        let env = serde_json::json!({
            "signed": signed,
            "signatures": [{"keyid": k.key().key_id(), "sig": hex::encode(k.sign(&msg).unwrap())}],
        });
        let bytes = serde_json::to_vec(&env).unwrap();
        prop_assert!(Ticket::verify(&bytes, &keys).is_err());
    }

    #[test]
    fn a_changed_byte_is_refused(
        t in ticket(),
        pos in any::<prop::sample::Index>(),
        // 0x20 often: it turns a lowercase hex digit into the same digit in uppercase.
        flip in prop_oneof![Just(0x20u8), 1u8..=255],
    ) {
        let (k, keys) = ticket_key();
        let mut bytes = t.sign(&k).unwrap();
        let i = pos.index(bytes.len());
        let before = bytes[i];
        bytes[i] ^= flip;
        if let Ok(got) = Ticket::verify(&bytes, &keys) {
            // Only layout may change (the signature's hex case): never the payload.
            prop_assert_eq!(
                got, t,
                "byte {} changed from {:#04x} to {:#04x} and another ticket verified",
                i, before, bytes[i]
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_trust_store_admits_exactly_its_own_login(
        nonce in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        name in "[a-z0-9]{1,8}(/[a-z0-9_-]{1,8})?",
        module in proptest::collection::vec(any::<u8>(), 1..256),
    ) {
        prop_assume!(!name.starts_with("kasane/"));
        let mut sim = RepositorySimulator::new();
        let entry = sim.publish(&name, &module).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = sim.client(dir.path()).unwrap();
        store.update(&sim).unwrap();
        let ticket_bytes = sim.ticket(nonce, &name).unwrap();
        let (ticket, got, role) = store.check_ticket(&ticket_bytes, &nonce, &sim).unwrap();
        prop_assert_eq!(ticket.client_nonce, Sha256Hash(nonce));
        prop_assert_eq!(ticket.module.name, name);
        prop_assert_eq!(&got, &entry);
        prop_assert_eq!(role, "targets");
        let admitted = store.admit(&ticket_bytes, &nonce, &module, &sim).unwrap();
        prop_assert_eq!(admitted.bytes, &module[..]);
        if other != nonce {
            prop_assert!(matches!(
                store.check_ticket(&ticket_bytes, &other, &sim),
                Err(RegistryError::NonceMismatch)
            ));
        }
    }
}
