//! A full v2 login (OPAQUE, sealed bundle, receipt and confirm) between an in-process client
//! and host, and every way it must fail.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

mod common;

use common::{
    Setup, TestRng, bundle, client_finish, enrolled, fake_transform, host_t_auth, login,
    login_with, run_to_finish, run_to_response, start, stored_verifiers,
};
use ed25519_dalek::SigningKey;
use kasane_abi::Direction;
use kasane_protocol::wire::{
    FinishRequest, Message, Profile, ResponseAccept, SealedMessage, StartResponse,
};
use kasane_protocol::{
    ClientStart, HostAwaitFinish, HostChallenge, HostLoginParts, HostStart, Padding, ProtocolError,
    Session, decoy_finish,
};

/// A copy of stored host parts (a store can hand the same row out twice).
fn copy_parts(p: &HostLoginParts) -> HostLoginParts {
    HostLoginParts {
        opaque_state: p.opaque_state.clone(),
        session_key: p.session_key.clone(),
        start_request: p.start_request.clone(),
        start_response: p.start_response.clone(),
        channel_binding: p.channel_binding,
        finish_request: p.finish_request.clone(),
        challenge_bundle: p.challenge_bundle.clone(),
    }
}

#[test]
fn good_login_agrees_on_keys_receipt_and_confirm() {
    let (client, host) = login();
    assert_eq!(client.session_id(), host.session_id());
    assert_eq!(client.transcript_hash(), host.transcript_hash());
    assert_eq!(
        client.secret().expose_secret(),
        host.secret().expose_secret()
    );
}

#[test]
fn login_without_channel_binding_also_agrees() {
    let s = Setup {
        host_cb: None,
        // The client's exporter belongs to the proxy's connection and must be ignored.
        client_cb: Some([0xEE; 32]),
        ..Setup::default()
    };
    let (client, host, finish) = run_to_finish(&s);
    assert!(!client.host_uses_channel_binding());
    let (host, sealed) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    let client = client.receive(&sealed).unwrap();
    let t = fake_transform(
        &client
            .auth_input(&client.verifiers(&s.responses).unwrap())
            .unwrap(),
    );
    let (client, resp) = client.respond(&t).unwrap();
    let t_auth = host_t_auth(&host);
    let (hs, accept) = host.accept(&resp, &t_auth, [1; 32]).unwrap();
    let cs = client.receive(&accept).unwrap();
    assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
}

#[test]
fn channel_binding_changes_every_key() {
    let (a, _) = login();
    let s = Setup {
        host_cb: None,
        client_cb: None,
        ..Setup::default()
    };
    let (b, _) = login_with(&s, [0x70; 32]);
    assert_ne!(a.secret().expose_secret(), b.secret().expose_secret());
    assert_ne!(a.transcript_hash(), b.transcript_hash());
}

#[test]
fn differing_exporter_values_make_the_client_refuse() {
    // A relay between two TLS connections: the OPAQUE contexts differ, so KE2's MAC does not
    // verify for the client, which never produces a KE3.
    let s = Setup {
        client_cb: Some([0xBB; 32]),
        host_cb: Some([0xAA; 32]),
        ..Setup::default()
    };
    let (client, _, response) = start(&s);
    assert!(matches!(
        client_finish(&s, client, &response),
        Err(ProtocolError::Opaque)
    ));
}

#[test]
fn a_ke3_made_under_another_context_makes_the_host_refuse() {
    // Same client and host randomness; only the host's exporter differs.
    let (_, _, finish) = run_to_finish(&Setup::default());
    let other = Setup {
        host_cb: Some([0xAA; 32]),
        ..Setup::default()
    };
    let (_, host, _) = start(&other);
    assert!(matches!(host.finish(&finish), Err(ProtocolError::Opaque)));
}

#[test]
fn host_asking_for_channel_binding_without_exporter_is_refused() {
    let s = Setup {
        client_cb: None,
        ..Setup::default()
    };
    let (client, _, response) = start(&s);
    assert!(matches!(
        client_finish(&s, client, &response),
        Err(ProtocolError::ChannelBinding {
            host: true,
            local: false
        })
    ));
}

#[test]
fn a_wrong_password_fails_at_the_client_and_its_decoy_at_the_host() {
    let s = Setup {
        password: b"correct horsE",
        ..Setup::default()
    };
    let (client, host, response) = start(&s);
    assert!(matches!(
        client_finish(&s, client, &response),
        Err(ProtocolError::Opaque)
    ));
    let decoy = decoy_finish(&mut TestRng::new(b"decoy"), &response).unwrap();
    let (_, _, real) = run_to_finish(&Setup::default());
    assert_eq!(
        decoy.len(),
        real.len(),
        "a decoy looks like a finish request"
    );
    assert!(matches!(host.finish(&decoy), Err(ProtocolError::Opaque)));
}

#[test]
fn an_unknown_user_fails_at_the_client_and_its_decoy_at_the_host() {
    for (user, known) in [("mallory", false), ("alice", false), ("mallory", true)] {
        // No record (the host's answer for unknown or refused names), or alice's record
        // presented for another name: the envelope is bound to the name.
        let s = Setup {
            user,
            known,
            ..Setup::default()
        };
        let (client, host, response) = start(&s);
        assert_eq!(response.len(), start(&Setup::default()).2.len());
        assert!(
            matches!(
                client_finish(&s, client, &response),
                Err(ProtocolError::Opaque)
            ),
            "{user} known={known}"
        );
        let decoy = decoy_finish(&mut TestRng::new(b"decoy"), &response).unwrap();
        assert!(matches!(host.finish(&decoy), Err(ProtocolError::Opaque)));
    }
    assert!(decoy_finish(&mut TestRng::new(b"decoy"), b"junk").is_none());
}

#[test]
fn a_decoy_for_a_known_user_is_refused() {
    let s = Setup::default();
    let (_, host, response) = start(&s);
    let decoy = decoy_finish(&mut TestRng::new(b"decoy"), &response).unwrap();
    assert_eq!(
        FinishRequest::decode(&decoy).unwrap().login_id,
        *host.login_id()
    );
    assert!(matches!(host.finish(&decoy), Err(ProtocolError::Opaque)));
}

fn start_pair(host_key: &SigningKey) -> (ClientStart, Vec<u8>) {
    let s = Setup {
        host_key: host_key.clone(),
        host_cb: None,
        ..Setup::default()
    };
    let client = ClientStart::new(
        &mut TestRng::new(b"client"),
        "alice",
        common::PASSWORD,
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap();
    let (_, resp) = HostStart::respond(
        &mut TestRng::new(b"host"),
        client.request_bytes(),
        s.host_params(),
    )
    .unwrap();
    (client, resp)
}

#[test]
fn another_host_key_is_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let (client, resp) = start_pair(&key);
    let other = SigningKey::from_bytes(&[8; 32]);
    assert!(matches!(
        client.receive(
            &mut TestRng::new(b"c"),
            &resp,
            &[other.verifying_key()],
            None
        ),
        Err(ProtocolError::HostKey)
    ));
}

#[test]
fn every_altered_signed_field_breaks_the_signature() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let alter: [fn(&mut StartResponse); 6] = [
        |r| r.login_id[0] ^= 1,
        |r| r.server_nonce[0] ^= 1,
        |r| r.channel_binding = !r.channel_binding,
        |r| r.ke2[0] ^= 1,
        |r| r.ke2[319] ^= 1,
        |r| r.signature.0[0] ^= 1,
    ];
    for f in alter {
        let (client, resp) = start_pair(&key);
        let mut r = StartResponse::decode(&resp).unwrap();
        f(&mut r);
        let err = client
            .receive(
                &mut TestRng::new(b"c"),
                &r.encode().unwrap(),
                &[key.verifying_key()],
                Some(&[0; 32]),
            )
            .unwrap_err();
        assert!(matches!(err, ProtocolError::BadSignature), "{err:?}");
    }
    // Another key in the message is not one the client trusts.
    let (client, resp) = start_pair(&key);
    let mut r = StartResponse::decode(&resp).unwrap();
    r.host_public_key[0] ^= 1;
    assert!(matches!(
        client.receive(
            &mut TestRng::new(b"c"),
            &r.encode().unwrap(),
            &[key.verifying_key()],
            None
        ),
        Err(ProtocolError::HostKey)
    ));
}

#[test]
fn signature_covers_the_start_request() {
    // A host answer made for another start request does not verify for this one.
    let key = SigningKey::from_bytes(&[9; 32]);
    let (_, resp) = start_pair(&key);
    let other = ClientStart::new(
        &mut TestRng::new(b"another client"),
        "alice",
        common::PASSWORD,
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap();
    assert!(matches!(
        other.receive(&mut TestRng::new(b"c"), &resp, &[key.verifying_key()], None),
        Err(ProtocolError::BadSignature)
    ));
}

#[test]
fn wrong_responses_give_a_refused_receipt() {
    for responses in [vec!["K3Q8", "7XWP"], vec!["7XWP", "K3Q9"], vec!["", ""]] {
        let s = Setup {
            responses,
            ..Setup::default()
        };
        let (host, _, resp) = run_to_response(&s);
        let t_auth = host_t_auth(&host);
        assert!(matches!(
            host.accept(&resp, &t_auth, [0; 32]),
            Err(ProtocolError::ReceiptMismatch)
        ));
    }
}

#[test]
fn responses_are_normalized_before_the_verifier() {
    let s = Setup {
        responses: vec![" k3q9 ", "7xwp"],
        ..Setup::default()
    };
    let (a, _) = login_with(&s, [0x70; 32]);
    let (b, _) = login();
    assert_eq!(a.secret().expose_secret(), b.secret().expose_secret());
}

#[test]
fn tampered_receipt_is_refused() {
    let (host, _, mut resp) = run_to_response(&Setup::default());
    let last = resp.len() - 1;
    resp[last] ^= 1;
    let t_auth = host_t_auth(&host);
    assert!(matches!(
        host.accept(&resp, &t_auth, [0; 32]),
        Err(ProtocolError::ReceiptMismatch)
    ));
}

#[test]
fn response_for_another_bundle_is_refused() {
    let (host, _, mut resp) = run_to_response(&Setup::default());
    resp[2] ^= 1; // first byte of bundle_id
    let t_auth = host_t_auth(&host);
    assert!(matches!(
        host.accept(&resp, &t_auth, [0; 32]),
        Err(ProtocolError::BundleMismatch)
    ));
    // The response to a bundle of another login: its receipt is over another transcript.
    let (host, _, _) = run_to_response(&Setup::default());
    let (_, _, other) = run_to_response(&Setup {
        client_rng: b"another client",
        ..Setup::default()
    });
    let t_auth = host_t_auth(&host);
    assert!(matches!(
        host.accept(&other, &t_auth, [0; 32]),
        Err(ProtocolError::ReceiptMismatch)
    ));
}

#[test]
fn tampered_confirm_is_refused() {
    let (host, client, resp) = run_to_response(&Setup::default());
    let t_auth = host_t_auth(&host);
    let (_, mut accept) = host.accept(&resp, &t_auth, [0; 32]).unwrap();
    let last = accept.len() - 1;
    accept[last] ^= 1;
    assert!(matches!(
        client.receive(&accept),
        Err(ProtocolError::ConfirmMismatch)
    ));
}

#[test]
fn confirm_is_bound_to_the_session_token() {
    let (host, client, resp) = run_to_response(&Setup::default());
    let t_auth = host_t_auth(&host);
    let (_, accept) = host.accept(&resp, &t_auth, [7; 32]).unwrap();
    let mut swapped = ResponseAccept::decode(&accept).unwrap();
    swapped.session_token = [8; 32];
    assert!(matches!(
        client.receive(&swapped.encode().unwrap()),
        Err(ProtocolError::ConfirmMismatch)
    ));
}

#[test]
fn finish_for_another_login_is_refused() {
    let (_, host, mut finish) = run_to_finish(&Setup::default());
    finish[2] ^= 1; // first byte of login_id
    assert!(matches!(
        host.finish(&finish),
        Err(ProtocolError::LoginMismatch)
    ));
}

#[test]
fn a_rebuilt_state_refuses_a_ke3_from_another_login() {
    let (_, host, finish) = run_to_finish(&Setup::default());
    let stored = host.into_parts();
    // Another login (another client key share), answered with the same login id.
    let (_, _, other) = run_to_finish(&Setup {
        client_rng: b"another client",
        ..Setup::default()
    });
    let host = HostAwaitFinish::from_parts(copy_parts(&stored)).unwrap();
    assert!(matches!(host.finish(&other), Err(ProtocolError::Opaque)));
    // Its own KE3 still verifies on a state rebuilt from the same parts.
    assert!(
        HostAwaitFinish::from_parts(stored)
            .unwrap()
            .finish(&finish)
            .is_ok()
    );
}

#[test]
fn a_finish_request_is_good_for_one_finish_only() {
    let (_, host, finish) = run_to_finish(&Setup::default());
    let (host, _) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    // What is stored after the finish step no longer holds OPAQUE's state, so the same
    // finish request has nothing left to run against.
    let parts = host.into_parts();
    assert!(parts.opaque_state.is_none());
    assert!(matches!(
        HostAwaitFinish::from_parts(parts),
        Err(ProtocolError::FieldRange { field: "parts" })
    ));
}

#[test]
fn the_sealed_bundle_does_not_open_under_another_transcript() {
    // Two logins with the same OPAQUE run (same randomness, so the same KE2, KE3 and session
    // key) but another host nonce: only Kasane's transcript differs.
    let (_, host, finish) = run_to_finish(&Setup::default());
    let (_, sealed) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    let s = Setup {
        server_nonce: [6; 32],
        ..Setup::default()
    };
    let (client, _, other_finish) = run_to_finish(&s);
    assert_eq!(finish, other_finish, "the same OPAQUE run");
    assert!(matches!(
        client.receive(&sealed),
        Err(ProtocolError::Decrypt)
    ));
}

fn send(from: &mut Session, to: &mut Session, msg: &[u8]) -> SealedMessage {
    let (seq, input) = from.prepare_seal().unwrap();
    let sealed = from.seal(seq, &fake_transform(&input), "bob", msg).unwrap();
    let input = to.prepare_open(&sealed).unwrap();
    let opened = to.open(&sealed, &fake_transform(&input)).unwrap();
    assert_eq!(opened.as_slice(), msg);
    sealed
}

#[test]
fn messages_flow_both_ways_with_and_without_padding() {
    let (mut c, mut h) = login();
    let s1 = send(&mut c, &mut h, b"hello host");
    assert_eq!((s1.seq, s1.direction), (1, Direction::ClientToHost));
    let s2 = send(&mut h, &mut c, b"hello client");
    assert_eq!((s2.seq, s2.direction), (1, Direction::HostToClient));
    c.set_padding(Padding::Buckets);
    let s3 = send(&mut c, &mut h, b"short");
    assert_eq!(s3.seq, 2);
    assert_eq!(s3.ciphertext.len(), 64 + 16);
    let s4 = send(&mut c, &mut h, b"");
    assert_eq!(s4.ciphertext.len(), 64 + 16);
}

fn seal_one(c: &mut Session) -> (SealedMessage, Vec<u8>) {
    let (seq, input) = c.prepare_seal().unwrap();
    let t = fake_transform(&input);
    (c.seal(seq, &t, "bob", b"attack at dawn").unwrap(), t)
}

#[test]
fn tampering_with_any_sealed_field_is_refused() {
    let (mut c, _) = login();
    let (sealed, _) = seal_one(&mut c);
    type Tamper = fn(&mut SealedMessage);
    let tamper: [(&str, Tamper); 5] = [
        ("session_id", |m| m.session_id[0] ^= 1),
        ("direction", |m| m.direction = Direction::HostToClient),
        ("seq", |m| m.seq += 1),
        ("recipient", |m| m.recipient = "eve".into()),
        ("ciphertext", |m| m.ciphertext[0] ^= 1),
    ];
    // Logins are deterministic here, so a restored copy is the same host session.
    let (_, h) = login();
    let host = h.into_parts();
    let fresh = || {
        Session::from_parts(kasane_protocol::SessionParts {
            session_id: host.session_id,
            secret: host.secret.clone(),
            transcript_hash: host.transcript_hash,
            context: host.context.clone(),
            outgoing: host.outgoing,
            last_sent: host.last_sent,
            last_received: host.last_received,
        })
    };
    for (field, f) in tamper {
        let mut h = fresh();
        let mut m = sealed.clone();
        f(&mut m);
        // The receiver derives T_msg from what the message claims, as a real host would.
        let result = h.prepare_open(&m).and_then(|input| {
            let t = fake_transform(&input);
            h.open(&m, &t)
        });
        assert!(result.is_err(), "{field} tampering accepted");
    }
    // The tag's last byte too.
    let mut h2 = fresh();
    let mut m = sealed.clone();
    let last = m.ciphertext.len() - 1;
    m.ciphertext[last] ^= 0x80;
    let t = fake_transform(&h2.prepare_open(&m).unwrap());
    assert!(matches!(h2.open(&m, &t), Err(ProtocolError::Decrypt)));
    // And the untouched message opens.
    let mut h3 = fresh();
    let t = fake_transform(&h3.prepare_open(&sealed).unwrap());
    assert!(h3.open(&sealed, &t).is_ok());
}

#[test]
fn wrong_message_transform_output_is_refused() {
    let (mut c, mut h) = login();
    let (sealed, _) = seal_one(&mut c);
    h.prepare_open(&sealed).unwrap();
    assert!(matches!(
        h.open(&sealed, &[0u8; 32]),
        Err(ProtocolError::Decrypt)
    ));
    // A failed open does not move the window: the real message still opens.
    let t = fake_transform(&h.prepare_open(&sealed).unwrap());
    assert!(h.open(&sealed, &t).is_ok());
}

#[test]
fn replayed_and_reordered_messages_are_refused() {
    let (mut c, mut h) = login();
    let (m1, t1) = seal_one(&mut c);
    let (m2, t2) = seal_one(&mut c);
    let (m3, t3) = seal_one(&mut c);
    h.open(&m2, &t2).unwrap();
    assert!(matches!(
        h.open(&m2, &t2),
        Err(ProtocolError::Replayed { seq: 2 })
    ));
    assert!(matches!(
        h.prepare_open(&m1),
        Err(ProtocolError::Reordered { seq: 1, last: 2 })
    ));
    assert!(matches!(
        h.open(&m1, &t1),
        Err(ProtocolError::Reordered { .. })
    ));
    h.open(&m3, &t3).unwrap();
    // A message the host sent cannot be reflected back to it.
    let (m, t) = seal_one(&mut h);
    assert!(matches!(h.open(&m, &t), Err(ProtocolError::WrongDirection)));
}

#[test]
fn message_for_another_session_is_refused() {
    let (mut c, _) = login();
    let (_, mut other) = login_with(&Setup::default(), [0x71; 32]);
    let (m, t) = seal_one(&mut c);
    assert!(matches!(
        other.open(&m, &t),
        Err(ProtocolError::WrongSession)
    ));
}

#[test]
fn longest_password_and_user_id_fit_and_a_longer_password_is_refused() {
    let long_user = "u".repeat(kasane_protocol::wire::MAX_USER_ID_LEN);
    let max = kasane_protocol::wire::MAX_PASSWORD_LEN;
    for (len, ok) in [(max, true), (max + 1, false)] {
        let result = ClientStart::new(
            &mut TestRng::new(b"c"),
            &long_user,
            &vec![b'p'; len],
            vec![Profile::Pure, Profile::Wasi],
        );
        match result {
            Ok(client) => {
                assert!(ok, "password of {len} bytes accepted");
                let back = kasane_protocol::StartRequest::decode(client.request_bytes()).unwrap();
                assert_eq!(&back, client.request());
            }
            Err(e) => assert!(
                !ok && matches!(e, ProtocolError::PlaintextTooLong { .. }),
                "password of {len} bytes: {e:?}"
            ),
        }
    }
}

#[test]
fn largest_plaintext_with_padding_fits_the_sealed_cap() {
    let (mut c, mut h) = login();
    c.set_padding(Padding::Buckets);
    let big = vec![0xA5u8; kasane_protocol::seal::MAX_PLAINTEXT_LEN];
    let (seq, input) = c.prepare_seal().unwrap();
    let sealed = c
        .seal(seq, &fake_transform(&input), &"r".repeat(256), &big)
        .unwrap();
    let bytes = sealed.encode().unwrap();
    let back = SealedMessage::decode(&bytes).unwrap();
    let t = fake_transform(&h.prepare_open(&back).unwrap());
    assert_eq!(h.open(&back, &t).unwrap().len(), big.len());
    let (seq, input) = c.prepare_seal().unwrap();
    assert!(matches!(
        c.seal(
            seq,
            &fake_transform(&input),
            "",
            &[big.as_slice(), &[0]].concat()
        ),
        Err(ProtocolError::PlaintextTooLong { .. })
    ));
}

#[test]
fn a_session_restored_from_its_parts_continues_the_sequence() {
    let (mut c, h) = login();
    let (m1, t1) = seal_one(&mut c);
    let mut h = Session::from_parts(h.into_parts());
    h.open(&m1, &t1).unwrap();
    let parts = h.into_parts();
    assert_eq!((parts.last_received, parts.last_sent), (1, 0));
    assert!(!format!("{parts:?}").contains("secret: SessionSecret(["));
    let mut h = Session::from_parts(parts);
    assert!(matches!(
        h.open(&m1, &t1),
        Err(ProtocolError::Replayed { seq: 1 })
    ));
    let (m2, t2) = seal_one(&mut c);
    h.open(&m2, &t2).unwrap();
    // The host's own sending numbers carry on too.
    let (_, _) = seal_one(&mut h);
    let h = Session::from_parts(h.into_parts());
    assert_eq!(h.sequencer().last_sent(), 1);
}

/// Whether `Debug` of the parts shows the first bytes of `secret` (as a list of numbers).
fn leaks(parts: &HostLoginParts, secret: &[u8]) -> bool {
    let debug = format!("{parts:?}");
    assert!(debug.contains("<redacted>"));
    let head = format!("{:?}", &secret[..4]);
    debug.contains(head.trim_end_matches(']'))
}

#[test]
fn host_states_stored_between_requests_give_the_same_session() {
    let s = Setup::default();
    let (client, host, response) = start(&s);
    // Another replica picks the login up after each step.
    let parts = host.into_parts();
    let state = parts.opaque_state.clone().unwrap();
    assert!(!leaks(&parts, &state));
    let host = HostAwaitFinish::from_parts(parts).unwrap();
    let (client, finish) = client_finish(&s, client, &response).unwrap();
    let (host, sealed) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    let parts = host.into_parts();
    let key = parts.session_key.clone().unwrap();
    assert!(!leaks(&parts, key.expose_secret()));
    let host = HostChallenge::from_parts(parts).unwrap();
    let client = client.receive(&sealed).unwrap();
    assert_eq!(client.transcript_hash(), host.transcript_hash());
    assert_eq!(client.bundle(), host.bundle());
    let verifiers = client.verifiers(&s.responses).unwrap();
    let t = fake_transform(&client.auth_input(&verifiers).unwrap());
    let (client, resp) = client.respond(&t).unwrap();
    let t_auth = host_t_auth(&host);
    let (hs, accept) = host.accept(&resp, &t_auth, [0x70; 32]).unwrap();
    let cs = client.receive(&accept).unwrap();
    assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
    // The same session as a login that never left memory.
    let (direct, _) = login();
    assert_eq!(direct.secret().expose_secret(), cs.secret().expose_secret());
    assert_eq!(direct.session_id(), cs.session_id());
}

#[test]
fn host_parts_of_the_wrong_stage_are_refused() {
    let (_, host, finish) = run_to_finish(&Setup::default());
    let early = host.into_parts();
    assert!(matches!(
        HostChallenge::from_parts(copy_parts(&early)),
        Err(ProtocolError::FieldRange { field: "parts" })
    ));
    // Parts whose channel binding disagrees with the signed flag.
    let unbound = HostLoginParts {
        channel_binding: None,
        ..copy_parts(&early)
    };
    assert!(matches!(
        HostAwaitFinish::from_parts(unbound),
        Err(ProtocolError::ChannelBinding { .. })
    ));
    let host = HostAwaitFinish::from_parts(early).unwrap();
    let (host, _) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    let late = host.into_parts();
    assert!(matches!(
        HostAwaitFinish::from_parts(copy_parts(&late)),
        Err(ProtocolError::FieldRange { field: "parts" })
    ));
    // A finish request of another login in the late parts.
    let mut other = FinishRequest::decode(late.finish_request.as_ref().unwrap()).unwrap();
    other.login_id[0] ^= 1;
    let mixed = HostLoginParts {
        finish_request: Some(other.encode().unwrap()),
        ..copy_parts(&late)
    };
    assert!(matches!(
        HostChallenge::from_parts(mixed),
        Err(ProtocolError::LoginMismatch)
    ));
    assert!(HostChallenge::from_parts(late).is_ok());
}

#[test]
fn any_key_of_the_host_role_is_accepted() {
    let old = SigningKey::from_bytes(&[8; 32]);
    let new = SigningKey::from_bytes(&[9; 32]);
    let (client, resp) = start_pair(&new);
    assert_eq!(
        StartResponse::decode(&resp).unwrap().host_key_id(),
        <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(
            new.verifying_key().as_bytes()
        ))
    );
    assert!(
        client
            .receive(
                &mut TestRng::new(b"c"),
                &resp,
                &[old.verifying_key(), new.verifying_key()],
                None
            )
            .is_ok()
    );
}

#[test]
fn the_enrolled_record_has_the_documented_length() {
    assert_eq!(enrolled().record.len(), kasane_protocol::opaque::RECORD_LEN);
    assert_eq!(stored_verifiers(&bundle(), &common::RESPONSES).len(), 2);
}

/// One random login: `Ok(true)` if both sides opened the same session.
fn random_login(
    seeds: ([u8; 32], [u8; 32]),
    server_nonce: [u8; 32],
    cb: Option<[u8; 32]>,
    response: &str,
    typed: &str,
) -> Result<bool, ProtocolError> {
    let s = Setup {
        client_cb: cb,
        host_cb: cb,
        server_nonce,
        ..Setup::default()
    };
    let client = ClientStart::new(
        &mut TestRng::new(&seeds.0),
        common::USER,
        common::PASSWORD,
        vec![Profile::Pure],
    )?;
    let (host, start) = HostStart::respond(
        &mut TestRng::new(&seeds.1),
        client.request_bytes(),
        s.host_params(),
    )?;
    let (client, finish) = client_finish(&s, client, &start)?;
    let mut b = bundle();
    b.challenges.truncate(1);
    let (host, sealed) = host.finish(&finish)?.send(b)?;
    let client = client.receive(&sealed)?;
    let t = fake_transform(&client.auth_input(&client.verifiers(&[typed])?)?);
    let (client, resp) = client.respond(&t)?;
    let stored = stored_verifiers(host.bundle(), &[response]);
    let t = fake_transform(&host.auth_input(&stored)?);
    match host.accept(&resp, &t, [1; 32]) {
        Ok((hs, accept)) => {
            let cs = client.receive(&accept)?;
            Ok(cs.secret().expose_secret() == hs.secret().expose_secret())
        }
        Err(ProtocolError::ReceiptMismatch) => Ok(false),
        Err(e) => Err(e),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

    #[test]
    fn random_logins_agree_and_a_wrong_verifier_never_does(
        c_seed in proptest::prelude::any::<[u8; 32]>(),
        h_seed in proptest::prelude::any::<[u8; 32]>(),
        s_nonce in proptest::prelude::any::<[u8; 32]>(),
        cb in proptest::prelude::any::<Option<[u8; 32]>>(),
        response in "[A-Z0-9]{1,8}",
        wrong in proptest::prelude::any::<bool>(),
    ) {
        let typed = if wrong { format!("{response}X") } else { response.to_lowercase() };
        let agreed = random_login((c_seed, h_seed), s_nonce, cb, &response, &typed);
        proptest::prop_assert_eq!(agreed.unwrap(), !wrong);
    }
}

#[test]
fn a_re_enrollment_opens_only_in_the_session_that_sealed_it() {
    use kasane_protocol::wire::EnrolledPair;
    let (client, host) = login();
    let pairs = vec![EnrolledPair {
        prompt: "A1".into(),
        salt: vec![1; 16],
        verifier: vec![2; 32],
    }];
    let bytes = client
        .seal_passwd(
            vec![3; kasane_protocol::opaque::RECORD_LEN],
            pairs.clone(),
            [4; 32],
        )
        .unwrap();
    let opened = host.open_passwd(&bytes).unwrap();
    assert_eq!((opened.pairs, opened.replaces), (pairs.clone(), [4; 32]));
    // Any changed byte (the verifier, or the record the change replaces) breaks the MAC.
    let mut changed = kasane_protocol::PasswdFinish::decode(&bytes).unwrap();
    changed.pairs[0].verifier[0] ^= 1;
    assert!(host.open_passwd(&changed.encode().unwrap()).is_err());
    let mut changed = kasane_protocol::PasswdFinish::decode(&bytes).unwrap();
    changed.replaces[31] ^= 1;
    assert!(host.open_passwd(&changed.encode().unwrap()).is_err());
    // Another session's host side refuses it.
    let other = Setup {
        client_rng: b"another client",
        ..Setup::default()
    };
    let (_, other_host) = login_with(&other, [0x71; 32]);
    assert_ne!(
        other_host.secret().expose_secret(),
        host.secret().expose_secret()
    );
    assert!(other_host.open_passwd(&bytes).is_err());
}
