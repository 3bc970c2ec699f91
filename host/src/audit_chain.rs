//! The audit hash chain's formats: the one place that says how a record hash, a chain's
//! genesis value and the bytes a checkpoint signs are computed. A leaf module: the store
//! (which appends records in [`Store::accept_message`](crate::store::Store::accept_message))
//! and the verifier ([`crate::audit`]) both use it, and it uses neither.
//!
//! Record `seq` (from 1) of session `sid` (docs/PROTOCOL.md §13):
//!
//! ```text
//! record_hash = SHA-256("kasane/v1/audit" ‖ sid ‖ u64_be(seq) ‖ prev_hash ‖ payload)
//! prev_hash   = record_hash of record seq − 1, or for seq = 1
//!               SHA-256("kasane/v1/audit-genesis" ‖ sid)
//! ```
//!
//! A checkpoint is the host key's Ed25519 signature over
//! `"kasane/v1/audit-checkpoint" ‖ sid ‖ u64_be(seq) ‖ record_hash`; the marker of a pruned
//! chain the same over `"kasane/v1/audit-pruned" ‖ sid ‖ u64_be(seq) ‖ record_hash` of its
//! last record.

use sha2::{Digest, Sha256};

/// Domain label of record hashes.
pub const RECORD_LABEL: &[u8] = b"kasane/v1/audit";
/// Domain label of a chain's genesis value.
pub const GENESIS_LABEL: &[u8] = b"kasane/v1/audit-genesis";
/// Domain label of checkpoint signatures.
pub const CHECKPOINT_LABEL: &[u8] = b"kasane/v1/audit-checkpoint";
/// Domain label of a pruned chain's marker (`kasane-host audit prune`).
pub const PRUNED_LABEL: &[u8] = b"kasane/v1/audit-pruned";

/// The `prev_hash` of record 1 of session `session_id`.
#[must_use]
pub fn genesis_hash(session_id: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(GENESIS_LABEL);
    h.update(session_id);
    h.finalize().into()
}

/// The hash of record `seq` of session `session_id`.
#[must_use]
pub fn record_hash(session_id: &[u8], seq: u64, prev_hash: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RECORD_LABEL);
    h.update(session_id);
    h.update(seq.to_be_bytes());
    h.update(prev_hash);
    h.update(payload);
    h.finalize().into()
}

/// The bytes a checkpoint of record (`session_id`, `seq`) signs.
#[must_use]
pub fn checkpoint_message(session_id: &[u8], seq: u64, record_hash: &[u8]) -> Vec<u8> {
    signed_message(CHECKPOINT_LABEL, session_id, seq, record_hash)
}

/// The bytes the marker of a chain pruned at head (`seq`, `record_hash`) signs: the host
/// vouches that the chain ended there and that its records left the log on purpose.
#[must_use]
pub fn pruned_message(session_id: &[u8], seq: u64, record_hash: &[u8]) -> Vec<u8> {
    signed_message(PRUNED_LABEL, session_id, seq, record_hash)
}

/// `label ‖ session_id ‖ u64_be(seq) ‖ record_hash`.
fn signed_message(label: &[u8], session_id: &[u8], seq: u64, record_hash: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + session_id.len() + 8 + record_hash.len());
    m.extend_from_slice(label);
    m.extend_from_slice(session_id);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(record_hash);
    m
}

#[cfg(test)]
pub(crate) mod tests {
    //! Known answers. The expected values were computed independently of this code, with
    //! Python's `hashlib` from the byte layout in docs/PROTOCOL.md §13:
    //!
    //! ```python
    //! sid = bytes([0x5e, 0x55, 0x10, 0x01])
    //! g  = sha256(b"kasane/v1/audit-genesis" + sid)
    //! r1 = sha256(b"kasane/v1/audit" + sid + (1).to_bytes(8, "big") + g + b"first payload")
    //! r2 = sha256(b"kasane/v1/audit" + sid + (0x0102030405060708).to_bytes(8, "big") + r1 + b"")
    //! m  = b"kasane/v1/audit-checkpoint" + sid + (1).to_bytes(8, "big") + r1
    //! ```

    use super::*;

    pub(crate) const SID: [u8; 4] = [0x5e, 0x55, 0x10, 0x01];
    const GENESIS: &str = "e0b2780bbc4e467a264d1f96550695dfb764030023526c3b4b4b4e833c5abc35";
    pub(crate) const RECORD_1: &str =
        "d9cf1bf59b68dba130a96db90bd271a972fe75f6a415b468292a18ecb884b90e";
    const RECORD_2: &str = "a84469ed665c942400f75eba7d4df634deebf950858f0eb38dee544b20f4192a";

    #[test]
    fn genesis_hash_known_answer() {
        assert_eq!(hex::encode(genesis_hash(&SID)), GENESIS);
    }

    #[test]
    fn record_hash_known_answers() {
        let g = genesis_hash(&SID);
        let r1 = record_hash(&SID, 1, &g, b"first payload");
        assert_eq!(hex::encode(r1), RECORD_1);
        // A sequence number with every byte distinct: catches a wrong byte order or width.
        let r2 = record_hash(&SID, 0x0102_0304_0506_0708, &r1, b"");
        assert_eq!(hex::encode(r2), RECORD_2);
    }

    #[test]
    fn checkpoint_message_known_answer() {
        let r1 = hex::decode(RECORD_1).unwrap();
        let m = checkpoint_message(&SID, 1, &r1);
        assert_eq!(
            hex::encode(&m),
            "6b6173616e652f76312f61756469742d636865636b706f696e74\
             5e551001\
             0000000000000001\
             d9cf1bf59b68dba130a96db90bd271a972fe75f6a415b468292a18ecb884b90e"
        );
    }
}
