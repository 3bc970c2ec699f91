//! Where the host's registry files come from: the registry directory (SQLite deployments, and
//! any host without a database registry), or PostgreSQL's `registry_files`
//! ([`crate::registry_db`]), through an in-memory mirror.
//!
//! [`HostRegistry`](crate::registry::HostRegistry) reads every file through
//! [`RegistrySource`], synchronously. With the database, [`RegistrySource::sync`] (async: on
//! every login's finish, every registry file or module request, `/readyz` and housekeeping)
//! first re-signs timestamp and snapshot if due (one replica at a time, under the advisory
//! lock), then reads the stored `timestamp.json` (one primary-key read) and, only when its
//! hash changed, reads a new mirror. A mirror never replaces one with a higher timestamp
//! version, so what a replica serves never goes backwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use kasane_os::report::Chain;
use kasane_registry::RegistryError;
use kasane_registry::repo::Repository;

use crate::registry_db::{DbRegistry, Files, RegistryDbError, sha256_of};
use crate::upkeep::Upkeep;

/// The files of a registry: a directory, or the database through a mirror.
#[derive(Debug)]
pub enum RegistrySource {
    /// The repository directory (`<data>/registry`).
    Dir(PathBuf),
    /// PostgreSQL's `registry_files`.
    Database(DbSource),
}

/// The registry in the database and this replica's mirror of it.
#[derive(Debug)]
pub struct DbSource {
    db: DbRegistry,
    mirror: RwLock<Arc<Files>>,
    /// One sync at a time in this process: a later sync always reads later state.
    syncing: tokio::sync::Mutex<()>,
    /// Numbers handed to syncs as they arrive, and the first number not covered by the last
    /// finished sync (every sync that arrived before that one began reading is answered by
    /// it): under load, the syncs waiting for one another cost one read, not one each.
    arrived: AtomicU64,
    covered: AtomicU64,
}

impl DbSource {
    /// Reads the first mirror (the table must hold a registry: see
    /// [`DbRegistry::import_if_empty`]).
    pub async fn open(db: DbRegistry) -> Result<Self, RegistryDbError> {
        let mirror = db.mirror().await?;
        Ok(Self {
            db,
            mirror: RwLock::new(Arc::new(mirror)),
            syncing: tokio::sync::Mutex::new(()),
            arrived: AtomicU64::new(0),
            covered: AtomicU64::new(0),
        })
    }

    /// The registry in the database.
    #[must_use]
    pub fn db(&self) -> &DbRegistry {
        &self.db
    }

    fn files(&self) -> Arc<Files> {
        self.mirror
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-signs if due, then takes in what changed (see the module documentation).
    async fn sync(&self, upkeep: &Upkeep, now: u64) -> Result<(), RegistryDbError> {
        let ticket = self.arrived.fetch_add(1, Ordering::SeqCst);
        let _one = self.syncing.lock().await;
        if self.covered.load(Ordering::SeqCst) > ticket {
            // A sync that began reading after this one arrived has just finished.
            return Ok(());
        }
        let mark = self.arrived.load(Ordering::SeqCst);
        let outcome = self.sync_locked(upkeep, now).await;
        self.covered.store(mark, Ordering::SeqCst);
        outcome
    }

    /// [`DbSource::sync`]'s work, with the sync lock held.
    async fn sync_locked(&self, upkeep: &Upkeep, now: u64) -> Result<(), RegistryDbError> {
        if let Some(online) = upkeep.due_signer(now) {
            let outcome = self
                .db
                .resign_if_due(online.as_ref().as_ref(), now, upkeep.lifetimes())
                .await;
            upkeep.record(now, outcome.map_err(|e| Chain(&e).to_string()));
        }
        let Some(stored) = self.db.timestamp().await? else {
            return Err(RegistryDbError::Empty);
        };
        let current = self.files();
        let unchanged = current
            .get(crate::registry_db::TIMESTAMP_PATH)
            .is_some_and(|b| sha256_of(b) == sha256_of(&stored));
        if unchanged {
            return Ok(());
        }
        let fresh = self.db.mirror().await?;
        let version = |f: &Files| Repository::load_files(f).map(|r| r.versions().0).ok();
        if version(&fresh) >= version(&current) {
            *self.mirror.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        }
        Ok(())
    }
}

impl RegistrySource {
    /// The repository directory, if the files are there.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::Dir(d) => Some(d),
            Self::Database(_) => None,
        }
    }

    /// A file by repository path, at most `max` bytes (`what` names it in errors).
    pub fn read(&self, path: &str, max: u64, what: &str) -> Result<Vec<u8>, RegistryError> {
        match self {
            Self::Dir(d) => kasane_registry::files::read_capped(&d.join(path), max, what),
            Self::Database(db) => {
                let files = db.files();
                let bytes = files.get(path).ok_or_else(|| RegistryError::Missing {
                    path: path.to_owned(),
                })?;
                if bytes.len() as u64 > max {
                    return Err(RegistryError::TooLarge {
                        what: what.to_owned(),
                        len: bytes.len() as u64,
                        max,
                    });
                }
                Ok(bytes.clone())
            }
        }
    }

    /// Whether the file at `path` exists.
    #[must_use]
    pub fn has(&self, path: &str) -> bool {
        match self {
            Self::Dir(d) => d.join(path).is_file(),
            Self::Database(db) => db.files().contains_key(path),
        }
    }

    /// The repository (form only; [`Repository::active`] checks it as a client would).
    pub fn load(&self) -> Result<Repository, RegistryError> {
        match self {
            Self::Dir(d) => Repository::load(d),
            Self::Database(db) => Repository::load_files(&db.files()),
        }
    }

    /// Directory: re-signs if due (under the directory's lock). Database: nothing (see
    /// [`RegistrySource::sync`]).
    pub fn resign_if_due(&self, upkeep: &Upkeep, now: u64) {
        if let Self::Dir(d) = self {
            upkeep.resign_if_due(d, now);
        }
    }

    /// Database: re-signs if due and takes in a changed registry (logged, not returned: the
    /// mirror in use stays). Directory: nothing (files are read where they are).
    pub async fn sync(&self, upkeep: &Upkeep, now: u64) {
        if let Self::Database(db) = self
            && let Err(e) = db.sync(upkeep, now).await
        {
            tracing::warn!(error = %Chain(&e), "registry: reading the database's registry failed; serving the one in use");
        }
    }
}
