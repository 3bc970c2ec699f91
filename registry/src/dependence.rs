//! The input dependence check (issue 14 item 7): a transform whose auth output ignores the
//! card responses gives the same key whatever the user answers, so the password alone logs
//! in. [`check_dependence`] runs a module on one auth input and again with each response
//! changed, then with the counter, the timestamp, each nonce and the transcript hash changed
//! one at a time, and refuses it with a [`DependenceError`] naming what its output ignores:
//!
//! - every response of the input must change the output;
//! - at least one of counter, timestamp, server nonce, client nonce and transcript hash must
//!   change it (a module that ignores all five gives the same key on every login with the same
//!   answers; requiring each of them would refuse RFC 6287's OCRA, which reads the counter, the
//!   time or the transcript hash, per its suite, and never the nonces). So an OCRA suite needs
//!   `C`, `T` or `S` to be published: `OCRA-1:HOTP-SHA1-6:QN08` alone is refused.
//!
//! The input is the auth input with the fewest responses that the module derives on (OCRA
//! with a PIN reads exactly two responses and ignores any third). `kasane-registry test`,
//! `add` and `author-sign` run it (never overridable by `--force`), and the host runs it on
//! every author module before offering it. It is a black-box test: it catches a module that
//! ignores an input, not one written to recognise these particular inputs.

use kasane_abi::{DeriveInput, DeriveInputBuf, Direction, Purpose};
use kasane_sandbox::Transform;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// An input of a login that a module's auth output may ignore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginInput {
    /// `responses[i]`.
    Response(usize),
    /// `counter`.
    Counter,
    /// `timestamp`.
    Timestamp,
    /// `server_nonce`.
    ServerNonce,
    /// `client_nonce`.
    ClientNonce,
    /// `transcript_hash` (it covers both nonces in a real login; OCRA's `S` reads it).
    TranscriptHash,
}

impl std::fmt::Display for LoginInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Response(i) => write!(f, "response {i}"),
            Self::Counter => f.write_str("the counter"),
            Self::Timestamp => f.write_str("the timestamp"),
            Self::ServerNonce => f.write_str("the server nonce"),
            Self::ClientNonce => f.write_str("the client nonce"),
            Self::TranscriptHash => f.write_str("the transcript hash"),
        }
    }
}

/// The session inputs, of which the auth output must depend on at least one.
pub const SESSION_INPUTS: [LoginInput; 5] = [
    LoginInput::Counter,
    LoginInput::Timestamp,
    LoginInput::ServerNonce,
    LoginInput::ClientNonce,
    LoginInput::TranscriptHash,
];

/// Why [`check_dependence`] refused a module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DependenceError {
    /// No auth input with a response derived, so nothing shows the output depends on one.
    #[error("no auth input with a response derives, so its output cannot be shown to depend on it")]
    NoAuthInput,
    /// Changing this response leaves the auth output identical.
    #[error("the auth output ignores {input}: changing it leaves the output identical")]
    Ignores {
        /// The ignored input.
        input: LoginInput,
    },
    /// Changing the counter, the timestamp, either nonce or the transcript hash leaves the
    /// auth output identical.
    #[error(
        "the auth output ignores the counter, the timestamp, both nonces and the transcript hash: the same key on every login"
    )]
    IgnoresSession,
}

/// Generated inputs: both purposes and directions, 1..=8 challenge/response pairs, varied
/// counters and timestamps. Challenges are 8 decimal digits (valid as numeric, hex and ASCII
/// challenges); responses are 32 bytes. Deterministic, so two runs test the same inputs.
pub fn generated_inputs(params: &[u8]) -> Vec<DeriveInputBuf> {
    (0u64..16).map(|i| generated_input(i, params)).collect()
}

fn generated_input(i: u64, params: &[u8]) -> DeriveInputBuf {
    let seed = Sha256::digest(i.to_le_bytes());
    let pairs = 1 + (i as usize % 8);
    let challenge = |k: usize| format!("{:08}", (i * 7919 + k as u64 * 104_729) % 100_000_000);
    let response = |k: usize| {
        let mut h = Sha256::new();
        h.update(seed);
        h.update((k as u64).to_le_bytes());
        Zeroizing::new(h.finalize().to_vec())
    };
    DeriveInputBuf {
        purpose: if i.is_multiple_of(2) {
            Purpose::Auth
        } else {
            Purpose::Message
        },
        challenges: (0..pairs).map(|k| challenge(k).into_bytes()).collect(),
        responses: (0..pairs).map(response).collect(),
        counter: i * 1_000_003,
        timestamp: 1_700_000_000 + i * 86_400,
        seq: if i.is_multiple_of(2) { 0 } else { i },
        direction: if i % 4 == 3 {
            Direction::HostToClient
        } else {
            Direction::ClientToHost
        },
        server_nonce: seed.into(),
        client_nonce: Sha256::digest(seed).into(),
        transcript_hash: Sha256::digest(Sha256::digest(seed)).into(),
        params: params.to_vec(),
    }
}

/// The inputs the host checks a module on: the generated ones, and the first one with a
/// second response of each PIN hash length (SHA-1, SHA-256, SHA-512), as OCRA's `P` needs.
pub fn probe_inputs(params: &[u8]) -> Vec<DeriveInputBuf> {
    let mut out = generated_inputs(params);
    let first = generated_input(0, params);
    for len in [20usize, 32, 64] {
        let mut two = first.clone();
        let pin: Vec<u8> = (0..len)
            .map(|j| (j as u8).wrapping_mul(37) ^ 0x5c)
            .collect();
        two.challenges.push(b"00000001".to_vec());
        two.responses.push(Zeroizing::new(pin));
        out.push(two);
    }
    out
}

/// The auth output of `input`, or `None` if the module refuses it.
fn auth_output(transform: &Transform, input: &DeriveInputBuf) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(input.encode().ok()?);
    let decoded = DeriveInput::decode(&bytes).ok()?;
    let derived = transform.derive(&decoded).ok()?;
    Some(Zeroizing::new(derived.key.as_bytes().to_vec()))
}

/// `input` with `what` changed (every byte of a response or nonce flipped, the counter plus
/// one, the timestamp plus 48 hours: longer than any OCRA time step).
fn changed(input: &DeriveInputBuf, what: LoginInput) -> DeriveInputBuf {
    let mut x = input.clone();
    let flip = |b: &mut u8| *b ^= 0xff;
    match what {
        LoginInput::Response(i) => match x.responses.get_mut(i) {
            Some(r) if r.is_empty() => r.push(0),
            Some(r) => r.iter_mut().for_each(flip),
            None => {}
        },
        LoginInput::Counter => x.counter = x.counter.wrapping_add(1),
        LoginInput::Timestamp => {
            x.timestamp = x
                .timestamp
                .checked_add(172_800)
                .unwrap_or(x.timestamp.wrapping_sub(172_800))
        }
        LoginInput::ServerNonce => x.server_nonce.iter_mut().for_each(flip),
        LoginInput::ClientNonce => x.client_nonce.iter_mut().for_each(flip),
        LoginInput::TranscriptHash => x.transcript_hash.iter_mut().for_each(flip),
    }
    x
}

/// Checks that `transform`'s auth output depends on every response and on at least one of
/// the session inputs (see the module documentation), starting from the auth input of
/// `candidates` with the fewest responses that derives. A changed input the module refuses
/// counts as a change (a refused login does not log in).
pub fn check_dependence(
    transform: &Transform,
    candidates: &[DeriveInputBuf],
) -> Result<(), DependenceError> {
    let mut auth: Vec<&DeriveInputBuf> = candidates
        .iter()
        .filter(|c| c.purpose == Purpose::Auth && !c.responses.is_empty())
        .collect();
    auth.sort_by_key(|c| c.responses.len());
    let (base, out) = auth
        .into_iter()
        .find_map(|c| Some((c, auth_output(transform, c)?)))
        .ok_or(DependenceError::NoAuthInput)?;
    let same = |what| auth_output(transform, &changed(base, what)).as_deref() == Some(&*out);
    if let Some(i) = (0..base.responses.len()).find(|&i| same(LoginInput::Response(i))) {
        return Err(DependenceError::Ignores {
            input: LoginInput::Response(i),
        });
    }
    if SESSION_INPUTS.into_iter().all(same) {
        return Err(DependenceError::IgnoresSession);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kasane_abi::Profile;
    use kasane_sandbox::{Limits, Sandbox, SandboxConfig};

    use super::*;

    fn check(wasm: &[u8], profile: Profile, params: &str) -> Result<(), DependenceError> {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let t = sandbox
            .load(wasm, profile, Limits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        check_dependence(&t, &probe_inputs(params.as_bytes()))
    }

    fn dist(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../guest-transforms/dist/{name}.wasm",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_built_in_depends_on_its_responses_and_the_session() {
        for (name, params) in [
            ("sha256-chain", ""),
            ("hmac-sha256", ""),
            ("blake2s-keyed", ""),
            ("pbkdf2-sha256", "1000"),
            ("ocra", "OCRA-1:HOTP-SHA256-8:C-QN08"),
            ("ocra", "OCRA-1:HOTP-SHA256-0:C-QA08"),
            ("ocra", "OCRA-1:HOTP-SHA1-6:QN08-T1M"),
            ("ocra", "OCRA-1:HOTP-SHA256-8:QN08-PSHA1-S064"),
            ("ocra", "OCRA-1:HOTP-SHA512-8:C-QN08-PSHA512"),
        ] {
            assert_eq!(
                check(&dist(name), Profile::Pure, params),
                Ok(()),
                "{name} {params}"
            );
        }
        assert_eq!(check(&dist("sha256-wasi-c"), Profile::Wasi, ""), Ok(()));
    }

    #[test]
    fn an_ocra_suite_bound_to_no_session_input_is_refused() {
        assert_eq!(
            check(&dist("ocra"), Profile::Pure, "OCRA-1:HOTP-SHA1-6:QN08"),
            Err(DependenceError::IgnoresSession)
        );
    }

    #[test]
    fn a_module_that_derives_nothing_has_no_auth_input() {
        // ocra without a suite refuses every input.
        assert_eq!(
            check(&dist("ocra"), Profile::Pure, ""),
            Err(DependenceError::NoAuthInput)
        );
    }

    #[test]
    fn changed_inputs_differ_in_exactly_what_they_name() {
        let base = generated_input(2, b"");
        for what in [LoginInput::Response(1)].into_iter().chain(SESSION_INPUTS) {
            let x = changed(&base, what);
            assert_ne!(x.encode().ok(), base.encode().ok(), "{what}");
            assert_eq!(x.challenges, base.challenges);
        }
        assert_eq!(
            changed(&base, LoginInput::Response(1)).responses[0],
            base.responses[0]
        );
    }
}
