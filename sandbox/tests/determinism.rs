//! Every built-in gives the same key, fuel count and diagnostics whichever way it was
//! instantiated: pooling or on-demand allocator, fresh compile or compile-cache load
//! (first a miss, then a hit, then a hit from a new sandbox over the same directory), and
//! either Cranelift optimization level.

mod common;

use common::{
    Builtin, available_builtins, derive, generous_limits, hex, module_bytes, random_input_for, rng,
    sandbox_with, typical_input_for,
};
use kasane_abi::DeriveInputBuf;
use kasane_sandbox::{
    Allocator, CacheOutcome, CompileCache, Optimization, Sandbox, SandboxConfig, Transform,
};

/// Inputs per built-in: the typical login input and generated ones.
fn inputs(b: Builtin, seed: u64) -> Vec<DeriveInputBuf> {
    let mut rng = rng(seed);
    let mut v = vec![typical_input_for(b)];
    v.extend((0..24).map(|_| random_input_for(b, &mut rng)));
    v
}

/// (key, fuel, diagnostics) of each input.
fn run(t: &Transform, b: Builtin, inputs: &[DeriveInputBuf]) -> Vec<(String, u64, Vec<u8>)> {
    inputs
        .iter()
        .map(|i| {
            let d = derive(t, i).unwrap_or_else(|e| panic!("{}: {e:?}", b.name));
            (hex(d.key.as_bytes()), d.fuel_used, d.diagnostics.clone())
        })
        .collect()
}

fn assert_same(
    b: Builtin,
    what: &str,
    want: &[(String, u64, Vec<u8>)],
    got: &[(String, u64, Vec<u8>)],
) {
    assert_eq!(want.len(), got.len());
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.0, g.0, "{} input {i}: key differs ({what})", b.name);
        assert_eq!(w.1, g.1, "{} input {i}: fuel differs ({what})", b.name);
        assert_eq!(
            w.2, g.2,
            "{} input {i}: diagnostics differ ({what})",
            b.name
        );
    }
}

#[test]
fn pooling_and_on_demand_give_the_same_key_and_fuel() {
    let pooling = sandbox_with(Allocator::Pooling);
    let on_demand = sandbox_with(Allocator::OnDemand);
    for (k, b) in available_builtins().into_iter().enumerate() {
        let wasm = module_bytes(b.name);
        let inputs = inputs(b, 100 + k as u64);
        let tp = pooling.load(&wasm, b.profile, generous_limits()).unwrap();
        let to = on_demand.load(&wasm, b.profile, generous_limits()).unwrap();
        let want = run(&tp, b, &inputs);
        // Each key is also the native one: determinism of a wrong answer is no comfort.
        for (i, input) in inputs.iter().enumerate() {
            assert_eq!(
                want[i].0,
                hex(&(b.native)(input).unwrap()),
                "{} input {i}",
                b.name
            );
        }
        assert_same(b, "on-demand vs pooling", &want, &run(&to, b, &inputs));
        // And again on the same transforms: no state leaks from one derive to the next.
        assert_same(b, "second pooling run", &want, &run(&tp, b, &inputs));
        assert_same(b, "second on-demand run", &want, &run(&to, b, &inputs));
    }
}

#[test]
fn both_optimization_levels_give_the_same_key_and_fuel() {
    let speed = sandbox_with(Allocator::Pooling);
    let fast_compile = Sandbox::new(SandboxConfig {
        max_limits: generous_limits(),
        optimization: Optimization::CompileTime,
        ..SandboxConfig::default()
    })
    .unwrap();
    for (k, b) in available_builtins().into_iter().enumerate() {
        let wasm = module_bytes(b.name);
        let inputs = inputs(b, 300 + k as u64);
        let ts = speed.load(&wasm, b.profile, generous_limits()).unwrap();
        let tn = fast_compile
            .load(&wasm, b.profile, generous_limits())
            .unwrap();
        assert_same(
            b,
            "OptLevel::None vs Speed",
            &run(&ts, b, &inputs),
            &run(&tn, b, &inputs),
        );
    }
}

#[test]
fn a_cached_module_gives_the_same_key_and_fuel_as_a_fresh_compile() {
    for allocator in [Allocator::Pooling, Allocator::OnDemand] {
        let dir = tempfile::tempdir().unwrap();
        let sb = sandbox_with(allocator);
        let cache = CompileCache::open(dir.path()).unwrap();
        for (k, b) in available_builtins().into_iter().enumerate() {
            let wasm = module_bytes(b.name);
            let inputs = inputs(b, 200 + k as u64);
            let fresh = sb.load(&wasm, b.profile, generous_limits()).unwrap();
            let want = run(&fresh, b, &inputs);

            let (first, outcome) = sb
                .load_cached(&wasm, b.profile, generous_limits(), &cache)
                .unwrap();
            assert_eq!(
                outcome,
                CacheOutcome::Miss,
                "{} first cached load ({allocator:?})",
                b.name
            );
            assert_same(b, "cache miss vs fresh", &want, &run(&first, b, &inputs));

            let (second, outcome) = sb
                .load_cached(&wasm, b.profile, generous_limits(), &cache)
                .unwrap();
            assert_eq!(
                outcome,
                CacheOutcome::Hit,
                "{} second cached load ({allocator:?})",
                b.name
            );
            assert_same(b, "cache hit vs fresh", &want, &run(&second, b, &inputs));
        }

        // A new sandbox and cache handle over the same directory (a client restart) hit too.
        let sb2 = sandbox_with(allocator);
        let cache2 = CompileCache::open(dir.path()).unwrap();
        for b in available_builtins() {
            let wasm = module_bytes(b.name);
            let input = typical_input_for(b);
            let fresh = sb.load(&wasm, b.profile, generous_limits()).unwrap();
            let (t, outcome) = sb2
                .load_cached(&wasm, b.profile, generous_limits(), &cache2)
                .unwrap();
            assert_eq!(
                outcome,
                CacheOutcome::Hit,
                "{} after restart ({allocator:?})",
                b.name
            );
            assert_same(
                b,
                "cache hit after restart",
                &run(&fresh, b, std::slice::from_ref(&input)),
                &run(&t, b, &[input]),
            );
        }
    }
}
