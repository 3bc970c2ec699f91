//! The key schedule (DESIGN §4): X25519, the password key, the session secret, receipt and
//! confirm, with constant-time verification.
//!
//! ```text
//! dh             = X25519(own ephemeral, peer ephemeral)            (all-zero refused)
//! k_pw ‖ n_pw    = HKDF-SHA256(salt = th_hello, ikm = dh, info = "kasane/v1/password", 44)
//! session_secret = HKDF-SHA256(salt = th_bundle, ikm = dh ‖ T_auth, info = "kasane/v1/session", 32)
//! K_receipt      = HKDF-Expand(prk = session_secret, info = "kasane/v1/receipt", 32)
//! K_confirm      = HKDF-Expand(prk = session_secret, info = "kasane/v1/confirm", 32)
//! receipt        = HMAC-SHA256(K_receipt, th_bundle)
//! confirm        = HMAC-SHA256(K_confirm, th_response)
//! ```
//! `th_hello` is the transcript hash after the hello response and the channel-binding append,
//! `th_bundle` after the challenge bundle, `th_response` after the response request.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::ProtocolError;
use crate::limits::{ID_LEN, MAX_CIPHERTEXT_LEN, MAX_PASSWORD_LEN};
use crate::padding::{Padding, pad, unpad};

/// HKDF info of the password key.
pub const INFO_PASSWORD: &[u8] = b"kasane/v1/password";
/// HKDF info of the session secret.
pub const INFO_SESSION: &[u8] = b"kasane/v1/session";
/// HKDF-Expand info of the receipt key.
pub const INFO_RECEIPT: &[u8] = b"kasane/v1/receipt";
/// HKDF-Expand info of the confirm key.
pub const INFO_CONFIRM: &[u8] = b"kasane/v1/confirm";
/// Domain of the session id derived from a session token.
pub const SESSION_ID_DOMAIN: &[u8] = b"kasane/v1/session-id";

/// An ephemeral X25519 secret (zeroized on drop; `Debug` prints no bytes).
pub struct EphemeralSecret(x25519_dalek::StaticSecret);

impl EphemeralSecret {
    /// A fresh secret from `rng`.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *b);
        Self(x25519_dalek::StaticSecret::from(*b))
    }

    /// A secret from fixed bytes (test vectors, or a caller with its own RNG).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(bytes))
    }

    /// The public key to send.
    pub fn public_key(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    /// X25519 with the peer's public key; an all-zero result (low-order peer key) is refused.
    pub fn diffie_hellman(&self, peer: &[u8; 32]) -> Result<DhSecret, ProtocolError> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        if !shared.was_contributory() {
            return Err(ProtocolError::WeakPublicKey);
        }
        Ok(DhSecret(*shared.as_bytes()))
    }
}

impl std::fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EphemeralSecret(<redacted>)")
    }
}

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
    /// The X25519 shared secret of a login.
    DhSecret,
    32
);

impl DhSecret {
    /// A shared secret from stored bytes (see `HostLoginParts`).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
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
        let cipher = Aes256Gcm::new(&self.key.into());
        cipher
            .encrypt(
                &self.nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only fails for plaintexts over 64 GiB, which every caller caps far below.
            .map_err(|_| ProtocolError::PlaintextTooLong {
                len: plaintext.len(),
                max: MAX_CIPHERTEXT_LEN,
            })
    }

    pub(crate) fn open(
        &self,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        let cipher = Aes256Gcm::new(&self.key.into());
        cipher
            .decrypt(
                &self.nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ProtocolError::Decrypt)
    }
}

/// The password key: `HKDF(salt = th_hello, ikm = dh, info = "kasane/v1/password")`, 44 bytes
/// split into key and nonce (the key is used once).
pub fn password_key(dh: &DhSecret, th_hello: &[u8; 32]) -> AeadKey {
    AeadKey::derive(th_hello, dh.expose_secret(), &[INFO_PASSWORD])
}

/// AAD of the sealed password: `th_hello ‖ login_id ‖ user_id` (the last field is the only
/// variable one, so no length prefix is needed).
pub fn password_aad(th_hello: &[u8; 32], login_id: &[u8; ID_LEN], user_id: &str) -> Vec<u8> {
    [th_hello.as_slice(), login_id, user_id.as_bytes()].concat()
}

/// Seals a password (padded to 64-byte buckets, see [`crate::seal`]) under the password key.
pub fn seal_password(key: &AeadKey, aad: &[u8], password: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ProtocolError::PlaintextTooLong {
            len: password.len(),
            max: MAX_PASSWORD_LEN,
        });
    }
    let padded = pad(password, Padding::Buckets);
    key.seal(aad, &padded)
}

/// Opens a sealed password and removes its padding.
pub fn open_password(
    key: &AeadKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let padded = key.open(aad, sealed)?;
    unpad(padded)
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
    /// `HKDF-SHA256(salt = th_bundle, ikm = dh ‖ T_auth, info = "kasane/v1/session")`.
    /// `t_auth` is the auth transform's output, 1..=64 bytes.
    pub fn derive(
        dh: &DhSecret,
        t_auth: &[u8],
        th_bundle: &[u8; 32],
    ) -> Result<Self, ProtocolError> {
        if !(kasane_abi::MIN_OUTPUT_LEN..=kasane_abi::MAX_OUTPUT_LEN).contains(&t_auth.len()) {
            return Err(ProtocolError::TransformOutput(t_auth.len()));
        }
        let ikm = Zeroizing::new([dh.expose_secret().as_slice(), t_auth].concat());
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

    /// `confirm = HMAC-SHA256(K_confirm, th_response)`.
    pub fn confirm(&self, th_response: &[u8; 32]) -> [u8; 32] {
        hmac32(&*self.confirm_key(), th_response)
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
        received: &[u8; 32],
    ) -> Result<(), ProtocolError> {
        if ct_eq32(&self.confirm(th_response), received) {
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
    use super::*;

    #[test]
    fn both_sides_agree_on_dh() {
        let a = EphemeralSecret::from_bytes([1; 32]);
        let b = EphemeralSecret::from_bytes([2; 32]);
        let ab = a.diffie_hellman(&b.public_key()).unwrap();
        let ba = b.diffie_hellman(&a.public_key()).unwrap();
        assert_eq!(ab.expose_secret(), ba.expose_secret());
    }

    #[test]
    fn low_order_peer_key_is_refused() {
        let a = EphemeralSecret::from_bytes([1; 32]);
        assert!(matches!(
            a.diffie_hellman(&[0; 32]),
            Err(ProtocolError::WeakPublicKey)
        ));
    }

    #[test]
    fn debug_prints_no_bytes() {
        let s = SessionSecret::from_bytes([0xAB; 32]);
        let d = format!("{s:?} {:?}", EphemeralSecret::from_bytes([0xAB; 32]));
        assert!(!d.contains("ab") && !d.contains("171"), "{d}");
        let k = AeadKey::derive(b"s", b"i", &[b"x"]);
        assert_eq!(format!("{k:?}"), "AeadKey(<redacted>)");
    }

    #[test]
    fn receipt_and_confirm_use_distinct_keys() {
        let s = SessionSecret::from_bytes([7; 32]);
        assert_ne!(s.receipt(&[1; 32]), s.confirm(&[1; 32]));
        assert!(s.verify_receipt(&[1; 32], &s.receipt(&[1; 32])).is_ok());
        assert!(matches!(
            s.verify_receipt(&[1; 32], &s.receipt(&[2; 32])),
            Err(ProtocolError::ReceiptMismatch)
        ));
        assert!(matches!(
            s.verify_confirm(&[1; 32], &s.receipt(&[1; 32])),
            Err(ProtocolError::ConfirmMismatch)
        ));
    }

    #[test]
    fn transform_output_length_is_checked() {
        let dh = DhSecret([1; 32]);
        assert!(SessionSecret::derive(&dh, &[], &[0; 32]).is_err());
        assert!(SessionSecret::derive(&dh, &[0; 65], &[0; 32]).is_err());
        assert!(SessionSecret::derive(&dh, &[0; 64], &[0; 32]).is_ok());
    }
}
