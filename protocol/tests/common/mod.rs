//! Shared helpers: a fake transform and a driver for a whole login.
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

use ed25519_dalek::SigningKey;
use kasane_abi::DeriveInputBuf;
use kasane_protocol::wire::{Challenge, ChallengeBundle, ModuleRef, Profile};
use kasane_protocol::{
    ClientAwaitAccept, ClientHello, EphemeralSecret, HostChallenge, HostHello, HostHelloParams,
    Session,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Stands in for the sandbox: a pure function of the encoded input, as a transform must be.
pub(crate) fn fake_transform(input: &DeriveInputBuf) -> Vec<u8> {
    let bytes = input.encode().unwrap();
    Sha256::new()
        .chain_update(b"fake-transform")
        .chain_update(&bytes)
        .finalize()
        .to_vec()
}

pub(crate) fn bundle() -> ChallengeBundle {
    ChallengeBundle {
        bundle_id: [0xB1; 16],
        challenges: vec![
            Challenge {
                prompt: "A7".into(),
                salt: vec![0x5A; 16],
            },
            Challenge {
                prompt: "C3".into(),
                salt: vec![0xA5; 16],
            },
        ],
        counter: 42,
        timestamp: 1_700_000_000,
        ticket: b"{\"signed\":\"ticket\"}".to_vec(),
        module: ModuleRef {
            name: "sha256-chain".into(),
            sha256: [0x11; 32],
            length: 4096,
            profile: Profile::Pure,
            fuel: 1_000_000,
            memory: 16 << 20,
        },
        params: b"rounds=3".to_vec(),
        expires: 1_700_000_120,
    }
}

pub(crate) fn verifiers(tag: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    vec![
        Zeroizing::new([tag, b"-1"].concat()),
        Zeroizing::new([tag, b"-2"].concat()),
    ]
}

pub(crate) struct Setup {
    pub(crate) host_key: SigningKey,
    pub(crate) client_cb: Option<[u8; 32]>,
    pub(crate) host_cb: Option<[u8; 32]>,
    pub(crate) client_verifiers: Vec<Zeroizing<Vec<u8>>>,
    pub(crate) host_verifiers: Vec<Zeroizing<Vec<u8>>>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            host_key: SigningKey::from_bytes(&[9; 32]),
            client_cb: Some([0xCB; 32]),
            host_cb: Some([0xCB; 32]),
            client_verifiers: verifiers(b"good"),
            host_verifiers: verifiers(b"good"),
        }
    }
}

/// Runs the login up to the response request; returns the host state, the client state and
/// the response bytes.
pub(crate) fn run_to_response(s: &Setup) -> (HostChallenge, ClientAwaitAccept, Vec<u8>) {
    let client = ClientHello::from_parts(
        EphemeralSecret::from_bytes([1; 32]),
        [2; 32],
        vec![Profile::Pure],
    )
    .unwrap();
    let (host, hello_resp) = HostHello::respond(
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
    let client = client
        .receive(
            &hello_resp,
            &[s.host_key.verifying_key()],
            s.client_cb.as_ref(),
        )
        .unwrap();
    let (client, pw_req) = client.request("alice", b"correct horse").unwrap();
    let (attempt, host) = host.receive(&pw_req).unwrap();
    assert_eq!(attempt.user_id, "alice");
    assert_eq!(attempt.password.as_slice(), b"correct horse");
    let (host, bundle_bytes) = host.send(bundle()).unwrap();
    let client = client.receive(&bundle_bytes).unwrap();
    let t_auth = fake_transform(&client.auth_input(&s.client_verifiers).unwrap());
    let (client, resp) = client.respond(&t_auth).unwrap();
    (host, client, resp)
}

/// A whole good login: both sessions.
pub(crate) fn login() -> (Session, Session) {
    let s = Setup::default();
    let (host, client, resp) = run_to_response(&s);
    let t_auth = fake_transform(&host.auth_input(&s.host_verifiers).unwrap());
    let (host_session, accept) = host.accept(&resp, &t_auth, [0x70; 32]).unwrap();
    let client_session = client.receive(&accept).unwrap();
    (client_session, host_session)
}
