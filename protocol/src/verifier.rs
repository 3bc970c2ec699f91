//! Response verifiers: what both sides feed the transform instead of a typed response.
//!
//! A response (one entry of a code card) is never stored or sent. The host keeps its
//! *verifier*, `argon2id(normalize(response), salt = the pair's salt)` with OWASP's parameters
//! (m = 19 456 KiB, t = 2, p = 1) and 32 bytes of output; the client computes the same from
//! what the user typed and the salt in the challenge bundle, then runs the transform on it.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::error::ProtocolError;

/// Length of a response verifier, bytes.
pub const VERIFIER_LEN: usize = 32;
/// Length of a per-pair salt the host generates, bytes.
pub const SALT_LEN: usize = 16;

/// argon2id with OWASP's parameters: m = 19 456 KiB, t = 2, p = 1.
#[must_use]
pub fn argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// How a response typed by a user is normalized before hashing: surrounding whitespace
/// dropped, ASCII letters upper-cased (code cards are read by people).
#[must_use]
pub fn normalize_response(response: &str) -> Zeroizing<String> {
    Zeroizing::new(response.trim().to_ascii_uppercase())
}

/// The verifier of a response: `argon2id(normalize(response), salt)`, 32 bytes.
///
/// # Errors
/// [`ProtocolError::FieldRange`] (`salt`) for a salt argon2 refuses (shorter than 8 bytes).
pub fn response_verifier(response: &str, salt: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let normalized = normalize_response(response);
    let mut out = Zeroizing::new(vec![0u8; VERIFIER_LEN]);
    argon2id()
        .hash_password_into(normalized.as_bytes(), salt, &mut out)
        .map_err(|_| ProtocolError::FieldRange { field: "salt" })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn verifier_depends_on_salt_and_normalizes() {
        let a = response_verifier(" ab12 ", &[1; 16]).unwrap();
        let b = response_verifier("AB12", &[1; 16]).unwrap();
        let c = response_verifier("AB12", &[2; 16]).unwrap();
        assert_eq!(a, b);
        assert_ne!(b, c);
        assert_eq!(a.len(), VERIFIER_LEN);
        assert!(response_verifier("AB12", &[1; 4]).is_err());
    }
}
