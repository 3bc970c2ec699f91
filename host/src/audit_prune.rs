//! Retention of the audit log: `kasane-host audit prune` removes whole chains of ended
//! sessions, after writing them to an archive if asked, and leaves for each a marker signed
//! by the host key so that `audit verify` can tell a pruned chain from a deleted one.
//!
//! A chain is prunable when its last record is older than the cut-off, its session has
//! ended, and no queued or dead-lettered message names one of its records (a queued message's
//! body *is* its audit record). Each chain is checked before it goes (a broken chain is kept:
//! it is evidence), written to the archive, the archive synced, and only then pruned, one
//! durable transaction per chain. Two prunes may run at once (a cron job on each replica):
//! each chain goes once, and a prune that finds a chain already taken by the other skips it
//! (counted in [`Pruned::skipped`]; its archive may then hold that chain too, whole and
//! closed by its own marker).

use std::io::{self, Write};

use ed25519_dalek::{Signer as _, SigningKey};

use crate::audit::{Broken, Last, VerifyError, check_next, export_line, pruned_message};
use crate::store::{AuditCheckpoint, AuditCursor, AuditReader, Store, StoreError, UnixSeconds};

/// Chains looked up (and archived before their deletion) at a time.
const BATCH: u32 = 64;

/// Seconds in a day: the unit of retention, and the time between two scheduled runs that
/// found nothing more to do ([`Schedule`]).
pub const DAY: u64 = 86_400;

/// When a host's scheduled pruning (`crate::retention`) next runs.
#[derive(Debug)]
pub struct Schedule {
    next: std::sync::Mutex<UnixSeconds>,
}

impl Schedule {
    /// The first run due at `first`.
    #[must_use]
    pub fn first_at(first: UnixSeconds) -> Self {
        Self {
            next: std::sync::Mutex::new(first),
        }
    }

    /// Whether a run is due at `now`.
    pub fn due(&self, now: UnixSeconds) -> bool {
        now >= *self.lock()
    }

    /// Notes a run at `now`: the next is due at once if it stopped at its limit (`more`),
    /// else a day later.
    pub fn ran(&self, now: UnixSeconds, more: bool) {
        *self.lock() = if more { now } else { now.saturating_add(DAY) };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UnixSeconds> {
        // Nothing panics while it is held; a poisoned time is still a time.
        self.next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where [`prune`] writes the chains it removes, before it removes them.
pub trait Archive {
    /// Writes one JSON line.
    fn line(&mut self, line: &serde_json::Value) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Where the next line goes, to take back with [`Archive::truncate`]: a chain another
    /// prune took while this one was writing it must not stay half-written.
    fn position(&mut self) -> io::Result<u64> {
        Ok(0)
    }
    /// Takes back everything written from `at` ([`Archive::position`]) on.
    fn truncate(&mut self, at: u64) -> io::Result<()> {
        let _ = at;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this archive cannot take a half-written chain back",
        ))
    }
}

impl Archive for io::BufWriter<std::fs::File> {
    fn line(&mut self, line: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut *self, line)?;
        self.write_all(b"\n")
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.get_ref().sync_data()
    }

    fn position(&mut self) -> io::Result<u64> {
        use io::Seek as _;
        self.flush()?;
        self.get_mut().stream_position()
    }

    fn truncate(&mut self, at: u64) -> io::Result<()> {
        use io::Seek as _;
        self.flush()?;
        self.get_ref().set_len(at)?;
        self.get_mut().seek(io::SeekFrom::Start(at)).map(drop)
    }
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Chains (ended sessions).
    pub chains: u64,
    /// Records.
    pub records: u64,
    /// Chains found prunable and then pruned by another process first.
    pub skipped: u64,
    /// Whether [`prune_at_most`] stopped at its limit (more chains may be due).
    pub more: bool,
}

/// Errors of [`prune`]. Chains pruned before the error stay pruned (and archived).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// A chain due for pruning is broken; it is kept, as are the ones after it.
    #[error("audit log broken: {0} (that chain is kept; run audit verify)")]
    Broken(Broken),
    /// Reading or pruning failed.
    #[error("pruning the audit log")]
    Store(#[from] StoreError),
    /// Writing or syncing the archive failed (the chains not yet synced are kept).
    #[error("writing the archive")]
    Archive(#[from] io::Error),
}

impl From<VerifyError> for PruneError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Broken(b) => Self::Broken(b),
            VerifyError::Store(e) => Self::Store(e),
        }
    }
}

/// Prunes every chain whose last record was written at or before `cutoff` and whose session
/// has ended (see the module's documentation), each marked with `key`'s signature at `now`.
pub async fn prune(
    store: &dyn Store,
    key: &SigningKey,
    cutoff: UnixSeconds,
    now: UnixSeconds,
    archive: Option<&mut (dyn Archive + Send + '_)>,
) -> Result<Pruned, PruneError> {
    prune_at_most(store, key, (cutoff, now), archive, u64::MAX).await
}

/// [`prune`] at (`cutoff`, `now`), stopping once `max` chains were pruned or skipped
/// ([`Pruned::more`]): what one pass of the host's housekeeping takes on.
pub async fn prune_at_most(
    store: &dyn Store,
    key: &SigningKey,
    (cutoff, now): (UnixSeconds, UnixSeconds),
    mut archive: Option<&mut (dyn Archive + Send + '_)>,
    max: u64,
) -> Result<Pruned, PruneError> {
    let mut done = Pruned::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let left = max.saturating_sub(done.chains + done.skipped);
        if left == 0 {
            done.more = true;
            return Ok(done);
        }
        let limit = u32::try_from(left).unwrap_or(BATCH).min(BATCH);
        let heads = store
            .prunable_audit_chains(after.as_deref(), cutoff, limit)
            .await?;
        let Some((last, _, _)) = heads.last() else {
            return Ok(done);
        };
        after = Some(last.clone());
        let mut markers = Vec::with_capacity(heads.len());
        for (session_id, seq, hash) in heads {
            let marker = sign_marker(key, session_id, seq, hash, now);
            match check_and_archive(store, &marker, archive.as_deref_mut()).await? {
                Chain::Archived => markers.push(marker),
                Chain::Gone => done.skipped += 1,
            }
        }
        if let Some(a) = archive.as_deref_mut() {
            a.sync()?;
        }
        for m in &markers {
            match store.prune_audit_chain(m).await {
                Ok(records) => {
                    done.records += records;
                    done.chains += 1;
                }
                // Another prune marked it between the lookup and here (an ended session's
                // chain neither grows nor gains a queued message).
                Err(StoreError::NotPrunable) => done.skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// What [`check_and_archive`] found of a chain.
enum Chain {
    /// Whole up to the marker's head, and archived.
    Archived,
    /// No record left: another prune took it (nothing was archived).
    Gone,
}

/// The marker of a chain pruned at head (`seq`, `record_hash`).
fn sign_marker(
    key: &SigningKey,
    session_id: Vec<u8>,
    seq: u64,
    record_hash: Vec<u8>,
    now: UnixSeconds,
) -> AuditCheckpoint {
    let signature = key.sign(&pruned_message(&session_id, seq, &record_hash));
    AuditCheckpoint {
        session_id,
        seq,
        record_hash,
        signature: signature.to_bytes().to_vec(),
        created: now,
    }
}

/// Reads the chain `marker` closes, checks it as `audit verify` would, and writes its
/// records (as `audit export` lines) and then the marker to `archive`.
async fn check_and_archive(
    store: &dyn Store,
    marker: &AuditCheckpoint,
    mut archive: Option<&mut (dyn Archive + Send + '_)>,
) -> Result<Chain, PruneError> {
    let sid = &marker.session_id;
    let start = match archive.as_deref_mut() {
        Some(a) => Some(a.position()?),
        None => None,
    };
    let mut reader = AuditReader::after(
        store,
        AuditCursor {
            session_id: sid.clone(),
            seq: 0,
        },
    );
    let mut last: Option<Last> = None;
    while let Some(r) = reader.next().await? {
        if r.session_id != *sid {
            break;
        }
        check_next(last.as_ref(), &r)?;
        if let Some(a) = archive.as_deref_mut() {
            a.line(&export_line(&r))?;
        }
        last = Some((r.session_id, r.seq, r.record_hash));
    }
    let Some((_, seq, hash)) = &last else {
        return Ok(Chain::Gone);
    };
    if (*seq, hash.as_slice()) != (marker.seq, marker.record_hash.as_slice()) {
        if chain_gone(store, sid).await? {
            // Another prune took it while it was read (its records went in one commit):
            // what this archive holds of it is taken back.
            if let (Some(a), Some(at)) = (archive, start) {
                a.truncate(at)?;
            }
            return Ok(Chain::Gone);
        }
        // It grew since the lookup: not an ended session's chain after all.
        return Err(StoreError::NotPrunable.into());
    }
    if let Some(a) = archive {
        a.line(&marker_line(marker))?;
    }
    Ok(Chain::Archived)
}

/// Whether the chain of `session_id` has no record left.
async fn chain_gone(store: &dyn Store, session_id: &[u8]) -> Result<bool, PruneError> {
    let cursor = AuditCursor {
        session_id: session_id.to_vec(),
        seq: 0,
    };
    let first = AuditReader::after(store, cursor).next().await?;
    Ok(first.is_none_or(|r| r.session_id != session_id))
}

/// The archive's line for a pruned chain's marker.
fn marker_line(m: &AuditCheckpoint) -> serde_json::Value {
    serde_json::json!({
        "pruned": {
            "session_id": hex::encode(&m.session_id),
            "seq": m.seq,
            "record_hash": hex::encode(&m.record_hash),
            "signature": hex::encode(&m.signature),
            "created": m.created,
        }
    })
}
