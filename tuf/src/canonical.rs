//! Canonical JSON (the OLPC form securesystemslib signs): keys sorted, no whitespace, only
//! `"` and `\` escaped, integers only.

use olpc_cjson::CanonicalFormatter;
use serde::Serialize;

use crate::error::{Result, TufError};

/// The canonical JSON bytes of `value`; refuses values canonical JSON cannot express
/// (non-integer numbers).
pub fn canonical_json(value: &serde_json::Value) -> Result<Vec<u8>> {
    to_canonical(value)
}

/// The canonical JSON bytes of anything serializable (through its JSON form).
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| TufError::malformed("canonical JSON", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, 2, {"d": true, "c": null}], "a": "x\"y\\z"});
        let got = canonical_json(&v).unwrap();
        assert_eq!(got, br#"{"a":"x\"y\\z","b":[1,2,{"c":null,"d":true}]}"#);
    }

    #[test]
    fn refuses_floats() {
        assert!(matches!(
            canonical_json(&json!({"a": 1.5})),
            Err(TufError::Malformed { .. })
        ));
    }
}
