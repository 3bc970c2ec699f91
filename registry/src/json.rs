//! Strict JSON: size cap, duplicate keys refused, then typed parsing with unknown fields refused.
//!
//! serde_json keeps the last value of a repeated key, so `{"threshold":2,"threshold":0}` would
//! mean different things to different parsers. Every signed payload goes through
//! [`from_slice_strict`], which walks the document once with a visitor that refuses any object
//! with a repeated key before the typed parse runs.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

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

/// Walks the whole document and refuses any object that repeats a key.
pub(crate) fn check_no_duplicate_keys(bytes: &[u8]) -> Result<()> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = NoDup(&dup).deserialize(&mut de).and_then(|()| de.end());
    match (walked, dup.into_inner()) {
        (_, Some(key)) => Err(RegistryError::DuplicateKey { key }),
        (Err(e), None) => Err(RegistryError::Json(e)),
        (Ok(()), None) => Ok(()),
    }
}

/// A seed/visitor that accepts any JSON value and records the first duplicate key it meets.
#[derive(Clone, Copy)]
struct NoDup<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for NoDup<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDup<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                *self.0.borrow_mut() = Some(key);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
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
