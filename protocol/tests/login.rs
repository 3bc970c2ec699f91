//! A full login between an in-process client and host, and every way it must fail.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

mod common;

use common::{Setup, fake_transform, login, run_to_response};
use ed25519_dalek::SigningKey;
use kasane_abi::Direction;
use kasane_protocol::wire::{HelloResponse, Message, Profile, SealedMessage};
use kasane_protocol::{
    ClientHello, EphemeralSecret, HostHello, HostHelloParams, Padding, ProtocolError, Session,
};

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
    let (host, client, resp) = run_to_response(&s);
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
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
    let (host, _, resp) = run_to_response(&s);
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    let (b, _) = host.accept(&resp, &t_auth, [0x70; 32]).unwrap();
    assert_ne!(a.secret().expose_secret(), b.secret().expose_secret());
}

#[test]
fn differing_exporter_values_fail_at_the_password_step() {
    let host_key = SigningKey::from_bytes(&[9; 32]);
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure],
    )
    .unwrap();
    let (host, resp) = HostHello::respond(
        client.request_bytes(),
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes([3; 32]),
            server_nonce: [4; 32],
            login_id: [5; 16],
            host_key: &host_key,
            channel_binding: Some(&[0xAA; 32]),
        },
    )
    .unwrap();
    let client = client
        .receive(&resp, &[host_key.verifying_key()], Some(&[0xBB; 32]))
        .unwrap();
    let (_, pw) = client.request("alice", b"pw").unwrap();
    assert!(matches!(host.receive(&pw), Err(ProtocolError::Decrypt)));
}

#[test]
fn host_asking_for_channel_binding_without_exporter_is_refused() {
    let s = Setup {
        client_cb: None,
        ..Setup::default()
    };
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure],
    )
    .unwrap();
    let (_, resp) = HostHello::respond(
        client.request_bytes(),
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes([3; 32]),
            server_nonce: [4; 32],
            login_id: [5; 16],
            host_key: &s.host_key,
            channel_binding: s.host_cb.as_ref(),
        },
    )
    .unwrap();
    assert!(matches!(
        client.receive(&resp, &[s.host_key.verifying_key()], None),
        Err(ProtocolError::ChannelBinding {
            host: true,
            local: false
        })
    ));
}

fn hello_pair(host_key: &SigningKey) -> (ClientHello, Vec<u8>) {
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap();
    let (_, resp) = HostHello::respond(
        client.request_bytes(),
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes([3; 32]),
            server_nonce: [4; 32],
            login_id: [5; 16],
            host_key,
            channel_binding: None,
        },
    )
    .unwrap();
    (client, resp)
}

#[test]
fn another_host_key_is_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let (client, resp) = hello_pair(&key);
    let other = SigningKey::from_bytes(&[8; 32]);
    assert!(matches!(
        client.receive(&resp, &[other.verifying_key()], None),
        Err(ProtocolError::HostKey)
    ));
}

#[test]
fn every_altered_signed_field_breaks_the_signature() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let alter: [fn(&mut HelloResponse); 5] = [
        |r| r.login_id[0] ^= 1,
        |r| r.server_nonce[0] ^= 1,
        |r| r.channel_binding = !r.channel_binding,
        |r| r.server_ephemeral = EphemeralSecret::from_bytes([7; 32]).public_key(),
        |r| r.signature.0[0] ^= 1,
    ];
    for f in alter {
        let (client, resp) = hello_pair(&key);
        let mut r = HelloResponse::decode(&resp).unwrap();
        f(&mut r);
        let err = client
            .receive(&r.encode().unwrap(), &[key.verifying_key()], Some(&[0; 32]))
            .unwrap_err();
        assert!(matches!(err, ProtocolError::BadSignature), "{err:?}");
    }
}

#[test]
fn signature_covers_the_client_hello() {
    // A host answer made for another client hello does not verify for this one.
    let key = SigningKey::from_bytes(&[9; 32]);
    let (_, resp) = hello_pair(&key);
    let other = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [0xFF; 32],
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap();
    assert!(matches!(
        other.receive(&resp, &[key.verifying_key()], None),
        Err(ProtocolError::BadSignature)
    ));
}

#[test]
fn wrong_response_verifiers_give_a_refused_receipt() {
    let s = Setup {
        client_verifiers: common::verifiers(b"wrong"),
        ..Setup::default()
    };
    let (host, _, resp) = run_to_response(&s);
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    assert!(matches!(
        host.accept(&resp, &t_auth, [0; 32]),
        Err(ProtocolError::ReceiptMismatch)
    ));
}

#[test]
fn tampered_receipt_is_refused() {
    let s = Setup::default();
    let (host, _, mut resp) = run_to_response(&s);
    let last = resp.len() - 1;
    resp[last] ^= 1;
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    assert!(matches!(
        host.accept(&resp, &t_auth, [0; 32]),
        Err(ProtocolError::ReceiptMismatch)
    ));
}

#[test]
fn response_for_another_bundle_is_refused() {
    let s = Setup::default();
    let (host, _, mut resp) = run_to_response(&s);
    resp[2] ^= 1; // first byte of bundle_id
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    assert!(matches!(
        host.accept(&resp, &t_auth, [0; 32]),
        Err(ProtocolError::BundleMismatch)
    ));
}

#[test]
fn tampered_confirm_is_refused() {
    let s = Setup::default();
    let (host, client, resp) = run_to_response(&s);
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    let (_, mut accept) = host.accept(&resp, &t_auth, [0; 32]).unwrap();
    let last = accept.len() - 1;
    accept[last] ^= 1;
    assert!(matches!(
        client.receive(&accept),
        Err(ProtocolError::ConfirmMismatch)
    ));
}

#[test]
fn password_for_another_login_is_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure],
    )
    .unwrap();
    let (host, resp) = HostHello::respond(
        client.request_bytes(),
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes([3; 32]),
            server_nonce: [4; 32],
            login_id: [5; 16],
            host_key: &key,
            channel_binding: None,
        },
    )
    .unwrap();
    let client = client.receive(&resp, &[key.verifying_key()], None).unwrap();
    let (_, mut pw) = client.request("alice", b"pw").unwrap();
    // Swap the user id: the password AAD binds it.
    let mut req = kasane_protocol::PasswordRequest::decode(&pw).unwrap();
    req.user_id = "mallory".into();
    let swapped = req.encode().unwrap();
    let (host2, _) = {
        let c = ClientHello::from_parts(
            EphemeralSecret::from_bytes([1; 32]),
            [2; 32],
            vec![Profile::Pure],
        )
        .unwrap();
        HostHello::respond(
            c.request_bytes(),
            HostHelloParams {
                ephemeral: EphemeralSecret::from_bytes([3; 32]),
                server_nonce: [4; 32],
                login_id: [5; 16],
                host_key: &key,
                channel_binding: None,
            },
        )
        .unwrap()
    };
    assert!(matches!(
        host2.receive(&swapped),
        Err(ProtocolError::Decrypt)
    ));
    pw[2] ^= 1; // first byte of login_id
    assert!(matches!(
        host.receive(&pw),
        Err(ProtocolError::LoginMismatch)
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
    for (field, f) in tamper {
        // Logins are deterministic here, so a fresh one is the same host session.
        let (_, mut h) = login();
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
    let (_, mut h2) = login();
    let mut m = sealed.clone();
    let last = m.ciphertext.len() - 1;
    m.ciphertext[last] ^= 0x80;
    let t = fake_transform(&h2.prepare_open(&m).unwrap());
    assert!(matches!(h2.open(&m, &t), Err(ProtocolError::Decrypt)));
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
    let (_, mut other) = {
        let s = Setup::default();
        let (host, client, resp) = run_to_response(&s);
        let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
        let (hs, accept) = host.accept(&resp, &t_auth, [0x71; 32]).unwrap();
        (client.receive(&accept).unwrap(), hs)
    };
    let (m, t) = seal_one(&mut c);
    assert!(matches!(
        other.open(&m, &t),
        Err(ProtocolError::WrongSession)
    ));
}

#[test]
fn longest_password_fits_and_a_longer_one_is_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let long_user = "u".repeat(kasane_protocol::wire::MAX_USER_ID_LEN);
    for (len, ok) in [
        (kasane_protocol::wire::MAX_PASSWORD_LEN, true),
        (1025, false),
    ] {
        let (client, resp) = hello_pair(&key);
        let client = client.receive(&resp, &[key.verifying_key()], None).unwrap();
        let result = client.request(&long_user, &vec![b'p'; len]);
        assert_eq!(result.is_ok(), ok, "password of {len} bytes");
        if let Ok((_, bytes)) = result {
            assert!(kasane_protocol::PasswordRequest::decode(&bytes).is_ok());
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

#[test]
fn host_states_stored_between_requests_give_the_same_session() {
    let s = Setup::default();
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure],
    )
    .unwrap();
    let (host, hello) = HostHello::respond(
        client.request_bytes(),
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes([3; 32]),
            server_nonce: [4; 32],
            login_id: [5; 16],
            host_key: &s.host_key,
            channel_binding: s.host_cb.as_ref(),
        },
    )
    .unwrap();
    // Another replica picks the login up after each step.
    let parts = host.into_parts();
    assert!(!format!("{parts:?}").contains("DhSecret(["));
    let host = kasane_protocol::HostAwaitPassword::from_parts(parts).unwrap();
    let client = client
        .receive(&hello, &[s.host_key.verifying_key()], s.client_cb.as_ref())
        .unwrap();
    let (client, pw) = client.request("alice", b"pw").unwrap();
    let (_, host) = host.receive(&pw).unwrap();
    let (host, bundle) = host.send(common::bundle()).unwrap();
    let host = kasane_protocol::HostChallenge::from_parts(host.into_parts()).unwrap();
    let client = client.receive(&bundle).unwrap();
    assert_eq!(client.transcript_hash(), host.transcript_hash());
    let t = fake_transform(&client.auth_input(&s.client_verifiers).unwrap());
    let (client, resp) = client.respond(&t).unwrap();
    let t = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    let (hs, accept) = host.accept(&resp, &t, [9; 32]).unwrap();
    let cs = client.receive(&accept).unwrap();
    assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
}

#[test]
fn host_parts_of_the_wrong_stage_are_refused() {
    let (host, _, _) = run_to_response(&Setup::default());
    let parts = host.into_parts();
    assert!(kasane_protocol::HostAwaitPassword::from_parts(parts).is_err());
}

#[test]
fn any_key_of_the_host_role_is_accepted() {
    let old = SigningKey::from_bytes(&[8; 32]);
    let new = SigningKey::from_bytes(&[9; 32]);
    let (client, resp) = hello_pair(&new);
    assert_eq!(
        HelloResponse::decode(&resp).unwrap().host_key_id(),
        <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(
            new.verifying_key().as_bytes()
        ))
    );
    assert!(
        client
            .receive(&resp, &[old.verifying_key(), new.verifying_key()], None)
            .is_ok()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn random_logins_agree_and_a_wrong_verifier_never_does(
        c_eph in proptest::prelude::any::<[u8; 32]>(),
        h_eph in proptest::prelude::any::<[u8; 32]>(),
        c_nonce in proptest::prelude::any::<[u8; 32]>(),
        s_nonce in proptest::prelude::any::<[u8; 32]>(),
        cb in proptest::prelude::any::<Option<[u8; 32]>>(),
        verifier in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        wrong in proptest::prelude::any::<bool>(),
    ) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let client =
            ClientHello::from_parts(EphemeralSecret::from_bytes(c_eph), c_nonce, vec![Profile::Pure])
                .unwrap();
        let Ok((host, hello)) = HostHello::respond(
            client.request_bytes(),
            HostHelloParams {
                ephemeral: EphemeralSecret::from_bytes(h_eph),
                server_nonce: s_nonce,
                login_id: [5; 16],
                host_key: &key,
                channel_binding: cb.as_ref(),
            },
        ) else {
            // Only an all-zero shared secret may be refused; random keys never give one.
            return Err(proptest::test_runner::TestCaseError::fail("hello refused"));
        };
        let client = client.receive(&hello, &[key.verifying_key()], cb.as_ref()).unwrap();
        let (client, pw) = client.request("u", b"pw").unwrap();
        let (_, host) = host.receive(&pw).unwrap();
        let (host, bundle) = host.send(common::bundle()).unwrap();
        let client = client.receive(&bundle).unwrap();
        let host_v = vec![
            zeroize::Zeroizing::new(verifier.clone()),
            zeroize::Zeroizing::new(b"2".to_vec()),
        ];
        let mut client_v = host_v.clone();
        if wrong {
            client_v[0].push(0);
        }
        let t = fake_transform(&client.auth_input(&client_v).unwrap());
        let (client, resp) = client.respond(&t).unwrap();
        let t = fake_transform(&host.auth_input(&host_v).unwrap());
        match host.accept(&resp, &t, [1; 32]) {
            Ok((hs, accept)) => {
                proptest::prop_assert!(!wrong);
                let cs = client.receive(&accept).unwrap();
                proptest::prop_assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
            }
            Err(e) => {
                proptest::prop_assert!(wrong);
                proptest::prop_assert!(matches!(e, ProtocolError::ReceiptMismatch));
            }
        }
    }
}
