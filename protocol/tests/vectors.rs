//! Test vectors of our own: fixed keys and nonces → every intermediate value of a login and
//! of sealed messages, pinned in `tests/vectors/login_v1.json`. Any change to the wire format,
//! the transcript or the key schedule fails this test.
//!
//! Regenerate (only for an intended, versioned change):
//! `KASANE_REGEN_VECTORS=1 cargo test -p kasane-protocol --test vectors`.
//! `tests/vectors/crosscheck.py` recomputes every value from the JSON with Python's
//! `cryptography` package (X25519, Ed25519, HKDF, HMAC, AES-GCM) and hashlib.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

mod common;

use std::collections::BTreeMap;

use common::{bundle, fake_transform, verifiers};
use ed25519_dalek::SigningKey;
use kasane_abi::Direction;
use kasane_protocol::schedule::{password_aad, password_key, session_id};
use kasane_protocol::seal::{message_aad, message_key};
use kasane_protocol::wire::{HelloRequest, HelloResponse, Message, Profile};
use kasane_protocol::{
    ClientHello, EphemeralSecret, HostHello, HostHelloParams, Padding, Transcript,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/login_v1.json");

fn compute() -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    let mut put = |k: &'static str, b: &[u8]| {
        v.insert(k, hex::encode(b));
    };
    let client_secret = [0x11u8; 32];
    let host_secret = [0x22u8; 32];
    let client_nonce = [0x33u8; 32];
    let server_nonce = [0x44u8; 32];
    let login_id = [0x55u8; 16];
    let host_seed = [0x66u8; 32];
    let exporter = [0x77u8; 32];
    let token = [0x88u8; 32];
    put("in_client_ephemeral_secret", &client_secret);
    put("in_host_ephemeral_secret", &host_secret);
    put("in_client_nonce", &client_nonce);
    put("in_server_nonce", &server_nonce);
    put("in_login_id", &login_id);
    put("in_host_signing_seed", &host_seed);
    put("in_tls_exporter", &exporter);
    put("in_user_id", b"alice");
    put("in_password", b"correct horse");
    put("in_session_token", &token);
    let vs = verifiers(b"good");
    put("in_verifier_1", &vs[0]);
    put("in_verifier_2", &vs[1]);

    let host_key = SigningKey::from_bytes(&host_seed);
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes(client_secret),
        client_nonce,
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap();
    let hello_req = client.request_bytes().to_vec();
    let (host, hello_resp) = HostHello::respond(
        &hello_req,
        HostHelloParams {
            ephemeral: EphemeralSecret::from_bytes(host_secret),
            server_nonce,
            login_id,
            host_key: &host_key,
            channel_binding: Some(&exporter),
        },
    )
    .unwrap();
    put("msg_hello_request", &hello_req);
    put("msg_hello_response", &hello_resp);

    let dh = EphemeralSecret::from_bytes(client_secret)
        .diffie_hellman(&HelloResponse::decode(&hello_resp).unwrap().server_ephemeral)
        .unwrap();
    put("dh", dh.expose_secret());
    let mut t = Transcript::new();
    t.append_message::<HelloRequest>(&hello_req);
    t.append_message::<HelloResponse>(&hello_resp);
    t.append_channel_binding(Some(&exporter));
    let th_hello = t.hash();
    put("th_hello", &th_hello);
    let kpw = password_key(&dh, &th_hello);
    put("k_password", kpw.expose_key());
    put("n_password", kpw.nonce());
    put("aad_password", &password_aad(&th_hello, &login_id, "alice"));

    let client = client
        .receive(&hello_resp, &[host_key.verifying_key()], Some(&exporter))
        .unwrap();
    let (client, pw_req) = client.request("alice", b"correct horse").unwrap();
    put("msg_password_request", &pw_req);
    let (_, host) = host.receive(&pw_req).unwrap();
    let (host, bundle_bytes) = host.send(bundle()).unwrap();
    put("msg_challenge_bundle", &bundle_bytes);
    let client = client.receive(&bundle_bytes).unwrap();
    put("th_bundle", &client.transcript_hash());
    let auth_input = client.auth_input(&vs).unwrap();
    put("auth_input", &auth_input.encode().unwrap());
    let t_auth = fake_transform(&auth_input);
    put("t_auth", &t_auth);
    let (client, resp) = client.respond(&t_auth).unwrap();
    put("msg_response_request", &resp);
    let host_t_auth = fake_transform(&host.auth_input(&vs).unwrap());
    let (mut hs, accept) = host.accept(&resp, &host_t_auth, token).unwrap();
    put("msg_response_accept", &accept);
    let mut cs = client.receive(&accept).unwrap();
    assert_eq!(cs.secret().expose_secret(), hs.secret().expose_secret());
    put("session_secret", cs.secret().expose_secret());
    put("k_receipt", &*cs.secret().receipt_key());
    put("k_confirm", &*cs.secret().confirm_key());
    put("th_final", cs.transcript_hash());
    put("session_id", &session_id(&token));

    // Client to host, seq 1, no padding; seq 2 with buckets. Host to client, seq 1.
    let sealed_one = |from: &mut kasane_protocol::Session,
                      to: &mut kasane_protocol::Session,
                      pad: Padding,
                      name: &'static str,
                      plaintext: &[u8],
                      out: &mut BTreeMap<&'static str, String>| {
        from.set_padding(pad);
        let (seq, input) = from.prepare_seal().unwrap();
        let t_msg = fake_transform(&input);
        let sealed = from.seal(seq, &t_msg, "bob", plaintext).unwrap();
        let bytes = sealed.encode().unwrap();
        let key = message_key(from.secret(), &t_msg, sealed.direction, seq).unwrap();
        let aad = message_aad(from.session_id(), sealed.direction, seq, "bob");
        let opened = to
            .open(&sealed, &fake_transform(&to.prepare_open(&sealed).unwrap()))
            .unwrap();
        assert_eq!(opened.as_slice(), plaintext);
        let keys: [(&str, Vec<u8>); 7] = [
            ("input", input.encode().unwrap()),
            ("t", t_msg),
            ("k", key.expose_key().to_vec()),
            ("n", key.nonce().to_vec()),
            ("aad", aad),
            ("plaintext", plaintext.to_vec()),
            ("sealed", bytes),
        ];
        for (k, b) in keys {
            let name: &'static str = Box::leak(format!("{name}_{k}").into_boxed_str());
            out.insert(name, hex::encode(b));
        }
    };
    sealed_one(
        &mut cs,
        &mut hs,
        Padding::None,
        "c2h_1",
        b"hello host",
        &mut v,
    );
    sealed_one(
        &mut cs,
        &mut hs,
        Padding::Buckets,
        "c2h_2",
        b"padded hello",
        &mut v,
    );
    sealed_one(
        &mut hs,
        &mut cs,
        Padding::None,
        "h2c_1",
        b"hello client",
        &mut v,
    );
    assert_eq!(cs.sequencer().outgoing(), Direction::ClientToHost);
    v
}

#[test]
fn login_vectors_match_the_checked_in_file() {
    let got = compute();
    let json = serde_json::to_string_pretty(&got).unwrap() + "\n";
    if std::env::var_os("KASANE_REGEN_VECTORS").is_some() {
        std::fs::write(PATH, &json).unwrap();
    }
    let want: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let got: BTreeMap<String, String> = got.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "vector {k} changed");
    }
    assert_eq!(got.len(), want.len(), "vector set changed");
}
