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
//!
//! The hash formats live in [`crate::audit_chain`] (shared with the store, which appends
//! records) and are re-exported here.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use crate::audit_chain::{
    CHECKPOINT_LABEL, GENESIS_LABEL, PRUNED_LABEL, RECORD_LABEL, checkpoint_message, genesis_hash,
    pruned_message, record_hash,
};
use crate::store::{AuditCheckpoint, AuditCursor, AuditReader, AuditRecord, Store, StoreError};

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
    /// Format version: 1 a message, 2 a gateway exchange's request or response
    /// (`crate::gateway::AUDIT_VERSION`; recipient `@gateway`, the direction tells which).
    pub version: u8,
    /// Direction byte of the sealed message (0: client to host).
    pub direction: u8,
    /// The message's sequence number.
    pub seq: u64,
    /// The recipient as addressed ("" = the host).
    pub recipient: String,
    /// The ciphertext and tag as received.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The AES-GCM associated data (session id ‖ direction ‖ seq ‖ recipient).
    #[serde(with = "serde_bytes")]
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

/// What is wrong with a record or checkpoint (see [`Broken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Defect {
    /// The record's position is not the one after its predecessor's.
    Sequence {
        /// The position found.
        found: u64,
        /// The position expected.
        expected: u64,
    },
    /// `prev_hash` is not the predecessor's `record_hash` (or the genesis value).
    PrevHash,
    /// `record_hash` is not the hash of the record.
    RecordHash,
    /// The payload is not an [`AuditPayload`].
    Payload,
    /// A checkpoint's signature does not verify under the host key.
    Signature,
    /// A checkpoint vouches for another `record_hash` than the record's.
    CheckpointMismatch,
    /// A checkpoint vouches for a record that is not in the log.
    CheckpointWithoutRecord,
    /// A pruned chain's marker does not verify under the host key.
    PrunedSignature,
    /// A record of a chain marked pruned (written, or left, after the marker).
    RecordOfPrunedChain,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sequence { found, expected } => write!(
                f,
                "sequence number {found} where {expected} was expected (missing, inserted or reordered record)"
            ),
            Self::PrevHash => f.write_str("prev_hash does not link to the previous record"),
            Self::RecordHash => {
                f.write_str("record_hash does not match the record (changed record)")
            }
            Self::Payload => f.write_str("payload does not decode"),
            Self::Signature => {
                f.write_str("checkpoint signature does not verify with the host key")
            }
            Self::CheckpointMismatch => {
                f.write_str("signed checkpoint does not match the record (chain rewritten)")
            }
            Self::CheckpointWithoutRecord => {
                f.write_str("signed checkpoint for a record that does not exist (deleted records)")
            }
            Self::PrunedSignature => f.write_str(
                "pruned-chain marker does not verify with the host key (records deleted)",
            ),
            Self::RecordOfPrunedChain => {
                f.write_str("record of a chain marked pruned (inserted after pruning)")
            }
        }
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
    pub what: Defect,
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
    /// Checkpoints whose signature and record (or pruned chain) were checked.
    pub checkpoints: u64,
    /// Pruned chains whose marker was checked (`kasane-host audit prune`).
    pub pruned: u64,
}

/// Errors of [`verify`]: the log is broken, or could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The first broken record.
    #[error("audit log broken: {0}")]
    Broken(Broken),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn broken(session_id: &[u8], seq: u64, what: Defect) -> VerifyError {
    VerifyError::Broken(Broken {
        session_id: session_id.to_vec(),
        seq,
        what,
    })
}

/// Pages read from the store at a time.
const PAGE: u32 = 512;

/// Checkpoints (or pruned chains' markers) by position (`session_id`, `seq`).
type Checkpoints = HashMap<(Vec<u8>, u64), AuditCheckpoint>;

/// Pruned chains' markers, by session id.
type PrunedChains = HashMap<Vec<u8>, AuditCheckpoint>;

/// Reads every chain and checkpoint (page by page) and checks: sequence numbers contiguous
/// from 1, `prev_hash` links (genesis for record 1), recomputed `record_hash`, payloads that
/// decode, checkpoint signatures under `host_key`, and that each checkpoint matches an
/// existing record (so a cut-off tail is detected) or a signed pruned chain's head.
pub async fn verify(store: &dyn Store, host_key: &VerifyingKey) -> Result<Summary, VerifyError> {
    verify_any(store, std::slice::from_ref(host_key)).await
}

/// [`verify`], a checkpoint's signature accepted under any of `host_keys` (the current
/// identity key and earlier ones: checkpoints signed before a key rotation keep verifying).
pub async fn verify_any(
    store: &dyn Store,
    host_keys: &[VerifyingKey],
) -> Result<Summary, VerifyError> {
    let pruned = read_pruned(store, host_keys).await?;
    let mut checkpoints = read_marks(store, Marks::Checkpoints).await?;
    let mut summary = Summary {
        pruned: pruned.len() as u64,
        ..Summary::default()
    };
    let mut reader = AuditReader::new(store);
    // The last record read: (session id, seq, record_hash).
    let mut previous: Option<(Vec<u8>, u64, Vec<u8>)> = None;
    while let Some(r) = reader.next().await? {
        if pruned.contains_key(&r.session_id) {
            return Err(broken(&r.session_id, r.seq, Defect::RecordOfPrunedChain));
        }
        summary.chains += u64::from(check_next(previous.as_ref(), &r)?);
        if let Some(c) = checkpoints.remove(&(r.session_id.clone(), r.seq)) {
            check_checkpoint_of(&c, &r, host_keys)?;
            summary.checkpoints += 1;
        }
        summary.records += 1;
        previous = Some((r.session_id, r.seq, r.record_hash));
    }
    summary.checkpoints += check_leftover_checkpoints(checkpoints, &pruned, host_keys)?;
    Ok(summary)
}

/// Which signed marks [`read_marks`] reads.
#[derive(Clone, Copy)]
enum Marks {
    Checkpoints,
    Pruned,
}

/// All checkpoints, or all pruned chains' markers, by position (they are few next to
/// records).
async fn read_marks(store: &dyn Store, which: Marks) -> Result<Checkpoints, StoreError> {
    let mut marks = Checkpoints::new();
    let mut cursor: Option<AuditCursor> = None;
    loop {
        let page = match which {
            Marks::Checkpoints => store.audit_checkpoint_page(cursor.as_ref(), PAGE).await?,
            Marks::Pruned => store.audit_pruned_page(cursor.as_ref(), PAGE).await?,
        };
        let Some(last) = page.last() else { break };
        cursor = Some(AuditCursor {
            session_id: last.session_id.clone(),
            seq: last.seq,
        });
        let full = page.len() == PAGE as usize;
        for c in page {
            marks.insert((c.session_id.clone(), c.seq), c);
        }
        if !full {
            break;
        }
    }
    Ok(marks)
}

/// The pruned chains' markers, each signed by one of `keys`.
async fn read_pruned(
    store: &dyn Store,
    keys: &[VerifyingKey],
) -> Result<PrunedChains, VerifyError> {
    let mut pruned = PrunedChains::new();
    for ((sid, seq), m) in read_marks(store, Marks::Pruned).await? {
        let message = pruned_message(&sid, seq, &m.record_hash);
        if !signed_by(&message, &m.signature, keys) {
            return Err(broken(&sid, seq, Defect::PrunedSignature));
        }
        pruned.insert(sid, m);
    }
    Ok(pruned)
}

/// The last record read: its session id, `seq` and `record_hash`.
pub(crate) type Last = (Vec<u8>, u64, Vec<u8>);

/// Checks `r` as the next record of its chain: the one after `last` when that is of the same
/// session, else record 1 (linked to the genesis value). True when `r` opens a chain.
pub(crate) fn check_next(last: Option<&Last>, r: &AuditRecord) -> Result<bool, VerifyError> {
    match last {
        Some((sid, seq, hash)) if *sid == r.session_id => {
            check_record(r, seq + 1, hash)?;
            Ok(false)
        }
        _ => {
            check_record(r, 1, &genesis_hash(&r.session_id))?;
            Ok(true)
        }
    }
}

/// One record in its chain: at `expected_seq`, linked to `expected_prev`, its own hash right,
/// its payload decoding.
fn check_record(
    r: &AuditRecord,
    expected_seq: u64,
    expected_prev: &[u8],
) -> Result<(), VerifyError> {
    let defect = if r.seq != expected_seq {
        Some(Defect::Sequence {
            found: r.seq,
            expected: expected_seq,
        })
    } else if r.prev_hash != expected_prev {
        Some(Defect::PrevHash)
    } else if r.record_hash != record_hash(&r.session_id, r.seq, &r.prev_hash, &r.payload) {
        Some(Defect::RecordHash)
    } else if AuditPayload::decode(&r.payload).is_err() {
        Some(Defect::Payload)
    } else {
        None
    };
    match defect {
        Some(d) => Err(broken(&r.session_id, r.seq, d)),
        None => Ok(()),
    }
}

/// Checkpoint `c` of record `r`: signed by the host key, vouching for `r`'s hash.
fn check_checkpoint_of(
    c: &AuditCheckpoint,
    r: &AuditRecord,
    keys: &[VerifyingKey],
) -> Result<(), VerifyError> {
    check_signature(c, keys)?;
    if c.record_hash != r.record_hash {
        return Err(broken(&r.session_id, r.seq, Defect::CheckpointMismatch));
    }
    Ok(())
}

/// The checkpoints left over after reading the log: each must be signed and lie within a
/// pruned chain (at its head: vouching for the same hash); any other vouches for a record
/// that is gone. The first break in log order is reported. Returns the checkpoints checked.
fn check_leftover_checkpoints(
    checkpoints: Checkpoints,
    pruned: &PrunedChains,
    keys: &[VerifyingKey],
) -> Result<u64, VerifyError> {
    let mut left: Vec<AuditCheckpoint> = checkpoints.into_values().collect();
    left.sort_by(|a, b| (&a.session_id, a.seq).cmp(&(&b.session_id, b.seq)));
    for c in &left {
        check_signature(c, keys)?;
        let defect = match pruned.get(&c.session_id) {
            Some(m) if c.seq < m.seq => None,
            Some(m) if c.seq == m.seq && c.record_hash == m.record_hash => None,
            Some(m) if c.seq == m.seq => Some(Defect::CheckpointMismatch),
            _ => Some(Defect::CheckpointWithoutRecord),
        };
        if let Some(d) = defect {
            return Err(broken(&c.session_id, c.seq, d));
        }
    }
    Ok(left.len() as u64)
}

/// `c`'s signature under one of `keys`.
fn check_signature(c: &AuditCheckpoint, keys: &[VerifyingKey]) -> Result<(), VerifyError> {
    let message = checkpoint_message(&c.session_id, c.seq, &c.record_hash);
    if signed_by(&message, &c.signature, keys) {
        Ok(())
    } else {
        Err(broken(&c.session_id, c.seq, Defect::Signature))
    }
}

/// Whether `signature` is one of `keys`' over `message`.
pub(crate) fn signed_by(message: &[u8], signature: &[u8], keys: &[VerifyingKey]) -> bool {
    Signature::from_slice(signature)
        .map(|sig| keys.iter().any(|k| k.verify(message, &sig).is_ok()))
        .unwrap_or(false)
}

/// Errors of [`export`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error("reading the audit log")]
    Store(#[from] StoreError),
    /// Writing a line failed.
    #[error("writing the export")]
    Write(#[from] std::io::Error),
    /// Encoding a line failed.
    #[error("encoding a record as JSON")]
    Json(#[from] serde_json::Error),
}

/// Writes the whole log as JSON lines, one per record (byte fields hex; the decoded payload
/// alongside when it decodes). Returns the number of records.
pub async fn export(store: &dyn Store, out: &mut dyn std::io::Write) -> Result<u64, ExportError> {
    let mut reader = AuditReader::new(store);
    let mut n = 0;
    while let Some(r) = reader.next().await? {
        serde_json::to_writer(&mut *out, &export_line(&r))?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// The JSON line of record `r`.
pub(crate) fn export_line(r: &AuditRecord) -> serde_json::Value {
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
    line
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

    /// Known answer for a checkpoint's signature: the message of `audit_chain`'s known-answer
    /// test signed with the Ed25519 key whose seed is the bytes 0, 1, …, 31. The expected value
    /// was computed independently with Python's `cryptography` package:
    /// `Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(m)` (Ed25519 signatures are
    /// deterministic).
    #[test]
    fn checkpoint_signature_known_answer() {
        use crate::audit_chain::tests::{RECORD_1, SID};
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key = SigningKey::from_bytes(&seed);
        let r1 = hex::decode(RECORD_1).unwrap();
        let c = sign_checkpoint(&key, &SID, 1, &r1, 77);
        assert_eq!(
            hex::encode(&c.signature),
            "7eb02006e27dc3e482f5e02720a63101911fc788482516d2e951ebfec9f4499b\
             5976251a7afd40d7eb06078cc4b7505db9172b1fd35672af9f1556b9af53a802"
        );
        check_signature(&c, &[key.verifying_key()]).unwrap();
        // Under another key alone it does not verify; beside it, it does.
        let other = SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert!(check_signature(&c, &[other]).is_err());
        check_signature(&c, &[other, key.verifying_key()]).unwrap();
        assert_eq!((c.seq, c.record_hash, c.created), (1, r1, 77));
    }
}
