//! `Transform::derive_warm` against `Transform::derive`: the same key, the same fuel and the
//! same error for every input, on built-ins and on hostile modules that try to carry state
//! from one call to the next, and warm instances only reused when they can be restored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;
mod support;

use kasane_abi::{DeriveInput, DeriveInputBuf};
use kasane_sandbox::{Derived, Limits, Profile, SandboxError, Transform};

/// Both paths on one owned input; panics with the case when they disagree.
/// Returns whether the call succeeded.
fn agree(t: &Transform, input: &DeriveInputBuf, what: impl Fn() -> String) -> bool {
    let bytes = input.encode().unwrap();
    let borrowed = DeriveInput::decode(&bytes).unwrap();
    let fresh = t.derive(&borrowed);
    same_or(&fresh, &t.derive_warm(&borrowed), what);
    fresh.is_ok()
}

/// The same key and fuel, or the same error.
fn same(fresh: &Result<Derived, SandboxError>, warm: &Result<Derived, SandboxError>, what: &str) {
    same_or(fresh, warm, || what.to_owned());
}

/// [`same`], naming the case only on a failure.
fn same_or(
    fresh: &Result<Derived, SandboxError>,
    warm: &Result<Derived, SandboxError>,
    what: impl Fn() -> String,
) {
    let agree = match (fresh, warm) {
        (Ok(f), Ok(w)) => {
            f.key == w.key && f.fuel_used == w.fuel_used && f.diagnostics == w.diagnostics
        }
        (Err(f), Err(w)) => format!("{f:?}") == format!("{w:?}"),
        _ => false,
    };
    if agree {
        return;
    }
    let what = what();
    match (fresh, warm) {
        (Ok(f), Ok(w)) => {
            assert_eq!(
                f.key.as_bytes(),
                w.key.as_bytes(),
                "{what}: keys differ: {} vs {}",
                common::hex(f.key.as_bytes()),
                common::hex(w.key.as_bytes())
            );
            assert_eq!(f.fuel_used, w.fuel_used, "{what}: fuel differs");
            assert_eq!(f.diagnostics, w.diagnostics, "{what}: diagnostics differ");
        }
        (Err(f), Err(w)) => assert_eq!(format!("{f:?}"), format!("{w:?}"), "{what}"),
        _ => panic!("{what}: fresh {fresh:?}, warm {warm:?}"),
    }
}

/// Input `i` of a run on built-in `b`: one in ten fully random ([`common::random_input_for`]),
/// the others the typical login input with every field a message changes drawn again
/// (purpose, direction, counter, seq, timestamp, nonces, transcript hash, the first response,
/// a challenge the built-in hashes or ignores; for `pbkdf2-sha256` the iteration count).
fn varied(b: common::Builtin, rng: &mut rand::rngs::StdRng, i: u64) -> DeriveInputBuf {
    use kasane_abi::{Direction, Purpose};
    use rand::Rng as _;
    if i.is_multiple_of(10) {
        return common::random_input_for(b, rng);
    }
    let mut input = common::typical_input_for(b);
    input.purpose = if rng.gen_bool(0.5) {
        Purpose::Auth
    } else {
        Purpose::Message
    };
    input.direction = if rng.gen_bool(0.5) {
        Direction::ClientToHost
    } else {
        Direction::HostToClient
    };
    input.counter = rng.r#gen();
    input.seq = rng.r#gen();
    input.timestamp = rng.gen_range(0..=common::WASI_MAX_TIMESTAMP);
    input.server_nonce = rng.r#gen();
    input.client_nonce = rng.r#gen();
    input.transcript_hash = rng.r#gen();
    let key_len = rng.gen_range(1..=64);
    input.responses[0] = zeroize::Zeroizing::new((0..key_len).map(|_| rng.r#gen()).collect());
    let challenge_len = rng.gen_range(0..=32);
    input.challenges[1] = (0..challenge_len).map(|_| rng.r#gen()).collect();
    if b.name == "pbkdf2-sha256" {
        input.params = common::random_pbkdf2_params(rng);
    }
    input
}

/// 10 000 inputs through `sha256-chain` (the representative built-in), 1 000 through each other
/// pure built-in, 100 through the WASI one (which always takes the fresh path): the same key,
/// fuel and error from `derive_warm` as from `derive`.
#[test]
fn every_builtin_gives_the_fresh_key_and_fuel_on_warm_instances() {
    let sb = common::sandbox();
    for b in common::available_builtins() {
        let t = common::load(&sb, b);
        let n: u64 = match (b.name, b.profile) {
            ("sha256-chain", _) => 10_000,
            (_, Profile::Pure) => 1_000,
            (_, Profile::Wasi) => 100,
        };
        let mut rng = common::rng(0x5741_524d ^ n);
        let mut keys = 0;
        for i in 0..n {
            let input = varied(b, &mut rng, i);
            keys += u64::from(agree(&t, &input, || {
                format!("{} #{i}: {}", b.name, common::describe(&input))
            }));
        }
        // Mostly keys, not refusals: the comparison covers the whole derive.
        assert!(keys > n * 8 / 10, "{}: {keys} keys of {n}", b.name);
        let reused = t.warm_instances();
        match b.profile {
            Profile::Pure => assert_eq!(reused, 1, "{}: one warm instance, reused", b.name),
            Profile::Wasi => assert_eq!(reused, 0, "{}: WASI is never reused", b.name),
        }
    }
}

/// A module under test with small limits on a small-pool sandbox.
fn hostile(wasm: &[u8]) -> Transform {
    support::sandbox(kasane_sandbox::Allocator::Pooling)
        .load(wasm, Profile::Pure, support::small_limits())
        .unwrap()
}

fn input_with_counter(counter: u64) -> DeriveInput<'static> {
    let mut i = support::input();
    i.counter = counter;
    i
}

/// Runs `counters` through both paths on `t`, in order, comparing each call.
fn agree_on(t: &Transform, counters: &[u64], what: &str) {
    for &c in counters {
        let i = input_with_counter(c);
        same(
            &t.derive(&i),
            &t.derive_warm(&i),
            &format!("{what}, counter {c}"),
        );
    }
}

/// The key is what the previous call left (in memory at 16, in a data segment at 32, in a
/// global, in an exported global, and the allocator's next pointer), then the call leaves its
/// counter in each place.
fn carrier() -> Vec<u8> {
    support::abi_module(
        r#"(i32.store (local.get $out) (i32.load (i32.const 16)))
    (i32.store offset=4 (local.get $out) (i32.load (i32.const 32)))
    (i32.store offset=8 (local.get $out) (global.get $g))
    (i32.store offset=12 (local.get $out) (global.get $e))
    (i32.store offset=16 (local.get $out) (global.get $next))
    (i32.store (i32.const 16) (i32.load8_u offset=4 (local.get $in)))
    (i32.store (i32.const 32) (i32.load8_u offset=4 (local.get $in)))
    (global.set $g (i32.load8_u offset=4 (local.get $in)))
    (global.set $e (i32.load8_u offset=4 (local.get $in)))
    (i32.const 20)"#,
        r#"(global $g (mut i32) (i32.const 7))
  (global $e (export "e") (mut i32) (i32.const 9))
  (data (i32.const 32) "abcd")"#,
    )
}

#[test]
fn memory_and_globals_written_by_one_call_never_reach_the_next() {
    let t = hostile(&carrier());
    agree_on(&t, &[1, 2, 3, 200, 5], "carrier");
    assert_eq!(t.warm_instances(), 1, "the carrier is restorable: reused");
    // Fresh or warm, every call sees the initial state.
    for c in [10, 11] {
        let k = t.derive_warm(&input_with_counter(c)).unwrap().key;
        assert_eq!(&k.as_bytes()[..4], &[0; 4]);
        assert_eq!(&k.as_bytes()[4..8], b"abcd");
        assert_eq!(&k.as_bytes()[8..16], &[7, 0, 0, 0, 9, 0, 0, 0]);
    }
}

#[test]
fn a_page_that_was_all_zeros_is_zeros_again_for_the_next_call() {
    // Page 9 (of 4 KiB) holds nothing after initialization; each call returns what the last
    // left at its first and last word, then writes the counter there.
    let t = hostile(&support::abi_module(
        r#"(i32.store (local.get $out) (i32.load (i32.const 36864)))
    (i32.store offset=4 (local.get $out) (i32.load (i32.const 40956)))
    (i32.store (i32.const 36864) (i32.load8_u offset=4 (local.get $in)))
    (i32.store (i32.const 40956) (i32.load8_u offset=4 (local.get $in)))
    (i32.const 8)"#,
        "",
    ));
    agree_on(&t, &[1, 2, 3, 200], "zero-page writer");
    assert_eq!(t.warm_instances(), 1, "restorable: reused");
    for c in [10, 11] {
        let k = t.derive_warm(&input_with_counter(c)).unwrap().key;
        assert_eq!(k.as_bytes(), &[0; 8], "call {c} saw the last call's writes");
    }
}

/// A warm instance's snapshot keeps the pages initialization wrote, not the declared memory:
/// a module with 16 pages (1 MiB) and one small data segment keeps one 4 KiB page.
#[test]
fn a_snapshot_keeps_only_the_pages_initialization_wrote() {
    let wasm = wat::parse_str(
        r#"(module
  (memory (export "memory") 16)
  (data (i32.const 8192) "kasane")
  (func (export "kasane_abi_v1"))
  (func (export "kasane_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32)
    (i32.store (local.get 2) (i32.load (i32.const 8192)))
    i32.const 4))"#,
    )
    .unwrap();
    let t = hostile(&wasm);
    agree_on(&t, &[1, 2], "one data page");
    assert_eq!(t.warm_instances(), 1);
    assert_eq!(t.warm_snapshot_bytes(), 4096);
}

#[test]
fn an_instance_whose_memory_grew_is_dropped() {
    // The key is the memory size in pages after growing by one, and what the last call left.
    let t = hostile(&support::abi_module(
        r#"(i32.store (local.get $out) (memory.grow (i32.const 1)))
    (i32.store offset=4 (local.get $out) (i32.load (i32.const 16)))
    (i32.store (i32.const 16) (i32.const 1))
    (i32.const 8)"#,
        "",
    ));
    agree_on(&t, &[1, 2, 3], "grower");
    assert_eq!(t.warm_instances(), 0);
}

#[test]
fn a_module_that_can_change_a_table_is_never_reused() {
    let t = hostile(&support::abi_module(
        r#"(i32.store (local.get $out) (table.size $t))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (i32.const 4)"#,
        "(table $t 1 funcref)",
    ));
    agree_on(&t, &[1, 2, 3], "table grower");
    assert_eq!(t.warm_instances(), 0);
}

/// Counter 1 traps after dirtying memory and a global, 2 runs out of fuel after the same, 3
/// returns a bad length after the same, 4 returns a guest error; any other counter returns
/// what is in memory and the global.
fn failer() -> Vec<u8> {
    support::abi_module(
        r#"(i32.store (local.get $out) (i32.load (i32.const 16)))
    (i32.store offset=4 (local.get $out) (global.get $g))
    (i32.store (i32.const 16) (i32.const 0x55))
    (global.set $g (i32.const 0x66))
    (if (i32.eq (i32.load8_u offset=4 (local.get $in)) (i32.const 1)) (then (unreachable)))
    (if (i32.eq (i32.load8_u offset=4 (local.get $in)) (i32.const 2)) (then (loop $l (br $l))))
    (if (i32.eq (i32.load8_u offset=4 (local.get $in)) (i32.const 3)) (then (return (i32.const 65))))
    (if (i32.eq (i32.load8_u offset=4 (local.get $in)) (i32.const 4)) (then (return (i32.const -3))))
    (i32.const 8)"#,
        "(global $g (mut i32) (i32.const 0))",
    )
}

#[test]
fn after_a_trap_out_of_fuel_or_bad_output_the_next_call_is_right() {
    let t = hostile(&failer());
    agree_on(&t, &[9, 1, 9, 2, 9, 3, 9, 4, 9], "failer");
    let i = input_with_counter(1);
    assert!(matches!(t.derive_warm(&i), Err(SandboxError::Trap(_))));
    let k = t.derive_warm(&input_with_counter(9)).unwrap().key;
    assert_eq!(k.as_bytes(), &[0; 8]);
    assert!(matches!(
        t.derive_warm(&input_with_counter(2)),
        Err(SandboxError::OutOfFuel)
    ));
    let k = t.derive_warm(&input_with_counter(9)).unwrap().key;
    assert_eq!(k.as_bytes(), &[0; 8]);
}

/// A module whose start function burns fuel, so the warm path must account for the
/// initialization it ran once.
fn slow_start() -> Vec<u8> {
    support::abi_module(
        support::GOOD_DERIVE,
        r#"(global $i (mut i32) (i32.const 0))
  (func $s (loop $l (global.set $i (i32.add (global.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (global.get $i) (i32.const 500)))))
  (start $s)"#,
    )
}

/// wasmtime checks fuel at function entries and loop headers, so the smallest budget a call
/// succeeds with can be below the fuel it reports. At that boundary budget, and one unit
/// below it, both paths give the same verdict (on a new warm instance and on a reused one);
/// with too little fuel for the initialization too.
#[test]
fn out_of_fuel_verdicts_agree_at_the_exact_budget() {
    let i = support::input();
    for wasm in [support::good_module(), slow_start(), carrier()] {
        let sb = support::sandbox(kasane_sandbox::Allocator::Pooling);
        let load = |fuel| {
            let limits = Limits {
                fuel,
                ..support::small_limits()
            };
            sb.load(&wasm, Profile::Pure, limits).unwrap()
        };
        let need = load(1_000_000).derive(&i).unwrap().fuel_used;
        // The smallest budget the fresh path succeeds with.
        let (mut lo, mut hi) = (0, need);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if load(mid).derive(&i).is_ok() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let exact = load(hi);
        for _ in 0..3 {
            same(&exact.derive(&i), &exact.derive_warm(&i), "boundary budget");
        }
        assert_eq!(exact.warm_instances(), 1);
        let generous = load(1_000_000);
        for _ in 0..3 {
            assert_eq!(generous.derive_warm(&i).unwrap().fuel_used, need);
        }
        for fuel in [hi - 1, hi / 2, 1] {
            let short = load(fuel);
            for _ in 0..2 {
                let (f, w) = (short.derive(&i), short.derive_warm(&i));
                same(&f, &w, &format!("budget {fuel}, boundary {hi}"));
                assert!(matches!(w, Err(SandboxError::OutOfFuel)), "{w:?}");
            }
            assert_eq!(short.warm_instances(), 0);
        }
    }
}

#[test]
fn the_pool_is_bounded_and_zero_disables_it() {
    let wasm = support::good_module();
    let limits = support::small_limits();
    // Six callers at once each hold an instance, and up to four more may be idle.
    let t = kasane_sandbox::Sandbox::new(kasane_sandbox::SandboxConfig {
        pooling: kasane_sandbox::PoolingSizes { instances: 16 },
        ..Default::default()
    })
    .unwrap()
    .load(&wasm, Profile::Pure, limits)
    .unwrap();
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..50 {
                    support::assert_good_with(&t, Transform::derive_warm);
                }
            });
        }
    });
    assert!(
        (1..=4).contains(&t.warm_instances()),
        "{}",
        t.warm_instances()
    );

    let off = kasane_sandbox::Sandbox::new(kasane_sandbox::SandboxConfig {
        warm_instances_per_module: 0,
        ..Default::default()
    })
    .unwrap()
    .load(&wasm, Profile::Pure, limits)
    .unwrap();
    support::assert_good_with(&off, Transform::derive_warm);
    assert_eq!(off.warm_instances(), 0);
}

/// `is_quick` follows the last warm call: not before any, yes after a cheap success, no
/// after a failure (here out of fuel: as slow as the limit allows), yes again after the
/// next cheap one.
#[test]
fn is_quick_follows_the_last_warm_call() {
    let t = hostile(&failer());
    assert!(!t.is_quick(), "nothing known before the first call");
    t.derive_warm(&input_with_counter(9)).unwrap();
    assert!(t.is_quick());
    assert!(t.derive_warm(&input_with_counter(2)).is_err());
    assert!(!t.is_quick(), "a call that ran out of fuel is not quick");
    t.derive_warm(&input_with_counter(9)).unwrap();
    assert!(t.is_quick());
    // A fresh call says nothing about warm ones.
    t.derive(&input_with_counter(2)).unwrap_err();
    assert!(t.is_quick());
}

/// In place a call burns at most `QUICK_FUEL`: for a module quick with one input and slow
/// with another, `derive_quick` gives `None` for the slow one (to run again with the whole
/// budget, where it gives what `derive_warm` and a fresh instance give), never the slow call.
#[test]
fn derive_quick_stops_at_quick_fuel_and_the_whole_budget_decides() {
    let wasm = support::abi_module(
        r#"(local $i i32)
    (if (i32.eq (i32.load8_u offset=4 (local.get $in)) (i32.const 5))
      (then (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))))
    (i32.store (local.get $out) (local.get $i))
    (i32.const 8)"#,
        "",
    );
    let limits = kasane_sandbox::Limits {
        fuel: 50_000_000,
        ..support::small_limits()
    };
    let t = support::sandbox(kasane_sandbox::Allocator::Pooling)
        .load(&wasm, Profile::Pure, limits)
        .unwrap();
    let quick = t.derive_quick(&input_with_counter(9)).unwrap().unwrap();
    assert!(quick.fuel_used <= kasane_sandbox::QUICK_FUEL);
    assert!(t.is_quick());
    assert!(t.derive_quick(&input_with_counter(5)).unwrap().is_none());
    assert!(!t.is_quick(), "a call stopped at the cap is not quick");
    let slow = t.derive_warm(&input_with_counter(5)).unwrap();
    assert!(slow.fuel_used > kasane_sandbox::QUICK_FUEL);
    let fresh = t.derive(&input_with_counter(5)).unwrap();
    assert_eq!(slow.key.as_bytes(), fresh.key.as_bytes());
    // A budget no larger than the cap: running out is the module's own verdict.
    let small = hostile(&wasm);
    assert!(matches!(
        small.derive_quick(&input_with_counter(5)),
        Err(SandboxError::OutOfFuel)
    ));
}
