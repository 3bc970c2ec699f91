//! The key schedule (DESIGN §4, docs/PROTOCOL.md §5): the bundle key, the response key, the
//! session secret, receipt and confirm, with constant-time verification. OPAQUE's own key
//! schedule (RFC 9807) gives `session_key` and `export_key` (64 bytes each, see
//! [`crate::opaque`]).
//!
//! ```text
//! K_bundle ‖ N_b = HKDF-SHA256(salt = th_finish, ikm = session_key, info = "kasane/v2/bundle", 44)
//! K_resp         = HKDF-SHA256(salt = "", ikm = export_key, info = "kasane/v2/response-key", 32)
//! verifier       = HMAC-SHA256(K_resp, u8(len(salt)) ‖ salt ‖ normalize(response))
//! session_secret = HKDF-SHA256(salt = th_bundle, ikm = session_key ‖ T_auth, info = "kasane/v2/session", 32)
//! K_receipt      = HKDF-Expand(prk = session_secret, info = "kasane/v2/receipt", 32)
//! K_confirm      = HKDF-Expand(prk = session_secret, info = "kasane/v2/confirm", 32)
//! receipt        = HMAC-SHA256(K_receipt, th_bundle)
//! confirm        = HMAC-SHA256(K_confirm, th_response ‖ session_token)
//! ```
//! `th_finish` is the transcript hash after the finish request, `th_bundle` after the
//! challenge bundle (its plaintext encoding), `th_response` after the response request.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead;
use crate::error::ProtocolError;
use crate::limits::{ID_LEN, MAX_CIPHERTEXT_LEN};
use crate::opaque::OpaqueSessionKey;

/// HKDF info of the bundle key.
pub const INFO_BUNDLE: &[u8] = b"kasane/v2/bundle";
/// HKDF info of the session secret.
pub const INFO_SESSION: &[u8] = b"kasane/v2/session";
/// HKDF-Expand info of the receipt key.
pub const INFO_RECEIPT: &[u8] = b"kasane/v2/receipt";
/// HKDF-Expand info of the confirm key.
pub const INFO_CONFIRM: &[u8] = b"kasane/v2/confirm";
/// HKDF-Expand info of the key that authenticates a re-enrollment (`kasane passwd`).
pub const INFO_PASSWD: &[u8] = b"kasane/v2/passwd";
/// Domain of the session id derived from a session token.
pub const SESSION_ID_DOMAIN: &[u8] = b"kasane/v2/session-id";

macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident, $len:expr) => {
        $(#[$m])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The secret bytes (for the next key step, or test vectors).
            pub fn expose_secret(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_type!(
    /// The session secret both sides derive after the auth transform.
    SessionSecret,
    32
);

/// An AES-256-GCM key and nonce, used once (zeroized on drop; `Debug` prints no bytes).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AeadKey {
    key: [u8; 32],
    nonce: [u8; 12],
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    /// HKDF-SHA256(salt, ikm, info) → 32-byte key ‖ 12-byte nonce.
    pub(crate) fn derive(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
        let mut okm = Zeroizing::new([0u8; 44]);
        // 44 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        let _ = hk.expand_multi_info(info, &mut *okm);
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        key.copy_from_slice(&okm[..32]);
        nonce.copy_from_slice(&okm[32..]);
        Self { key, nonce }
    }

    /// The key bytes (test vectors).
    pub fn expose_key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The nonce.
    pub fn nonce(&self) -> &[u8; 12] {
        &self.nonce
    }

    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::with_capacity(plaintext.len() + aead::TAG_LEN);
        out.extend_from_slice(plaintext);
        // Only fails for plaintexts over 64 GiB, which every caller caps far below.
        let tag = aead::seal_in_place(&self.key, &self.nonce, aad, &mut out).ok_or(
            ProtocolError::PlaintextTooLong {
                len: plaintext.len(),
                max: MAX_CIPHERTEXT_LEN,
            },
        )?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(crate) fn open(
        &self,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        let split = ciphertext.len().checked_sub(aead::TAG_LEN);
        let (body, tag) = ciphertext.split_at(split.ok_or(ProtocolError::Decrypt)?);
        let tag: &[u8; aead::TAG_LEN] = tag.try_into().map_err(|_| ProtocolError::Decrypt)?;
        let mut plain = Zeroizing::new(body.to_vec());
        if aead::open_in_place(&self.key, &self.nonce, aad, &mut plain, tag) {
            Ok(plain)
        } else {
            Err(ProtocolError::Decrypt)
        }
    }
}

/// The bundle key: `HKDF(salt = th_finish, ikm = session_key, info = "kasane/v2/bundle")`,
/// 44 bytes split into key and nonce (the key seals exactly one bundle).
pub fn bundle_key(session_key: &OpaqueSessionKey, th_finish: &[u8; 32]) -> AeadKey {
    AeadKey::derive(th_finish, session_key.expose_secret(), &[INFO_BUNDLE])
}

/// Seals an encoded bundle under the bundle key, `th_finish` as AAD.
pub fn seal_bundle(
    key: &AeadKey,
    th_finish: &[u8; 32],
    bundle: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    key.seal(th_finish, bundle)
}

/// Opens a sealed bundle.
pub fn open_bundle(
    key: &AeadKey,
    th_finish: &[u8; 32],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    key.open(th_finish, sealed)
}

fn hmac32(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Compares two 32-byte MACs in constant time.
pub fn ct_eq32(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

impl SessionSecret {
    /// `HKDF-SHA256(salt = th_bundle, ikm = session_key ‖ T_auth, info = "kasane/v2/session")`.
    /// `t_auth` is the auth transform's output, 1..=64 bytes.
    pub fn derive(
        session_key: &OpaqueSessionKey,
        t_auth: &[u8],
        th_bundle: &[u8; 32],
    ) -> Result<Self, ProtocolError> {
        if !(kasane_abi::MIN_OUTPUT_LEN..=kasane_abi::MAX_OUTPUT_LEN).contains(&t_auth.len()) {
            return Err(ProtocolError::TransformOutput(t_auth.len()));
        }
        let ikm = Zeroizing::new([session_key.expose_secret().as_slice(), t_auth].concat());
        let hk = Hkdf::<Sha256>::new(Some(th_bundle), &ikm);
        let mut out = [0u8; 32];
        // 32 bytes: cannot exceed HKDF's limit.
        let _ = hk.expand(INFO_SESSION, &mut out);
        Ok(Self(out))
    }

    /// A 32-byte key `HKDF-Expand(prk = session_secret, info = label)`.
    fn expand(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // A 32-byte PRK is HKDF-SHA256's minimum, so from_prk cannot fail.
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(&self.0) {
            let _ = hk.expand(label, &mut *out);
        }
        out
    }

    /// `K_receipt` (test vectors).
    pub fn receipt_key(&self) -> Zeroizing<[u8; 32]> {
        self.expand(INFO_RECEIPT)
    }

    /// `K_confirm` (test vectors).
    pub fn confirm_key(&self) -> Zeroizing<[u8; 32]> {
        self.expand(INFO_CONFIRM)
    }

    /// `receipt = HMAC-SHA256(K_receipt, th_bundle)`.
    pub fn receipt(&self, th_bundle: &[u8; 32]) -> [u8; 32] {
        hmac32(&*self.receipt_key(), th_bundle)
    }

    /// `confirm = HMAC-SHA256(K_confirm, th_response ‖ session_token)`.
    pub fn confirm(&self, th_response: &[u8; 32], session_token: &[u8; 32]) -> [u8; 32] {
        hmac32(
            &*self.confirm_key(),
            &[th_response.as_slice(), session_token].concat(),
        )
    }

    /// `HMAC-SHA256(HKDF-Expand(session_secret, "kasane/v2/passwd"), th_final ‖ body)`: what
    /// authenticates a re-enrollment sent in a session (`body` is the encoded
    /// [`PasswdFinish`](crate::wire::PasswdFinish) with its MAC all zero).
    pub fn passwd_mac(&self, th_final: &[u8; 32], body: &[u8]) -> [u8; 32] {
        hmac32(
            &*self.expand(INFO_PASSWD),
            &[th_final.as_slice(), body].concat(),
        )
    }

    /// Checks a re-enrollment's MAC in constant time.
    pub fn verify_passwd_mac(
        &self,
        th_final: &[u8; 32],
        body: &[u8],
        received: &[u8; 32],
    ) -> Result<(), ProtocolError> {
        if ct_eq32(&self.passwd_mac(th_final, body), received) {
            Ok(())
        } else {
            Err(ProtocolError::ReceiptMismatch)
        }
    }

    /// Checks a received receipt in constant time.
    pub fn verify_receipt(
        &self,
        th_bundle: &[u8; 32],
        received: &[u8; 32],
    ) -> Result<(), ProtocolError> {
        if ct_eq32(&self.receipt(th_bundle), received) {
            Ok(())
        } else {
            Err(ProtocolError::ReceiptMismatch)
        }
    }

    /// Checks a received confirm in constant time.
    pub fn verify_confirm(
        &self,
        th_response: &[u8; 32],
        session_token: &[u8; 32],
        received: &[u8; 32],
    ) -> Result<(), ProtocolError> {
        if ct_eq32(&self.confirm(th_response, session_token), received) {
            Ok(())
        } else {
            Err(ProtocolError::ConfirmMismatch)
        }
    }

    /// A session secret from fixed bytes (test vectors and relays restoring state).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// The public session id of a session token: the first 16 bytes of
/// `SHA-256(SESSION_ID_DOMAIN ‖ token)`.
pub fn session_id(token: &[u8; 32]) -> [u8; ID_LEN] {
    use sha2::Digest;
    let h = Sha256::new()
        .chain_update(SESSION_ID_DOMAIN)
        .chain_update(token)
        .finalize();
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&h[..ID_LEN]);
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn debug_prints_no_bytes() {
        let s = SessionSecret::from_bytes([0xAB; 32]);
        let d = format!("{s:?} {:?}", OpaqueSessionKey::from_bytes([0xAB; 64]));
        assert!(!d.contains("ab") && !d.contains("171"), "{d}");
        let k = AeadKey::derive(b"s", b"i", &[b"x"]);
        assert_eq!(format!("{k:?}"), "AeadKey(<redacted>)");
    }

    #[test]
    fn receipt_and_confirm_use_distinct_keys() {
        let s = SessionSecret::from_bytes([7; 32]);
        assert_ne!(s.receipt(&[1; 32]), s.confirm(&[1; 32], &[0; 32]));
        assert_ne!(s.confirm(&[1; 32], &[0; 32]), s.confirm(&[1; 32], &[1; 32]));
        assert!(
            s.verify_confirm(&[1; 32], &[2; 32], &s.confirm(&[1; 32], &[2; 32]))
                .is_ok()
        );
        assert!(s.verify_receipt(&[1; 32], &s.receipt(&[1; 32])).is_ok());
        assert!(matches!(
            s.verify_receipt(&[1; 32], &s.receipt(&[2; 32])),
            Err(ProtocolError::ReceiptMismatch)
        ));
        assert!(matches!(
            s.verify_confirm(&[1; 32], &[0; 32], &s.receipt(&[1; 32])),
            Err(ProtocolError::ConfirmMismatch)
        ));
    }

    #[test]
    fn a_bundle_opens_only_under_its_transcript() {
        let k = OpaqueSessionKey::from_bytes([3; 64]);
        let key = bundle_key(&k, &[1; 32]);
        let sealed = seal_bundle(&key, &[1; 32], b"bundle").unwrap();
        assert_eq!(
            open_bundle(&key, &[1; 32], &sealed).unwrap().as_slice(),
            b"bundle"
        );
        assert!(open_bundle(&key, &[2; 32], &sealed).is_err());
        assert!(open_bundle(&bundle_key(&k, &[2; 32]), &[1; 32], &sealed).is_err());
    }

    #[test]
    fn transform_output_length_is_checked() {
        let dh = OpaqueSessionKey::from_bytes([1; 64]);
        assert!(SessionSecret::derive(&dh, &[], &[0; 32]).is_err());
        assert!(SessionSecret::derive(&dh, &[0; 65], &[0; 32]).is_err());
        assert!(SessionSecret::derive(&dh, &[0; 64], &[0; 32]).is_ok());
    }
}
