//! The audit log's retention by the host itself (`[audit] retain_days`): a minute after the
//! host starts and then once a day, a housekeeping pass prunes what `kasane-host audit prune
//! --older-than DAYS` would, into an archive file of its own in `archive_dir` (or without a
//! copy when `archive = false`).
//!
//! A pass prunes at most [`PASS_CHAINS`] chains (one durable transaction each, so a first
//! run over months of backlog does not hold housekeeping up for long); when it stops there,
//! the next pass goes on, else the next run is a day later. Every replica may prune: two
//! prunes at once each take different chains ([`crate::audit_prune`]).

use std::path::{Path, PathBuf};

use rand::RngCore as _;

use crate::HostError;
use crate::audit_prune::{self, Archive, DAY, Pruned};
use crate::host::Host;
use crate::store::UnixSeconds;

/// Chains one housekeeping pass prunes at most.
pub const PASS_CHAINS: u64 = 1_000;

impl Host {
    /// Prunes the audit log if `[audit] retain_days` asks for it and a run is due (see the
    /// module's documentation). `None` when nothing ran.
    pub async fn prune_audit_if_due(&self) -> Result<Option<Pruned>, HostError> {
        let now = self.now();
        let Some(archive_dir) = self.config.audit.pruning() else {
            return Ok(None);
        };
        if !self.retention.due(now) {
            return Ok(None);
        }
        let cutoff = now.saturating_sub(self.config.audit.retain_days.saturating_mul(DAY));
        let pruned = self.prune_audit((cutoff, now), archive_dir).await;
        // A failed run (a broken chain, a full disk) is tried again a day later, not at
        // every pass; housekeeping counts and logs the failure.
        let more = pruned.as_ref().is_ok_and(|p| p.more);
        self.retention.ran(now, more);
        let pruned = pruned?;
        if pruned.chains + pruned.skipped > 0 {
            tracing::info!(
                chains = pruned.chains,
                records = pruned.records,
                skipped = pruned.skipped,
                "audit log pruned"
            );
        }
        Ok(Some(pruned))
    }

    /// One run at (cut-off, now), into a new archive file in `archive_dir` if given.
    async fn prune_audit(
        &self,
        at: (UnixSeconds, UnixSeconds),
        archive_dir: Option<&Path>,
    ) -> Result<Pruned, HostError> {
        let key = self.host_key.load_full();
        let store = self.store.as_ref();
        match archive_dir {
            Some(dir) => self.prune_into(dir, &key, at).await,
            None => Ok(audit_prune::prune_at_most(store, &key, at, None, PASS_CHAINS).await?),
        }
    }

    /// One run into a new archive file in `dir`, removed again when nothing was written.
    async fn prune_into(
        &self,
        dir: &Path,
        key: &ed25519_dalek::SigningKey,
        at: (UnixSeconds, UnixSeconds),
    ) -> Result<Pruned, HostError> {
        let path = archive_path(dir, at.1);
        let io = |e| HostError::io(&path, e);
        let mut file =
            std::io::BufWriter::new(kasane_os::fs::create_private_file(&path).map_err(io)?);
        let sink = Some(&mut file as &mut (dyn Archive + Send));
        let pruned =
            audit_prune::prune_at_most(self.store.as_ref(), key, at, sink, PASS_CHAINS).await;
        file.sync().map_err(io)?;
        if file.get_ref().metadata().map_err(io)?.len() == 0 {
            std::fs::remove_file(&path).map_err(io)?;
        } else {
            tracing::info!(archive = %path.display(), "audit archive written");
        }
        kasane_os::fs::sync_parent(&path).map_err(io)?;
        Ok(pruned?)
    }
}

/// Refuses an `archive_dir` that is not a directory at start, rather than a day's pruning
/// failing later.
pub fn check_archive_dir(dir: &Path) -> Result<(), HostError> {
    let meta = std::fs::metadata(dir).map_err(|e| HostError::io(dir, e))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(HostError::io(dir, e));
    }
    Ok(())
}

/// `dir/audit-<now>-<8 random hex digits>.jsonl`: a new name for each run, on each replica.
fn archive_path(dir: &Path, now: UnixSeconds) -> PathBuf {
    let tag = rand::rngs::OsRng.next_u32();
    dir.join(format!("audit-{now}-{tag:08x}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_dir_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        check_archive_dir(dir.path()).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        for bad in [file, dir.path().join("missing")] {
            let e = check_archive_dir(&bad).unwrap_err();
            assert!(
                matches!(e, HostError::Io { ref path, .. } if *path == bad),
                "{e:?}"
            );
        }
        let name = archive_path(dir.path(), 7);
        let name = name.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("audit-7-") && name.ends_with(".jsonl"),
            "{name}"
        );
    }
}
