//! AES-256-GCM in place, tag apart: ring's natively, RustCrypto's `aes-gcm` in the browser
//! (wasm32). Both are the AES-256-GCM of NIST SP 800-38D with 96-bit nonces and 128-bit
//! tags, so the bytes are the same whichever side seals and whichever opens (a test checks
//! the two on random inputs; the Python cross-check checks the schedule's outputs).
//!
//! Why two: every message passes through AES-GCM twice (sealed by the client, opened by the
//! host) and its queue entry once more (sealed at rest), and ring's AES-GCM (AES-NI and
//! carry-less multiplication over several blocks at once) runs about ten times faster on
//! this project's machine than `aes-gcm` 0.10, whose GHASH multiplies one block at a time: at
//! 64 KiB it was the largest item in the message path's profile (BENCHMARKS.md, "Run E").
//! The browser build keeps `aes-gcm`, pure Rust, which needs no C toolchain for wasm32.

/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// Encrypts `in_out` in place under `key` and `nonce`, authenticating `aad` too; the tag.
/// `None` only for inputs over GCM's limit (64 GiB), which every caller caps far below.
#[must_use]
pub fn seal_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    imp::seal_in_place(key, nonce, aad, in_out)
}

/// Decrypts `in_out` in place if `tag` authenticates it and `aad`; false otherwise, and then
/// `in_out` holds nothing the caller may use (wipe or drop it).
#[must_use]
pub fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    imp::open_in_place(key, nonce, aad, in_out, tag)
}

#[cfg(not(target_arch = "wasm32"))]
use ring_gcm as imp;

#[cfg(target_arch = "wasm32")]
use rust_crypto_gcm as imp;

/// ring's AES-256-GCM.
#[cfg(not(target_arch = "wasm32"))]
mod ring_gcm {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

    use super::TAG_LEN;

    fn key(key: &[u8; 32]) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, key)
            .ok()
            .map(LessSafeKey::new)
    }

    pub(super) fn seal_in_place(
        k: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let tag = key(k)?
            .seal_in_place_separate_tag(nonce, Aad::from(aad), in_out)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    pub(super) fn open_in_place(
        k: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let Some(k) = key(k) else {
            return false;
        };
        let nonce = Nonce::assume_unique_for_key(*nonce);
        k.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(*tag), in_out, 0..)
            .is_ok()
    }
}

/// RustCrypto's AES-256-GCM (the browser's; natively only for the test beside ring).
#[cfg(any(target_arch = "wasm32", test))]
mod rust_crypto_gcm {
    use aes_gcm::aead::AeadInPlace as _;
    use aes_gcm::{Aes256Gcm, KeyInit as _};

    use super::TAG_LEN;

    pub(super) fn seal_in_place(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        let tag = Aes256Gcm::new(key.into())
            .encrypt_in_place_detached(nonce.into(), aad, in_out)
            .ok()?;
        Some(tag.into())
    }

    pub(super) fn open_in_place(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        Aes256Gcm::new(key.into())
            .decrypt_in_place_detached(nonce.into(), aad, in_out, tag.into())
            .is_ok()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::{TAG_LEN, ring_gcm, rust_crypto_gcm};
    use proptest::prelude::*;

    /// Both seal to the same bytes, each opens what the other sealed, and both refuse a
    /// tag with one bit flipped.
    fn agree(key: [u8; 32], nonce: [u8; 12], aad: &[u8], msg: &[u8]) {
        let (mut a, mut b) = (msg.to_vec(), msg.to_vec());
        let ta = ring_gcm::seal_in_place(&key, &nonce, aad, &mut a).unwrap();
        let tb = rust_crypto_gcm::seal_in_place(&key, &nonce, aad, &mut b).unwrap();
        assert_eq!((&a, ta), (&b, tb));
        let mut x = a.clone();
        assert!(rust_crypto_gcm::open_in_place(
            &key, &nonce, aad, &mut x, &ta
        ));
        assert_eq!(x, msg);
        let mut y = b.clone();
        assert!(ring_gcm::open_in_place(&key, &nonce, aad, &mut y, &tb));
        assert_eq!(y, msg);
        let mut bad = ta;
        bad[TAG_LEN - 1] ^= 1;
        assert!(!ring_gcm::open_in_place(&key, &nonce, aad, &mut a, &bad));
        assert!(!rust_crypto_gcm::open_in_place(
            &key, &nonce, aad, &mut b, &bad
        ));
    }

    proptest! {
        #[test]
        fn ring_and_rust_crypto_agree(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..80),
            msg in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            agree(key, nonce, &aad, &msg);
        }
    }

    /// NIST's GCM test case 16 (AES-256, 96-bit IV, 60-byte plaintext, 20-byte AAD).
    #[test]
    fn nist_test_case_16() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plain = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let mut buf = plain.clone();
        let tag = super::seal_in_place(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(
            buf,
            hex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            )
        );
        assert_eq!(tag.to_vec(), hex("76fc6ece0f4e1768cddf8853bb2d551b"));
        assert!(super::open_in_place(&key, &nonce, &aad, &mut buf, &tag));
        assert_eq!(buf, plain);
    }
}
