//! Online re-signing and the repository lock.
//!
//! Timestamp and snapshot are the online roles: TUF expects the repository to re-sign them
//! long before they expire, with no change of content. [`resign_online_if_due`] does it when
//! less than half of their lifetime is left (what a host runs unattended); every
//! read-modify-write of a repository directory (the host's re-signing, each
//! `kasane-registry` edit) holds [`RepoLock`] on `<dir>/.lock` and loads the repository
//! after taking it, so two writers never sign the same version twice and a version never
//! moves backwards, however many replicas share the directory.

use std::fs::File;
use std::path::Path;

use kasane_tuf::metadata::Signer;

use super::init::Lifetimes;
use super::{Repository, unix};
use crate::error::{RegistryError, Result};

/// The lock file in a repository directory (not under `metadata/` or `targets/`: never
/// served).
pub const LOCK_FILE: &str = ".lock";

/// An exclusive `flock` on a repository directory's [`LOCK_FILE`], released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

impl RepoLock {
    /// Waits for the lock (what an operator's command does).
    pub fn acquire(dir: &Path) -> Result<Self> {
        let (file, path) = open_lock_file(dir)?;
        file.lock().map_err(|e| RegistryError::io(&path, e))?;
        Ok(Self { _file: file })
    }

    /// Takes the lock if it is free, `None` if another writer holds it (what the host does:
    /// it retries at its next pass rather than wait on an operator's command).
    pub fn try_acquire(dir: &Path) -> Result<Option<Self>> {
        let (file, path) = open_lock_file(dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(RegistryError::io(&path, e)),
        }
    }
}

/// Opens (creating, mode 0644 — 0600 in a private repository — the lock holds nothing) the
/// lock file. A lock is taken on a
/// read-only descriptor, so a host running as another user than the operator can lock a
/// file the operator created.
fn open_lock_file(dir: &Path) -> Result<(File, std::path::PathBuf)> {
    let path = dir.join(LOCK_FILE);
    let opened = File::open(&path).or_else(|e| {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(
            &mut o,
            match crate::files::Visibility::of_root(dir) {
                crate::files::Visibility::Public => 0o644,
                crate::files::Visibility::Private => 0o600,
            },
        );
        o.open(&path)
    });
    let file = opened.map_err(|e| RegistryError::io(&path, e))?;
    Ok((file, path))
}

/// When the online roles are next due for re-signing: half of `lifetime` before the
/// earlier of the timestamp's and the snapshot's expiry.
#[must_use]
pub fn online_due_at(repo: &Repository, lifetime: u64) -> u64 {
    let first = unix(repo.timestamp.signed.expires).min(unix(repo.snapshot.signed.expires));
    first.saturating_sub(lifetime / 2)
}

/// What [`resign_online_if_due`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resigned {
    /// New timestamp and snapshot, with these versions.
    Done {
        /// The new timestamp version.
        timestamp: u64,
        /// The new snapshot version.
        snapshot: u64,
    },
    /// Nothing was due (another writer may just have re-signed).
    NotDue,
    /// Another writer holds the lock; try again later.
    Busy,
}

/// Re-signs snapshot and timestamp (new versions, expiry `life.snapshot` from `now`, same
/// content) if they are due at `now`, under the repository lock.
pub fn resign_online_if_due(
    dir: &Path,
    online: &[&dyn Signer],
    now: u64,
    life: &Lifetimes,
) -> Result<Resigned> {
    let Some(_lock) = RepoLock::try_acquire(dir)? else {
        return Ok(Resigned::Busy);
    };
    // Loaded under the lock: a version another writer just signed is the one bumped.
    let mut repo = Repository::load(dir)?;
    if now < online_due_at(&repo, life.snapshot) {
        return Ok(Resigned::NotDue);
    }
    repo.snapshot(online, now, life)?;
    repo.save(dir)?;
    let (timestamp, snapshot) = repo.versions();
    Ok(Resigned::Done {
        timestamp,
        snapshot,
    })
}
