//! Test vectors of our own: fixed inputs and a deterministic RNG → every message and
//! intermediate value of a v2 login and of sealed messages, pinned byte for byte in
//! `tests/vectors/login_v2.json`. Any change to the wire format, the transcript, the key
//! schedule or the OPAQUE suite fails this test.
//!
//! Regenerate (only for an intended, versioned change):
//! `KASANE_WRITE_VECTORS=1 cargo test -p kasane-protocol --test vectors`.
//! `tests/vectors/crosscheck.py` recomputes every step Kasane adds on top of OPAQUE from the
//! JSON with Python's `cryptography` package (Ed25519, HKDF, HMAC, AES-GCM) and hashlib.
//! OPAQUE itself is checked against RFC 9807's vectors by `tests/opaque_rfc9807.rs`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

mod common;

use std::collections::BTreeMap;

use common::{TestRng, bundle, fake_transform};
use ed25519_dalek::SigningKey;
use kasane_abi::Direction;
use kasane_protocol::opaque::{self, Binding, ClientLoginFinish, ExportKey, ServerKeys};
use kasane_protocol::schedule::{SessionSecret, bundle_key, session_id};
use kasane_protocol::seal::{message_aad, message_key};
use kasane_protocol::transcript::start_signature_digest;
use kasane_protocol::verifier::ResponseKey;
use kasane_protocol::wire::{FinishRequest, Message, Profile, StartRequest, StartResponse};
use kasane_protocol::{ClientStart, HostStart, HostStartParams, Padding, Session, Transcript};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/login_v2.json");

const USER: &str = "alice";
const PASSWORD: &[u8] = b"correct horse";
/// The card's responses as stored at enrollment, and as the user types them.
const STORED: [&str; 2] = ["K3Q9", "7XWP"];
const TYPED: [&str; 2] = ["k3q9", " 7xwp "];
const RNG_ENROLLMENT: &[u8] = b"kasane/vectors/enrollment";
const RNG_CLIENT: &[u8] = b"kasane/vectors/client";
const RNG_HOST: &[u8] = b"kasane/vectors/host";
const RNG_CLIENT_FINISH: &[u8] = b"kasane/vectors/client-finish";
const HOST_SEED: [u8; 32] = [0x66; 32];
const EXPORTER: [u8; 32] = [0x77; 32];
const SERVER_NONCE: [u8; 32] = [0x44; 32];
const LOGIN_ID: [u8; 16] = [0x55; 16];
const TOKEN: [u8; 32] = [0x88; 32];

#[derive(Default)]
struct Vectors(BTreeMap<String, String>);

impl Vectors {
    fn put(&mut self, key: &str, bytes: &[u8]) {
        let old = self.0.insert(key.to_owned(), hex::encode(bytes));
        assert!(old.is_none(), "{key} recorded twice");
    }
}

fn inputs(v: &mut Vectors) {
    v.put("in_user_id", USER.as_bytes());
    v.put("in_password", PASSWORD);
    v.put("in_response_1", TYPED[0].as_bytes());
    v.put("in_response_2", TYPED[1].as_bytes());
    v.put("in_rng_enrollment", RNG_ENROLLMENT);
    v.put("in_rng_client", RNG_CLIENT);
    v.put("in_rng_host", RNG_HOST);
    v.put("in_rng_client_finish", RNG_CLIENT_FINISH);
    v.put("in_host_signing_seed", &HOST_SEED);
    v.put("in_tls_exporter", &EXPORTER);
    v.put("in_server_nonce", &SERVER_NONCE);
    v.put("in_login_id", &LOGIN_ID);
    v.put("in_session_token", &TOKEN);
}

/// Enrollment: the host's OPAQUE keys, the record and the stored response verifiers.
fn enroll(v: &mut Vectors) -> (ServerKeys, Vec<u8>, ExportKey) {
    let mut rng = TestRng::new(RNG_ENROLLMENT);
    let keys = ServerKeys::generate(&mut rng);
    let ctx = opaque::context(None);
    let (record, export_key) =
        opaque::register(&mut rng, &keys, PASSWORD, &Binding::for_user(USER, &ctx)).unwrap();
    v.put("opaque_server_public_key", &keys.public_key());
    v.put("opaque_record", &record);
    (keys, record, export_key)
}

/// OPAQUE alone, replayed with the same RNG streams the state machines use (KE1 and KE2 are
/// their first draws): the session key and export key the login is built on.
fn opaque_alone(
    v: &mut Vectors,
    keys: &ServerKeys,
    record: &[u8],
    messages: (&StartRequest, &StartResponse, &FinishRequest),
) -> ClientLoginFinish {
    let context = opaque::context(Some(&EXPORTER));
    let ids = Binding::for_user(USER, &context);
    let (state, ke1): (opaque::ClientLoginState, _) =
        opaque::login_start(&mut TestRng::new(RNG_CLIENT), PASSWORD).unwrap();
    let (server, ke2) =
        opaque::login_respond(&mut TestRng::new(RNG_HOST), keys, Some(record), &ke1, &ids).unwrap();
    let mut rng = TestRng::new(RNG_CLIENT_FINISH);
    let fin = opaque::login_finish(state, &mut rng, PASSWORD, &ke2, &ids).unwrap();
    let host_key = opaque::login_verify(server, &fin.ke3, &ids).unwrap();
    assert_eq!(host_key.expose_secret(), fin.session_key.expose_secret());
    assert_eq!(ke1, messages.0.ke1);
    assert_eq!(ke2, messages.1.ke2);
    assert_eq!(fin.ke3, messages.2.ke3);
    v.put("opaque_context", &context);
    v.put("opaque_ke1", &ke1);
    v.put("opaque_ke2", &ke2);
    v.put("opaque_ke3", &fin.ke3);
    v.put("opaque_session_key", fin.session_key.expose_secret());
    v.put("opaque_export_key", fin.export_key.expose_secret());
    fin
}

fn transcript(messages: &[(&[u8], &[u8])]) -> [u8; 32] {
    let mut t = Transcript::new();
    for (label, bytes) in messages {
        t.append(label, bytes);
    }
    t.hash()
}

/// The channel-binding append as the transcript makes it.
fn cb_append() -> Vec<u8> {
    [&[1u8][..], &EXPORTER].concat()
}

/// The login, both sides; returns the two sessions (client, host).
fn login(v: &mut Vectors) -> (Session, Session) {
    let (keys, record, enrolled_export) = enroll(v);
    let host_key = SigningKey::from_bytes(&HOST_SEED);
    let profiles = vec![Profile::Pure, Profile::Wasi];
    let client = ClientStart::new(&mut TestRng::new(RNG_CLIENT), USER, PASSWORD, profiles).unwrap();
    let start_req = client.request_bytes().to_vec();
    let params = HostStartParams {
        keys: &keys,
        record: Some(&record),
        server_nonce: SERVER_NONCE,
        login_id: LOGIN_ID,
        host_key: &host_key,
        channel_binding: Some(&EXPORTER),
    };
    let (host, start_resp) =
        HostStart::respond(&mut TestRng::new(RNG_HOST), &start_req, params).unwrap();
    let trusted = [host_key.verifying_key()];
    let mut rng = TestRng::new(RNG_CLIENT_FINISH);
    let (client, finish) = client
        .receive(&mut rng, &start_resp, &trusted, Some(&EXPORTER))
        .unwrap();
    v.put("msg_start_request", &start_req);
    v.put("msg_start_response", &start_resp);
    v.put("msg_finish_request", &finish);
    let resp = StartResponse::decode(&start_resp).unwrap();
    let digest = start_signature_digest(&start_req, &LOGIN_ID, &resp.ke2, &SERVER_NONCE, true);
    v.put("start_signature_digest", &digest);
    let messages = (
        &StartRequest::decode(&start_req).unwrap(),
        &resp,
        &FinishRequest::decode(&finish).unwrap(),
    );
    let fin = opaque_alone(v, &keys, &record, messages);
    assert_eq!(
        fin.export_key.expose_secret(),
        enrolled_export.expose_secret()
    );
    let th_finish = transcript(&[
        (b"start-request", &start_req),
        (b"start-response", &start_resp),
        (b"channel-binding", &cb_append()),
        (b"finish-request", &finish),
    ]);
    v.put("th_finish", &th_finish);
    let k = bundle_key(&fin.session_key, &th_finish);
    v.put("k_bundle", k.expose_key());
    v.put("n_bundle", k.nonce());
    let host = host.finish(&finish).unwrap();
    let (host, sealed) = host.send(bundle()).unwrap();
    v.put("msg_sealed_bundle", &sealed);
    v.put("msg_challenge_bundle", &bundle().encode().unwrap());
    let client = client.receive(&sealed).unwrap();
    challenge(v, client, host, &fin)
}

/// From the bundle to both sessions: verifiers, the auth transform, receipt and confirm.
fn challenge(
    v: &mut Vectors,
    client: kasane_protocol::ClientChallenge,
    host: kasane_protocol::HostChallenge,
    fin: &ClientLoginFinish,
) -> (Session, Session) {
    let th_bundle = client.transcript_hash();
    assert_eq!(th_bundle, host.transcript_hash());
    v.put("th_bundle", &th_bundle);
    let response_key = ResponseKey::derive(&fin.export_key);
    v.put("k_resp", response_key.expose_secret());
    let verifiers = client.verifiers(&TYPED).unwrap();
    v.put("verifier_1", &verifiers[0]);
    v.put("verifier_2", &verifiers[1]);
    let stored: Vec<_> = (host.bundle().challenges.iter().zip(STORED))
        .map(|(c, r)| response_key.verifier(r, &c.salt).unwrap())
        .collect();
    assert_eq!(stored, verifiers);
    let auth_input = client.auth_input(&verifiers).unwrap();
    v.put("auth_input", &auth_input.encode().unwrap());
    let t_auth = fake_transform(&auth_input);
    v.put("t_auth", &t_auth);
    let (client, resp) = client.respond(&t_auth).unwrap();
    v.put("msg_response_request", &resp);
    let host_t_auth = fake_transform(&host.auth_input(&stored).unwrap());
    let (hs, accept) = host.accept(&resp, &host_t_auth, TOKEN).unwrap();
    v.put("msg_response_accept", &accept);
    let cs = client.receive(&accept).unwrap();
    assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
    let secret = SessionSecret::derive(&fin.session_key, &t_auth, &th_bundle).unwrap();
    assert_eq!(secret.expose_secret(), cs.secret().expose_secret());
    v.put("session_secret", secret.expose_secret());
    v.put("k_receipt", &*secret.receipt_key());
    v.put("k_confirm", &*secret.confirm_key());
    v.put("receipt", &secret.receipt(&th_bundle));
    v.put("th_response", cs.transcript_hash());
    v.put("confirm", &secret.confirm(cs.transcript_hash(), &TOKEN));
    v.put("session_id", &session_id(&TOKEN));
    assert_eq!(cs.session_id(), &session_id(&TOKEN));
    (cs, hs)
}

/// One sealed message from `from` to `to`, every value under `name_*`.
fn sealed_one(
    v: &mut Vectors,
    (from, to): (&mut Session, &mut Session),
    pad: Padding,
    name: &str,
    plaintext: &[u8],
) {
    from.set_padding(pad);
    let (seq, input) = from.prepare_seal().unwrap();
    let t_msg = fake_transform(&input);
    let sealed = from.seal(seq, &t_msg, "bob", plaintext).unwrap();
    let key = message_key(from.secret(), &t_msg, sealed.direction, seq).unwrap();
    let opened = to
        .open(&sealed, &fake_transform(&to.prepare_open(&sealed).unwrap()))
        .unwrap();
    assert_eq!(opened.as_slice(), plaintext);
    v.put(&format!("{name}_input"), &input.encode().unwrap());
    v.put(&format!("{name}_t"), &t_msg);
    v.put(&format!("{name}_k"), key.expose_key());
    v.put(&format!("{name}_n"), key.nonce());
    let aad = message_aad(from.session_id(), sealed.direction, seq, "bob");
    v.put(&format!("{name}_aad"), &aad);
    v.put(&format!("{name}_plaintext"), plaintext);
    v.put(&format!("{name}_sealed"), &sealed.encode().unwrap());
}

fn compute() -> String {
    let mut v = Vectors::default();
    inputs(&mut v);
    let (mut cs, mut hs) = login(&mut v);
    // Client to host, seq 1, no padding; seq 2 with buckets. Host to client, seq 1.
    let c2h = (&mut cs, &mut hs);
    sealed_one(&mut v, c2h, Padding::None, "c2h_1", b"hello host");
    let c2h = (&mut cs, &mut hs);
    sealed_one(&mut v, c2h, Padding::Buckets, "c2h_2", b"padded hello");
    let h2c = (&mut hs, &mut cs);
    sealed_one(&mut v, h2c, Padding::None, "h2c_1", b"hello client");
    assert_eq!(cs.sequencer().outgoing(), Direction::ClientToHost);
    serde_json::to_string_pretty(&v.0).unwrap() + "\n"
}

fn write_requested() -> bool {
    ["KASANE_WRITE_VECTORS", "KASANE_REGEN_VECTORS"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| v == "1"))
}

#[test]
fn login_vectors_match_the_checked_in_file() {
    let got = compute();
    if write_requested() {
        std::fs::write(PATH, &got).unwrap();
    }
    let want = std::fs::read_to_string(PATH).unwrap();
    if got != want {
        let got: BTreeMap<String, String> = serde_json::from_str(&got).unwrap();
        let want: BTreeMap<String, String> = serde_json::from_str(&want).unwrap_or_default();
        let changed: Vec<_> = (got.keys().chain(want.keys()))
            .filter(|k| got.get(*k) != want.get(*k))
            .collect();
        panic!("login_v2.json differs (set KASANE_WRITE_VECTORS=1 to rewrite): {changed:?}");
    }
}

#[test]
fn the_test_rng_is_deterministic_and_label_dependent() {
    use rand_core::RngCore;
    let mut a = TestRng::new(b"x");
    let mut b = TestRng::new(b"x");
    let mut c = TestRng::new(b"y");
    let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
    a.fill_bytes(&mut x[..7]);
    a.fill_bytes(&mut x[7..]);
    b.fill_bytes(&mut y);
    c.fill_bytes(&mut z);
    assert_eq!(x, y, "chunking does not change the stream");
    assert_ne!(x, z);
    // block_0 = SHA-256(SHA-256(label) ‖ u64_be(0))
    use sha2::Digest;
    let key = sha2::Sha256::digest(b"x");
    let block0 = sha2::Sha256::new()
        .chain_update(key)
        .chain_update(0u64.to_be_bytes())
        .finalize();
    assert_eq!(&x[..32], block0.as_slice());
}
