//! The hostile-module corpus: each module gets its own typed error within a small fuel
//! budget, and the same `Sandbox` keeps serving good calls afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_sandbox::{Allocator, Limits, Profile, Sandbox, SandboxError};
use support::*;

/// Loads (or fails to load) `wasm` and derives once; returns the error.
fn run_err(sb: &Sandbox, wasm: &[u8], profile: Profile, limits: Limits) -> SandboxError {
    let t = match sb.load(wasm, profile, limits) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match t.derive(&input()) {
        Ok(d) => panic!("hostile module succeeded: {:?}", d.key),
        Err(e) => e,
    }
}

/// (name, module, profile, check)
type Case = (&'static str, Vec<u8>, Profile, fn(&SandboxError) -> bool);

fn corpus() -> Vec<Case> {
    let alloc_huge_out = r#"
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.eq (local.get $len) (i32.const 64))
      (then (i32.const -65536))
      (else (i32.const 1024))))"#;
    vec![
        (
            "infinite loop in derive",
            abi_module("(loop $l (br $l)) (i32.const 0)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::OutOfFuel),
        ),
        (
            "bulk memory.fill loop (charged per byte)",
            abi_module(
                "(loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536)) (br $l)) (i32.const 0)",
                "",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::OutOfFuel),
        ),
        (
            "infinite loop in start",
            abi_module("(i32.const 1)", "(func $s (loop $l (br $l))) (start $s)"),
            Profile::Pure,
            |e| matches!(e, SandboxError::OutOfFuel),
        ),
        (
            "memory.grow bomb that loops once refused",
            abi_module(
                r#"(loop $g (br_if $g (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (loop $l (br $l)) (i32.const 0)"#,
                "",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::MemoryLimit),
        ),
        (
            "table.grow bomb",
            abi_module(
                r#"(loop $g (br_if $g (i32.ne (table.grow $t (ref.null func) (i32.const 100)) (i32.const -1))))
    (unreachable)"#,
                "(table $t 1 funcref)",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::TableLimit),
        ),
        (
            "deep recursion",
            abi_module(
                "(call $r (i32.const 0))",
                "(func $r (param i32) (result i32) (call $r (i32.add (local.get 0) (i32.const 1))))",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::StackOverflow),
        ),
        (
            "unreachable",
            abi_module("(unreachable)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::Trap(m) if m.contains("unreachable")),
        ),
        (
            "guest writes out of bounds itself",
            abi_module("(i32.store (i32.const -4) (i32.const 1)) (i32.const 4)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::Trap(m) if m.contains("out of bounds")),
        ),
        (
            "output pointer outside memory",
            support::abi_module_with(alloc_huge_out, "(i32.const 32)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadOutput(m) if m.contains("outside memory")),
        ),
        (
            "returned length 0",
            abi_module("(i32.const 0)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadOutput(m) if m.contains("length 0")),
        ),
        (
            "returned length 65",
            abi_module("(i32.const 65)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadOutput(m) if m.contains("length 65")),
        ),
        (
            "known negative code",
            abi_module("(i32.const -2)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::Guest(-2)),
        ),
        (
            "unknown negative code",
            abi_module("(i32.const -99)", ""),
            Profile::Pure,
            |e| matches!(e, SandboxError::Guest(-99)) && e.to_string().contains("unknown"),
        ),
        (
            "alloc returns null",
            support::abi_module_with(
                r#"(func (export "kasane_alloc") (param i32) (result i32) (i32.const 0))"#,
                "(i32.const 1)",
                "",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadOutput(m) if m.contains("returned 0")),
        ),
        (
            "any import in the pure profile",
            abi_module("(i32.const 1)", r#"(import "env" "f" (func))"#),
            Profile::Pure,
            |e| matches!(e, SandboxError::ForbiddenImport { module, name } if module == "env" && name == "f"),
        ),
        (
            "a WASI import in the pure profile",
            abi_module(
                "(i32.const 1)",
                r#"(import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))"#,
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::ForbiddenImport { module, .. } if module == "wasi_snapshot_preview1"),
        ),
        (
            "threads: shared memory",
            wat::parse_str(
                r#"(module (memory (export "memory") 1 1 shared) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::UnsupportedFeature(m) if m.contains("threads")),
        ),
        (
            "memory64",
            wat::parse_str(
                r#"(module (memory (export "memory") i64 1) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::UnsupportedFeature(m) if m.contains("memory64")),
        ),
        (
            "relaxed SIMD",
            abi_module(
                "(i32.const 1)",
                "(func (result v128) (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))",
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::UnsupportedFeature(m) if m.contains("relaxed")),
        ),
        (
            "missing export kasane_derive",
            wat::parse_str(
                r#"(module (memory (export "memory") 1) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadAbi(m) if m == "missing export kasane_derive"),
        ),
        (
            "missing export memory",
            wat::parse_str(
                r#"(module (memory 1) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadAbi(m) if m == "missing export memory"),
        ),
        (
            "an export under the embedder's reserved prefix",
            abi_module(
                "(drop (ref.func $f)) (i32.const 1)",
                r#"(func $f (export "kasane:warm:x"))"#,
            ),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadAbi(m) if m.contains("reserved prefix")),
        ),
        (
            "missing ABI marker",
            wat::parse_str(
                r#"(module (memory (export "memory") 1)
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::BadAbi(m) if m == "missing export kasane_abi_v1"),
        ),
        (
            "wrong derive signature",
            wat::parse_str(
                r#"(module (memory (export "memory") 1) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| {
                matches!(e, SandboxError::BadAbi(m)
                    if m.contains("kasane_derive") && m.contains("(i32, i32, i32) -> (i32)"))
            },
        ),
        (
            "memory declared above the limit",
            wat::parse_str(
                r#"(module (memory (export "memory") 100) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1)))"#,
            )
            .unwrap(),
            Profile::Pure,
            |e| matches!(e, SandboxError::MemoryLimit),
        ),
        (
            "more tables than MAX_TABLES",
            abi_module("(i32.const 1)", "(table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref)"),
            Profile::Pure,
            |e| matches!(e, SandboxError::TableLimit),
        ),
        (
            "a table declared above the limit",
            abi_module("(i32.const 1)", "(table 5000 funcref)"),
            Profile::Pure,
            |e| matches!(e, SandboxError::TableLimit),
        ),
        (
            "WAT text instead of binary",
            b"(module)".to_vec(),
            Profile::Pure,
            |e| matches!(e, SandboxError::InvalidWasm(_)),
        ),
        (
            "garbage after a valid header",
            b"\0asm\x01\0\0\0\xff\xff\xff\xff".to_vec(),
            Profile::Pure,
            |e| matches!(e, SandboxError::InvalidWasm(_)),
        ),
        (
            "a component instead of a core module",
            b"\0asm\x0d\0\x01\0".to_vec(),
            Profile::Pure,
            |e| matches!(e, SandboxError::UnsupportedFeature(_)),
        ),
        (
            "module over the size cap",
            vec![0u8; (1 << 20) + 1],
            Profile::Pure,
            |e| matches!(e, SandboxError::ModuleTooLarge { len, max } if *len == (1 << 20) + 1 && *max == 1 << 20),
        ),
    ]
}

fn run_corpus(allocator: Allocator) {
    let sb = sandbox(allocator);
    assert_serves_good_calls(&sb);
    for (name, wasm, profile, check) in corpus() {
        let e = run_err(&sb, &wasm, profile, small_limits());
        assert!(check(&e), "{name}: unexpected {e:?} ({e})");
        assert_serves_good_calls(&sb);
    }
}

#[test]
fn each_hostile_module_gets_its_own_typed_error_pooling() {
    run_corpus(Allocator::Pooling);
}

#[test]
fn each_hostile_module_gets_its_own_typed_error_on_demand() {
    run_corpus(Allocator::OnDemand);
}

#[cfg(feature = "wasi")]
#[test]
fn non_wasi_imports_are_refused_in_the_wasi_profile() {
    let sb = sandbox(Allocator::Pooling);
    for (import, module, name) in [
        (r#"(import "env" "g" (func))"#, "env", "g"),
        (
            r#"(import "wasi_snapshot_preview1" "not_a_call" (func))"#,
            "wasi_snapshot_preview1",
            "not_a_call",
        ),
        (
            r#"(import "wasi_snapshot_preview1" "clock_time_get" (global i32))"#,
            "wasi_snapshot_preview1",
            "clock_time_get",
        ),
    ] {
        let e = run_err(
            &sb,
            &abi_module("(i32.const 1)", import),
            Profile::Wasi,
            small_limits(),
        );
        assert!(
            matches!(&e, SandboxError::ForbiddenImport { module: m, name: n } if m == module && n == name),
            "{import}: {e:?}"
        );
        assert_serves_good_calls(&sb);
    }
}

#[test]
fn a_start_function_runs_under_fuel_at_every_derive() {
    let sb = sandbox(Allocator::Pooling);
    // Loading does not run the start function; deriving does, under the same budget.
    let wasm = abi_module("(i32.const 1)", "(func $s (loop $l (br $l))) (start $s)");
    let info = sb.validate(&wasm, Profile::Pure, &small_limits()).unwrap();
    assert!(info.has_start);
    let t = sb.load(&wasm, Profile::Pure, small_limits()).unwrap();
    for _ in 0..2 {
        assert!(matches!(t.derive(&input()), Err(SandboxError::OutOfFuel)));
    }
}

#[test]
fn fuel_used_is_reported_and_bounded_by_the_budget() {
    let sb = sandbox(Allocator::Pooling);
    let t = sb
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    let a = t.derive(&input()).unwrap();
    let b = t.derive(&input()).unwrap();
    assert_eq!(a.fuel_used, b.fuel_used);
    assert!(a.fuel_used > 0 && a.fuel_used < small_limits().fuel);
    // Exactly the measured fuel is enough; a fraction of it is not. (wasmtime checks fuel at
    // function entries and loop headers, so the threshold is not exact to the unit: the
    // last function's own work after its entry check is not checked before it returns.)
    let exact = Limits {
        fuel: a.fuel_used,
        ..small_limits()
    };
    assert!(
        sb.load(&good_module(), Profile::Pure, exact)
            .unwrap()
            .derive(&input())
            .is_ok()
    );
    let short = Limits {
        fuel: a.fuel_used / 6,
        ..small_limits()
    };
    let e = sb
        .load(&good_module(), Profile::Pure, short)
        .unwrap()
        .derive(&input())
        .unwrap_err();
    assert!(matches!(e, SandboxError::OutOfFuel), "{e:?}");
}

#[test]
fn pooling_and_on_demand_give_the_same_key_and_fuel() {
    let p = sandbox(Allocator::Pooling)
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    let o = sandbox(Allocator::OnDemand)
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    let (a, b) = (p.derive(&input()).unwrap(), o.derive(&input()).unwrap());
    assert_eq!(a.key, b.key);
    assert_eq!(a.fuel_used, b.fuel_used);
    assert_eq!(p.module_hash(), o.module_hash());
}

#[test]
fn limits_are_capped_by_the_sandbox_maximum() {
    let sb = sandbox(Allocator::Pooling);
    let huge = Limits {
        fuel: u64::MAX,
        memory_bytes: u64::MAX,
        ..Limits::default()
    };
    let t = sb.load(&good_module(), Profile::Pure, huge).unwrap();
    assert_eq!(t.limits(), Limits::default());
    assert_eq!(t.profile(), Profile::Pure);
}

#[test]
fn a_module_over_a_smaller_entry_cap_is_too_large() {
    let sb = sandbox(Allocator::Pooling);
    let wasm = good_module();
    let limits = Limits {
        module_bytes: wasm.len() - 1,
        ..small_limits()
    };
    let e = sb.load(&wasm, Profile::Pure, limits).unwrap_err();
    assert!(matches!(e, SandboxError::ModuleTooLarge { .. }), "{e:?}");
}

#[test]
fn output_len_limit_is_passed_as_out_cap_and_enforced() {
    let sb = sandbox(Allocator::Pooling);
    // Returns out_cap itself: 16 with output_len = 16, accepted; 32 bytes would be refused.
    let t = sb
        .load(
            &abi_module("(local.get $cap)", ""),
            Profile::Pure,
            Limits {
                output_len: 16,
                ..small_limits()
            },
        )
        .unwrap();
    assert_eq!(t.derive(&input()).unwrap().key.len(), 16);
    let t = sb
        .load(
            &abi_module("(i32.const 32)", ""),
            Profile::Pure,
            Limits {
                output_len: 16,
                ..small_limits()
            },
        )
        .unwrap();
    assert!(matches!(
        t.derive(&input()),
        Err(SandboxError::BadOutput(_))
    ));
}

#[test]
fn many_threads_share_one_transform() {
    let sb = sandbox(Allocator::Pooling);
    let t = sb
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let t = t.clone();
            s.spawn(move || {
                for _ in 0..20 {
                    assert_good(&t);
                }
            });
        }
    });
}

#[test]
fn the_wall_clock_backstop_is_typed_and_not_the_fuel_verdict() {
    // Fuel large enough to run for minutes; a 200 ms backstop ends the call instead.
    let sb = Sandbox::new(kasane_sandbox::SandboxConfig {
        max_limits: Limits {
            fuel: u64::MAX,
            ..Limits::default()
        },
        wall_clock_backstop: std::time::Duration::from_millis(200),
        epoch_tick: std::time::Duration::from_millis(10),
        pooling: kasane_sandbox::PoolingSizes { instances: 4 },
        ..kasane_sandbox::SandboxConfig::default()
    })
    .unwrap();
    let wasm = abi_module("(loop $l (br $l)) (i32.const 0)", "");
    let limits = Limits {
        fuel: u64::MAX,
        ..Limits::default()
    };
    let e = sb
        .load(&wasm, Profile::Pure, limits)
        .unwrap()
        .derive(&input())
        .unwrap_err();
    assert!(matches!(e, SandboxError::WallClockTimeout), "{e:?}");
    assert_serves_good_calls(&sb);
}

#[cfg(not(feature = "wasi"))]
#[test]
fn the_wasi_profile_is_a_typed_error_without_the_feature() {
    let sb = sandbox(Allocator::Pooling);
    let e = sb
        .load(&good_module(), Profile::Wasi, small_limits())
        .unwrap_err();
    assert!(
        matches!(e, SandboxError::ProfileUnavailable("wasi")),
        "{e:?}"
    );
    assert!(!kasane_sandbox::profile_available(Profile::Wasi));
}
