//! Length and hash checks of fetched bytes against what the referring metadata pins.

use std::collections::BTreeMap;

use sha2::Digest;

use crate::error::{Result, TufError};

/// Fails unless `data` is `expected` bytes long.
pub fn check_length(what: &str, expected: u64, data: &[u8]) -> Result<()> {
    let got = data.len() as u64;
    if got != expected {
        return Err(TufError::LengthMismatch {
            what: what.to_owned(),
            expected,
            got,
        });
    }
    Ok(())
}

/// Fails unless every hash in `hashes` (algorithm → hex) is `data`'s; an unknown algorithm
/// fails too.
pub fn check_hashes(what: &str, hashes: &BTreeMap<String, String>, data: &[u8]) -> Result<()> {
    for (algorithm, expected) in hashes {
        let got = match algorithm.as_str() {
            "sha224" => hex::encode(sha2::Sha224::digest(data)),
            "sha256" => hex::encode(sha2::Sha256::digest(data)),
            "sha384" => hex::encode(sha2::Sha384::digest(data)),
            "sha512" => hex::encode(sha2::Sha512::digest(data)),
            _ => String::new(),
        };
        if got.is_empty() || got != *expected {
            return Err(TufError::HashMismatch {
                what: what.to_owned(),
                algorithm: algorithm.clone(),
            });
        }
    }
    Ok(())
}
