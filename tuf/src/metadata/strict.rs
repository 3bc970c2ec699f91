//! Refuses JSON objects that repeat a key, at any depth. serde_json keeps the last value of
//! a repeated key, so `{"threshold": 2, "threshold": 0}` would mean one thing to this crate
//! and another to a parser that keeps the first: metadata must have one reading only.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::{Result, TufError};

/// Walks the whole document; [`TufError::DuplicateKey`] for the first repeated key,
/// [`TufError::Malformed`] if it is not JSON.
pub(crate) fn check_no_duplicate_keys(what: &str, bytes: &[u8]) -> Result<()> {
    match first_duplicate_key(bytes) {
        Ok(Some(key)) => Err(TufError::DuplicateKey {
            what: what.to_owned(),
            key,
        }),
        Ok(None) => Ok(()),
        Err(e) => Err(TufError::malformed(what, e)),
    }
}

/// Walks the whole of `bytes`, which must be one JSON value, and returns the first key that
/// some object in it (at any depth) repeats, or `None`; the parse error if it is not JSON.
/// (Also what `kasane-registry` checks its own signed documents with.)
pub fn first_duplicate_key(bytes: &[u8]) -> std::result::Result<Option<String>, serde_json::Error> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = NoDup(&dup).deserialize(&mut de).and_then(|()| de.end());
    match (walked, dup.into_inner()) {
        (_, Some(key)) => Ok(Some(key)),
        (Err(e), None) => Err(e),
        (Ok(()), None) => Ok(None),
    }
}

/// Accepts any JSON value and records the first duplicate key it meets.
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
        assert!(check_no_duplicate_keys("x", br#"{"a":1,"b":[{"c":1,"d":2}]}"#).is_ok());
        for doc in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":[{"a":1,"b":{"a":1,"a":0}}]}"#,
        ] {
            match check_no_duplicate_keys("x", doc) {
                Err(TufError::DuplicateKey { key, .. }) => assert_eq!(key, "a"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            check_no_duplicate_keys("x", b"{} {}"),
            Err(TufError::Malformed { .. })
        ));
    }
}
