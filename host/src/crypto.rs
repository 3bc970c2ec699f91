//! Enrollment: OPAQUE registration (RFC 9807) and the keyed response verifiers.
//!
//! The host never stores a password or anything password-equivalent. At enrollment (the
//! operator gives the password, the host generates the card) it runs OPAQUE registration as
//! the client would — one argon2id with OWASP's parameters, on this side only once — and keeps the
//! registration record. Each card response is kept as its *verifier*,
//! `HMAC-SHA256(K_resp, u8(len(salt)) ‖ salt ‖ normalize(response))`, where `K_resp` comes
//! from OPAQUE's export key ([`kasane_protocol::verifier`]): only the password holder can
//! compute it, so a stolen database allows no guessing at responses.

use kasane_protocol::ServerKeys;
use kasane_protocol::opaque::{self, Binding};
use kasane_protocol::verifier::ResponseKey;
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::HostError;
use crate::store::ChallengePair;

pub use kasane_protocol::verifier::{SALT_LEN, VERIFIER_LEN, normalize_response};

pub use crate::error::KeyError;

/// What enrollment stores for a user: the OPAQUE record and one verifier per card pair.
#[derive(Debug)]
pub struct Enrollment {
    /// The OPAQUE registration record.
    pub opaque_record: Vec<u8>,
    /// The pairs with fresh 16-byte salts and keyed verifiers, in card order.
    pub pairs: Vec<ChallengePair>,
}

/// Registers `user` with `password` under the host's OPAQUE `keys` and computes the keyed
/// verifier of each `(prompt, response)` pair. Runs argon2id once: call it off the async
/// workers.
pub fn enroll(
    keys: &ServerKeys,
    user: &str,
    password: &[u8],
    responses: &[(String, Zeroizing<String>)],
) -> Result<Enrollment, HostError> {
    let context = opaque::context(None);
    let (opaque_record, export_key) = opaque::register(
        &mut OsRng,
        keys,
        password,
        &Binding::for_user(user, &context),
    )?;
    let response_key = ResponseKey::derive(&export_key);
    let mut pairs = Vec::with_capacity(responses.len());
    for (prompt, response) in responses {
        let mut salt = vec![0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let verifier = response_key.verifier(response, &salt)?;
        pairs.push(ChallengePair {
            prompt: prompt.clone(),
            salt,
            verifier,
        });
    }
    Ok(Enrollment {
        opaque_record,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_keeps_no_response_and_keys_its_verifiers() {
        let keys = <ServerKeys>::generate(&mut OsRng);
        let responses = vec![("A1".to_owned(), Zeroizing::new("K3Q9".to_owned()))];
        let a = enroll(&keys, "alice", b"pw", &responses).unwrap();
        let b = enroll(&keys, "alice", b"pw", &responses).unwrap();
        assert_eq!(a.opaque_record.len(), opaque::RECORD_LEN);
        assert_eq!(a.pairs.len(), 1);
        assert_eq!(a.pairs[0].verifier.len(), VERIFIER_LEN);
        // Fresh salts and a fresh envelope each time: nothing repeats between enrollments.
        assert_ne!(a.pairs[0].salt, b.pairs[0].salt);
        assert_ne!(a.opaque_record, b.opaque_record);
    }
}
