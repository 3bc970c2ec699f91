//! The audit log: per-session hash chains of every accepted message, signed checkpoints,
//! and the offline check behind `kasane-host audit verify` / `audit export`.
//!
//! Record `seq` (from 1) of session `sid`:
//!
//! ```text
//! record_hash = SHA-256("kasane/v1/audit" ‖ sid ‖ u64_be(seq) ‖ prev_hash ‖ payload)
//! prev_hash   = record_hash of record seq − 1, or for seq = 1
//!               SHA-256("kasane/v1/audit-genesis" ‖ sid)
//! ```
//!
//! `payload` is the postcard encoding of [`AuditPayload`]: the message as received. A
//! checkpoint is the host key's Ed25519 signature over
//! `"kasane/v1/audit-checkpoint" ‖ sid ‖ u64_be(seq) ‖ record_hash`.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{AuditCheckpoint, AuditCursor, AuditReader, Store, StoreError};

/// Domain label of record hashes.
pub const RECORD_LABEL: &[u8] = b"kasane/v1/audit";
/// Domain label of a chain's genesis value.
pub const GENESIS_LABEL: &[u8] = b"kasane/v1/audit-genesis";
/// Domain label of checkpoint signatures.
pub const CHECKPOINT_LABEL: &[u8] = b"kasane/v1/audit-checkpoint";

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

/// The bytes a checkpoint signs.
#[must_use]
pub fn checkpoint_message(session_id: &[u8], seq: u64, record_hash: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_LABEL.len() + session_id.len() + 8 + 32);
    m.extend_from_slice(CHECKPOINT_LABEL);
    m.extend_from_slice(session_id);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(record_hash);
    m
}

/// A signed checkpoint of record (`session_id`, `seq`).
#[must_use]
pub fn sign_checkpoint(
    key: &SigningKey,
    session_id: &[u8],
    seq: u64,
    record_hash: &[u8],
    now: u64,
) -> AuditCheckpoint {
    let sig = key.sign(&checkpoint_message(session_id, seq, record_hash));
    AuditCheckpoint {
        session_id: session_id.to_vec(),
        seq,
        record_hash: record_hash.to_vec(),
        signature: sig.to_bytes().to_vec(),
        created: now,
    }
}

/// What an audit record holds: the message exactly as received, and who sent it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPayload {
    /// Format version (1).
    pub version: u8,
    /// Direction byte of the sealed message (0: client to host).
    pub direction: u8,
    /// The message's sequence number.
    pub seq: u64,
    /// The recipient as addressed ("" = the host).
    pub recipient: String,
    /// The ciphertext and tag as received.
    pub ciphertext: Vec<u8>,
    /// The AES-GCM associated data (session id ‖ direction ‖ seq ‖ recipient).
    pub aad: Vec<u8>,
    /// SHA-256 of the session's transform module.
    pub module_sha256: [u8; 32],
    /// The sender's user name.
    pub sender: String,
    /// When the host received it (unix seconds).
    pub received_at: u64,
}

impl AuditPayload {
    /// The stored form (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Parses a stored payload (trailing bytes refused).
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let (p, rest) = postcard::take_from_bytes::<Self>(bytes)?;
        if !rest.is_empty() {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(p)
    }
}

/// The first broken record found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The session whose chain is broken.
    pub session_id: Vec<u8>,
    /// The record (or checkpoint) position.
    pub seq: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session {} record {}: {}",
            hex::encode(&self.session_id),
            self.seq,
            self.what
        )
    }
}

/// The result of a successful [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Chains (sessions) read.
    pub chains: u64,
    /// Records read.
    pub records: u64,
    /// Checkpoints whose signature and record were checked.
    pub checkpoints: u64,
}

/// Errors of [`verify`]: the log is broken, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The first broken record.
    #[error("audit log broken: {0}")]
    Broken(Broken),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn broken(session_id: &[u8], seq: u64, what: impl Into<String>) -> VerifyError {
    VerifyError::Broken(Broken {
        session_id: session_id.to_vec(),
        seq,
        what: what.into(),
    })
}

/// Reads every chain and checkpoint (page by page) and checks: sequence numbers contiguous
/// from 1, `prev_hash` links (genesis for record 1), recomputed `record_hash`, payloads that
/// decode, checkpoint signatures under `host_key`, and that each checkpoint matches an
/// existing record (so a cut-off tail is detected).
pub async fn verify(store: &dyn Store, host_key: &VerifyingKey) -> Result<Summary, VerifyError> {
    // Checkpoints are few next to records: all of them in memory, by position.
    let mut checkpoints: HashMap<(Vec<u8>, u64), AuditCheckpoint> = HashMap::new();
    let mut cursor: Option<AuditCursor> = None;
    loop {
        let page = store.audit_checkpoint_page(cursor.as_ref(), 512).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(AuditCursor {
            session_id: last.session_id.clone(),
            seq: last.seq,
        });
        let full = page.len() == 512;
        for c in page {
            checkpoints.insert((c.session_id.clone(), c.seq), c);
        }
        if !full {
            break;
        }
    }
    let mut summary = Summary::default();
    let mut reader = AuditReader::new(store);
    let mut current: Option<(Vec<u8>, u64, Vec<u8>)> = None;
    while let Some(r) = reader.next().await? {
        let (expected_seq, expected_prev) = match &current {
            Some((sid, seq, hash)) if *sid == r.session_id => (seq + 1, hash.clone()),
            _ => {
                summary.chains += 1;
                (1, genesis_hash(&r.session_id).to_vec())
            }
        };
        if r.seq != expected_seq {
            return Err(broken(
                &r.session_id,
                r.seq,
                format!(
                    "sequence number {} where {expected_seq} was expected (missing, inserted or reordered record)",
                    r.seq
                ),
            ));
        }
        if r.prev_hash != expected_prev {
            return Err(broken(
                &r.session_id,
                r.seq,
                "prev_hash does not link to the previous record",
            ));
        }
        let h = record_hash(&r.session_id, r.seq, &r.prev_hash, &r.payload);
        if r.record_hash != h {
            return Err(broken(
                &r.session_id,
                r.seq,
                "record_hash does not match the record (changed record)",
            ));
        }
        if AuditPayload::decode(&r.payload).is_err() {
            return Err(broken(&r.session_id, r.seq, "payload does not decode"));
        }
        if let Some(c) = checkpoints.remove(&(r.session_id.clone(), r.seq)) {
            check_checkpoint(&c, host_key)?;
            if c.record_hash != r.record_hash {
                return Err(broken(
                    &r.session_id,
                    r.seq,
                    "signed checkpoint does not match the record (chain rewritten)",
                ));
            }
            summary.checkpoints += 1;
        }
        summary.records += 1;
        current = Some((r.session_id, r.seq, r.record_hash));
    }
    // A checkpoint left over vouches for a record that is gone.
    if let Some(c) = checkpoints
        .into_values()
        .min_by(|a, b| (&a.session_id, a.seq).cmp(&(&b.session_id, b.seq)))
    {
        check_checkpoint(&c, host_key)?;
        return Err(broken(
            &c.session_id,
            c.seq,
            "signed checkpoint for a record that does not exist (deleted records)",
        ));
    }
    Ok(summary)
}

fn check_checkpoint(c: &AuditCheckpoint, key: &VerifyingKey) -> Result<(), VerifyError> {
    let ok = Signature::from_slice(&c.signature)
        .map(|sig| {
            key.verify(
                &checkpoint_message(&c.session_id, c.seq, &c.record_hash),
                &sig,
            )
            .is_ok()
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(broken(
            &c.session_id,
            c.seq,
            "checkpoint signature does not verify with the host key",
        ))
    }
}

/// Writes the whole log as JSON lines, one per record (byte fields hex; the decoded payload
/// alongside when it decodes). Returns the number of records.
pub async fn export(
    store: &dyn Store,
    out: &mut dyn std::io::Write,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let mut reader = AuditReader::new(store);
    let mut n = 0;
    while let Some(r) = reader.next().await? {
        let mut line = serde_json::json!({
            "session_id": hex::encode(&r.session_id),
            "seq": r.seq,
            "prev_hash": hex::encode(&r.prev_hash),
            "record_hash": hex::encode(&r.record_hash),
            "payload": hex::encode(&r.payload),
            "created": r.created,
        });
        if let Ok(p) = AuditPayload::decode(&r.payload) {
            line["message"] = serde_json::json!({
                "direction": p.direction,
                "seq": p.seq,
                "recipient": p.recipient,
                "ciphertext": hex::encode(&p.ciphertext),
                "aad": hex::encode(&p.aad),
                "module_sha256": hex::encode(p.module_sha256),
                "sender": p.sender,
                "received_at": p.received_at,
            });
        }
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrips_and_hashes_bind_position() {
        let p = AuditPayload {
            version: 1,
            direction: 0,
            seq: 3,
            recipient: "bob".into(),
            ciphertext: vec![1; 20],
            aad: vec![2; 5],
            module_sha256: [3; 32],
            sender: "alice".into(),
            received_at: 9,
        };
        let b = p.encode().unwrap();
        assert_eq!(AuditPayload::decode(&b).unwrap(), p);
        assert!(AuditPayload::decode(&[b.clone(), vec![0]].concat()).is_err());
        let g = genesis_hash(b"s");
        assert_ne!(record_hash(b"s", 1, &g, &b), record_hash(b"s", 2, &g, &b));
        assert_ne!(record_hash(b"s", 1, &g, &b), record_hash(b"t", 1, &g, &b));
    }
}
