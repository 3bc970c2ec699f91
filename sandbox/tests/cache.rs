//! The compile cache: hits, misses, a disabled cache that never touches the disk, and every
//! kind of bad entry recompiled from the original bytes (never deserialized).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use kasane_sandbox::{
    Allocator, CacheOutcome, CompileCache, Optimization, Profile, Sandbox, SandboxConfig,
};
use std::fs;
use std::path::{Path, PathBuf};
use support::*;

/// A second valid transform with a different key: the first 16 bytes of the input.
fn other_module() -> Vec<u8> {
    abi_module(
        "(memory.copy (local.get $out) (local.get $in) (i32.const 16)) (i32.const 16)",
        "",
    )
}

/// The `.cwasm` entries in `dir`, sorted.
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

/// wasmtime's hash of everything that makes compiled code interchangeable between engines.
fn compatibility(sb: &Sandbox) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sb.engine().precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

#[test]
fn pooling_and_on_demand_share_an_entry_exactly_when_compatible() {
    // The key holds the engine's compatibility hash: the allocators share an entry exactly
    // when wasmtime says their code is interchangeable, and otherwise each gets its own. Either
    // way the loaded module is the right one (`load` checks the key it derives).
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let (pooling, on_demand) = (sandbox(Allocator::Pooling), sandbox(Allocator::OnDemand));
    assert_eq!(load(&pooling, &good_module(), &cache), CacheOutcome::Miss);
    let shared = compatibility(&pooling) == compatibility(&on_demand);
    let (outcome, entry_count) = if shared {
        (CacheOutcome::Hit, 1)
    } else {
        (CacheOutcome::Miss, 2)
    };
    assert_eq!(load(&on_demand, &good_module(), &cache), outcome);
    assert_eq!(entries(dir.path()).len(), entry_count);
}

#[test]
fn engines_that_compile_differently_never_share_an_entry() {
    // Another optimization level is other machine code: its own key, a miss, its own entry.
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let engine = |optimization| {
        Sandbox::new(SandboxConfig {
            optimization,
            pooling: kasane_sandbox::PoolingSizes { instances: 8 },
            ..SandboxConfig::default()
        })
        .unwrap()
    };
    let (speed, quick) = (
        engine(Optimization::Speed),
        engine(Optimization::CompileTime),
    );
    assert_ne!(compatibility(&speed), compatibility(&quick));
    assert_eq!(load(&speed, &good_module(), &cache), CacheOutcome::Miss);
    assert_eq!(load(&quick, &good_module(), &cache), CacheOutcome::Miss);
    assert_eq!(entries(dir.path()).len(), 2);
    assert_eq!(load(&speed, &good_module(), &cache), CacheOutcome::Hit);
    assert_eq!(load(&quick, &good_module(), &cache), CacheOutcome::Hit);
}

/// Set in the child process [`a_disabled_cache_never_touches_the_disk`] runs itself in.
const DISABLED_CACHE_CHILD: &str = "KASANE_TEST_DISABLED_CACHE_CHILD";

/// Every file and directory under `dir`.
fn everything_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found.extend(everything_under(&p));
        }
        found.push(p);
    }
    found
}

#[test]
fn a_disabled_cache_never_touches_the_disk() {
    if std::env::var_os(DISABLED_CACHE_CHILD).is_some() {
        // In the child: the working directory, HOME, TMPDIR and XDG_CACHE_HOME are one empty
        // directory, the places a cache that forgot it was disabled could write.
        let cache = CompileCache::disabled();
        assert!(cache.dir().is_none());
        let sb = sandbox(Allocator::Pooling);
        for _ in 0..2 {
            assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Disabled);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_disabled_cache_never_touches_the_disk"])
        .current_dir(dir.path())
        .env(DISABLED_CACHE_CHILD, "1")
        .env("HOME", dir.path())
        .env("TMPDIR", dir.path())
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(everything_under(dir.path()), Vec::<PathBuf>::new());
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

/// The key and every entry go through kasane-os's private-file writer: mode 0600 in a 0700
/// directory, and no temporary file is left behind.
#[cfg(unix)]
#[test]
fn the_cache_writes_only_private_files_and_leaves_no_temporaries() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cache");
    let cache = CompileCache::open(&dir).unwrap();
    let sb = sandbox(Allocator::Pooling);
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Miss);
    assert_eq!(load(&sb, &other_module(), &cache), CacheOutcome::Miss);
    assert_eq!(mode(&dir), 0o700);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // cache.key and the two entries, nothing else.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n == "cache.key"), "{names:?}");
    for name in &names {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        assert!(!name.starts_with('.'), "temporary file left: {name}");
    }
}

/// The lookup by hash alone gives a hit's transform (the same output as loading the bytes)
/// and nothing else: a module never compiled here, another profile's entry, a tampered
/// entry or a disabled cache is `None`, with nothing compiled or written; the caller's limits
/// are checked as on a hit.
#[test]
fn a_lookup_by_hash_gives_only_hits() {
    use kasane_sandbox::SandboxError;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    let sb = sandbox(Allocator::OnDemand);
    let wasm = good_module();
    let sha: [u8; 32] = sha2::Sha256::digest(&wasm).into();
    let by_hash = |cache: &CompileCache, limits| {
        sb.load_cached_by_hash(&sha, wasm.len(), Profile::Pure, limits, cache)
    };
    assert!(by_hash(&cache, small_limits()).unwrap().is_none());
    assert!(entries(dir.path()).is_empty(), "a miss compiled something");
    assert!(
        by_hash(&CompileCache::disabled(), small_limits())
            .unwrap()
            .is_none()
    );
    load(&sb, &wasm, &cache);
    let t = by_hash(&cache, small_limits()).unwrap().expect("a hit");
    assert_good(&t);
    let too_small = kasane_sandbox::Limits {
        module_bytes: wasm.len() - 1,
        ..small_limits()
    };
    let e = by_hash(&cache, too_small).unwrap_err();
    assert!(matches!(e, SandboxError::ModuleTooLarge { .. }), "{e:?}");
    #[cfg(feature = "wasi")]
    assert!(
        sb.load_cached_by_hash(&sha, wasm.len(), Profile::Wasi, small_limits(), &cache)
            .unwrap()
            .is_none()
    );
    let entry = entries(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&entry, bytes).unwrap();
    assert!(by_hash(&cache, small_limits()).unwrap().is_none());
}

#[test]
fn a_cache_that_cannot_be_written_or_read_does_not_fail_the_load() {
    let sb = sandbox(Allocator::Pooling);
    // Removed after opening: nothing to read (a miss), nowhere to write.
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path().join("c")).unwrap();
    fs::remove_dir_all(dir.path().join("c")).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            load(&sb, &good_module(), &cache),
            CacheOutcome::Unusable(_)
        ));
    }
    // An entry that cannot be read (a directory where the file should be, which also
    // cannot be renamed over): the same, even for a root that ignores permissions.
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path()).unwrap();
    assert_eq!(load(&sb, &good_module(), &cache), CacheOutcome::Miss);
    let entry = entries(dir.path()).pop().unwrap();
    fs::remove_file(&entry).unwrap();
    fs::create_dir_all(entry.join("x")).unwrap();
    assert!(matches!(
        load(&sb, &good_module(), &cache),
        CacheOutcome::Unusable(_)
    ));
}
