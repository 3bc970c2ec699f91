//! Property tests for the v1 `DeriveInput` codec: round trip, and arbitrary bytes never panic.
//! Needs the `alloc` feature, which the crate's dev-dependency on itself turns on: no `cfg`
//! here, so a build without it fails instead of silently running nothing.

use kasane_abi::{
    DecodeError, DeriveInput, DeriveInputBuf, Direction, MAX_INPUT_LEN, MAX_ITEM_LEN,
    MAX_LIST_ITEMS, MAX_PARAMS_LEN, Purpose,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn input() -> impl Strategy<Value = DeriveInputBuf> {
    (
        prop_oneof![Just(Purpose::Auth), Just(Purpose::Message)],
        prop_oneof![Just(Direction::ClientToHost), Just(Direction::HostToClient)],
        proptest::collection::vec(bytes(64), 0..=MAX_LIST_ITEMS),
        proptest::collection::vec(bytes(64), 0..=MAX_LIST_ITEMS),
        any::<(u64, u64, u64)>(),
        any::<([u8; 32], [u8; 32], [u8; 32])>(),
        bytes(128),
    )
        .prop_map(
            |(
                purpose,
                direction,
                challenges,
                responses,
                (counter, timestamp, seq),
                (s, c, t),
                params,
            )| {
                DeriveInputBuf {
                    purpose,
                    challenges,
                    responses: responses.into_iter().map(zeroize::Zeroizing::new).collect(),
                    counter,
                    timestamp,
                    seq,
                    direction,
                    server_nonce: s,
                    client_nonce: c,
                    transcript_hash: t,
                    params,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_of_encode_is_identity(x in input()) {
        let bytes = x.encode().unwrap();
        prop_assert_eq!(bytes.len(), DeriveInput::decode(&bytes).unwrap().encoded_len().unwrap());
        let back = DeriveInputBuf::decode(&bytes).unwrap();
        prop_assert!(back == x);
        // Re-encoding the borrowed decode gives the same bytes.
        prop_assert_eq!(DeriveInput::decode(&bytes).unwrap().encode_to_vec().unwrap(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(2048)) {
        match DeriveInput::decode(&b) {
            Ok(i) => {
                // Anything accepted re-encodes to exactly the same bytes (the encoding is canonical).
                prop_assert_eq!(i.encode_to_vec().unwrap(), b);
            }
            Err(e) => {
                // Every refusal is a typed error with a message.
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn mutated_encodings_never_panic(x in input(), pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut b = x.encode().unwrap();
        let i = pos.index(b.len());
        b[i] = val;
        let _ = DeriveInput::decode(&b);
        let c = cut.index(b.len());
        let r = DeriveInput::decode(&b[..c]);
        prop_assert!(r.is_err(), "a strict prefix must never decode");
    }

    #[test]
    fn oversized_fields_are_refused(n in (MAX_ITEM_LEN + 1)..(MAX_ITEM_LEN + 64), p in (MAX_PARAMS_LEN + 1)..(MAX_PARAMS_LEN + 64)) {
        let x = DeriveInputBuf { challenges: vec![vec![0; n]], ..Default::default() };
        prop_assert!(x.encode().is_err());
        let y = DeriveInputBuf { params: vec![0; p], ..Default::default() };
        prop_assert!(y.encode().is_err());
    }
}

#[test]
fn over_cap_input_is_refused_before_parsing() {
    let b = vec![1u8; MAX_INPUT_LEN + 1];
    assert_eq!(
        DeriveInput::decode(&b),
        Err(DecodeError::TooLong(MAX_INPUT_LEN + 1))
    );
}
