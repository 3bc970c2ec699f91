//! Helpers shared by the sandbox integration tests: the built-in modules from
//! `guest-transforms/dist/`, running an owned input through a transform, and seeded input
//! generators.
#![allow(
    dead_code,
    reason = "each test crate uses its own subset of the shared helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure here is a test failure"
)]

pub(crate) mod native;

use kasane_abi::{DeriveInput, DeriveInputBuf, Direction, Purpose};
use kasane_sandbox::{
    Allocator, Derived, Limits, Profile, Sandbox, SandboxConfig, SandboxError, Transform,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroizing;

/// Where the committed guest modules live.
pub(crate) const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-transforms/dist/");

/// A native reference: the key material, or the refusal the module must return.
pub(crate) type NativeFn = fn(&DeriveInputBuf) -> Result<Vec<u8>, native::NativeError>;

/// One built-in transform: its module name in `dist/`, profile, native reference and the
/// params of a typical registry entry.
#[derive(Clone, Copy)]
pub(crate) struct Builtin {
    /// File stem in `dist/`.
    pub(crate) name: &'static str,
    /// Profile the module needs.
    pub(crate) profile: Profile,
    /// Independent native implementation.
    pub(crate) native: NativeFn,
    /// Params of a typical registry entry.
    pub(crate) params: &'static [u8],
}

/// Every built-in, in the order of docs/TRANSFORMS.md.
pub(crate) const BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "sha256-chain",
        profile: Profile::Pure,
        native: native::sha256_chain,
        params: b"",
    },
    Builtin {
        name: "hmac-sha256",
        profile: Profile::Pure,
        native: native::hmac_sha256,
        params: b"",
    },
    Builtin {
        name: "blake2s-keyed",
        profile: Profile::Pure,
        native: native::blake2s_keyed,
        params: b"",
    },
    Builtin {
        name: "pbkdf2-sha256",
        profile: Profile::Pure,
        native: native::pbkdf2_sha256,
        params: b"1000",
    },
    Builtin {
        name: "ocra",
        profile: Profile::Pure,
        native: native::ocra,
        params: b"OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
    },
    Builtin {
        name: "sha256-wasi-c",
        profile: Profile::Wasi,
        native: native::sha256_wasi_c,
        params: b"",
    },
];

/// The built-ins this build can run (`sha256-wasi-c` needs the cargo feature `wasi`).
pub(crate) fn available_builtins() -> Vec<Builtin> {
    BUILTINS
        .into_iter()
        .filter(|b| kasane_sandbox::profile_available(b.profile))
        .collect()
}

/// The built-in named `name`.
pub(crate) fn builtin(name: &str) -> Builtin {
    BUILTINS
        .into_iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no built-in named {name}"))
}

/// The bytes of `dist/<name>.wasm`.
pub(crate) fn module_bytes(name: &str) -> Vec<u8> {
    let path = format!("{DIST}{name}.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Generous limits: the tests check outputs, not budgets.
pub(crate) fn generous_limits() -> Limits {
    Limits {
        fuel: 1_000_000_000,
        ..Default::default()
    }
}

/// A sandbox whose caps admit [`generous_limits`] (a registry entry's limits are capped by
/// the sandbox's `max_limits`).
pub(crate) fn sandbox_with(allocator: Allocator) -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator,
        max_limits: generous_limits(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{allocator:?} sandbox: {e:?}"))
}

/// A pooling sandbox whose caps admit [`generous_limits`].
pub(crate) fn sandbox() -> Sandbox {
    sandbox_with(Allocator::Pooling)
}

/// Loads a built-in with generous limits.
pub(crate) fn load(sandbox: &Sandbox, b: Builtin) -> Transform {
    sandbox
        .load(&module_bytes(b.name), b.profile, generous_limits())
        .unwrap_or_else(|e| panic!("loading {}: {e:?}", b.name))
}

/// Runs an owned input through a transform, via its canonical encoding.
pub(crate) fn derive(t: &Transform, input: &DeriveInputBuf) -> Result<Derived, SandboxError> {
    let bytes = input
        .encode()
        .expect("generated input within the ABI limits");
    let borrowed = DeriveInput::decode(&bytes).expect("canonical encoding decodes");
    t.derive(&borrowed)
}

/// The login-shaped input of the benches and fuel reports: 4 challenges of 2–8 bytes,
/// 4 responses of 32 bytes.
pub(crate) fn typical_input(params: &[u8]) -> DeriveInputBuf {
    DeriveInputBuf {
        purpose: Purpose::Auth,
        challenges: vec![
            b"12345678".to_vec(),
            b"A7".to_vec(),
            b"0042".to_vec(),
            b"zq81x".to_vec(),
        ],
        responses: (0u8..4)
            .map(|i| Zeroizing::new(vec![0x30 + i; 32]))
            .collect(),
        counter: 17,
        timestamp: 1_700_000_000,
        seq: 0,
        direction: Direction::ClientToHost,
        server_nonce: [0x11; 32],
        client_nonce: [0x22; 32],
        transcript_hash: [0x33; 32],
        params: params.to_vec(),
    }
}

/// A seeded generator, so every failure names a reproducible case.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A length in `0..=max`, biased to short lengths and hitting both ends.
fn length(rng: &mut StdRng, max: usize) -> usize {
    match rng.gen_range(0..10) {
        0 => 0,
        1 => max,
        2 | 3 => rng.gen_range(0..=max),
        _ => rng.gen_range(0..=max.min(48)),
    }
}

/// A u64 that is often an edge value.
fn edge_u64(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..8) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.gen_range(0..1000),
        3 => rng.gen_range(1_000_000_000..2_000_000_000),
        _ => rng.r#gen(),
    }
}

fn bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.r#gen()).collect()
}

/// A random input: purpose, direction, counter, timestamp, seq, nonces and transcript hash
/// all vary; `0..=16` challenges and `1..=16` responses of `0..=1024` bytes; `params` as given.
pub(crate) fn random_input(rng: &mut StdRng, params: Vec<u8>) -> DeriveInputBuf {
    // One input in 50 is as large as the ABI allows in both lists.
    let full = rng.gen_range(0..50) == 0;
    let n_challenges = if full { 16 } else { rng.gen_range(0..=16) };
    let n_responses = if full { 16 } else { rng.gen_range(1..=16) };
    let item_len = |rng: &mut StdRng| {
        if full {
            kasane_abi::MAX_ITEM_LEN
        } else {
            length(rng, kasane_abi::MAX_ITEM_LEN)
        }
    };
    DeriveInputBuf {
        purpose: if rng.gen_bool(0.5) {
            Purpose::Auth
        } else {
            Purpose::Message
        },
        direction: if rng.gen_bool(0.5) {
            Direction::ClientToHost
        } else {
            Direction::HostToClient
        },
        challenges: (0..n_challenges)
            .map(|_| {
                let n = item_len(rng);
                bytes(rng, n)
            })
            .collect(),
        responses: (0..n_responses)
            .map(|_| {
                let n = item_len(rng);
                Zeroizing::new(bytes(rng, n))
            })
            .collect(),
        counter: edge_u64(rng),
        timestamp: edge_u64(rng),
        seq: edge_u64(rng),
        server_nonce: rng.r#gen(),
        client_nonce: rng.r#gen(),
        transcript_hash: rng.r#gen(),
        params,
    }
}

/// Random params for transforms that only hash them: `0..=64` arbitrary bytes, sometimes up
/// to the ABI limit.
pub(crate) fn random_params(rng: &mut StdRng) -> Vec<u8> {
    let n = if rng.gen_range(0..20) == 0 {
        rng.gen_range(0..=kasane_abi::MAX_PARAMS_LEN)
    } else {
        rng.gen_range(0..=64)
    };
    bytes(rng, n)
}

/// OCRA suites the generated OCRA inputs cover: SHA1/256/512, with and without C, P, S and
/// T, QA/QN/QH, digits 0/4/6/8/10.
pub(crate) const OCRA_SUITES: [&str; 14] = [
    "OCRA-1:HOTP-SHA1-6:QN08",
    "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
    "OCRA-1:HOTP-SHA512-8:QN08-T1M",
    "OCRA-1:HOTP-SHA256-8:QA08",
    "OCRA-1:HOTP-SHA512-10:QA10-T1M",
    "OCRA-1:HOTP-SHA1-0:QH40",
    "OCRA-1:HOTP-SHA256-0:C-QA64-PSHA256-S064-T30S",
    "OCRA-1:HOTP-SHA512-0:QN64-PSHA512-S128",
    "OCRA-1:HOTP-SHA1-8:C-QH20-S064-T2H",
    "OCRA-1:HOTP-SHA256-6:QA32-S512",
    "OCRA-1:HOTP-SHA1-10:C-QN16-PSHA1-T5M",
    "OCRA-1:HOTP-SHA512-6:C-QH64-PSHA256-S256-T48H",
    "OCRA-1:HOTP-SHA256-4:QN04-T59S",
    "OCRA-1:HOTP-SHA1-8:C-QA16-PSHA512-S032",
];

/// A valid challenge for an OCRA `Q` format: printable ASCII (up to 128 characters, the
/// declared `nn` is not enforced), decimal digits (leading zeros allowed) or hex digits of
/// either case and any length up to 256.
pub(crate) fn random_ocra_q(rng: &mut StdRng, format: native::QFormat) -> Vec<u8> {
    const HEX: &[u8] = b"0123456789abcdefABCDEF";
    match format {
        native::QFormat::Alpha => {
            let n = rng.gen_range(1..=128);
            (0..n).map(|_| rng.gen_range(0x20u8..=0x7e)).collect()
        }
        native::QFormat::Numeric => {
            let n = rng.gen_range(1..=64);
            (0..n).map(|_| rng.gen_range(b'0'..=b'9')).collect()
        }
        native::QFormat::Hex => {
            let n = rng.gen_range(1..=256);
            (0..n).map(|_| HEX[rng.gen_range(0..HEX.len())]).collect()
        }
    }
}

/// A random input for the `ocra` module: one of [`OCRA_SUITES`], a key of 1..=128 bytes, a
/// valid Q, the PIN hash when the suite has P, and sometimes extra (ignored) challenges and
/// responses.
pub(crate) fn random_ocra_input(rng: &mut StdRng) -> DeriveInputBuf {
    let suite = OCRA_SUITES[rng.gen_range(0..OCRA_SUITES.len())];
    let parsed = native::parse_suite(suite.as_bytes()).expect("listed suites parse");
    let mut input = random_input(rng, suite.as_bytes().to_vec());
    let key_len = rng.gen_range(1..=128);
    let mut responses = vec![Zeroizing::new(bytes(rng, key_len))];
    if let Some(p) = parsed.pin {
        let pin: Vec<u8> = (0..4).map(|_| rng.gen_range(b'0'..=b'9')).collect();
        responses.push(Zeroizing::new(p.digest(&pin)));
    }
    if rng.gen_bool(0.2) {
        responses.push(Zeroizing::new(bytes(rng, 16)));
    }
    input.responses = responses;
    let mut challenges = vec![random_ocra_q(rng, parsed.q_format)];
    if rng.gen_bool(0.2) {
        challenges.push(bytes(rng, 8));
    }
    input.challenges = challenges;
    input
}

/// An iteration count `1..=50` as the `pbkdf2-sha256` params, so many cases stay fast.
pub(crate) fn random_pbkdf2_params(rng: &mut StdRng) -> Vec<u8> {
    rng.gen_range(1u32..=50).to_string().into_bytes()
}

/// The latest timestamp a WASI guest can read: `clock_time_get` returns u64 nanoseconds, so
/// a session timestamp above `u64::MAX / 10^9` seconds (year 2554) is not representable and
/// the C module's `clock_gettime` fails (see `sha256_wasi_c_beyond_the_wasi_clock_range`).
pub(crate) const WASI_MAX_TIMESTAMP: u64 = u64::MAX / 1_000_000_000;

/// A valid random input for built-in `b` (for `sha256-wasi-c`, with a timestamp the WASI
/// clock can represent).
pub(crate) fn random_input_for(b: Builtin, rng: &mut StdRng) -> DeriveInputBuf {
    match b.name {
        "ocra" => random_ocra_input(rng),
        "pbkdf2-sha256" => {
            let params = random_pbkdf2_params(rng);
            random_input(rng, params)
        }
        "sha256-wasi-c" => {
            let params = random_params(rng);
            let mut input = random_input(rng, params);
            if input.timestamp > WASI_MAX_TIMESTAMP {
                input.timestamp = if rng.gen_bool(0.5) {
                    WASI_MAX_TIMESTAMP
                } else {
                    input.timestamp % (WASI_MAX_TIMESTAMP + 1)
                };
            }
            input
        }
        _ => {
            let params = random_params(rng);
            random_input(rng, params)
        }
    }
}

/// The typical login input for built-in `b` (for `ocra`: a 32-byte key and the SHA-1 of the
/// PIN "1234", which its typical suite needs).
pub(crate) fn typical_input_for(b: Builtin) -> DeriveInputBuf {
    let mut input = typical_input(b.params);
    if b.name == "ocra" {
        input.responses = vec![
            Zeroizing::new(b"12345678901234567890123456789012".to_vec()),
            Zeroizing::new(native::OcraHash::Sha1.digest(b"1234")),
        ];
    }
    input
}

/// Hex for failure messages.
pub(crate) fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// A one-line description of an input for failure messages (no response bytes).
pub(crate) fn describe(input: &DeriveInputBuf) -> String {
    format!(
        "{input:?} challenge lens {:?} response lens {:?} params {:?}",
        input.challenges.iter().map(Vec::len).collect::<Vec<_>>(),
        input.responses.iter().map(|r| r.len()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&input.params),
    )
}
