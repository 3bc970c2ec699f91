//! Engine configuration that host and client rely on for identical results.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_abi::DeriveInput;
use kasane_sandbox::{Allocator, Profile};
use support::*;

#[test]
fn nan_results_are_canonical() {
    // 0/0 computed at run time from the input's counter (0): x86 produces a negative quiet
    // NaN (0xFFC00000), other CPUs other payloads; canonicalization makes it 0x7FC00000.
    let wasm = abi_module(
        r#"(f32.store (local.get $out)
      (f32.div (f32.load (i32.add (local.get $in) (i32.const 4)))
               (f32.load (i32.add (local.get $in) (i32.const 4)))))
    (f64.store (i32.add (local.get $out) (i32.const 4))
      (f64.div (f64.load (i32.add (local.get $in) (i32.const 4)))
               (f64.load (i32.add (local.get $in) (i32.const 4)))))
    (i32.const 12)"#,
        "",
    );
    for allocator in [Allocator::Pooling, Allocator::OnDemand] {
        let t = sandbox(allocator)
            .load(&wasm, Profile::Pure, small_limits())
            .unwrap();
        let k = t.derive(&DeriveInput::empty()).unwrap().key;
        assert_eq!(&k.as_bytes()[..4], &0x7FC0_0000u32.to_le_bytes());
        assert_eq!(&k.as_bytes()[4..], &0x7FF8_0000_0000_0000u64.to_le_bytes());
    }
}

#[test]
fn the_module_hash_is_the_sha256_of_the_bytes() {
    use sha2::Digest as _;
    let wasm = good_module();
    let sb = sandbox(Allocator::Pooling);
    let t = sb.load(&wasm, Profile::Pure, small_limits()).unwrap();
    let expected: [u8; 32] = sha2::Sha256::digest(&wasm).into();
    assert_eq!(t.module_hash(), expected);
    assert_eq!(
        sb.validate(&wasm, Profile::Pure, &small_limits())
            .unwrap()
            .sha256,
        expected
    );
}

/// Each derive gets the module's initial memory and tables, even when the pooling allocator
/// hands the same slot to the next instance (the pool keeps part of each memory resident and
/// resets it in place rather than decommitting it). Every call reads four places first, then
/// dirties them: a zero-initialized address in the first page, a data segment, a page past
/// the initial size (after growing), one far past the resident part (after growing more), and
/// a table slot. Every call must see the initial values.
#[test]
fn a_reused_pool_slot_does_not_leak_the_previous_calls_memory_or_table() {
    let wasm = wat::parse_str(
        r#"(module
  (memory (export "memory") 3)
  (data (i32.const 0x10000) "INIT")
  (table 2 funcref)
  (elem declare func $f)
  (func $f)
  (func (export "kasane_abi_v1"))
  (global $next (mut i32) (i32.const 1024))
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))
  (func (export "kasane_derive") (param $in i32) (param $in_len i32) (param $out i32) (param $cap i32) (result i32)
    ;; 3 -> 4 pages, then 4 -> 40 pages (2.5 MiB, past the 1 MiB kept resident).
    (drop (memory.grow (i32.const 1)))
    (drop (memory.grow (i32.const 36)))
    (i32.store (local.get $out) (i32.load (i32.const 0x8000)))
    (i32.store offset=4 (local.get $out) (i32.load (i32.const 0x10000)))
    (i32.store offset=8 (local.get $out) (i32.load (i32.const 0x30010)))
    (i32.store offset=12 (local.get $out) (i32.load (i32.const 0x270010)))
    (i32.store offset=16 (local.get $out) (ref.is_null (table.get (i32.const 1))))
    (i32.store (i32.const 0x8000) (i32.const 0x11111111))
    (i32.store (i32.const 0x10000) (i32.const 0x22222222))
    (i32.store (i32.const 0x30010) (i32.const 0x33333333))
    (i32.store (i32.const 0x270010) (i32.const 0x44444444))
    (table.set (i32.const 1) (ref.func $f))
    (i32.const 20)))"#,
    )
    .unwrap();
    let limits = kasane_sandbox::Limits {
        memory_bytes: 4 << 20,
        ..small_limits()
    };
    let mut expected = vec![0u8; 4];
    expected.extend_from_slice(b"INIT");
    expected.extend_from_slice(&[0; 8]);
    expected.extend_from_slice(&1u32.to_le_bytes());
    let one_slot = kasane_sandbox::Sandbox::new(kasane_sandbox::SandboxConfig {
        pooling: kasane_sandbox::PoolingSizes { instances: 1 },
        ..kasane_sandbox::SandboxConfig::default()
    })
    .unwrap();
    for sb in [
        one_slot,
        sandbox(Allocator::Pooling),
        sandbox(Allocator::OnDemand),
    ] {
        let t = sb.load(&wasm, Profile::Pure, limits).unwrap();
        for call in 0..5 {
            let key = t.derive(&input()).unwrap().key;
            assert_eq!(key.as_bytes(), expected.as_slice(), "call {call}");
        }
    }
}
