//! The offline check of an archive `kasane-host audit prune --archive` wrote
//! (`audit verify --archive FILE`): every chain in it whole from record 1, each record as
//! `audit verify` checks it, and each chain closed by its marker, signed by the host key
//! over the chain's last record. It needs the file and the host's public key only.

use std::io::BufRead;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::audit::{Last, VerifyError, check_next, pruned_message, signed_by};
use crate::store::AuditRecord;

/// What a good archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveSummary {
    /// Chains, each closed by a signed marker.
    pub chains: u64,
    /// Records.
    pub records: u64,
}

/// Errors of [`verify_archive`]: the first bad line, or reading failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Line `line` (from 1) is not what a pruned archive holds there.
    #[error("archive broken at line {line}: {what}")]
    Broken {
        /// The line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Reading the file failed.
    #[error("reading the archive")]
    Read(#[from] std::io::Error),
}

/// One line of an archive: a record (as `audit export` writes it) or a chain's marker.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Marker { pruned: Head },
    Record(Head),
}

/// The fields a line's checks read (hex strings; a record's other fields are ignored).
#[derive(Deserialize)]
struct Head {
    session_id: String,
    seq: u64,
    record_hash: String,
    #[serde(default)]
    prev_hash: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    signature: String,
    created: u64,
}

/// The chain being read: its last record (session, position, record hash).
type Open = Last;

/// Checks the archive read from `input` under any of `keys` (see the module).
pub fn verify_archive(
    input: impl BufRead,
    keys: &[VerifyingKey],
) -> Result<ArchiveSummary, ArchiveError> {
    let mut summary = ArchiveSummary::default();
    let mut open: Option<Open> = None;
    let mut n = 0;
    for text in input.lines() {
        n += 1;
        let bad = |what: String| ArchiveError::Broken { line: n, what };
        let line: Line = serde_json::from_str(&text?).map_err(|e| bad(e.to_string()))?;
        open = match line {
            Line::Record(r) => {
                summary.records += 1;
                Some(next_record(open.take(), &r).map_err(bad)?)
            }
            Line::Marker { pruned } => {
                close_chain(open.take(), &pruned, keys).map_err(bad)?;
                summary.chains += 1;
                None
            }
        };
    }
    match open {
        Some(_) => Err(ArchiveError::Broken {
            line: n,
            what: "the last chain has no marker (archive cut off)".into(),
        }),
        None => Ok(summary),
    }
}

/// Record `r`, which extends the open chain or opens one at record 1.
fn next_record(open: Option<Open>, r: &Head) -> Result<Open, String> {
    let record = AuditRecord {
        session_id: unhex(&r.session_id, "session_id")?,
        seq: r.seq,
        prev_hash: unhex(&r.prev_hash, "prev_hash")?,
        record_hash: unhex(&r.record_hash, "record_hash")?,
        payload: unhex(&r.payload, "payload")?,
        created: r.created,
    };
    if open
        .as_ref()
        .is_some_and(|(sid, _, _)| *sid != record.session_id)
    {
        return Err("a chain ends without its marker".into());
    }
    check_next(open.as_ref(), &record).map_err(|e| match e {
        VerifyError::Broken(b) => b.to_string(),
        other => other.to_string(),
    })?;
    Ok((record.session_id, record.seq, record.record_hash))
}

/// The marker `m` closing the open chain: at its head, signed by one of `keys`.
fn close_chain(open: Option<Open>, m: &Head, keys: &[VerifyingKey]) -> Result<(), String> {
    let sid = unhex(&m.session_id, "session_id")?;
    let hash = unhex(&m.record_hash, "record_hash")?;
    if open != Some((sid.clone(), m.seq, hash.clone())) {
        return Err("marker does not close the chain before it (records missing)".into());
    }
    let signature = unhex(&m.signature, "signature")?;
    if !signed_by(&pruned_message(&sid, m.seq, &hash), &signature, keys) {
        return Err("marker does not verify with the host key".into());
    }
    Ok(())
}

fn unhex(s: &str, field: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{field}: {e}"))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::audit::{export_line, genesis_hash, record_hash};

    /// An archive of one chain of `n` records of session `s`, closed by `key`'s marker.
    fn archive(n: u64, key: &SigningKey) -> String {
        let (sid, mut prev) = (b"s".to_vec(), genesis_hash(b"s").to_vec());
        let mut out = String::new();
        for seq in 1..=n {
            let payload = crate::audit::AuditPayload {
                version: 1,
                direction: 0,
                seq,
                recipient: "bob".into(),
                ciphertext: vec![1; 4],
                aad: vec![],
                module_sha256: [0; 32],
                sender: "alice".into(),
                received_at: 1,
            }
            .encode()
            .unwrap();
            let hash = record_hash(&sid, seq, &prev, &payload).to_vec();
            let r = AuditRecord {
                session_id: sid.clone(),
                seq,
                prev_hash: prev,
                record_hash: hash.clone(),
                payload,
                created: 1,
            };
            out += &format!("{}\n", export_line(&r));
            prev = hash;
        }
        let signature = key.sign(&pruned_message(&sid, n, &prev)).to_bytes();
        let marker = serde_json::json!({"pruned": {"session_id": hex::encode(&sid), "seq": n,
            "record_hash": hex::encode(&prev), "signature": hex::encode(signature), "created": 2}});
        out + &format!("{marker}\n")
    }

    #[test]
    fn a_chain_closed_by_the_host_key_s_marker_and_nothing_else() {
        let (key, other) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let check =
            |text: &str, k: &SigningKey| verify_archive(text.as_bytes(), &[k.verifying_key()]);
        let good = archive(3, &key);
        let s = check(&good, &key).unwrap();
        assert_eq!((s.chains, s.records), (1, 3));
        let line_of = |e: ArchiveError| match e {
            ArchiveError::Broken { line, what } => (line, what),
            other => panic!("{other}"),
        };
        let (line, what) = line_of(check(&good, &other).unwrap_err());
        assert_eq!(line, 4);
        assert!(what.contains("does not verify"), "{what}");
        // A record dropped from the middle, and the marker's line dropped.
        let lines: Vec<&str> = good.lines().collect();
        let gap = [lines[0], lines[2], lines[3]].join("\n");
        assert_eq!(line_of(check(&gap, &key).unwrap_err()).0, 2);
        let open = lines[..3].join("\n");
        assert_eq!(line_of(check(&open, &key).unwrap_err()).0, 3);
        // Two archives' chains back to back pass; a line that is not JSON does not.
        assert_eq!(check(&(good.clone() + &good), &key).unwrap().chains, 2);
        assert_eq!(line_of(check(&(good + "x\n"), &key).unwrap_err()).0, 5);
    }
}
