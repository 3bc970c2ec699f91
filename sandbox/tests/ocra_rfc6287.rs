//! Every test vector of RFC 6287 Appendix C, run through the `ocra` module in the sandbox and
//! through the native OCRA reference; both must give the RFC's value.
//!
//! The expected values are RFC 6287 Appendix C's tables, cross-checked against two public
//! implementations' copies of them (liboath's `tst_ocra_algo.c`, rust-oath's tests) and
//! against the native reference. Appendix C.2 has four mutual tables: SHA256-8:QA08 server
//! and client, SHA512-8:QA08 server and SHA512-8:QA08-PSHA1 client; there is no
//! SHA256-8:QA08-PSHA1 table in the RFC.

mod common;

use common::native::{self, OcraHash};
use common::{builtin, derive, load, sandbox};
use kasane_abi::DeriveInputBuf;
use zeroize::Zeroizing;

const SEED: &[u8] = b"12345678901234567890";
const SEED32: &[u8] = b"12345678901234567890123456789012";
const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
/// The RFC's T for its time-based vectors, in minutes.
const T_132D0B6: u64 = 0x132d0b6;

/// One vector: suite, key, counter, Q, with the PIN "1234" or not, timestamp in seconds,
/// expected OCRA value.
struct Vector {
    suite: &'static str,
    key: &'static [u8],
    counter: u64,
    q: &'static str,
    pin: bool,
    timestamp: u64,
    expected: &'static str,
}

const fn v(
    suite: &'static str,
    key: &'static [u8],
    counter: u64,
    q: &'static str,
    pin: bool,
    timestamp: u64,
    expected: &'static str,
) -> Vector {
    Vector {
        suite,
        key,
        counter,
        q,
        pin,
        timestamp,
        expected,
    }
}

const T1M: u64 = T_132D0B6 * 60;

/// RFC 6287 Appendix C, every table in order.
const VECTORS: &[Vector] = &[
    // C.1 One-way challenge-response: OCRA-1:HOTP-SHA1-6:QN08.
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "00000000",
        false,
        0,
        "237653",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "11111111",
        false,
        0,
        "243178",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "22222222",
        false,
        0,
        "653583",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "33333333",
        false,
        0,
        "740991",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "44444444",
        false,
        0,
        "608993",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "55555555",
        false,
        0,
        "388898",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "66666666",
        false,
        0,
        "816933",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "77777777",
        false,
        0,
        "224598",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "88888888",
        false,
        0,
        "750600",
    ),
    v(
        "OCRA-1:HOTP-SHA1-6:QN08",
        SEED,
        0,
        "99999999",
        false,
        0,
        "294470",
    ),
    // OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1.
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        0,
        "12345678",
        true,
        0,
        "65347737",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        1,
        "12345678",
        true,
        0,
        "86775851",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        2,
        "12345678",
        true,
        0,
        "78192410",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        3,
        "12345678",
        true,
        0,
        "71565254",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        4,
        "12345678",
        true,
        0,
        "10104329",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        5,
        "12345678",
        true,
        0,
        "65983500",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        6,
        "12345678",
        true,
        0,
        "70069104",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        7,
        "12345678",
        true,
        0,
        "91771096",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        8,
        "12345678",
        true,
        0,
        "75011558",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        SEED32,
        9,
        "12345678",
        true,
        0,
        "08522129",
    ),
    // OCRA-1:HOTP-SHA256-8:QN08-PSHA1.
    v(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        SEED32,
        0,
        "00000000",
        true,
        0,
        "83238735",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        SEED32,
        0,
        "11111111",
        true,
        0,
        "01501458",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        SEED32,
        0,
        "22222222",
        true,
        0,
        "17957585",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        SEED32,
        0,
        "33333333",
        true,
        0,
        "86776967",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        SEED32,
        0,
        "44444444",
        true,
        0,
        "86807031",
    ),
    // OCRA-1:HOTP-SHA512-8:C-QN08.
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        0,
        "00000000",
        false,
        0,
        "07016083",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        1,
        "11111111",
        false,
        0,
        "63947962",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        2,
        "22222222",
        false,
        0,
        "70123924",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        3,
        "33333333",
        false,
        0,
        "25341727",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        4,
        "44444444",
        false,
        0,
        "33203315",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        5,
        "55555555",
        false,
        0,
        "34205738",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        6,
        "66666666",
        false,
        0,
        "44343969",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        7,
        "77777777",
        false,
        0,
        "51946085",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        8,
        "88888888",
        false,
        0,
        "20403879",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:C-QN08",
        SEED64,
        9,
        "99999999",
        false,
        0,
        "31409299",
    ),
    // OCRA-1:HOTP-SHA512-8:QN08-T1M.
    v(
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        SEED64,
        0,
        "00000000",
        false,
        T1M,
        "95209754",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        SEED64,
        0,
        "11111111",
        false,
        T1M,
        "55907591",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        SEED64,
        0,
        "22222222",
        false,
        T1M,
        "22048402",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        SEED64,
        0,
        "33333333",
        false,
        T1M,
        "24218844",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        SEED64,
        0,
        "44444444",
        false,
        T1M,
        "36209546",
    ),
    // C.2 Mutual challenge-response, server computation: OCRA-1:HOTP-SHA256-8:QA08.
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "CLI22220SRV11110",
        false,
        0,
        "28247970",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "CLI22221SRV11111",
        false,
        0,
        "01984843",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "CLI22222SRV11112",
        false,
        0,
        "65387857",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "CLI22223SRV11113",
        false,
        0,
        "03351211",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "CLI22224SRV11114",
        false,
        0,
        "83412541",
    ),
    // Client computation: OCRA-1:HOTP-SHA256-8:QA08.
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SRV11110CLI22220",
        false,
        0,
        "15510767",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SRV11111CLI22221",
        false,
        0,
        "90175646",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SRV11112CLI22222",
        false,
        0,
        "33777207",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SRV11113CLI22223",
        false,
        0,
        "95285278",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SRV11114CLI22224",
        false,
        0,
        "28934924",
    ),
    // Server computation: OCRA-1:HOTP-SHA512-8:QA08.
    v(
        "OCRA-1:HOTP-SHA512-8:QA08",
        SEED64,
        0,
        "CLI22220SRV11110",
        false,
        0,
        "79496648",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08",
        SEED64,
        0,
        "CLI22221SRV11111",
        false,
        0,
        "76831980",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08",
        SEED64,
        0,
        "CLI22222SRV11112",
        false,
        0,
        "12250499",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08",
        SEED64,
        0,
        "CLI22223SRV11113",
        false,
        0,
        "90856481",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08",
        SEED64,
        0,
        "CLI22224SRV11114",
        false,
        0,
        "12761449",
    ),
    // Client computation: OCRA-1:HOTP-SHA512-8:QA08-PSHA1.
    v(
        "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
        SEED64,
        0,
        "SRV11110CLI22220",
        true,
        0,
        "18806276",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
        SEED64,
        0,
        "SRV11111CLI22221",
        true,
        0,
        "70020315",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
        SEED64,
        0,
        "SRV11112CLI22222",
        true,
        0,
        "01600026",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
        SEED64,
        0,
        "SRV11113CLI22223",
        true,
        0,
        "18951020",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
        SEED64,
        0,
        "SRV11114CLI22224",
        true,
        0,
        "32528969",
    ),
    // C.3 Plain signature: OCRA-1:HOTP-SHA256-8:QA08.
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SIG10000",
        false,
        0,
        "53095496",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SIG11000",
        false,
        0,
        "04110475",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SIG12000",
        false,
        0,
        "31331128",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SIG13000",
        false,
        0,
        "76028668",
    ),
    v(
        "OCRA-1:HOTP-SHA256-8:QA08",
        SEED32,
        0,
        "SIG14000",
        false,
        0,
        "46554205",
    ),
    // OCRA-1:HOTP-SHA512-8:QA10-T1M.
    v(
        "OCRA-1:HOTP-SHA512-8:QA10-T1M",
        SEED64,
        0,
        "SIG1000000",
        false,
        T1M,
        "77537423",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA10-T1M",
        SEED64,
        0,
        "SIG1100000",
        false,
        T1M,
        "31970405",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA10-T1M",
        SEED64,
        0,
        "SIG1200000",
        false,
        T1M,
        "10235557",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA10-T1M",
        SEED64,
        0,
        "SIG1300000",
        false,
        T1M,
        "95213541",
    ),
    v(
        "OCRA-1:HOTP-SHA512-8:QA10-T1M",
        SEED64,
        0,
        "SIG1400000",
        false,
        T1M,
        "65360607",
    ),
];

/// The module's input for a vector (docs/TRANSFORMS.md mapping): params = suite,
/// responses = [K, P?], challenges = [Q], counter = C, timestamp = T * step.
fn input(v: &Vector) -> DeriveInputBuf {
    let mut responses = vec![Zeroizing::new(v.key.to_vec())];
    if v.pin {
        responses.push(Zeroizing::new(OcraHash::Sha1.digest(b"1234")));
    }
    DeriveInputBuf {
        params: v.suite.as_bytes().to_vec(),
        challenges: vec![v.q.as_bytes().to_vec()],
        responses,
        counter: v.counter,
        timestamp: v.timestamp,
        ..Default::default()
    }
}

fn label(v: &Vector) -> String {
    format!("{} C={} Q={} T={}", v.suite, v.counter, v.q, v.timestamp)
}

#[test]
fn the_table_has_every_appendix_c_vector() {
    // 10 + 10 + 5 + 10 + 5 one-way, 4 × 5 mutual, 5 + 5 signature.
    assert_eq!(VECTORS.len(), 70);
    assert_eq!(T1M, 1_206_446_760);
    assert_eq!(
        common::hex(&OcraHash::Sha1.digest(b"1234")),
        "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"
    );
}

#[test]
fn native_ocra_gives_every_rfc6287_appendix_c_value() {
    for v in VECTORS {
        let pin = OcraHash::Sha1.digest(b"1234");
        let raw = native::ocra_raw(
            v.suite.as_bytes(),
            v.key,
            v.counter,
            v.q.as_bytes(),
            v.pin.then_some(pin.as_slice()),
            &[],
            v.timestamp / 60,
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", label(v)));
        assert_eq!(String::from_utf8(raw).unwrap(), v.expected, "{}", label(v));
        // The same through the module's input mapping.
        let mapped = native::ocra(&input(v)).unwrap();
        assert_eq!(
            String::from_utf8(mapped).unwrap(),
            v.expected,
            "mapped {}",
            label(v)
        );
    }
}

#[test]
fn ocra_module_gives_every_rfc6287_appendix_c_value() {
    let sb = sandbox();
    let t = load(&sb, builtin("ocra"));
    let mut failures = Vec::new();
    for v in VECTORS {
        match derive(&t, &input(v)) {
            Ok(d) if d.key.as_bytes() == v.expected.as_bytes() => {}
            Ok(d) => failures.push(format!(
                "{}: got {:?}, RFC says {}",
                label(v),
                String::from_utf8_lossy(d.key.as_bytes()),
                v.expected
            )),
            Err(e) => failures.push(format!("{}: error {e:?}", label(v))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        VECTORS.len(),
        failures.join("\n")
    );
}
