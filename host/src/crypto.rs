//! Password hashes and response verifiers (argon2id), and the dummy work of decoys.
//!
//! Passwords are stored as argon2id PHC strings with OWASP's parameters (m = 19 456 KiB,
//! t = 2, p = 1). A response is never stored: the host keeps its *verifier*,
//! `argon2id(normalized response, salt = the pair's salt)` with the same parameters and 32
//! bytes of output, which the client computes too before running the transform.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use zeroize::Zeroizing;

use crate::HostError;

pub use kasane_protocol::verifier::{SALT_LEN, VERIFIER_LEN, argon2id, normalize_response};

pub use crate::error::KeyError;

/// Hashes a password into an argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &[u8]) -> Result<String, HostError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2id()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(HostError::from)
}

/// Checks `password` against a stored PHC string (constant time inside argon2). A hash that
/// does not parse verifies nothing.
#[must_use]
pub fn verify_password(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2id().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Runs one password verification against a hash of nothing, so an unknown user costs what
/// a known one does (decoys).
pub fn dummy_verify(password: &[u8]) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash_password(b"kasane decoy").ok()) {
        let _ = verify_password(phc, password);
    }
}

/// The verifier of a response: `argon2id(normalize(response), salt)`, 32 bytes (see
/// [`kasane_protocol::verifier`], shared with the client).
pub fn response_verifier(response: &str, salt: &[u8]) -> Result<Zeroizing<Vec<u8>>, HostError> {
    Ok(kasane_protocol::verifier::response_verifier(
        response, salt,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_uses_owasp_parameters_and_verifies() {
        let h = hash_password(b"pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, b"pw"));
        assert!(!verify_password(&h, b"pW"));
        assert!(!verify_password("not a hash", b"pw"));
    }

    #[test]
    fn verifier_depends_on_salt_and_normalizes() {
        let a = response_verifier(" ab12 ", &[1; 16]).unwrap();
        let b = response_verifier("AB12", &[1; 16]).unwrap();
        let c = response_verifier("AB12", &[2; 16]).unwrap();
        assert_eq!(a, b);
        assert_ne!(b, c);
        assert_eq!(a.len(), VERIFIER_LEN);
    }
}
