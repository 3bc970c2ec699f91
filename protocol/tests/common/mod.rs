//! Shared helpers: a deterministic RNG, one cached OPAQUE enrollment, a fake transform and a
//! driver for a whole v2 login.
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use kasane_abi::DeriveInputBuf;
use kasane_protocol::opaque::{self, Binding, ExportKey, ServerKeys};
use kasane_protocol::verifier::ResponseKey;
use kasane_protocol::wire::{Challenge, ChallengeBundle, ModuleRef, Profile};
use kasane_protocol::{
    ClientAwaitAccept, ClientAwaitBundle, ClientStart, HostAwaitFinish, HostChallenge, HostStart,
    HostStartParams, Session,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A deterministic stand-in for a CSPRNG: SHA-256 in counter mode,
/// `block_i = SHA-256(SHA-256(label) ‖ u64_be(i))`, bytes handed out in order. Tests only.
pub(crate) struct TestRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl TestRng {
    /// A generator named by `label` (the same label gives the same bytes).
    pub(crate) fn new(label: &[u8]) -> Self {
        Self {
            key: Sha256::digest(label).into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.block.len() {
                self.block = Sha256::new()
                    .chain_update(self.key)
                    .chain_update(self.counter.to_be_bytes())
                    .finalize()
                    .into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// The enrolled user.
pub(crate) const USER: &str = "alice";
/// Their password.
pub(crate) const PASSWORD: &[u8] = b"correct horse";
/// Their card's responses to the two challenges of [`bundle`], in order.
pub(crate) const RESPONSES: [&str; 2] = ["K3Q9", "7XWP"];

/// The host's OPAQUE keys, alice's record and the export key of her registration.
pub(crate) struct Enrolled {
    pub(crate) keys: ServerKeys,
    pub(crate) record: Vec<u8>,
    pub(crate) export_key: ExportKey,
}

/// One registration per test binary (argon2id is the slow part of a login).
pub(crate) fn enrolled() -> &'static Enrolled {
    static ENROLLED: OnceLock<Enrolled> = OnceLock::new();
    ENROLLED.get_or_init(|| {
        let mut rng = TestRng::new(b"enrollment");
        let keys = ServerKeys::generate(&mut rng);
        let ctx = opaque::context(None);
        let (record, export_key) =
            opaque::register(&mut rng, &keys, PASSWORD, &Binding::for_user(USER, &ctx)).unwrap();
        Enrolled {
            keys,
            record,
            export_key,
        }
    })
}

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

/// The verifiers the host stored at enrollment for `responses` to the challenges of `bundle`.
pub(crate) fn stored_verifiers(
    bundle: &ChallengeBundle,
    responses: &[&str],
) -> Vec<Zeroizing<Vec<u8>>> {
    let key = ResponseKey::derive(&enrolled().export_key);
    bundle
        .challenges
        .iter()
        .zip(responses)
        .map(|(c, r)| key.verifier(r, &c.salt).unwrap())
        .collect()
}

/// One login's choices. The RNG labels make every login deterministic: the same setup gives
/// the same messages and the same session.
pub(crate) struct Setup {
    pub(crate) host_key: SigningKey,
    pub(crate) client_cb: Option<[u8; 32]>,
    pub(crate) host_cb: Option<[u8; 32]>,
    pub(crate) user: &'static str,
    pub(crate) password: &'static [u8],
    /// Whether the host has a record for the name (`false`: OPAQUE answers from a fake one).
    pub(crate) known: bool,
    /// What the user types for the challenges.
    pub(crate) responses: Vec<&'static str>,
    pub(crate) client_rng: &'static [u8],
    pub(crate) host_rng: &'static [u8],
    pub(crate) server_nonce: [u8; 32],
    pub(crate) login_id: [u8; 16],
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            host_key: SigningKey::from_bytes(&[9; 32]),
            client_cb: Some([0xCB; 32]),
            host_cb: Some([0xCB; 32]),
            user: USER,
            password: PASSWORD,
            known: true,
            responses: RESPONSES.to_vec(),
            client_rng: b"client",
            host_rng: b"host",
            server_nonce: [4; 32],
            login_id: [5; 16],
        }
    }
}

impl Setup {
    /// The host's parameters for the start step.
    pub(crate) fn host_params(&self) -> HostStartParams<'_> {
        let e = enrolled();
        HostStartParams {
            keys: &e.keys,
            record: self.known.then_some(e.record.as_slice()),
            server_nonce: self.server_nonce,
            login_id: self.login_id,
            host_key: &self.host_key,
            channel_binding: self.host_cb.as_ref(),
        }
    }

    /// A fresh client start (deterministic).
    pub(crate) fn client(&self) -> ClientStart {
        let mut rng = TestRng::new(self.client_rng);
        ClientStart::new(&mut rng, self.user, self.password, vec![Profile::Pure]).unwrap()
    }
}

/// The start step: the client, the host's state and the encoded start response.
pub(crate) fn start(s: &Setup) -> (ClientStart, HostAwaitFinish, Vec<u8>) {
    let client = s.client();
    let mut rng = TestRng::new(s.host_rng);
    let (host, response) =
        HostStart::respond(&mut rng, client.request_bytes(), s.host_params()).unwrap();
    (client, host, response)
}

/// The client's side of the start response (runs argon2id once).
pub(crate) fn client_finish(
    s: &Setup,
    client: ClientStart,
    response: &[u8],
) -> Result<(ClientAwaitBundle, Vec<u8>), kasane_protocol::ProtocolError> {
    let mut rng = TestRng::new(b"client finish");
    client.receive(
        &mut rng,
        response,
        &[s.host_key.verifying_key()],
        s.client_cb.as_ref(),
    )
}

/// Runs the login up to the finish request: the client, the host and the finish bytes.
pub(crate) fn run_to_finish(s: &Setup) -> (ClientAwaitBundle, HostAwaitFinish, Vec<u8>) {
    let (client, host, response) = start(s);
    let (client, finish) = client_finish(s, client, &response).unwrap();
    (client, host, finish)
}

/// Runs the login up to the response request; returns the host state, the client state and
/// the response bytes.
pub(crate) fn run_to_response(s: &Setup) -> (HostChallenge, ClientAwaitAccept, Vec<u8>) {
    let (client, host, finish) = run_to_finish(s);
    let (host, sealed) = host.finish(&finish).unwrap().send(bundle()).unwrap();
    let client = client.receive(&sealed).unwrap();
    let verifiers = client.verifiers(&s.responses).unwrap();
    let t_auth = fake_transform(&client.auth_input(&verifiers).unwrap());
    let (client, resp) = client.respond(&t_auth).unwrap();
    (host, client, resp)
}

/// The host's transform output over the verifiers it stored for the true responses.
pub(crate) fn host_t_auth(host: &HostChallenge) -> Vec<u8> {
    let stored = stored_verifiers(host.bundle(), &RESPONSES);
    fake_transform(&host.auth_input(&stored).unwrap())
}

/// A whole good login of `s`: both sessions (client, host).
pub(crate) fn login_with(s: &Setup, token: [u8; 32]) -> (Session, Session) {
    let (host, client, resp) = run_to_response(s);
    let t_auth = host_t_auth(&host);
    let (host_session, accept) = host.accept(&resp, &t_auth, token).unwrap();
    let client_session = client.receive(&accept).unwrap();
    (client_session, host_session)
}

/// A whole good login: both sessions (client, host).
pub(crate) fn login() -> (Session, Session) {
    login_with(&Setup::default(), [0x70; 32])
}
