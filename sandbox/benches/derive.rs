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

/// A second native baseline: the same two transforms over a plain scalar SHA-256 (FIPS 180-4,
/// one block at a time, no SHA extensions or SIMD), which is what the wasm guests run. The
/// `native` baseline uses RustCrypto `sha2`, which picks the CPU's SHA-NI at run time; wasm
/// has no such instructions. The bench checks both baselines give the sandbox's output.
mod scalar {
    use super::native::{self, NativeError, TAG_HMAC_SHA256, TAG_SHA256_CHAIN};
    use kasane_abi::DeriveInputBuf;

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    /// Streaming SHA-256 over [`compress`].
    #[derive(Clone)]
    struct Sha256 {
        state: [u32; 8],
        buf: [u8; 64],
        buf_len: usize,
        total: u64,
    }

    impl Sha256 {
        fn new() -> Self {
            Self {
                state: H0,
                buf: [0; 64],
                buf_len: 0,
                total: 0,
            }
        }

        fn update(&mut self, mut data: &[u8]) -> &mut Self {
            self.total += data.len() as u64;
            while !data.is_empty() {
                let n = (64 - self.buf_len).min(data.len());
                self.buf[self.buf_len..self.buf_len + n].copy_from_slice(&data[..n]);
                self.buf_len += n;
                data = &data[n..];
                if self.buf_len == 64 {
                    compress(&mut self.state, &self.buf);
                    self.buf_len = 0;
                }
            }
            self
        }

        fn finalize(&mut self) -> [u8; 32] {
            let bits = self.total * 8;
            self.update(&[0x80]);
            while self.buf_len != 56 {
                self.update(&[0]);
            }
            self.update(&bits.to_be_bytes());
            let mut out = [0u8; 32];
            for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
                o.copy_from_slice(&s.to_be_bytes());
            }
            out
        }
    }

    fn digest(data: &[u8]) -> [u8; 32] {
        Sha256::new().update(data).finalize()
    }

    /// `sha256-chain` over the scalar SHA-256.
    pub(crate) fn sha256_chain(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
        if input.responses.is_empty() {
            return Err(NativeError::MissingInput);
        }
        let mut h = Sha256::new()
            .update(TAG_SHA256_CHAIN)
            .update(&native::ctx(input)?)
            .finalize();
        for r in &input.responses {
            let len = u32::try_from(r.len()).unwrap().to_le_bytes();
            h = Sha256::new()
                .update(&h)
                .update(&len)
                .update(r.as_slice())
                .finalize();
        }
        Ok(h.to_vec())
    }

    /// `hmac-sha256` over the scalar SHA-256 (RFC 2104).
    pub(crate) fn hmac_sha256(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
        let key = native::responses_lp(input)?;
        let ctx = native::ctx(input)?;
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&digest(&key));
        } else {
            k[..key.len()].copy_from_slice(&key);
        }
        let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
        for i in 0..64 {
            ipad[i] ^= k[i];
            opad[i] ^= k[i];
        }
        let inner = Sha256::new()
            .update(&ipad)
            .update(TAG_HMAC_SHA256)
            .update(&ctx)
            .finalize();
        Ok(Sha256::new()
            .update(&opad)
            .update(&inner)
            .finalize()
            .to_vec())
    }
}

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
    let natives: [(&str, NativeFn, NativeFn); 2] = [
        ("sha256-chain", native::sha256_chain, scalar::sha256_chain),
        ("hmac-sha256", native::hmac_sha256, scalar::hmac_sha256),
    ];
    for (name, native, scalar) in natives {
        let t = sb.load(&module(name), Profile::Pure, limits()).unwrap();
        // Same bytes every way, or the comparison means nothing.
        let key = t.derive(&input).unwrap().key;
        assert_eq!(key.as_bytes(), native(&buf).unwrap().as_slice());
        assert_eq!(key.as_bytes(), scalar(&buf).unwrap().as_slice());
        g.bench_function(format!("sandbox/{name}"), |b| {
            b.iter(|| t.derive(black_box(&input)).unwrap())
        });
        g.bench_function(format!("native/{name}"), |b| {
            b.iter(|| native(black_box(&buf)).unwrap())
        });
        g.bench_function(format!("native-scalar/{name}"), |b| {
            b.iter(|| scalar(black_box(&buf)).unwrap())
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

/// `derive` (a fresh instance per call) against `derive_warm` (a reused instance, restored to
/// its snapshot after each call) on the same transforms and input: the same key and fuel,
/// checked before timing.
fn warm_derive(c: &mut Criterion) {
    let sb = pooling();
    let buf = login_input();
    let bytes = buf.encode().unwrap();
    let input = DeriveInput::decode(&bytes).unwrap();
    let mut g = c.benchmark_group("warm_derive");
    let modules = [
        ("noop-module", wat::parse_str(NOOP_WAT).unwrap()),
        ("sha256-chain", module("sha256-chain")),
        ("hmac-sha256", module("hmac-sha256")),
        ("blake2s-keyed", module("blake2s-keyed")),
    ];
    for (name, wasm) in modules {
        let t = sb.load(&wasm, Profile::Pure, limits()).unwrap();
        let (fresh, warm) = (t.derive(&input), t.derive_warm(&input));
        let (f, w) = (fresh.unwrap(), warm.unwrap());
        assert_eq!((f.key, f.fuel_used), (w.key, w.fuel_used), "{name}");
        g.bench_function(format!("fresh/{name}"), |b| {
            b.iter(|| t.derive(black_box(&input)).unwrap())
        });
        g.bench_function(format!("warm/{name}"), |b| {
            b.iter(|| t.derive_warm(black_box(&input)).unwrap())
        });
        assert_eq!(
            t.warm_instances(),
            1,
            "{name}: the warm instance was reused"
        );
    }
    g.finish();
}

fn cold_compile(c: &mut Criterion) {
    let sb = pooling();
    let mut g = c.benchmark_group("cold_compile");
    g.sample_size(20);
    for (name, profile) in BUILTINS
        .into_iter()
        .filter(|(_, p)| kasane_sandbox::profile_available(*p))
    {
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
    for (name, profile) in BUILTINS
        .into_iter()
        .filter(|(_, p)| kasane_sandbox::profile_available(*p))
    {
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
    // kasane_derive, read the key), first on the sandbox's engine (whose pool keeps 1 MiB of
    // each linear memory resident: reset in place on reuse), then on an engine whose pool
    // keeps nothing resident (madvise on reuse, a page fault on the next touch).
    let input = login_input().encode().unwrap();
    let madvise = wasmtime::Engine::new(&tuned_config(0)).unwrap();
    for (label, engine) in [
        ("sandbox-engine", &engine),
        ("no-keep-resident-engine", &madvise),
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

    for (name, profile) in BUILTINS
        .into_iter()
        .filter(|(_, p)| kasane_sandbox::profile_available(*p))
    {
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

/// The sandbox's determinism and pooling settings (config.rs), with `keep_resident` bytes of
/// each linear memory kept resident (the sandbox keeps 1 MiB).
fn tuned_config(keep_resident: usize) -> wasmtime::Config {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(256)
        .total_memories(256)
        .total_tables(512)
        .total_component_instances(0)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .max_memory_size(16 << 20)
        .table_elements(10_000)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident.min(1 << 16));
    let mut c = wasmtime::Config::new();
    c.cranelift_nan_canonicalization(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    c
}

/// The Cranelift settings that trade compile time for code speed, each on the sandbox's
/// determinism settings (`variant_engine`): compile time of two built-ins, then the hot ABI
/// call and PBKDF2 (1000 iterations) on the resulting code. Fuel counts wasm operators, so it
/// must not depend on the compiler settings; the setup asserts that it does not.
fn compile_options(c: &mut Criterion) {
    use wasmtime::{Linker, Module};
    let mut g = c.benchmark_group("compile_options");
    g.sample_size(20);
    let input = login_input().encode().unwrap();
    let pbkdf2_input = DeriveInputBuf {
        params: b"1000".to_vec(),
        ..login_input()
    }
    .encode()
    .unwrap();
    let mut reference_fuel: Option<Vec<u64>> = None;
    for variant in VARIANTS {
        let engine = variant_engine(variant);
        for name in ["sha256-chain", "ocra"] {
            let wasm = module(name);
            g.bench_function(format!("compile/{variant}/{name}"), |b| {
                b.iter(|| Module::from_binary(&engine, black_box(&wasm)).unwrap())
            });
        }
        let mut fuel = Vec::new();
        for (name, input) in [
            ("sha256-chain", &input),
            ("hmac-sha256", &input),
            ("blake2s-keyed", &input),
            ("pbkdf2-sha256", &pbkdf2_input),
        ] {
            let m = Module::from_binary(&engine, &module(name)).unwrap();
            let pre = Linker::<()>::new(&engine).instantiate_pre(&m).unwrap();
            fuel.push(abi_call_fuel(&engine, &pre, input));
            if name != "hmac-sha256" && name != "blake2s-keyed" {
                g.bench_function(format!("derive/{variant}/{name}"), |b| {
                    b.iter(|| abi_call(&engine, &pre, black_box(input)))
                });
            }
        }
        println!("compile_options: {variant}: fuel {fuel:?}");
        match &reference_fuel {
            None => reference_fuel = Some(fuel),
            Some(r) => assert_eq!(r, &fuel, "{variant}: fuel differs from {}", VARIANTS[0]),
        }
    }
    g.finish();
}

const VARIANTS: [&str; 6] = [
    "speed",
    "speed-serial",
    "opt-none",
    "opt-none-serial",
    "speed-no-address-map",
    "speed-single-pass-regalloc",
];

/// The sandbox's determinism and pooling settings (as `tuned_config`) with one compiler
/// variant.
fn variant_engine(variant: &str) -> wasmtime::Engine {
    use wasmtime::{OptLevel, RegallocAlgorithm};
    let mut c = tuned_config(1 << 20);
    match variant {
        "speed" => {}
        "speed-serial" => {
            c.parallel_compilation(false);
        }
        "opt-none" => {
            c.cranelift_opt_level(OptLevel::None);
        }
        "opt-none-serial" => {
            c.cranelift_opt_level(OptLevel::None)
                .parallel_compilation(false);
        }
        "speed-no-address-map" => {
            c.generate_address_map(false);
        }
        "speed-single-pass-regalloc" => {
            c.cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
        }
        other => panic!("unknown variant {other}"),
    }
    wasmtime::Engine::new(&c).unwrap()
}

/// Like [`abi_call`], returning the fuel the whole call used.
fn abi_call_fuel(engine: &wasmtime::Engine, pre: &wasmtime::InstancePre<()>, input: &[u8]) -> u64 {
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
    assert!(n > 0, "derive failed with {n}");
    1_000_000_000 - store.get_fuel().unwrap()
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
    targets = hot_derive, warm_derive, cold_compile, cache_load, breakdown, compile_options
}
criterion_main!(benches);
