//! Strict JSON: size cap, duplicate keys refused, then typed parsing with unknown fields refused.
//!
//! serde_json keeps the last value of a repeated key, so `{"threshold":2,"threshold":0}` would
//! mean different things to different parsers. Every signed payload goes through
//! [`from_slice_strict`], which walks the document once (`kasane_tuf`'s
//! `first_duplicate_key`) and refuses any object with a repeated key before the typed parse
//! runs.

use serde::de::DeserializeOwned;

use crate::error::{RegistryError, Result};

/// Parses `bytes` as a `T`, refusing documents over `max` bytes and objects with duplicate keys.
pub(crate) fn from_slice_strict<T: DeserializeOwned>(
    bytes: &[u8],
    max: u64,
    what: &str,
) -> Result<T> {
    check_len(bytes.len(), max, what)?;
    check_no_duplicate_keys(bytes)?;
    Ok(serde_json::from_slice(bytes)?)
}

/// Refuses a length over `max`.
pub(crate) fn check_len(len: usize, max: u64, what: &str) -> Result<()> {
    let len = len as u64;
    if len > max {
        return Err(RegistryError::TooLarge {
            what: what.to_owned(),
            len,
            max,
        });
    }
    Ok(())
}

/// Walks the whole document and refuses any object that repeats a key (the TUF crate's walk,
/// with this crate's errors).
pub(crate) fn check_no_duplicate_keys(bytes: &[u8]) -> Result<()> {
    match kasane_tuf::metadata::first_duplicate_key(bytes) {
        Ok(Some(key)) => Err(RegistryError::DuplicateKey { key }),
        Ok(None) => Ok(()),
        Err(e) => Err(RegistryError::Json(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert!(check_no_duplicate_keys(br#"{"a":1,"b":[{"c":1,"d":2}]}"#).is_ok());
        for doc in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":[{"a":1,"b":{"a":1,"a":0}}]}"#,
        ] {
            match check_no_duplicate_keys(doc) {
                Err(RegistryError::DuplicateKey { key }) => assert_eq!(key, "a"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn trailing_garbage_and_caps() {
        assert!(check_no_duplicate_keys(b"{} {}").is_err());
        assert!(matches!(
            from_slice_strict::<serde_json::Value>(b"[1,2,3]", 3, "x"),
            Err(RegistryError::TooLarge { .. })
        ));
    }
}
