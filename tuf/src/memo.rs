//! Memos of the two costly pure steps a client repeats on the same bytes: parsing a metadata
//! file (duplicate-key check, JSON, the canonical form of `signed`) and checking one
//! signature. A Kasane login runs the trust store four or five times (the update, then the
//! ticket and the module lookups, each loading root, timestamp, snapshot and targets from the
//! store again, as TUF's workflow does from a cold start); measured on the login bench, those
//! repeats were about 3 ms of the client's login, half in Ed25519, half in JSON.
//!
//! Each memo is keyed by SHA-256 over every input (length-prefixed), holds only successes,
//! and is bounded ([`CAPACITY`] entries and [`PARSED_BYTES`] of parsed input, emptied when
//! full; a file over [`PARSED_MAX`] is never kept): a hit gives exactly what computing again
//! would, for the cost of one hash. Failures are always computed again.
//! Hand-written: the caches crates offer (`moka`, `lru`) bring more than a bounded map
//! emptied when full needs.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Most entries each memo holds before it is emptied (a client's roles and their signatures
/// number a handful; a host loads a few more).
pub const CAPACITY: usize = 256;
/// Most bytes of input the parse memo holds the results of (the parsed forms take a small
/// multiple of it).
pub const PARSED_BYTES: usize = 4 << 20;
/// Largest file whose parse is kept.
pub const PARSED_MAX: usize = 256 << 10;

/// Parsed values by their type and the digest of their input, and the input bytes the
/// entries stand for.
type ParseMemo = (
    HashMap<(TypeId, [u8; 32]), Arc<dyn Any + Send + Sync>>,
    usize,
);

static PARSED: LazyLock<Mutex<ParseMemo>> = LazyLock::new(Mutex::default);
static VERIFIED: LazyLock<Mutex<HashSet<[u8; 32]>>> = LazyLock::new(Mutex::default);

/// SHA-256 over `parts`, each prefixed by its length (so that no two lists collide).
pub fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// `parse(bytes)`, or the value it gave for the same bytes and type before.
pub fn parsed<V, E>(bytes: &[u8], parse: impl FnOnce(&[u8]) -> Result<V, E>) -> Result<V, E>
where
    V: Clone + Send + Sync + 'static,
{
    if bytes.len() > PARSED_MAX {
        return parse(bytes);
    }
    let key = (TypeId::of::<V>(), digest(&[bytes]));
    let hit = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0
        .get(&key)
        .cloned();
    if let Some(v) = hit.and_then(|v| v.downcast_ref::<V>().cloned()) {
        return Ok(v);
    }
    let v = parse(bytes)?;
    let mut guard = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    let (map, held) = &mut *guard;
    if map.len() >= CAPACITY || *held + bytes.len() > PARSED_BYTES {
        map.clear();
        *held = 0;
    }
    if map.insert(key, Arc::new(v.clone())).is_none() {
        *held += bytes.len();
    }
    Ok(v)
}

/// `check()`, unless the same `key` (a [`digest`] of the key, message and signature) passed
/// before.
pub fn verified<E>(key: [u8; 32], check: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
    if VERIFIED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&key)
    {
        return Ok(());
    }
    check()?;
    let mut set = VERIFIED.lock().unwrap_or_else(PoisonError::into_inner);
    if set.len() >= CAPACITY {
        set.clear();
    }
    set.insert(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_parse_runs_once_per_bytes_and_type_and_failures_run_again() {
        let runs = Cell::new(0);
        let parse = |b: &[u8]| -> Result<Vec<u8>, ()> {
            runs.set(runs.get() + 1);
            Ok(b.to_vec())
        };
        let bytes = b"memo-test-parse-once".as_slice();
        assert_eq!(parsed(bytes, parse), Ok(bytes.to_vec()));
        assert_eq!(parsed(bytes, parse), Ok(bytes.to_vec()));
        assert_eq!(runs.get(), 1);
        // Same bytes, another type: parsed again.
        let as_string = parsed(bytes, |b| -> Result<String, ()> {
            runs.set(runs.get() + 1);
            Ok(String::from_utf8_lossy(b).into_owned())
        });
        assert_eq!(as_string.as_deref(), Ok("memo-test-parse-once"));
        assert_eq!(runs.get(), 2);
        let failing = b"memo-test-parse-fails".as_slice();
        for _ in 0..2 {
            let got = parsed(failing, |_| -> Result<Vec<u8>, &str> {
                runs.set(runs.get() + 1);
                Err("no")
            });
            assert_eq!(got, Err("no"));
        }
        assert_eq!(runs.get(), 4);
    }

    #[test]
    fn a_file_over_the_limit_is_parsed_each_time() {
        let runs = Cell::new(0);
        let big = vec![7u8; PARSED_MAX + 1];
        for _ in 0..2 {
            let got = parsed(&big, |b| -> Result<usize, ()> {
                runs.set(runs.get() + 1);
                Ok(b.len())
            });
            assert_eq!(got, Ok(PARSED_MAX + 1));
        }
        assert_eq!(runs.get(), 2);
    }

    #[test]
    fn only_a_passed_check_is_remembered() {
        let runs = Cell::new(0);
        let key = digest(&[b"memo-test", b"verify"]);
        let fail = || -> Result<(), ()> {
            runs.set(runs.get() + 1);
            Err(())
        };
        assert!(verified(key, fail).is_err());
        assert!(verified(key, fail).is_err());
        assert_eq!(runs.get(), 2);
        let pass = || -> Result<(), ()> {
            runs.set(runs.get() + 1);
            Ok(())
        };
        assert!(verified(key, pass).is_ok());
        assert!(verified(key, fail).is_ok(), "remembered");
        assert_eq!(runs.get(), 3);
    }

    #[test]
    fn digests_of_different_splits_differ() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
