//! WAT building blocks for the sandbox's own tests (hostile corpus, cache, WASI profile).
#![allow(
    dead_code,
    reason = "each test crate uses its own subset of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure here is a test failure"
)]

use kasane_abi::DeriveInput;
use kasane_sandbox::{Allocator, Limits, Profile, Sandbox, SandboxConfig, Transform};

/// A bump allocator starting at 1024, as most guests have.
pub(crate) const BUMP_ALLOC: &str = r#"
  (global $next (mut i32) (i32.const 1024))
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))"#;

/// An ABI v1 module whose `kasane_derive` body is `derive` (params `$in $in_len $out $cap`),
/// with `extra` fields added to the module.
pub(crate) fn abi_module(derive: &str, extra: &str) -> Vec<u8> {
    abi_module_with(BUMP_ALLOC, derive, extra)
}

/// Like [`abi_module`] with a custom allocator.
pub(crate) fn abi_module_with(alloc: &str, derive: &str, extra: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
  {extra}
  (memory (export "memory") 1)
  (func (export "kasane_abi_v1"))
  {alloc}
  (func (export "kasane_derive") (param $in i32) (param $in_len i32) (param $out i32) (param $cap i32) (result i32)
    {derive}))"#
    );
    wat::parse_str(&src).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{src}"))
}

/// The good transform: the key is the input's transcript hash (offset 92, 32 bytes) with the
/// low byte of the counter (offset 4) added to its first byte.
pub(crate) fn good_module() -> Vec<u8> {
    abi_module(GOOD_DERIVE, "")
}

/// The `kasane_derive` body of [`good_module`].
pub(crate) const GOOD_DERIVE: &str = r#"(memory.copy (local.get $out) (i32.add (local.get $in) (i32.const 92)) (i32.const 32))
    (i32.store8 (local.get $out)
      (i32.add (i32.load8_u (local.get $out)) (i32.load8_u (i32.add (local.get $in) (i32.const 4)))))
    (i32.const 32)"#;

/// The key [`good_module`] must return for `input`.
pub(crate) fn good_key(input: &DeriveInput<'_>) -> Vec<u8> {
    let mut k = input.transcript_hash.to_vec();
    k[0] = k[0].wrapping_add(input.counter as u8);
    k
}

/// A typical input.
pub(crate) fn input() -> DeriveInput<'static> {
    let mut i = DeriveInput::empty();
    i.counter = 7;
    i.timestamp = 1_700_000_000;
    i.transcript_hash = [0x5A; 32];
    i
}

/// Small, fast limits for hostile tests.
pub(crate) fn small_limits() -> Limits {
    Limits {
        fuel: 1_000_000,
        memory_bytes: 1 << 20,
        table_elements: 1_000,
        ..Limits::default()
    }
}

/// A sandbox with a small pool (tests run many in parallel).
pub(crate) fn sandbox(allocator: Allocator) -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator,
        pooling: kasane_sandbox::PoolingSizes { instances: 8 },
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// Loads and checks the good module on `sb`: the sandbox still serves good calls.
pub(crate) fn assert_serves_good_calls(sb: &Sandbox) {
    let t = sb
        .load(&good_module(), Profile::Pure, small_limits())
        .unwrap();
    assert_good(&t);
}

/// Runs `t` (the good module) and checks its key.
pub(crate) fn assert_good(t: &Transform) {
    assert_good_with(t, Transform::derive);
}

/// Runs `t` (the good module) through `derive` (`Transform::derive` or `derive_warm`) and
/// checks its key.
pub(crate) fn assert_good_with(
    t: &Transform,
    derive: fn(
        &Transform,
        &DeriveInput<'_>,
    ) -> Result<kasane_sandbox::Derived, kasane_sandbox::SandboxError>,
) {
    let i = input();
    let d = derive(t, &i).unwrap();
    assert_eq!(d.key.as_bytes(), good_key(&i).as_slice());
    assert!(d.fuel_used > 0);
}
