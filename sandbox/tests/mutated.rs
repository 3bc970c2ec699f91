//! Arbitrary and mutated modules: validation, loading and deriving never panic, and every
//! outcome is a typed result.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_sandbox::{Allocator, Profile, Sandbox};
use proptest::prelude::*;
use std::sync::OnceLock;
use support::*;

fn shared() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| sandbox(Allocator::Pooling))
}

fn exercise(wasm: &[u8]) {
    let sb = shared();
    for profile in [Profile::Pure, Profile::Wasi] {
        let validated = sb.validate(wasm, profile, &small_limits());
        match sb.load(wasm, profile, small_limits()) {
            Ok(t) => {
                assert!(validated.is_ok(), "load accepted what validate refused");
                // Any result is fine; a panic or a hang is not.
                let _ = t.derive(&input());
            }
            Err(e) => {
                // Display never panics either.
                let _ = e.to_string();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_good_modules_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut wasm = good_module();
        for (i, b) in flips {
            let at = i.index(wasm.len());
            wasm[at] ^= b;
        }
        exercise(&wasm);
    }
}

#[test]
fn the_sandbox_still_serves_good_calls_after_the_fuzzing() {
    exercise(b"\0asm\x01\0\0\0");
    assert_serves_good_calls(shared());
}
