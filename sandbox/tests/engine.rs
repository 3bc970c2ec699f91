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
