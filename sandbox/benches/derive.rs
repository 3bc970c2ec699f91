//! Micro-benchmarks of the sandbox: a hot derive (module loaded, pooling allocator) against
//! the same algorithm run natively, the fixed cost of one call (a module that does nothing),
//! a cold compile of each built-in, a load from a warm compile cache, and a breakdown of
//! those costs into raw wasmtime steps, validation and the cache's integrity check.
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
    for (name, profile) in BUILTINS.into_iter().filter(|(_, p)| p.is_available()) {
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
    for (name, profile) in BUILTINS.into_iter().filter(|(_, p)| p.is_available()) {
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

/// Where the time goes: the same steps done directly with wasmtime on the sandbox's own engine
/// (the floor under `sandbox.derive`/`load`), wasmparser validation alone, and the HMAC the
/// compile cache computes over a compiled module before deserializing it.
fn breakdown(c: &mut Criterion) {
    use hmac::{Hmac, Mac};
    use wasmtime::{Linker, Module, Store};

    let sb = pooling();
    let engine = sb.engine().clone();
    let mut g = c.benchmark_group("breakdown");

    let noop = Module::from_binary(&engine, &wat::parse_str(NOOP_WAT).unwrap()).unwrap();
    let pre = Linker::<()>::new(&engine).instantiate_pre(&noop).unwrap();
    g.bench_function("wasmtime/instantiate+call/noop-module", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            store.set_fuel(1_000_000).unwrap();
            store.set_epoch_deadline(1_000);
            let instance = pre.instantiate(&mut store).unwrap();
            let derive = instance
                .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "kasane_derive")
                .unwrap();
            derive.call(&mut store, (1024, 0, 2048, 64)).unwrap()
        })
    });

    // The ABI protocol done by hand (instantiate, two kasane_alloc calls, write the input,
    // kasane_derive, read the key), first on the sandbox's engine, then on an engine whose
    // pool keeps 1 MiB of each linear memory resident (memset on reuse instead of madvise).
    let input = login_input().encode().unwrap();
    let tuned = tuned_engine();
    for (label, engine) in [
        ("sandbox-engine", &engine),
        ("keep-resident-engine", &tuned),
    ] {
        for (name, wasm) in [
            ("noop-module", wat::parse_str(NOOP_WAT).unwrap()),
            ("sha256-chain", module("sha256-chain")),
        ] {
            let m = Module::from_binary(engine, &wasm).unwrap();
            let pre = Linker::<()>::new(engine).instantiate_pre(&m).unwrap();
            g.bench_function(format!("wasmtime/abi-call/{label}/{name}"), |b| {
                b.iter(|| abi_call(engine, &pre, black_box(&input)))
            });
        }
    }

    for (name, profile) in BUILTINS.into_iter().filter(|(_, p)| p.is_available()) {
        let wasm = module(name);
        g.bench_function(format!("validate/{name}"), |b| {
            b.iter(|| sb.validate(black_box(&wasm), profile, &limits()).unwrap())
        });
        g.bench_function(format!("wasmtime/compile/{name}"), |b| {
            b.iter(|| Module::from_binary(&engine, black_box(&wasm)).unwrap())
        });
        let compiled = Module::from_binary(&engine, &wasm)
            .unwrap()
            .serialize()
            .unwrap();
        println!(
            "breakdown: {name}: {} bytes of wasm, {} bytes compiled",
            wasm.len(),
            compiled.len()
        );
        g.bench_function(format!("hmac-sha256-of-compiled/{name}"), |b| {
            b.iter(|| {
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&[7; 32]).unwrap();
                mac.update(black_box(&compiled));
                mac.finalize()
            })
        });
    }
    g.finish();
}

/// One derive by hand with wasmtime, as the sandbox does it (minus limiter, checks and
/// zeroizing).
fn abi_call(engine: &wasmtime::Engine, pre: &wasmtime::InstancePre<()>, input: &[u8]) -> Vec<u8> {
    let mut store = wasmtime::Store::new(engine, ());
    store.set_fuel(1_000_000_000).unwrap();
    store.set_epoch_deadline(1_000);
    let instance = pre.instantiate(&mut store).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "kasane_alloc")
        .unwrap();
    let derive = instance
        .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "kasane_derive")
        .unwrap();
    let len = i32::try_from(input.len()).unwrap();
    let in_ptr = alloc.call(&mut store, len).unwrap();
    let out_ptr = alloc.call(&mut store, 64).unwrap();
    memory
        .write(&mut store, usize::try_from(in_ptr).unwrap(), input)
        .unwrap();
    let n = derive.call(&mut store, (in_ptr, len, out_ptr, 64)).unwrap();
    let mut out = vec![0u8; usize::try_from(n).unwrap()];
    memory
        .read(&store, usize::try_from(out_ptr).unwrap(), &mut out)
        .unwrap();
    out
}

/// The sandbox's determinism and pooling settings (config.rs), plus `keep_resident`.
fn tuned_engine() -> wasmtime::Engine {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(256)
        .total_memories(256)
        .total_tables(512)
        .total_component_instances(0)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .max_memory_size(16 << 20)
        .table_elements(10_000)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(1 << 16);
    let mut c = wasmtime::Config::new();
    c.cranelift_nan_canonicalization(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    wasmtime::Engine::new(&c).unwrap()
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
    targets = hot_derive, cold_compile, cache_load, breakdown
}
criterion_main!(benches);
