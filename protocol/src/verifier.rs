//! Response verifiers: what both sides feed the transform instead of a typed response.
//!
//! A response (one entry of a code card) is never stored or sent. The host keeps its
//! *verifier*, `HMAC-SHA256(K_resp, u8(len(salt)) ‖ salt ‖ normalize(response))`, where
//! `K_resp = HKDF-SHA256(salt = "", ikm = export_key, info = "kasane/v2/response-key")` comes
//! from OPAQUE's export key: only the password holder can compute it, so a stolen database
//! gives no way to test guesses at card responses. The client computes the same from what the
//! user typed, the salt in the challenge bundle and the export key of this login.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::ProtocolError;
use crate::opaque::ExportKey;

/// Length of a response verifier, bytes.
pub const VERIFIER_LEN: usize = 32;
/// Length of a per-pair salt the host generates, bytes.
pub const SALT_LEN: usize = 16;
/// Longest salt a verifier accepts, bytes (one length byte frames it).
pub const MAX_SALT_LEN: usize = 255;
/// HKDF info of the response key.
pub const INFO_RESPONSE_KEY: &[u8] = b"kasane/v2/response-key";

/// How a response typed by a user is normalized before hashing: surrounding whitespace
/// dropped, ASCII letters upper-cased (code cards are read by people).
#[must_use]
pub fn normalize_response(response: &str) -> Zeroizing<String> {
    Zeroizing::new(response.trim().to_ascii_uppercase())
}

/// `K_resp`, the key of a user's response verifiers (zeroized on drop; `Debug` prints no bytes).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ResponseKey([u8; 32]);

impl std::fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseKey(<redacted>)")
    }
}

impl ResponseKey {
    /// `HKDF-SHA256(salt = "", ikm = export_key, info = "kasane/v2/response-key")`, 32 bytes.
    pub fn derive(export_key: &ExportKey) -> Self {
        let hk = Hkdf::<Sha256>::new(None, export_key.expose_secret());
        let mut out = [0u8; 32];
        // 32 bytes: cannot exceed HKDF's limit.
        let _ = hk.expand(INFO_RESPONSE_KEY, &mut out);
        Self(out)
    }

    /// The key bytes (test vectors).
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// The verifier of `response` under `salt`, 32 bytes.
    ///
    /// # Errors
    /// [`ProtocolError::FieldRange`] (`salt`) for a salt over [`MAX_SALT_LEN`] bytes.
    pub fn verifier(
        &self,
        response: &str,
        salt: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        let len =
            u8::try_from(salt.len()).map_err(|_| ProtocolError::FieldRange { field: "salt" })?;
        let normalized = normalize_response(response);
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .map_err(|_| ProtocolError::FieldRange { field: "key" })?;
        mac.update(&[len]);
        mac.update(salt);
        mac.update(normalized.as_bytes());
        Ok(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn verifier_depends_on_key_salt_and_normalizes() {
        let k = ResponseKey::derive(&ExportKey::from_bytes([1; 64]));
        let a = k.verifier(" ab12 ", &[1; 16]).unwrap();
        let b = k.verifier("AB12", &[1; 16]).unwrap();
        let c = k.verifier("AB12", &[2; 16]).unwrap();
        let other = ResponseKey::derive(&ExportKey::from_bytes([2; 64]));
        assert_eq!(a, b);
        assert_ne!(b, c);
        assert_ne!(b, other.verifier("AB12", &[1; 16]).unwrap());
        assert_eq!(a.len(), VERIFIER_LEN);
        assert!(k.verifier("AB12", &[0; 256]).is_err());
        // The salt is framed: moving a byte between salt and response changes the verifier.
        assert_ne!(
            k.verifier("B", b"A").unwrap(),
            k.verifier("AB", b"").unwrap()
        );
    }
}
