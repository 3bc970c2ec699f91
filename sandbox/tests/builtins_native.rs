//! Every built-in transform in `guest-transforms/dist/`, run through the sandbox, against an
//! independent native implementation of its specification (docs/TRANSFORMS.md): generated
//! inputs must give the same bytes, and the documented refusals the same guest error codes.

mod common;

use common::native::{self, NativeError};
use common::{
    Builtin, builtin, derive, describe, hex, load, random_input, random_input_for,
    random_ocra_input, rng, sandbox, typical_input, typical_input_for,
};
use kasane_abi::DeriveInputBuf;
use kasane_sandbox::{SandboxError, Transform};
use rand::rngs::StdRng;
use zeroize::Zeroizing;

/// Generated cases per built-in.
const CASES: u64 = 1000;

/// Runs one input through the module and the native reference; they must agree on the key
/// or on the refusal.
fn assert_agrees(b: Builtin, t: &Transform, input: &DeriveInputBuf, case: &str) {
    let want = (b.native)(input);
    let got = derive(t, input);
    match (&want, &got) {
        (Ok(w), Ok(d)) => assert_eq!(
            hex(d.key.as_bytes()),
            hex(w),
            "{} {case}: module and native differ on {}",
            b.name,
            describe(input)
        ),
        (Err(e), Err(SandboxError::Guest(code))) => assert_eq!(
            *code,
            e.code(),
            "{} {case}: module refused with another code than native ({e:?}) on {}",
            b.name,
            describe(input)
        ),
        _ => panic!(
            "{} {case}: native {:?} but module {:?} on {}",
            b.name,
            want.as_ref().map(|k| hex(k)),
            got.as_ref().map(|d| hex(d.key.as_bytes())),
            describe(input)
        ),
    }
}

/// `CASES` inputs from `generate` (seeded with `seed`) through module and native.
fn check_generated(name: &str, seed: u64, mut generate: impl FnMut(&mut StdRng) -> DeriveInputBuf) {
    let b = builtin(name);
    let sb = sandbox();
    let t = load(&sb, b);
    let mut rng = rng(seed);
    for case in 0..CASES {
        let input = generate(&mut rng);
        assert!(
            (b.native)(&input).is_ok(),
            "generator made an input native refuses: {}",
            describe(&input)
        );
        assert_agrees(b, &t, &input, &format!("seed {seed} case {case}"));
    }
}

/// The module's refusal of `input` must be exactly `SandboxError::Guest(code)`, and native
/// must refuse it the same way.
fn assert_refused(name: &str, input: &DeriveInputBuf, want: NativeError) {
    let b = builtin(name);
    assert_eq!(
        (b.native)(input),
        Err(want),
        "native on {}",
        describe(input)
    );
    let sb = sandbox();
    let t = load(&sb, b);
    match derive(&t, input) {
        Err(SandboxError::Guest(code)) => assert_eq!(
            code,
            want.code(),
            "{name}: wrong guest code on {}",
            describe(input)
        ),
        other => panic!(
            "{name}: expected Guest({}) on {}, got {:?}",
            want.code(),
            describe(input),
            other.map(|d| hex(d.key.as_bytes()))
        ),
    }
}

#[test]
fn native_primitives_match_published_known_answers() {
    use blake2::Blake2sMac256;
    use hmac::digest::{KeyInit, Mac};
    // RFC 7693 / BLAKE2 reference keyed KAT: key 00..1f, empty message.
    let key: Vec<u8> = (0u8..32).collect();
    let mac = <Blake2sMac256 as KeyInit>::new_from_slice(&key).unwrap();
    assert_eq!(
        hex(&mac.finalize().into_bytes()),
        "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"
    );
    // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64).
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passwd", b"salt", 1, &mut out);
    assert_eq!(
        hex(&out),
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
         49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
    );
    // RFC 6287 Appendix C: SHA-1 of the PIN "1234".
    assert_eq!(
        hex(&native::OcraHash::Sha1.digest(b"1234")),
        "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"
    );
}

/// The native references against a third implementation of docs/TRANSFORMS.md (Python's
/// `hashlib`/`hmac`, computed once by hand from the spec, with `ctx` built field by field).
#[test]
fn native_references_match_an_independent_python_computation() {
    let input = DeriveInputBuf {
        purpose: kasane_abi::Purpose::Message,
        challenges: vec![b"12345678".to_vec(), b"A7".to_vec(), vec![]],
        responses: vec![
            Zeroizing::new(vec![0x30; 32]),
            Zeroizing::new(b"xyz".to_vec()),
        ],
        counter: 17,
        timestamp: 1_700_000_000,
        seq: 5,
        direction: kasane_abi::Direction::HostToClient,
        server_nonce: [0x11; 32],
        client_nonce: [0x22; 32],
        transcript_hash: [0x33; 32],
        params: b"7".to_vec(),
    };
    let expected: [(common::NativeFn, &str); 5] = [
        (
            native::sha256_chain,
            "976dea5f9bbc4fa4b1a5472b5dd82f96212eec538a2aec0e89c7d95b00dd0e49",
        ),
        (
            native::hmac_sha256,
            "68d4279bd252f42626db7cdf4a6702ca26ffba5f8ac8b48608d37d946c34c1ca",
        ),
        (
            native::blake2s_keyed,
            "259ae570333c68d6669937d290eb64220c0c5e1edcc7407bcaf62494c423c846",
        ),
        (
            native::pbkdf2_sha256,
            "7a549accf58c660b6141e9cc71e57c3d5837f15e7b9492feb0ad94b5852e35d9",
        ),
        (
            native::sha256_wasi_c,
            "d26c1bb8b34b2b350af327d10bbd888532f6cbff068be79deee054e16dd96a0f",
        ),
    ];
    for (i, (f, want)) in expected.into_iter().enumerate() {
        assert_eq!(hex(&f(&input).unwrap()), want, "reference {i}");
    }
}

#[test]
fn native_ctx_is_the_encoding_without_responses() {
    let input = typical_input(b"P");
    let ctx = native::ctx(&input).unwrap();
    let full = input.encode().unwrap();
    // Header, then the 4 challenges, then a zero response count, then params.
    let challenges_end =
        kasane_abi::HEADER_LEN + 4 + input.challenges.iter().map(|c| 4 + c.len()).sum::<usize>();
    assert_eq!(ctx[..challenges_end], full[..challenges_end]);
    assert_eq!(ctx[challenges_end..challenges_end + 4], 0u32.to_le_bytes());
    assert_eq!(ctx[challenges_end + 4..], [1, 0, 0, 0, b'P']);
    assert_eq!(full.len() - ctx.len(), 4 * (4 + 32));
}

#[test]
fn sha256_chain_matches_native_on_generated_inputs() {
    check_generated("sha256-chain", 1, |rng| {
        random_input_for(builtin("sha256-chain"), rng)
    });
}

#[test]
fn hmac_sha256_matches_native_on_generated_inputs() {
    check_generated("hmac-sha256", 2, |rng| {
        random_input_for(builtin("hmac-sha256"), rng)
    });
}

#[test]
fn blake2s_keyed_matches_native_on_generated_inputs() {
    check_generated("blake2s-keyed", 3, |rng| {
        random_input_for(builtin("blake2s-keyed"), rng)
    });
}

#[test]
fn pbkdf2_sha256_matches_native_on_generated_inputs() {
    check_generated("pbkdf2-sha256", 4, |rng| {
        random_input_for(builtin("pbkdf2-sha256"), rng)
    });
}

#[test]
fn pbkdf2_sha256_matches_native_at_10000_iterations() {
    let b = builtin("pbkdf2-sha256");
    let sb = sandbox();
    let t = load(&sb, b);
    assert_agrees(b, &t, &typical_input(b"10000"), "10000 iterations");
    let mut rng = rng(44);
    let input = random_input(&mut rng, b"10000".to_vec());
    assert_agrees(b, &t, &input, "10000 iterations, generated input");
}

#[test]
fn ocra_matches_native_on_generated_inputs() {
    check_generated("ocra", 5, random_ocra_input);
}

#[test]
#[cfg(feature = "wasi")]
fn sha256_wasi_c_matches_native_on_generated_inputs() {
    check_generated("sha256-wasi-c", 6, |rng| {
        random_input_for(builtin("sha256-wasi-c"), rng)
    });
}

/// docs/TRANSFORMS.md says `now = timestamp`, but WASI clocks are u64 nanoseconds: up to
/// `u64::MAX / 10^9` seconds the module matches native; one second later `clock_gettime`
/// fails and the module reports `Internal` (-6) rather than hashing a wrapped time.
#[test]
#[cfg(feature = "wasi")]
fn sha256_wasi_c_beyond_the_wasi_clock_range() {
    let b = builtin("sha256-wasi-c");
    let sb = sandbox();
    let t = load(&sb, b);
    let mut input = typical_input(b"");
    input.timestamp = common::WASI_MAX_TIMESTAMP;
    assert_agrees(b, &t, &input, "last representable timestamp");
    for ts in [common::WASI_MAX_TIMESTAMP + 1, u64::MAX] {
        input.timestamp = ts;
        match derive(&t, &input) {
            Err(SandboxError::Guest(code)) => {
                assert_eq!(
                    code,
                    kasane_abi::GuestError::Internal.code(),
                    "timestamp {ts}"
                )
            }
            other => panic!(
                "timestamp {ts}: expected Guest(-6), got {:?}",
                other.map(|d| hex(d.key.as_bytes()))
            ),
        }
    }
}

#[test]
fn every_builtin_refuses_an_input_without_responses() {
    for b in common::available_builtins() {
        let mut input = typical_input_for(b);
        input.responses.clear();
        assert_refused(b.name, &input, NativeError::MissingInput);
    }
}

#[test]
fn pbkdf2_refuses_malformed_iteration_counts() {
    for params in [
        &b"0"[..],
        b"abc",
        b"01",
        b"",
        b"-1",
        b"+1",
        b" 1",
        b"1 ",
        b"1000001",
        b"99999999999",
    ] {
        let input = typical_input(params);
        assert_refused("pbkdf2-sha256", &input, NativeError::BadParams);
    }
}

#[test]
fn ocra_refuses_suites_that_do_not_parse() {
    for suite in [
        "",
        "OCRA-1",
        "OCRA-2:HOTP-SHA1-6:QN08",
        "OCRA-1:HOTP-MD5-6:QN08",
        "OCRA-1:TOTP-SHA1-6:QN08",
        "OCRA-1:HOTP-SHA1-6:",
        "OCRA-1:HOTP-SHA1-6:QZ08",
        "OCRA-1:HOTP-SHA1-6:C",
        "OCRA-1:HOTP-SHA1-11:QN08",
        "OCRA-1:HOTP-SHA1-3:QN08",
        "OCRA-1:HOTP-SHA1-6:QN08-PSHA384",
        "OCRA-1:HOTP-SHA1-6:QN08-T1X",
        "OCRA-1:HOTP-SHA1-6:QN08:extra",
    ] {
        let mut input = typical_input_for(builtin("ocra"));
        input.params = suite.as_bytes().to_vec();
        assert_refused("ocra", &input, NativeError::BadParams);
    }
}

#[test]
fn ocra_refuses_missing_or_malformed_inputs() {
    let base = |suite: &str, q: &[u8]| DeriveInputBuf {
        params: suite.as_bytes().to_vec(),
        challenges: vec![q.to_vec()],
        responses: vec![Zeroizing::new(b"12345678901234567890".to_vec())],
        ..Default::default()
    };
    // No challenge at all.
    let mut no_q = base("OCRA-1:HOTP-SHA1-6:QN08", b"");
    no_q.challenges.clear();
    assert_refused("ocra", &no_q, NativeError::MissingInput);
    // A Q that does not match its format.
    assert_refused(
        "ocra",
        &base("OCRA-1:HOTP-SHA1-6:QN08", b"12a45678"),
        NativeError::MissingInput,
    );
    assert_refused(
        "ocra",
        &base("OCRA-1:HOTP-SHA1-6:QH08", b"12g45678"),
        NativeError::MissingInput,
    );
    // A Q that does not fit in 128 bytes.
    assert_refused(
        "ocra",
        &base("OCRA-1:HOTP-SHA1-6:QA64", &[b'x'; 129]),
        NativeError::MissingInput,
    );
    assert_refused(
        "ocra",
        &base("OCRA-1:HOTP-SHA1-6:QH64", &[b'a'; 257]),
        NativeError::MissingInput,
    );
    // P missing, or of the wrong length.
    let mut no_p = base("OCRA-1:HOTP-SHA1-6:QN08-PSHA1", b"12345678");
    assert_refused("ocra", &no_p, NativeError::MissingInput);
    no_p.responses.push(Zeroizing::new(vec![0; 32]));
    assert_refused("ocra", &no_p, NativeError::MissingInput);
}

/// Prints the fuel each built-in burns on the typical login input (run with
/// `--nocapture`); asserts the run succeeds and is metered.
#[test]
fn fuel_used_on_a_typical_login_input() {
    let sb = sandbox();
    for b in common::available_builtins() {
        let t = load(&sb, b);
        let input = typical_input_for(b);
        let d = derive(&t, &input).unwrap_or_else(|e| panic!("{}: {e:?}", b.name));
        assert_eq!(
            d.key.as_bytes(),
            (b.native)(&input).unwrap().as_slice(),
            "{}",
            b.name
        );
        assert!(d.fuel_used > 0, "{}: no fuel metered", b.name);
        println!(
            "fuel {:>14} {:>12} (params {:?})",
            b.name,
            d.fuel_used,
            String::from_utf8_lossy(b.params)
        );
        if b.name == "sha256-wasi-c" {
            assert!(
                !d.diagnostics.is_empty(),
                "the C module prints a diagnostic line"
            );
        }
    }
}
