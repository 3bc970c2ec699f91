//! decode(encode(x)) == x for every message (kinds 1–14); decoding arbitrary bytes never
//! panics; the header and size caps are enforced with typed errors.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

use kasane_abi::Direction;
use kasane_protocol::ProtocolError;
use kasane_protocol::wire::{
    Challenge, ChallengeBundle, Delivery, FinishRequest, Inbox, InboxAck, KE1_LEN, KE2_LEN,
    KE3_LEN, LoginFailure, MAX_ACK_IDS, MAX_INBOX_MESSAGES, MAX_USER_ID_LEN, Message,
    MessageAccepted, MessageRefused, ModuleRef, PROTOCOL_VERSION, Profile, RefusalReason,
    ResponseAccept, ResponseRequest, SealedBundle, SealedMessage, Signature64, StartRequest,
    StartResponse,
};
use proptest::prelude::*;

fn profiles() -> impl Strategy<Value = Vec<Profile>> {
    prop_oneof![
        Just(vec![Profile::Pure]),
        Just(vec![Profile::Wasi]),
        Just(vec![Profile::Pure, Profile::Wasi]),
        Just(vec![Profile::Wasi, Profile::Pure]),
    ]
}

/// Kind 1: user ids of any printable text up to the limit.
fn start_request() -> impl Strategy<Value = StartRequest> {
    (
        "\\PC{1,80}",
        proptest::collection::vec(any::<u8>(), KE1_LEN),
        any::<[u8; 32]>(),
        profiles(),
        any::<bool>(),
    )
        .prop_filter("user id length", |(u, ..)| u.len() <= MAX_USER_ID_LEN)
        .prop_map(
            |(user_id, ke1, client_nonce, profiles, can_bind)| StartRequest {
                user_id,
                ke1,
                client_nonce,
                profiles,
                can_bind,
            },
        )
}

/// Kind 2.
fn start_response() -> impl Strategy<Value = StartResponse> {
    (
        any::<[u8; 16]>(),
        proptest::collection::vec(any::<u8>(), KE2_LEN),
        any::<[u8; 32]>(),
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(l, ke2, n, cb, k, s1, s2)| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&s1);
            sig[32..].copy_from_slice(&s2);
            StartResponse {
                login_id: l,
                ke2,
                server_nonce: n,
                channel_binding: cb,
                host_public_key: k,
                signature: Signature64(sig),
            }
        })
}

/// Kind 3.
fn finish_request() -> impl Strategy<Value = FinishRequest> {
    (
        any::<[u8; 16]>(),
        proptest::collection::vec(any::<u8>(), KE3_LEN),
    )
        .prop_map(|(login_id, ke3)| FinishRequest { login_id, ke3 })
}

/// Kind 4: the ciphertext is opaque bytes to the decoder.
fn sealed_bundle() -> impl Strategy<Value = SealedBundle> {
    proptest::collection::vec(any::<u8>(), 16..2000)
        .prop_map(|ciphertext| SealedBundle { ciphertext })
}

fn challenge_bundle() -> impl Strategy<Value = ChallengeBundle> {
    let challenge = (
        "[A-Z0-9]{1,8}",
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(prompt, salt)| Challenge { prompt, salt });
    let module = (
        "[a-z0-9._/-]{1,40}",
        any::<[u8; 32]>(),
        any::<u64>(),
        prop_oneof![Just(Profile::Pure), Just(Profile::Wasi)],
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(name, sha256, length, profile, fuel, memory)| ModuleRef {
            name,
            sha256,
            length,
            profile,
            fuel,
            memory,
        });
    (
        any::<[u8; 16]>(),
        proptest::collection::vec(challenge, 1..=16),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..600),
        module,
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<u64>(),
    )
        .prop_map(
            |(bundle_id, challenges, counter, timestamp, ticket, module, params, expires)| {
                ChallengeBundle {
                    bundle_id,
                    challenges,
                    counter,
                    timestamp,
                    ticket,
                    module,
                    params,
                    expires,
                }
            },
        )
}

fn sealed_message() -> impl Strategy<Value = SealedMessage> {
    (
        any::<[u8; 16]>(),
        any::<bool>(),
        1..u64::MAX,
        "[a-z]{0,20}",
        proptest::collection::vec(any::<u8>(), 16..300),
    )
        .prop_map(|(s, d, seq, r, c)| SealedMessage {
            session_id: s,
            direction: if d {
                Direction::HostToClient
            } else {
                Direction::ClientToHost
            },
            seq,
            recipient: r,
            ciphertext: c,
        })
}

/// Kind 9.
fn message_accepted() -> impl Strategy<Value = MessageAccepted> {
    (1..=u64::MAX, any::<u64>()).prop_map(|(seq, received_at)| MessageAccepted { seq, received_at })
}

/// Kind 10: every reason.
fn message_refused() -> impl Strategy<Value = MessageRefused> {
    prop_oneof![
        Just(RefusalReason::Malformed),
        Just(RefusalReason::SessionEnded),
        Just(RefusalReason::WrongSession),
        Just(RefusalReason::WrongDirection),
        Just(RefusalReason::Replayed),
        Just(RefusalReason::Reordered),
        Just(RefusalReason::Altered),
        Just(RefusalReason::TooLarge),
        Just(RefusalReason::Unavailable),
        Just(RefusalReason::QueueFull),
        Just(RefusalReason::BudgetSpent),
    ]
    .prop_map(|reason| MessageRefused { reason })
}

/// Kind 11: senders up to the user-id limit, bodies of any bytes.
fn delivery() -> impl Strategy<Value = Delivery> {
    (
        1..=u64::MAX,
        "\\PC{1,64}",
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_filter("user id length", |(_, from, _, _)| from.len() <= 256)
        .prop_map(|(id, from, sent_at, body)| Delivery {
            id,
            from,
            sent_at,
            body,
        })
}

/// Kind 12: up to the message cap.
fn inbox() -> impl Strategy<Value = Inbox> {
    (
        proptest::collection::vec(sealed_message(), 0..=MAX_INBOX_MESSAGES),
        any::<bool>(),
    )
        .prop_map(|(messages, more)| Inbox { messages, more })
}

/// Kind 13: 1 to the id cap.
fn inbox_ack() -> impl Strategy<Value = InboxAck> {
    proptest::collection::vec(any::<u64>(), 1..=MAX_ACK_IDS).prop_map(|ids| InboxAck { ids })
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(m: &M) {
    let bytes = m.encode().unwrap();
    assert!(bytes.len() <= M::MAX_LEN);
    assert_eq!(&bytes[..2], &[PROTOCOL_VERSION, M::KIND]);
    let back = M::decode(&bytes).unwrap();
    assert_eq!(&back, m);
    // Re-encoding is canonical: the transcript can hash either side's bytes.
    assert_eq!(back.encode().unwrap(), bytes);
}

fn decode_all(bytes: &[u8]) {
    let _ = StartRequest::decode(bytes);
    let _ = StartResponse::decode(bytes);
    let _ = FinishRequest::decode(bytes);
    let _ = SealedBundle::decode(bytes);
    let _ = ChallengeBundle::decode(bytes);
    let _ = ResponseRequest::decode(bytes);
    let _ = ResponseAccept::decode(bytes);
    let _ = LoginFailure::decode(bytes);
    let _ = SealedMessage::decode(bytes);
    let _ = MessageAccepted::decode(bytes);
    let _ = MessageRefused::decode(bytes);
    let _ = Delivery::decode(bytes);
    let _ = Inbox::decode(bytes);
    let _ = InboxAck::decode(bytes);
}

proptest! {
    #[test]
    fn start_request_round_trips(m in start_request()) { round_trip(&m); }

    #[test]
    fn start_response_round_trips(m in start_response()) { round_trip(&m); }

    #[test]
    fn finish_request_round_trips(m in finish_request()) { round_trip(&m); }

    #[test]
    fn sealed_bundle_round_trips(m in sealed_bundle()) { round_trip(&m); }

    #[test]
    fn challenge_bundle_round_trips(m in challenge_bundle()) { round_trip(&m); }

    #[test]
    fn response_request_round_trips(b in any::<[u8; 16]>(), r in any::<[u8; 32]>()) {
        round_trip(&ResponseRequest { bundle_id: b, receipt: r });
    }

    #[test]
    fn response_accept_round_trips(t in any::<[u8; 32]>(), c in any::<[u8; 32]>()) {
        round_trip(&ResponseAccept { session_token: t, confirm: c });
    }

    #[test]
    fn sealed_message_round_trips(m in sealed_message()) { round_trip(&m); }

    #[test]
    fn message_accepted_round_trips(m in message_accepted()) { round_trip(&m); }

    #[test]
    fn message_refused_round_trips(m in message_refused()) { round_trip(&m); }

    #[test]
    fn delivery_round_trips(m in delivery()) { round_trip(&m); }

    #[test]
    fn inbox_round_trips(m in inbox()) { round_trip(&m); }

    #[test]
    fn inbox_ack_round_trips(m in inbox_ack()) { round_trip(&m); }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        kind in 1u8..=14,
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![PROTOCOL_VERSION, kind];
        bytes.extend_from_slice(&body);
        decode_all(&bytes);
    }

    #[test]
    fn mutated_start_messages_never_panic(
        q in start_request(),
        r in start_response(),
        at in any::<usize>(),
        x in 1u8..,
    ) {
        for mut bytes in [q.encode().unwrap(), r.encode().unwrap()] {
            let i = at % bytes.len();
            bytes[i] ^= x;
            decode_all(&bytes);
            bytes.truncate(i);
            decode_all(&bytes);
        }
    }

    #[test]
    fn mutated_bundles_never_panic(m in challenge_bundle(), at in any::<usize>(), x in 1u8..) {
        let mut bytes = m.encode().unwrap();
        let i = at % bytes.len();
        bytes[i] ^= x;
        let _ = ChallengeBundle::decode(&bytes);
        bytes.truncate(i);
        let _ = ChallengeBundle::decode(&bytes);
    }
}

#[test]
fn the_login_kinds_are_1_to_7_and_14() {
    assert_eq!(
        [
            StartRequest::KIND,
            StartResponse::KIND,
            FinishRequest::KIND,
            SealedBundle::KIND,
            ResponseRequest::KIND,
            ResponseAccept::KIND,
            LoginFailure::KIND,
            ChallengeBundle::KIND,
        ],
        [1, 2, 3, 4, 5, 6, 7, 14]
    );
    assert_eq!(PROTOCOL_VERSION, 2);
}

fn longest_start_request() -> StartRequest {
    StartRequest {
        user_id: "u".repeat(MAX_USER_ID_LEN),
        ke1: vec![0xA5; KE1_LEN],
        client_nonce: [0xFF; 32],
        profiles: vec![Profile::Wasi, Profile::Pure],
        can_bind: true,
    }
}

/// A user name (a login's `user_id`, a message's recipient) carries no control character (a
/// tab, a newline, DEL, an escape sequence, a C1 control), no bidirectional control and no
/// invisible character: each is refused on encode and on decode; any other text, non-ASCII
/// included, passes.
#[test]
fn user_names_carry_no_control_characters() {
    let start = |user_id: &str| StartRequest {
        user_id: user_id.to_owned(),
        ..longest_start_request()
    };
    let message = |recipient: &str| SealedMessage {
        session_id: [1; 16],
        direction: Direction::ClientToHost,
        seq: 1,
        recipient: recipient.to_owned(),
        ciphertext: vec![0; 16],
    };
    for ok in ["alice", "ålice ü", "a b", "@gateway", "名前"] {
        round_trip(&start(ok));
        round_trip(&message(ok));
    }
    round_trip(&message(""));
    for bad in [
        "al\tice",
        "alice\n",
        "\u{1b}[2Jroot",
        "a\u{7f}",
        "a\u{85}",
        "\0",
        "ad\u{200b}min",
        "\u{202e}nimda",
        "a\u{feff}",
        "a\u{2066}b",
    ] {
        let (m, r) = (start(bad), message(bad));
        assert!(matches!(
            m.encode(),
            Err(ProtocolError::FieldRange { field: "user_id" })
        ));
        assert!(matches!(
            r.encode(),
            Err(ProtocolError::FieldRange { field: "recipient" })
        ));
        // The same bytes made without the checks are refused when decoded.
        let bytes = postcard::to_extend(&m, vec![PROTOCOL_VERSION, 1]).unwrap();
        assert!(matches!(
            StartRequest::decode(&bytes),
            Err(ProtocolError::FieldRange { field: "user_id" })
        ));
        let bytes = postcard::to_extend(&r, vec![PROTOCOL_VERSION, 8]).unwrap();
        assert!(matches!(
            SealedMessage::decode(&bytes),
            Err(ProtocolError::FieldRange { field: "recipient" })
        ));
    }
}

/// The largest value of each login kind fits its size cap; a field off its length is refused
/// on encode and on decode.
#[test]
fn the_limits_of_the_login_kinds_hold_both_ways() {
    round_trip(&longest_start_request());
    let over = StartRequest {
        user_id: "u".repeat(MAX_USER_ID_LEN + 1),
        ..longest_start_request()
    };
    assert!(matches!(
        over.encode(),
        Err(ProtocolError::FieldRange { field: "user_id" })
    ));
    let mut bytes = longest_start_request().encode().unwrap();
    bytes[2..4].copy_from_slice(&[0x81, 0x02]); // user id length 257, one byte short
    assert!(StartRequest::decode(&bytes).is_err());
    for ke1 in [0, KE1_LEN - 1, KE1_LEN + 1] {
        let m = StartRequest {
            ke1: vec![0; ke1],
            ..longest_start_request()
        };
        assert!(matches!(
            m.encode(),
            Err(ProtocolError::FieldRange { field: "ke1" })
        ));
    }
    let response = StartResponse {
        login_id: [0xFF; 16],
        ke2: vec![0xFF; KE2_LEN],
        server_nonce: [0xFF; 32],
        channel_binding: true,
        host_public_key: [0xFF; 32],
        signature: Signature64([0xFF; 64]),
    };
    round_trip(&response);
    let short = StartResponse {
        ke2: vec![0; KE2_LEN - 1],
        ..response
    };
    assert!(matches!(
        short.encode(),
        Err(ProtocolError::FieldRange { field: "ke2" })
    ));
    let finish = FinishRequest {
        login_id: [0xFF; 16],
        ke3: vec![0xFF; KE3_LEN],
    };
    round_trip(&finish);
    let mut long = finish.encode().unwrap();
    long[2 + 16] = KE3_LEN as u8 + 1;
    long.push(0);
    assert!(matches!(
        FinishRequest::decode(&long),
        Err(ProtocolError::FieldRange { field: "ke3" })
    ));
    let sealed = SealedBundle {
        ciphertext: vec![0xFF; ChallengeBundle::MAX_LEN + 16],
    };
    round_trip(&sealed);
    for n in [15, ChallengeBundle::MAX_LEN + 17] {
        let bad = SealedBundle {
            ciphertext: vec![0; n],
        };
        assert!(matches!(
            bad.encode(),
            Err(ProtocolError::FieldRange {
                field: "ciphertext"
            })
        ));
    }
}

#[test]
fn the_message_kinds_after_login_are_9_to_13() {
    assert_eq!(
        [
            MessageAccepted::KIND,
            MessageRefused::KIND,
            Delivery::KIND,
            Inbox::KIND,
            InboxAck::KIND
        ],
        [9, 10, 11, 12, 13]
    );
}

/// The largest value of each kind still fits its size cap, and one past a count limit is
/// refused on encode and on decode.
#[test]
fn the_limits_of_kinds_9_10_and_13_hold_both_ways() {
    let most = MessageAccepted {
        seq: u64::MAX,
        received_at: u64::MAX,
    };
    round_trip(&most);
    let acks = InboxAck {
        ids: vec![u64::MAX; MAX_ACK_IDS],
    };
    round_trip(&acks);
    let too_many = InboxAck {
        ids: vec![1; MAX_ACK_IDS + 1],
    };
    assert!(matches!(
        too_many.encode(),
        Err(ProtocolError::FieldRange { field: "ids" })
    ));
    // Hand-built: the header, then an empty id list.
    assert!(matches!(
        InboxAck::decode(&[PROTOCOL_VERSION, 13, 0]),
        Err(ProtocolError::FieldRange { field: "ids" })
    ));
    assert!(matches!(
        MessageAccepted::decode(&[PROTOCOL_VERSION, 9, 0, 0]),
        Err(ProtocolError::FieldRange { field: "seq" })
    ));
    // A refusal reason past the last variant is malformed, not a panic or a default.
    assert!(matches!(
        MessageRefused::decode(&[PROTOCOL_VERSION, 10, 11]),
        Err(ProtocolError::Malformed(_))
    ));
}

/// The largest delivery and inbox fit their caps; a field or count off its limit is refused.
#[test]
fn the_limits_of_kinds_11_and_12_hold() {
    let delivery = Delivery {
        id: u64::MAX,
        from: "u".repeat(kasane_protocol::wire::MAX_USER_ID_LEN),
        sent_at: u64::MAX,
        body: vec![0xA5; kasane_protocol::seal::MAX_BODY_LEN],
    };
    round_trip(&delivery);
    for (bad, field) in [
        (
            Delivery {
                id: 0,
                ..delivery.clone()
            },
            "id",
        ),
        (
            Delivery {
                from: String::new(),
                ..delivery.clone()
            },
            "from",
        ),
        (
            Delivery {
                from: "u".repeat(257),
                ..delivery.clone()
            },
            "from",
        ),
    ] {
        assert!(
            matches!(bad.encode(), Err(ProtocolError::FieldRange { field: f }) if f == field),
            "{field}"
        );
    }
    let sealed = SealedMessage {
        session_id: [0; 16],
        direction: Direction::HostToClient,
        seq: 1,
        recipient: String::new(),
        ciphertext: vec![0; 16],
    };
    let full = Inbox {
        messages: vec![sealed.clone(); MAX_INBOX_MESSAGES],
        more: true,
    };
    round_trip(&full);
    let over = Inbox {
        messages: vec![sealed; MAX_INBOX_MESSAGES + 1],
        more: false,
    };
    assert!(matches!(
        over.encode(),
        Err(ProtocolError::FieldRange { field: "messages" })
    ));
}

#[test]
fn login_failure_is_two_bytes() {
    assert_eq!(LoginFailure.encode().unwrap(), vec![2, 7]);
    assert_eq!(LoginFailure::decode(&[2, 7]).unwrap(), LoginFailure);
}

#[test]
fn unknown_version_is_a_typed_error() {
    let mut bytes = ResponseRequest {
        bundle_id: [0; 16],
        receipt: [0; 32],
    }
    .encode()
    .unwrap();
    // A v1 message, and one from the future.
    for version in [1, 3] {
        bytes[0] = version;
        assert!(matches!(
            ResponseRequest::decode(&bytes),
            Err(ProtocolError::UnsupportedVersion(v)) if v == version
        ));
    }
}

#[test]
fn wrong_kind_truncation_and_trailing_bytes_are_typed_errors() {
    let bytes = LoginFailure.encode().unwrap();
    assert!(matches!(
        ResponseRequest::decode(&bytes),
        Err(ProtocolError::UnexpectedKind {
            expected: 5,
            got: 7
        })
    ));
    assert!(matches!(
        LoginFailure::decode(&[1]),
        Err(ProtocolError::Truncated)
    ));
    let mut rr = ResponseRequest {
        bundle_id: [0; 16],
        receipt: [0; 32],
    }
    .encode()
    .unwrap();
    rr.truncate(rr.len() - 1);
    assert!(matches!(
        ResponseRequest::decode(&rr),
        Err(ProtocolError::Malformed(_))
    ));
    let mut sr = StartRequest {
        user_id: "alice".into(),
        ke1: vec![0; KE1_LEN],
        client_nonce: [0; 32],
        profiles: vec![Profile::Pure],
        can_bind: true,
    }
    .encode()
    .unwrap();
    sr.push(0);
    assert!(matches!(
        StartRequest::decode(&sr),
        Err(ProtocolError::TrailingBytes(1))
    ));
}

#[test]
fn oversized_messages_are_refused_before_parsing() {
    let big = vec![1u8; ChallengeBundle::MAX_LEN + 1];
    assert!(matches!(
        ChallengeBundle::decode(&big),
        Err(ProtocolError::TooLarge { .. })
    ));
    let big = vec![1u8; SealedMessage::MAX_LEN + 1];
    assert!(matches!(
        SealedMessage::decode(&big),
        Err(ProtocolError::TooLarge { .. })
    ));
}

#[test]
fn field_limits_are_enforced_both_ways() {
    let dup = StartRequest {
        user_id: "alice".into(),
        ke1: vec![0; KE1_LEN],
        client_nonce: [0; 32],
        profiles: vec![Profile::Pure, Profile::Pure],
        can_bind: true,
    };
    assert!(matches!(
        dup.encode(),
        Err(ProtocolError::FieldRange { field: "profiles" })
    ));
    // Hand-built body (user "a", KE1, nonce) with no profiles (then the binding flag):
    // decode refuses it too.
    let mut bytes = vec![PROTOCOL_VERSION, 1, 1, b'a', KE1_LEN as u8];
    bytes.extend_from_slice(&[0; KE1_LEN + 32]);
    bytes.extend_from_slice(&[0, 1]);
    assert!(matches!(
        StartRequest::decode(&bytes),
        Err(ProtocolError::FieldRange { field: "profiles" })
    ));
    // An unknown profile number is malformed.
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(&[1, 2, 1]);
    assert!(matches!(
        StartRequest::decode(&bytes),
        Err(ProtocolError::Malformed(_))
    ));
    // An empty user id is out of range.
    bytes.truncate(bytes.len() - 3);
    bytes.extend_from_slice(&[1, 0, 1]);
    bytes[2] = 0;
    bytes.remove(3);
    assert!(matches!(
        StartRequest::decode(&bytes),
        Err(ProtocolError::FieldRange { field: "user_id" })
    ));
    let sealed = SealedMessage {
        session_id: [0; 16],
        direction: Direction::ClientToHost,
        seq: 0,
        recipient: String::new(),
        ciphertext: vec![0; 16],
    };
    assert!(matches!(
        sealed.encode(),
        Err(ProtocolError::FieldRange { field: "seq" })
    ));
}

#[test]
fn a_bad_direction_byte_is_malformed() {
    let mut bytes = SealedMessage {
        session_id: [0; 16],
        direction: Direction::ClientToHost,
        seq: 1,
        recipient: String::new(),
        ciphertext: vec![0; 16],
    }
    .encode()
    .unwrap();
    bytes[2 + 16] = 2;
    assert!(matches!(
        SealedMessage::decode(&bytes),
        Err(ProtocolError::Malformed(_))
    ));
}
