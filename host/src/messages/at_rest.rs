//! The relay queue sealed at rest: `keys/queue.key` and the AES-256-GCM envelope of a queued
//! message.

use std::path::Path;

use kasane_protocol::aead::{self, TAG_LEN};
use rand::RngCore;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::HostError;

/// File name of the queue key in the keys directory.
pub const QUEUE_KEY_FILE: &str = "queue.key";

/// Reads `keys_dir/queue.key` (32 bytes), creating it with 32 random bytes if it is
/// missing (private from the start, never overwritten; see [`crate::keyfile`]).
pub fn load_queue_key(keys_dir: &Path) -> Result<Zeroizing<[u8; 32]>, HostError> {
    let bytes = crate::keyfile::load_or_create(keys_dir, QUEUE_KEY_FILE, 32, || {
        crate::keyfile::random_bytes(32)
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// A queued message before it is sealed at rest.
#[derive(Serialize, Deserialize)]
pub(super) struct QueuedBody {
    pub(super) from: String,
    pub(super) sent_at: u64,
    /// As bytes, not as a sequence of `u8`: postcard writes both alike (length, then the
    /// bytes), and bytes go in one copy rather than one call per byte.
    #[serde(with = "serde_bytes")]
    pub(super) body: Vec<u8>,
}

impl Drop for QueuedBody {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

const QUEUE_AAD_LABEL: &[u8] = b"kasane/v1/queue";
const NONCE_LEN: usize = 12;

fn queue_aad(recipient: &str) -> Vec<u8> {
    [QUEUE_AAD_LABEL, recipient.as_bytes()].concat()
}

/// A queued client message whose body is its audit record's ciphertext (the body is written
/// once): the message key that opens it, sealed at rest in the queue entry instead of the
/// body ([`seal_key_at_rest`]).
#[derive(Serialize, Deserialize)]
pub(super) struct QueuedKey {
    pub(super) from: String,
    pub(super) sent_at: u64,
    /// The message's sequence number, which the audit record must carry.
    pub(super) seq: u64,
    /// The AES-256-GCM key and nonce the client sealed this one message with
    /// (`kasane_protocol::seal::message_key`: HKDF of the session secret and the transform's
    /// output for this number; they open nothing else).
    pub(super) key: [u8; 32],
    pub(super) nonce: [u8; 12],
    /// The body's length: what precedes the padding in the opened ciphertext.
    pub(super) len: u64,
}

impl Drop for QueuedKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.nonce.zeroize();
    }
}

/// Domain label of [`QueuedKey`]'s envelope: an entry of one kind never opens as the other.
const QUEUE_KEY_AAD_LABEL: &[u8] = b"kasane/v2/queue-key";

/// The body of the audit record `payload` (a client's message), opened with `key`; `None`
/// if the record is not the one `key` was sealed for or does not open.
pub(super) fn open_from_audit(key: &QueuedKey, payload: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let record = crate::audit::AuditPayload::decode(payload).ok()?;
    if record.seq != key.seq || record.version != 1 {
        return None;
    }
    let body_len = record.ciphertext.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = record.ciphertext.split_at(body_len);
    let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
    let mut plain = Zeroizing::new(ct.to_vec());
    if !aead::open_in_place(&key.key, &key.nonce, &record.aad, &mut plain, tag) {
        return None;
    }
    let body = kasane_protocol::seal::unpad(plain).ok()?;
    (u64::try_from(body.len()).ok()? == key.len).then_some(body)
}

/// [`seal_with`] for a queue entry that holds its body: how every entry was made before
/// migration 0013/0014 (such entries still open, [`open_at_rest`]); now only tests make them.
#[cfg(test)]
pub(super) fn seal_at_rest(key: &[u8; 32], recipient: &str, body: &QueuedBody) -> Option<Vec<u8>> {
    let room = body.from.len() + body.body.len() + 32;
    seal_with(key, &queue_aad(recipient), body, room)
}

/// [`seal_with`] for a queue entry that holds its message's key.
pub(super) fn seal_key_at_rest(
    key: &[u8; 32],
    recipient: &str,
    queued: &QueuedKey,
) -> Option<Vec<u8>> {
    let aad = [QUEUE_KEY_AAD_LABEL, recipient.as_bytes()].concat();
    seal_with(key, &aad, queued, queued.from.len() + 96)
}

/// nonce (12) ‖ AES-256-GCM(key, nonce, postcard(value), AAD = label ‖ recipient) ‖ tag (16):
/// encoded and encrypted in one buffer (no copy of the plaintext beside it to wipe).
fn seal_with(key: &[u8; 32], aad: &[u8], value: &impl Serialize, room: usize) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + room + TAG_LEN);
    out.extend_from_slice(&nonce);
    // Infallible here (strings, integers and bytes into a `Vec`), so no partly written
    // plaintext is ever dropped unwiped on this `?`.
    let mut out = postcard::to_extend(value, out).ok()?;
    match aead::seal_in_place(key, &nonce, aad, &mut out[NONCE_LEN..]) {
        Some(tag) => {
            out.extend_from_slice(&tag);
            Some(out)
        }
        None => {
            out.zeroize();
            None
        }
    }
}

/// The `host_facts` entry naming which queue key seals a database's messages.
pub const QUEUE_KEY_FACT: &str = "queue_key_id";

/// The public identifier of a queue key: `HMAC-SHA-256(key, "kasane/queue-key-id/v1")`. It
/// tells two keys apart without revealing either. (`None` only if HMAC refused the key,
/// which it never does: it takes keys of any length.)
#[must_use]
pub fn queue_key_id(key: &[u8; 32]) -> Option<[u8; 32]> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).ok()?;
    mac.update(b"kasane/queue-key-id/v1");
    Some(mac.finalize().into_bytes().into())
}

/// Opens what [`seal_at_rest`] sealed for `recipient`; `None` if it does not open.
pub(super) fn open_at_rest(key: &[u8; 32], recipient: &str, sealed: &[u8]) -> Option<QueuedBody> {
    open_with(key, &queue_aad(recipient), sealed)
}

/// Opens what [`seal_key_at_rest`] sealed for `recipient`; `None` if it does not open.
pub(super) fn open_key_at_rest(
    key: &[u8; 32],
    recipient: &str,
    sealed: &[u8],
) -> Option<QueuedKey> {
    let aad = [QUEUE_KEY_AAD_LABEL, recipient.as_bytes()].concat();
    open_with(key, &aad, sealed)
}

/// Opens what [`seal_with`] sealed with `aad`.
fn open_with<T: serde::de::DeserializeOwned>(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Option<T> {
    let body_len = sealed.len().checked_sub(NONCE_LEN + TAG_LEN)?;
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(body_len);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
    let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
    let mut plain = Zeroizing::new(ct.to_vec());
    if !aead::open_in_place(key, nonce, aad, &mut plain, tag) {
        return None;
    }
    postcard::from_bytes(&plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_body_encodes_as_before_it_was_bytes() {
        let body = QueuedBody {
            from: "al".into(),
            sent_at: 300,
            body: vec![7; 130],
        };
        let mut want = vec![2, b'a', b'l', 0xac, 0x02, 0x82, 0x01];
        want.extend([7; 130]);
        assert_eq!(postcard::to_allocvec(&body).unwrap(), want);
        let back: QueuedBody = postcard::from_bytes(&want).unwrap();
        assert_eq!((back.from.as_str(), back.sent_at), ("al", 300));
        assert_eq!(back.body, vec![7; 130]);
    }

    #[test]
    fn queue_key_is_made_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let made = load_queue_key(&keys).unwrap();
        assert_eq!(load_queue_key(&keys).unwrap(), made);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&keys.join(QUEUE_KEY_FILE)), 0o600);
            assert_eq!(mode(&keys), 0o700);
        }
        std::fs::write(keys.join(QUEUE_KEY_FILE), [1u8; 31]).unwrap();
        assert!(matches!(
            load_queue_key(&keys),
            Err(HostError::Key {
                source: crate::crypto::KeyError::Length(31),
                ..
            })
        ));
    }

    /// An audit payload of message `seq` sealed with `key`/`nonce`, body `body` padded.
    fn record(seq: u64, key: &[u8; 32], nonce: &[u8; 12], body: &[u8]) -> Vec<u8> {
        let aad = b"session-1 aad".to_vec();
        let mut ct = [body, &[0x80, 0, 0]].concat();
        let tag = aead::seal_in_place(key, nonce, &aad, &mut ct).unwrap();
        ct.extend_from_slice(&tag);
        let payload = crate::audit::AuditPayload {
            version: 1,
            direction: 0,
            seq,
            recipient: "bob".into(),
            ciphertext: ct,
            aad,
            module_sha256: [0; 32],
            sender: "alice".into(),
            received_at: 9,
        };
        payload.encode().unwrap()
    }

    #[test]
    fn a_queued_key_opens_its_own_audit_record_only() {
        let queue_key = [9u8; 32];
        let queued = QueuedKey {
            from: "alice".into(),
            sent_at: 9,
            seq: 4,
            key: [3; 32],
            nonce: [5; 12],
            len: 5,
        };
        let sealed = seal_key_at_rest(&queue_key, "bob", &queued).unwrap();
        assert!(sealed.len() < 160, "{}", sealed.len());
        // Not for another recipient, not as an entry that holds its body, and vice versa.
        assert!(open_key_at_rest(&queue_key, "carol", &sealed).is_none());
        assert!(open_at_rest(&queue_key, "bob", &sealed).is_none());
        let held = QueuedBody {
            from: "alice".into(),
            sent_at: 9,
            body: b"hello".to_vec(),
        };
        let held = seal_at_rest(&queue_key, "bob", &held).unwrap();
        assert!(open_key_at_rest(&queue_key, "bob", &held).is_none());

        let key = open_key_at_rest(&queue_key, "bob", &sealed).unwrap();
        let good = record(4, &[3; 32], &[5; 12], b"hello");
        assert_eq!(open_from_audit(&key, &good).unwrap().as_slice(), b"hello");
        // Another message's record (another number, or sealed under another key), or a
        // record changed by one bit: nothing.
        assert!(open_from_audit(&key, &record(5, &[3; 32], &[5; 12], b"hello")).is_none());
        assert!(open_from_audit(&key, &record(4, &[4; 32], &[5; 12], b"hello")).is_none());
        let mut flipped = crate::audit::AuditPayload::decode(&good).unwrap();
        flipped.ciphertext[0] ^= 1;
        assert!(open_from_audit(&key, &flipped.encode().unwrap()).is_none());
    }

    #[test]
    fn sealed_at_rest_opens_only_for_its_recipient() {
        let key = [9u8; 32];
        let body = QueuedBody {
            from: "alice".into(),
            sent_at: 5,
            body: b"hi".to_vec(),
        };
        let sealed = seal_at_rest(&key, "bob", &body).unwrap();
        let back = open_at_rest(&key, "bob", &sealed).unwrap();
        assert_eq!(
            (back.from.as_str(), back.sent_at, back.body.as_slice()),
            ("alice", 5, &b"hi"[..])
        );
        assert!(open_at_rest(&key, "carol", &sealed).is_none());
        assert!(open_at_rest(&[8u8; 32], "bob", &sealed).is_none());
    }
}
