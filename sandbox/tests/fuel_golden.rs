//! Golden fuel counts: each built-in in `guest-transforms/dist/` burns exactly the recorded
//! fuel on the typical login input. Fuel is part of every registry entry's budget, so a
//! wasmtime upgrade (or a rebuilt module) that changes metering must be noticed, not shipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use common::{BUILTINS, Builtin};

/// Fuel of one derive of [`common::typical_input_for`] with each built-in's typical params:
/// instantiation, `_initialize` (WASI), both `kasane_alloc` calls and `kasane_derive`.
/// The same numbers are in BENCHMARKS.md, "Fuel per built-in".
const GOLDEN: [(&str, u64); 6] = [
    ("sha256-chain", 63_333),
    ("hmac-sha256", 70_719),
    ("blake2s-keyed", 26_835),
    ("pbkdf2-sha256", 10_692_312),
    ("ocra", 56_213),
    ("sha256-wasi-c", 100_114),
];

const HOW_TO_UPDATE: &str = "\
The fuel the built-ins burn changed. Fuel is metered per wasm operation, so this follows a
wasmtime upgrade, a change to the engine configuration in sandbox/src/config.rs, or a rebuilt
module in guest-transforms/dist/. If the change is intended:
  1. check the new counts still fit the budgets registry entries carry (Limits::default().fuel
     and each entry's `fuel`; pbkdf2-sha256 grows with its iterations);
  2. replace the numbers in GOLDEN (sandbox/tests/fuel_golden.rs) with the lines below;
  3. update the table \"Fuel per built-in\" in BENCHMARKS.md to match.";

fn golden(b: Builtin) -> u64 {
    GOLDEN
        .iter()
        .find(|(name, _)| *name == b.name)
        .map(|(_, fuel)| *fuel)
        .unwrap_or_else(|| panic!("{} has no golden fuel count: add it to GOLDEN", b.name))
}

#[test]
fn every_builtin_has_exactly_one_golden_count() {
    let mut names: Vec<&str> = GOLDEN.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut builtins: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
    builtins.sort_unstable();
    assert_eq!(names, builtins);
}

#[test]
fn every_builtin_burns_exactly_its_golden_fuel() {
    let sb = common::sandbox();
    let mut changed = Vec::new();
    for b in common::available_builtins() {
        let t = common::load(&sb, b);
        let d = common::derive(&t, &common::typical_input_for(b))
            .unwrap_or_else(|e| panic!("{}: {e:?}", b.name));
        let want = golden(b);
        if d.fuel_used != want {
            changed.push(format!(
                "    (\"{}\", {}), // was {want}",
                b.name, d.fuel_used
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "{HOW_TO_UPDATE}\n{}",
        changed.join("\n")
    );
}
