//! Property tests for session tickets: sign → encode → decode → verify gives the ticket back
//! (alone, and through a client's trust store); decoding arbitrary bytes never panics and is
//! refused; a ticket with one byte changed is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use kasane_registry::danger::key_from_seed;
use kasane_registry::envelope::{Envelope, RoleKeys};
use kasane_registry::error::RoleName;
use kasane_registry::keys::SecretKey;
use kasane_registry::metadata::MAX_TICKET_LEN;
use kasane_registry::metadata::ticket::{MAX_TICKET_LIFETIME, Ticket, TicketModule};
use kasane_registry::simulator::RepositorySimulator;
use kasane_registry::{RegistryError, Sha256Hash};
use proptest::prelude::*;

fn online_key() -> (SecretKey, RoleKeys) {
    let k = key_from_seed(&[9; 32]);
    let rk = RoleKeys::new(RoleName::Ticket, vec![k.public()], 1).unwrap();
    (k, rk)
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        "[a-z0-9]{1,8}(/[a-z0-9_-]{1,8}){0,2}",
        any::<[u8; 32]>(),
        any::<u64>(),
        0..=u64::MAX - MAX_TICKET_LIFETIME,
        0..=MAX_TICKET_LIFETIME,
    )
        .prop_map(
            |(nonce, snapshot_version, snap, name, sha, length, issued_at, life)| Ticket {
                client_nonce: Sha256Hash(nonce),
                snapshot_version,
                snapshot_sha256: Sha256Hash(snap),
                module: TicketModule {
                    name,
                    sha256: Sha256Hash(sha),
                    length,
                },
                issued_at,
                expires: issued_at + life,
            },
        )
}

/// JSON whitespace: the only bytes a change to which can leave a signed file's meaning intact.
fn json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ticket_round_trips(t in ticket()) {
        let (k, rk) = online_key();
        let bytes = t.sign(&[&k]);
        let env = Envelope::from_bytes(&bytes, MAX_TICKET_LEN, "ticket").unwrap();
        prop_assert_eq!(env.payload_type.as_str(), Ticket::PAYLOAD_TYPE);
        prop_assert_eq!(Ticket::verify(&bytes, &rk).unwrap(), t);
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let (_, rk) = online_key();
        prop_assert!(Ticket::verify(&bytes, &rk).is_err());
    }

    #[test]
    fn arbitrary_payloads_under_a_valid_signature_are_refused(s in "\\PC{0,256}") {
        // The signature holds, so the strict JSON parser and the field checks see the input.
        let (k, rk) = online_key();
        let bytes = Envelope::sign(Ticket::PAYLOAD_TYPE, s.into_bytes(), &[&k]).to_bytes();
        prop_assert!(Ticket::verify(&bytes, &rk).is_err());
    }

    #[test]
    fn a_changed_byte_is_refused(
        t in ticket(),
        pos in any::<prop::sample::Index>(),
        // 0x20 often: it turns a lowercase hex digit into the same digit in uppercase.
        flip in prop_oneof![Just(0x20u8), 1u8..=255],
    ) {
        let (k, rk) = online_key();
        let mut bytes = t.sign(&[&k]);
        let i = pos.index(bytes.len());
        let before = bytes[i];
        bytes[i] ^= flip;
        if let Ok(got) = Ticket::verify(&bytes, &rk) {
            // Only layout may change: one JSON space for another, between tokens.
            prop_assert!(
                json_space(before) && json_space(bytes[i]),
                "byte {} changed from {:#04x} to {:#04x} and the ticket still verified",
                i, before, bytes[i]
            );
            prop_assert_eq!(got, t);
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
        let mut sim = RepositorySimulator::new();
        let entry = sim.publish(&name, &module).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = sim.client(dir.path()).unwrap();
        store.update(&sim).unwrap();
        let ticket_bytes = sim.ticket(nonce, &name).unwrap();
        let (ticket, got, author) = store.check_ticket(&ticket_bytes, &nonce).unwrap();
        prop_assert_eq!(ticket.client_nonce, Sha256Hash(nonce));
        prop_assert_eq!(&got, &entry);
        prop_assert_eq!(author, None);
        prop_assert_eq!(store.admit(&ticket_bytes, &nonce, &module).unwrap().bytes, &module[..]);
        if other != nonce {
            prop_assert!(matches!(
                store.check_ticket(&ticket_bytes, &other),
                Err(RegistryError::NonceMismatch)
            ));
        }
    }
}
