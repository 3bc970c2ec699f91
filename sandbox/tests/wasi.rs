//! The deterministic WASI profile: clocks read the session timestamp, `random_get` is the
//! documented transcript-seeded stream, stdout/stderr are captured, sleeping cannot hang.
#![cfg(feature = "wasi")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_abi::DeriveInput;
use kasane_sandbox::{Allocator, HOSTCALL_BYTES, HOSTCALL_FUEL, Profile, SandboxError, Transform};
use sha2::{Digest as _, Sha256};
use support::*;

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))"#;

/// key = realtime ns (8) ‖ monotonic ns (8) ‖ random (16) ‖ random again (16) ‖ errnos (2).
fn clock_random_module() -> Vec<u8> {
    abi_module(
        r#"(local $e1 i32) (local $e2 i32)
    (local.set $e1 (call $clock (i32.const 0) (i64.const 1) (local.get $out)))
    (local.set $e2 (call $clock (i32.const 1) (i64.const 1) (i32.add (local.get $out) (i32.const 8))))
    (drop (call $random (i32.add (local.get $out) (i32.const 16)) (i32.const 16)))
    (drop (call $random (i32.add (local.get $out) (i32.const 32)) (i32.const 16)))
    (i32.store8 (i32.add (local.get $out) (i32.const 48)) (local.get $e1))
    (i32.store8 (i32.add (local.get $out) (i32.const 49)) (local.get $e2))
    (i32.const 50)"#,
        IMPORTS,
    )
}

fn load_wasi(wasm: &[u8]) -> Transform {
    sandbox(Allocator::Pooling)
        .load(wasm, Profile::Wasi, small_limits())
        .unwrap()
}

/// The documented stream: SHA-256(tag ‖ transcript_hash ‖ counter ‖ seq ‖ purpose ‖ direction ‖ i).
fn expected_random(input: &DeriveInput<'_>, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0u64.. {
        if out.len() >= len {
            break;
        }
        let block = Sha256::new()
            .chain_update(b"kasane/wasi-random/v1")
            .chain_update(input.transcript_hash)
            .chain_update(input.counter.to_le_bytes())
            .chain_update(input.seq.to_le_bytes())
            .chain_update([input.purpose.as_u8(), input.direction.as_u8()])
            .chain_update(i.to_le_bytes())
            .finalize();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

#[test]
fn clocks_read_the_session_timestamp_and_random_is_the_transcript_stream() {
    let t = load_wasi(&clock_random_module());
    let i = input();
    let a = t.derive(&i).unwrap();
    let k = a.key.as_bytes();
    let ns = (i.timestamp * 1_000_000_000).to_le_bytes();
    assert_eq!(&k[0..8], &ns, "realtime clock");
    assert_eq!(&k[8..16], &ns, "monotonic clock");
    assert_eq!(&k[16..48], expected_random(&i, 32).as_slice());
    assert_eq!(&k[48..50], &[0, 0], "clock errnos");

    // Same input, same bytes (and same fuel); another transcript, other random bytes.
    let b = t.derive(&i).unwrap();
    assert_eq!(a.key, b.key);
    assert_eq!(a.fuel_used, b.fuel_used);
    let mut other = input();
    other.transcript_hash = [0x11; 32];
    other.timestamp = 42;
    let c = t.derive(&other).unwrap();
    assert_eq!(
        &c.key.as_bytes()[0..8],
        &(42u64 * 1_000_000_000).to_le_bytes()
    );
    assert_ne!(&c.key.as_bytes()[16..48], &k[16..48]);

    // Pooling and on-demand agree.
    let o = sandbox(Allocator::OnDemand)
        .load(&clock_random_module(), Profile::Wasi, small_limits())
        .unwrap();
    let d = o.derive(&i).unwrap();
    assert_eq!(d.key, a.key);
    assert_eq!(d.fuel_used, a.fuel_used);
}

#[test]
fn stdout_and_stderr_are_captured_as_diagnostics() {
    // iovec at 0: {ptr 16, len 5}; "hello" at 16; nwritten at 32.
    let wasm = abi_module(
        r#"(i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 5))
    (i32.store (i32.const 16) (i32.const 0x6c6c6568))
    (i32.store8 (i32.const 20) (i32.const 0x6f))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
    (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 32)))
    (i32.const 1)"#,
        IMPORTS,
    );
    let d = load_wasi(&wasm).derive(&input()).unwrap();
    assert_eq!(d.diagnostics, b"hellohello");
    // The pure profile never has diagnostics.
    let p = sandbox(Allocator::Pooling)
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    assert!(p.derive(&input()).unwrap().diagnostics.is_empty());
}

#[test]
fn sleeping_returns_at_once_and_a_sleep_loop_runs_out_of_fuel() {
    // One relative clock subscription of one hour at 0 (48 bytes), event at 64, count at 128.
    let sleep_once = r#"
    (i64.store (i32.const 0) (i64.const 77))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))"#;
    let once = abi_module(
        &format!(
            r#"{sleep_once}
    (i32.store8 (local.get $out) (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.load (i32.const 128)))
    (i32.store8 (i32.add (local.get $out) (i32.const 2)) (i32.wrap_i64 (i64.load (i32.const 64))))
    (i32.store8 (i32.add (local.get $out) (i32.const 3)) (i32.load16_u (i32.const 72)))
    (i32.const 4)"#
        ),
        IMPORTS,
    );
    let d = load_wasi(&once).derive(&input()).unwrap();
    // errno 0, one event, userdata 77, event errno 0.
    assert_eq!(d.key.as_bytes(), &[0, 1, 77, 0]);

    let forever = abi_module(
        &format!(
            r#"{sleep_once}
    (loop $l (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))) (br $l))
    (i32.const 1)"#
        ),
        IMPORTS,
    );
    assert!(matches!(
        load_wasi(&forever).derive(&input()),
        Err(SandboxError::OutOfFuel)
    ));
    let yielding = abi_module(
        "(loop $l (drop (call $yield)) (br $l)) (i32.const 1)",
        IMPORTS,
    );
    assert!(matches!(
        load_wasi(&yielding).derive(&input()),
        Err(SandboxError::OutOfFuel)
    ));
}

#[test]
fn random_get_is_charged_to_fuel_and_bounds_checked() {
    // 1 MiB of random in a loop: the fuel charge ends it.
    let greedy = abi_module(
        "(loop $l (drop (call $random (i32.const 0) (i32.const 65536))) (br $l)) (i32.const 1)",
        IMPORTS,
    );
    assert!(matches!(
        load_wasi(&greedy).derive(&input()),
        Err(SandboxError::OutOfFuel)
    ));
    // Out of bounds: EFAULT (21), not a host crash.
    let oob = abi_module(
        "(i32.store8 (local.get $out) (call $random (i32.const 65530) (i32.const 100))) (i32.const 1)",
        IMPORTS,
    );
    assert_eq!(
        load_wasi(&oob).derive(&input()).unwrap().key.as_bytes(),
        &[21]
    );
}

/// Every host call costs `HOSTCALL_FUEL` on entry, whatever it does (so a loop of calls that
/// copy guest memory and fail, a long path to `path_open` with no preopens, pays for that
/// copying in fuel); and no call copies more than `HOSTCALL_BYTES` out of the guest: a
/// longer path is `ENOMEM` (48) before anything is read.
#[test]
fn every_host_call_is_charged_and_copies_at_most_the_cap() {
    let yields = |n: u32| {
        abi_module(
            &format!(
                r#"(local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
      (drop (call $yield))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1)"#
            ),
            IMPORTS,
        )
    };
    let fuel = |n| load_wasi(&yields(n)).derive(&input()).unwrap().fuel_used;
    let per_call = (fuel(10) - fuel(0)) / 10;
    assert!(
        (HOSTCALL_FUEL..HOSTCALL_FUEL + 20).contains(&per_call),
        "{per_call}"
    );
    let imports = format!(
        r#"{IMPORTS}
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#
    );
    let open = |len: usize| {
        let derive = format!(
            "(i32.store8 (local.get $out) (call $open (i32.const 3) (i32.const 0) (i32.const 0) \
             (i32.const {len}) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))) \
             (i32.const 1)"
        );
        let wasm = abi_module(&derive, &imports);
        load_wasi(&wasm).derive(&input()).unwrap().key.as_bytes()[0]
    };
    assert_eq!(open(HOSTCALL_BYTES + 1), 48, "ENOMEM before the copy");
    assert_ne!(open(HOSTCALL_BYTES), 48, "the cap itself may be copied");
    let forever = abi_module(
        &format!(
            "(loop $l (drop (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const {}) \
             (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))) (br $l)) \
             (i32.const 1)",
            HOSTCALL_BYTES
        ),
        &imports,
    );
    assert!(matches!(
        load_wasi(&forever).derive(&input()),
        Err(SandboxError::OutOfFuel)
    ));
    // Kasane's own poll_oneoff is capped the same way: 1366 subscriptions are 65 568 bytes.
    let polls = |n: u32| {
        let derive = format!(
            "(i32.store8 (local.get $out) (call $poll (i32.const 0) (i32.const 0) (i32.const {n}) \
             (i32.const 0))) (i32.const 1)"
        );
        let wasm = abi_module(&derive, IMPORTS);
        load_wasi(&wasm).derive(&input()).unwrap().key.as_bytes()[0]
    };
    assert_eq!(polls(1366), 48);
    assert_ne!(polls(1365), 48);
}

/// wasmtime's own calls out of compiled code (here `memory.grow`) also pass the call hook,
/// but what it charges there does not stay: a module growing its memory burns the same fuel
/// in both profiles.
#[test]
fn memory_grow_costs_the_same_fuel_in_both_profiles() {
    let wasm = abi_module(
        "(drop (memory.grow (i32.const 1))) (drop (memory.grow (i32.const 1))) (i32.const 1)",
        "",
    );
    let fuel = |profile| {
        let t = sandbox(Allocator::Pooling)
            .load(&wasm, profile, small_limits())
            .unwrap();
        t.derive(&input()).unwrap().fuel_used
    };
    assert_eq!(fuel(Profile::Wasi), fuel(Profile::Pure));
}

#[test]
fn proc_exit_is_a_trap() {
    let wasm = abi_module("(call $exit (i32.const 3)) (i32.const 1)", IMPORTS);
    let e = load_wasi(&wasm).derive(&input()).unwrap_err();
    assert!(
        matches!(&e, SandboxError::Trap(m) if m.contains("proc_exit(3)")),
        "{e:?}"
    );
}

#[test]
fn a_reactor_initialize_runs_before_derive() {
    let wasm = abi_module(
        "(global.get $ready)",
        r#"(global $ready (mut i32) (i32.const -5))
  (func (export "_initialize") (global.set $ready (i32.const 9)))"#,
    );
    let t = load_wasi(&wasm);
    assert!(t.info().has_initialize);
    assert_eq!(t.derive(&input()).unwrap().key.len(), 9);
    // A pure-profile reactor gets `_initialize` too (C static constructors live there).
    let p = sandbox(Allocator::Pooling)
        .load(&wasm, Profile::Pure, small_limits())
        .unwrap();
    assert_eq!(p.derive(&input()).unwrap().key.len(), 9);
}

#[test]
fn a_wrong_initialize_signature_is_bad_abi() {
    let wasm = abi_module(
        "(i32.const 1)",
        r#"(func (export "_initialize") (param i32))"#,
    );
    let e = sandbox(Allocator::Pooling)
        .load(&wasm, Profile::Wasi, small_limits())
        .unwrap_err();
    assert!(
        matches!(&e, SandboxError::BadAbi(m) if m.contains("_initialize")),
        "{e:?}"
    );
}

#[test]
fn the_c_wasi_reactor_from_dist_loads_and_derives_deterministically() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../guest-transforms/dist/sha256-wasi-c.wasm"
    );
    // dist/ is committed: a missing module is a broken checkout, not a reason to skip.
    let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let sb = sandbox(Allocator::Pooling);
    let info = sb
        .validate(&wasm, Profile::Wasi, &kasane_sandbox::Limits::default())
        .unwrap();
    assert!(info.has_initialize);
    assert!(matches!(
        sb.load(&wasm, Profile::Pure, kasane_sandbox::Limits::default()),
        Err(SandboxError::ForbiddenImport { .. })
    ));
    let t = sb
        .load(&wasm, Profile::Wasi, kasane_sandbox::Limits::default())
        .unwrap();
    let responses: [&[u8]; 1] = [b"verifier"];
    let mut i = input();
    i.responses = kasane_abi::ByteList::from_slices(&responses);
    // Both runs must succeed (a guest error twice is agreement too, but not a working
    // transform) and give the same SHA-256-sized key, fuel and diagnostics.
    let a = t
        .derive(&i)
        .unwrap_or_else(|e| panic!("first derive: {e:?}"));
    let b = t
        .derive(&i)
        .unwrap_or_else(|e| panic!("second derive: {e:?}"));
    assert_eq!(a.key.as_bytes().len(), 32);
    assert_eq!(a.key, b.key);
    assert_eq!(a.fuel_used, b.fuel_used);
    assert_eq!(a.diagnostics, b.diagnostics);
}

#[test]
fn diagnostics_are_capped_at_4_kib_and_flooding_them_is_harmless() {
    // Writes 1000 bytes to stdout 100 times: past the 4 KiB cap the pipe refuses.
    let wasm = abi_module(
        r#"(local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 1000))
    (loop $l
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (i32.const 1)"#,
        IMPORTS,
    );
    // The first 4096 bytes are kept; later writes are short or fail with an errno, and the
    // guest carries on.
    let d = load_wasi(&wasm).derive(&input()).unwrap();
    assert_eq!(d.diagnostics.len(), kasane_sandbox::DIAGNOSTICS_CAP);
}

#[test]
fn reading_stdin_is_immediate_eof_and_cannot_hang() {
    // iovec {ptr 1024, len 16} at 0; nread at 32.
    let once = abi_module(
        r#"(i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 16))
    (i32.store8 (local.get $out) (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 32)))
    (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.load (i32.const 32)))
    (i32.const 2)"#,
        IMPORTS,
    );
    let d = load_wasi(&once).derive(&input()).unwrap();
    assert_eq!(d.key.as_bytes()[1], 0, "nothing to read");
    let forever = abi_module(
        r#"(i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 16))
    (loop $l (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 32))) (br $l))
    (i32.const 1)"#,
        IMPORTS,
    );
    assert!(matches!(
        load_wasi(&forever).derive(&input()),
        Err(SandboxError::OutOfFuel)
    ));
}

#[test]
fn a_wasi_import_with_the_wrong_type_does_not_link() {
    let wasm = abi_module(
        "(i32.const 1)",
        r#"(import "wasi_snapshot_preview1" "random_get" (func (param i64) (result i32)))"#,
    );
    let e = sandbox(Allocator::Pooling)
        .load(&wasm, Profile::Wasi, small_limits())
        .unwrap_err();
    assert!(
        matches!(&e, SandboxError::BadAbi(m) if m.contains("link")),
        "{e:?}"
    );
}
