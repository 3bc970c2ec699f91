//! The compile cache: hits, misses, a disabled cache that never touches the disk, and every
//! kind of bad entry recompiled from the original bytes (never deserialized).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_sandbox::{Allocator, CacheOutcome, CompileCache, Profile, Sandbox};
use std::fs;
use std::path::{Path, PathBuf};
use support::*;

/// A second valid transform with a different key (transcript hash reversed... simply 16 bytes).
fn other_module() -> Vec<u8> {
    abi_module(
        "(memory.copy (local.get $out) (local.get $in) (i32.const 16)) (i32.const 16)",
        "",
    )
}

/// The one `.cwasm` entry in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

fn load(sb: &Sandbox, wasm: &[u8], cache: &CompileCache) -> CacheOutcome {
    let (t, outcome) = sb
        .load_cached(wasm, Profile::Pure, small_limits(), cache)
        .unwrap();
    if wasm == good_module().as_slice() {
        assert_good(&t);
    } else {
        assert_eq!(t.derive(&input()).unwrap().key.len(), 16);
    }
    outcome
}

#[test]
fn second_load_is_a_hit_with_the_same_result() {
    for allocator in [Allocator::Pooling, Allocator::OnDemand] {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let sb = sandbox(allocator);
        assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Miss);
        assert_eq!(entries(dir.path()).len(), 1);
        assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Hit);
        // Another process (another sandbox and cache handle on the same dir) hits too.
        let cache2 = CompileCache::open(dir.path()).unwrap();
        assert_eq!(
            load(&sandbox(allocator), &good_module(), &cache2),
            CacheOutcome::Hit
        );
        let (fresh, cached) = (
            sb.load(&good_module(), Profile::Pure, small_limits())
                .unwrap(),
            sb.load_cached(&good_module(), Profile::Pure, small_limits(), &cache)
                .unwrap()
                .0,
        );
        let (a, b) = (
            fresh.derive(&input()).unwrap(),
            cached.derive(&input()).unwrap(),
        );
        assert_eq!((a.key, a.fuel_used), (b.key, b.fuel_used));
    }
}

#[test]
fn pooling_and_on_demand_entries_do_not_mix() {
    // Different engine configurations have different keys: a miss, never a wrong module.
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    assert_eq!(
        load(&sandbox(Allocator::Pooling), &good_module(), &cache),
        CacheOutcome::Miss
    );
    let second = load(&sandbox(Allocator::OnDemand), &good_module(), &cache);
    assert!(
        matches!(second, CacheOutcome::Miss | CacheOutcome::Hit),
        "{second:?}"
    );
}

#[test]
fn a_disabled_cache_never_touches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::disabled();
    assert!(cache.dir().is_none());
    let sb = sandbox(Allocator::Pooling);
    for _ in 0..2 {
        assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Disabled);
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Corrupts the single entry with `damage`, then checks the next load is `Recompiled` with
/// a correct result, and the one after is a `Hit` again (the entry was rewritten).
fn assert_recompiled_after(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::Pooling);
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Miss);
    let entry = entries(dir.path()).pop().unwrap();
    damage(&entry);
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Recompiled);
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Hit);
}

#[test]
fn a_flipped_byte_is_recompiled() {
    for offset in [0usize, 20, 50, 100, 5000] {
        assert_recompiled_after(|p| {
            let mut b = fs::read(p).unwrap();
            let i = offset.min(b.len() - 1);
            b[i] ^= 0x40;
            fs::write(p, b).unwrap();
        });
    }
}

#[test]
fn a_truncated_entry_is_recompiled() {
    for keep in [0usize, 10, 76, 1000] {
        assert_recompiled_after(|p| {
            let b = fs::read(p).unwrap();
            fs::write(p, &b[..keep.min(b.len() - 1)]).unwrap();
        });
    }
}

#[test]
fn another_modules_valid_entry_is_recompiled_not_run() {
    // A valid, correctly tagged entry of another module placed under this module's name:
    // it would deserialize fine, and run the wrong code. It must be refused.
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::Pooling);
    assert_eq!(load(&sb, &other_module(), &cache), CacheOutcome::Miss);
    let other_entry = entries(dir.path()).pop().unwrap();
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Miss);
    let good_entry = entries(dir.path())
        .into_iter()
        .find(|p| *p != other_entry)
        .unwrap();
    fs::copy(&other_entry, &good_entry).unwrap();
    // `load` checks the derived key is the good module's.
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Recompiled);
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Hit);
}

#[test]
fn an_entry_from_another_cache_is_recompiled() {
    // Same module, same engine, but tagged under another cache's secret (a planted file).
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c1, c2) = (
        CompileCache::open(d1.path()).unwrap(),
        CompileCache::open(d2.path()).unwrap(),
    );
    let sb = sandbox(Allocator::Pooling);
    assert_eq!(load(&sb, &good_module(), &c1), CacheOutcome::Miss);
    let planted = entries(d1.path()).pop().unwrap();
    let target = d2.path().join(planted.file_name().unwrap());
    fs::copy(&planted, &target).unwrap();
    assert_eq!(load(&sb, &good_module(), &c2), CacheOutcome::Recompiled);
}

#[test]
fn hostile_bytes_are_validated_before_anything_is_compiled_or_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::Pooling);
    let e = sb
        .load_cached(b"not wasm", Profile::Pure, small_limits(), &cache)
        .unwrap_err();
    assert!(
        matches!(e, kasane_sandbox::SandboxError::InvalidWasm(_)),
        "{e:?}"
    );
    assert!(entries(dir.path()).is_empty());
}

/// A hit skips wasmparser, not the checks against the caller's limits: the same bytes give
/// the same verdict with and without a cache entry, whatever limits the entry was made under.
#[test]
fn a_hit_still_checks_the_callers_limits() {
    use kasane_sandbox::{Limits, SandboxError};
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::Pooling);
    // One page of memory and a table of 10 elements.
    let wasm = abi_module("(i32.const 1)", "(table 10 funcref)");
    let (_, outcome) = sb
        .load_cached(&wasm, Profile::Pure, small_limits(), &cache)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    type Expected = fn(&SandboxError) -> bool;
    let cases: [(Limits, Expected); 3] = [
        (
            Limits {
                memory_bytes: 32 << 10,
                ..small_limits()
            },
            |e| matches!(e, SandboxError::MemoryLimit),
        ),
        (
            Limits {
                table_elements: 9,
                ..small_limits()
            },
            |e| matches!(e, SandboxError::TableLimit),
        ),
        (
            Limits {
                module_bytes: wasm.len() - 1,
                ..small_limits()
            },
            |e| matches!(e, SandboxError::ModuleTooLarge { .. }),
        ),
    ];
    for (limits, expected) in cases {
        let uncached = sb.load(&wasm, Profile::Pure, limits).unwrap_err();
        assert!(expected(&uncached), "{uncached:?}");
        let cached = sb
            .load_cached(&wasm, Profile::Pure, limits, &cache)
            .unwrap_err();
        assert!(expected(&cached), "{cached:?}");
    }
    let (_, outcome) = sb
        .load_cached(&wasm, Profile::Pure, small_limits(), &cache)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
}

/// An entry is bound to its module's profile: the same bytes under the other profile are
/// another key (validated on their own), never a hit on the first profile's verdict.
#[cfg(feature = "wasi")]
#[test]
fn an_entry_is_not_shared_between_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::Pooling);
    let (_, outcome) = sb
        .load_cached(&good_module(), Profile::Pure, small_limits(), &cache)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    let (_, outcome) = sb
        .load_cached(&good_module(), Profile::Wasi, small_limits(), &cache)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(entries(dir.path()).len(), 2);
}
