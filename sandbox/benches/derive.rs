//! Micro-benchmarks of the sandbox: a hot derive (module loaded, pooling allocator) against
//! the same algorithm run natively, the fixed cost of one call (a module that does nothing),
//! a cold compile of each built-in, and a load from a warm compile cache.
//!
//! Run with `cargo bench -p kasane-sandbox --bench derive`; results are in BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness with fixed inputs"
)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the tests; the bench uses a subset"
)]
#[path = "../tests/common/native.rs"]
mod native;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kasane_abi::{DeriveInput, DeriveInputBuf, Direction, Purpose};
use kasane_sandbox::{
    Allocator, CacheOutcome, CompileCache, Limits, Profile, Sandbox, SandboxConfig,
};
use zeroize::Zeroizing;

type NativeFn = fn(&DeriveInputBuf) -> Result<Vec<u8>, native::NativeError>;

const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-transforms/dist/");

const BUILTINS: [(&str, Profile); 6] = [
    ("sha256-chain", Profile::Pure),
    ("hmac-sha256", Profile::Pure),
    ("blake2s-keyed", Profile::Pure),
    ("pbkdf2-sha256", Profile::Pure),
    ("ocra", Profile::Pure),
    ("sha256-wasi-c", Profile::Wasi),
];

/// The smallest module the ABI accepts: a bump allocator and a derive that returns 32 zero
/// bytes without reading its input. Its derive time is the sandbox's fixed cost per call.
const NOOP_WAT: &str = r#"
(module
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 1024))
  (func (export "kasane_abi_v1"))
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32)
    (i32.const 32)))
"#;

fn module(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIST}{name}.wasm")).unwrap()
}

fn limits() -> Limits {
    Limits {
        fuel: 1_000_000_000,
        ..Default::default()
    }
}

/// A typical login: 4 challenges of 2–8 bytes, 4 responses of 32 bytes, empty params.
fn login_input() -> DeriveInputBuf {
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
        params: vec![],
    }
}

fn pooling() -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator: Allocator::Pooling,
        max_limits: limits(),
        ..Default::default()
    })
    .unwrap()
}

fn hot_derive(c: &mut Criterion) {
    let sb = pooling();
    let buf = login_input();
    let bytes = buf.encode().unwrap();
    let input = DeriveInput::decode(&bytes).unwrap();

    let mut g = c.benchmark_group("hot_derive");
    let natives: [(&str, NativeFn); 2] = [
        ("sha256-chain", native::sha256_chain),
        ("hmac-sha256", native::hmac_sha256),
    ];
    for (name, native) in natives {
        let t = sb.load(&module(name), Profile::Pure, limits()).unwrap();
        // Same bytes both ways, or the comparison means nothing.
        assert_eq!(
            t.derive(&input).unwrap().key.as_bytes(),
            native(&buf).unwrap().as_slice()
        );
        g.bench_function(format!("sandbox/{name}"), |b| {
            b.iter(|| t.derive(black_box(&input)).unwrap())
        });
        g.bench_function(format!("native/{name}"), |b| {
            b.iter(|| native(black_box(&buf)).unwrap())
        });
    }
    let noop = sb
        .load(&wat::parse_str(NOOP_WAT).unwrap(), Profile::Pure, limits())
        .unwrap();
    g.bench_function("sandbox/noop-module", |b| {
        b.iter(|| noop.derive(black_box(&input)).unwrap())
    });
    g.finish();
}

fn cold_compile(c: &mut Criterion) {
    let sb = pooling();
    let mut g = c.benchmark_group("cold_compile");
    g.sample_size(20);
    for (name, profile) in BUILTINS {
        let wasm = module(name);
        g.bench_function(name, |b| {
            b.iter(|| sb.load(black_box(&wasm), profile, limits()).unwrap())
        });
    }
    g.finish();
}

fn cache_load(c: &mut Criterion) {
    let sb = pooling();
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let mut g = c.benchmark_group("cache_load");
    for (name, profile) in BUILTINS {
        let wasm = module(name);
        // Warm the cache: the first load compiles and stores, the second must hit.
        sb.load_cached(&wasm, profile, limits(), &cache).unwrap();
        let (_, outcome) = sb.load_cached(&wasm, profile, limits(), &cache).unwrap();
        assert!(
            matches!(outcome, CacheOutcome::Hit),
            "{name}: warm cache missed"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                sb.load_cached(black_box(&wasm), profile, limits(), &cache)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hot_derive, cold_compile, cache_load
}
criterion_main!(benches);
