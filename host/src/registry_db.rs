//! The registry in PostgreSQL: every file of the TUF repository (metadata and module bytes)
//! in the table `registry_files` (path → bytes, the layout of the registry directory), so
//! every replica serves the same registry with no shared disk.
//!
//! - **Writers** (a replica re-signing timestamp and snapshot, an operator's `kasane-host
//!   registry import`) each run one transaction under the advisory lock [`LOCK_CLASS`]
//!   (`pg_try_advisory_xact_lock` for a replica, which skips a turn when another writer holds
//!   it; `pg_advisory_xact_lock` for the operator, who waits), read the stored repository
//!   after taking it, and write what changed in the same transaction: exactly one writer at a
//!   time, and each sees what the previous one committed.
//! - **Versions never move backwards**: a write is refused unless the new timestamp version is
//!   above the stored one ([`RegistryDbError::Rollback`]), snapshot, targets and root versions
//!   are not below the stored ones, and every file but `metadata/timestamp.json` and
//!   `metadata/root.json` is either new or byte for byte the stored one
//!   ([`RegistryDbError::Conflict`]): versioned files are immutable once stored.
//! - **Readers** (each replica) keep a [`Files`] mirror — all metadata, Kasane's documents and
//!   the modules the current repository lists — read in one `REPEATABLE READ` transaction
//!   ([`DbRegistry::mirror`]) when the stored `timestamp.json` changed
//!   ([`DbRegistry::timestamp`]: one primary-key read).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kasane_registry::repo::{
    Lifetimes, Repository, Resigned, metadata_path, online_due_at, target_file_path,
};
use kasane_registry::signing::{Signer, TufSigner};
use kasane_registry::{RegistryError, Sha256Hash};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Row, Transaction};

/// Repository files by path (`metadata/timestamp.json`, `targets/<sha256>.ocra`, …).
pub type Files = BTreeMap<String, Vec<u8>>;

/// The advisory lock every writer of `registry_files` holds for its transaction is
/// (`LOCK_CLASS`, `hashtext(current_schema())`): one lock per schema, so deployments (or
/// tests) sharing a database in schemas of their own do not wait on each other.
/// `LOCK_CLASS` is `"kasR"` as a big-endian `i32`.
pub const LOCK_CLASS: i32 = 0x6b61_7352;
/// The two keys of the lock, as SQL (`$1` is [`LOCK_CLASS`]).
pub const LOCK_KEYS_SQL: &str = "$1, hashtext(current_schema())";
/// The file whose hash says whether the registry changed.
pub const TIMESTAMP_PATH: &str = "metadata/timestamp.json";
/// Largest file read from a registry directory on import (a metadata file's cap).
const MAX_IMPORT_FILE: u64 = 5_000_000;

/// Why a registry operation on the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryDbError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The online key this host would re-sign with is not the registry's (rotated out).
    #[error("{}", crate::upkeep::NOT_LISTED)]
    OnlineKeyNotListed,
    /// The repository does not load or does not verify as a client would.
    #[error("registry")]
    Registry(#[from] RegistryError),
    /// Reading or writing a registry directory failed.
    #[error("I/O on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A version would move backwards (`role`: timestamp, snapshot, targets or root).
    #[error(
        "{role} version {new} is not above the stored {stored}: export the current registry and make the change again"
    )]
    Rollback {
        /// The role.
        role: &'static str,
        /// The stored version.
        stored: u64,
        /// The version offered.
        new: u64,
    },
    /// A versioned file exists with other bytes (the registry changed since it was exported).
    #[error(
        "{path} is stored with other bytes: the registry changed since it was exported; export it again"
    )]
    Conflict {
        /// The repository path.
        path: String,
    },
    /// A listed module's bytes are not in the directory imported.
    #[error("{path}: listed but missing")]
    MissingModule {
        /// The repository path of the module.
        path: String,
    },
    /// A listed module's bytes are not the ones its entry signs (truncated, swapped).
    #[error("{path}: not the bytes the registry lists (another SHA-256)")]
    ModuleAltered {
        /// The repository path of the module.
        path: String,
    },
    /// The database holds no registry.
    #[error("the database holds no registry (start a host on it once, or import one)")]
    Empty,
    /// Export refuses a directory that exists and is not empty.
    #[error("{} exists and is not empty", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
}

type Result<T> = std::result::Result<T, RegistryDbError>;

/// What [`DbRegistry::import_dir`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Files written (new, or `timestamp.json` / `root.json` replaced).
    pub written: usize,
    /// The timestamp and snapshot versions now stored.
    pub versions: (u64, u64),
}

/// The registry stored in PostgreSQL (see the module documentation).
#[derive(Clone, Debug)]
pub struct DbRegistry {
    pool: PgPool,
}

impl DbRegistry {
    /// The registry in the database of `pool` (migration 0010 made its table).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The stored `metadata/timestamp.json`, `None` while the table is empty.
    pub async fn timestamp(&self) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM registry_files WHERE path = $1")
            .bind(TIMESTAMP_PATH)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("bytes")).transpose()?)
    }

    /// What a replica serves: every metadata file, Kasane's documents and the module of every
    /// target the current repository lists, read in one consistent snapshot of the table.
    pub async fn mirror(&self) -> Result<Files> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut files = read_metadata(&mut tx).await?;
        if files.is_empty() {
            tx.rollback().await?;
            return Err(RegistryDbError::Empty);
        }
        let repo = Repository::load_files(&files)?;
        let listed: Vec<String> = listed_target_paths(&repo)
            .into_iter()
            .filter(|p| !files.contains_key(p))
            .collect();
        files.extend(read_paths(&mut tx, &listed).await?);
        tx.commit().await?;
        Ok(files)
    }

    /// Every stored file.
    pub async fn files(&self) -> Result<Files> {
        let rows = sqlx::query("SELECT path, bytes FROM registry_files")
            .fetch_all(&self.pool)
            .await?;
        rows_to_files(rows)
    }

    /// Re-signs timestamp and snapshot (new versions expiring `life.snapshot` after `now`,
    /// same content) if they are due at `now`: one transaction under the advisory lock,
    /// [`Resigned::Busy`] without waiting if another writer holds it.
    pub async fn resign_if_due(
        &self,
        online: &dyn Signer,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Resigned> {
        let mut tx = self.pool.begin().await?;
        let outcome = resign_in(&mut tx, online, now, life).await;
        finish(tx, matches!(outcome, Ok(Resigned::Done { .. }))).await?;
        outcome
    }

    /// Imports the repository in `dir` (`metadata/`, `targets/`): checked as a client would at
    /// `now` (every listed module present), then, under the advisory lock (waiting for it),
    /// refused if a version would move backwards or a stored versioned file differs, else
    /// written in one transaction.
    pub async fn import_dir(&self, dir: &Path, now: u64) -> Result<Imported> {
        let files = read_dir_files(dir)?;
        let repo = Repository::load_files(&files)?;
        repo.active(now)?;
        // Every listed module present with the bytes its entry signs: bytes stored here can
        // never be replaced (`Conflict`), so a truncated or swapped file must not get in.
        for (path, sha256) in listed_targets(&repo) {
            match files.get(&path) {
                None => return Err(RegistryDbError::MissingModule { path }),
                Some(bytes) if Sha256Hash::of(bytes) != sha256 => {
                    return Err(RegistryDbError::ModuleAltered { path });
                }
                Some(_) => {}
            }
        }
        let mut tx = self.pool.begin().await?;
        let written = import_in(&mut tx, &files, &repo).await;
        finish(tx, matches!(written, Ok(n) if n > 0)).await?;
        Ok(Imported {
            written: written?,
            versions: repo.versions(),
        })
    }

    /// At a host's start: imports the data directory's registry `dir` (what `kasane-host
    /// init` made) if the table is empty; true if it did. Replicas starting together import
    /// once: the second finds the first's files (or the same ones) under the lock.
    pub async fn import_if_empty(&self, dir: &Path, now: u64) -> Result<bool> {
        if self.timestamp().await?.is_some() {
            return Ok(false);
        }
        Ok(self.import_dir(dir, now).await?.written > 0)
    }

    /// Writes every stored file into `dir` (created if missing, refused if not empty), public
    /// files as `kasane-registry` writes them, `metadata/timestamp.json` last: a repository
    /// directory for `kasane-registry add`, `refresh`, `revoke`, …, then `import`.
    pub async fn export_dir(&self, dir: &Path) -> Result<usize> {
        let files = self.files().await?;
        if !files.contains_key(TIMESTAMP_PATH) {
            return Err(RegistryDbError::Empty);
        }
        let io = |source| RegistryDbError::Io {
            path: dir.to_owned(),
            source,
        };
        if dir.exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
            return Err(RegistryDbError::NotEmpty {
                path: dir.to_owned(),
            });
        }
        let (last, rest): (Vec<_>, Vec<_>) = files.iter().partition(|(p, _)| *p == TIMESTAMP_PATH);
        for (path, bytes) in rest.into_iter().chain(last) {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                kasane_registry::files::create_public_dir(parent)?;
            }
            kasane_registry::files::write_public(&full, bytes)?;
        }
        Ok(files.len())
    }
}

/// Ends a writer's transaction: commits if it wrote, else rolls back at once. Never left to
/// `Drop`, which rolls back only when the connection is next used: the advisory lock would
/// stay held by an idle pooled connection until then.
async fn finish(tx: Transaction<'_, Postgres>, wrote: bool) -> Result<()> {
    if wrote {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(())
}

/// [`DbRegistry::resign_if_due`] inside its transaction.
async fn resign_in(
    tx: &mut Transaction<'_, Postgres>,
    online: &dyn Signer,
    now: u64,
    life: &Lifetimes,
) -> Result<Resigned> {
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(LOCK_CLASS)
            .fetch_one(&mut **tx)
            .await?;
    if !locked {
        return Ok(Resigned::Busy);
    }
    // Read under the lock: the version another writer just committed is the one bumped.
    let stored = read_metadata(tx).await?;
    if stored.is_empty() {
        return Err(RegistryDbError::Empty);
    }
    let mut repo = Repository::load_files(&stored)?;
    if now < online_due_at(&repo, life.snapshot) {
        return Ok(Resigned::NotDue);
    }
    if !crate::upkeep::lists_online_key(&repo, online.public_key()) {
        return Err(RegistryDbError::OnlineKeyNotListed);
    }
    let before = repo.clone();
    repo.snapshot(&[&TufSigner(online)], now, life)?;
    check_forward(&before, &repo)?;
    write_changed(tx, &repo.files()?).await?;
    let (timestamp, snapshot) = repo.versions();
    Ok(Resigned::Done {
        timestamp,
        snapshot,
    })
}

/// [`DbRegistry::import_dir`] inside its transaction, waiting for the lock: the number of
/// files written (0: the stored registry is this one already).
async fn import_in(
    tx: &mut Transaction<'_, Postgres>,
    files: &Files,
    repo: &Repository,
) -> Result<usize> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(LOCK_CLASS)
        .execute(&mut **tx)
        .await?;
    let stored = read_metadata(tx).await?;
    if !stored.is_empty() {
        if stored.get(TIMESTAMP_PATH) == files.get(TIMESTAMP_PATH) {
            return Ok(0);
        }
        check_forward(&Repository::load_files(&stored)?, repo)?;
    }
    write_changed(tx, files).await
}

/// SHA-256 of a file (a mirror is keyed by its `timestamp.json`'s).
#[must_use]
pub fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Every `metadata/…` file and Kasane's documents (`targets/kasane/…`): what
/// [`Repository::load_files`] needs (module bytes are not).
async fn read_metadata(tx: &mut Transaction<'_, Postgres>) -> Result<Files> {
    let rows = sqlx::query(
        "SELECT path, bytes FROM registry_files \
         WHERE path LIKE 'metadata/%' OR path LIKE 'targets/kasane/%'",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows_to_files(rows)
}

async fn read_paths(tx: &mut Transaction<'_, Postgres>, paths: &[String]) -> Result<Files> {
    let rows = sqlx::query("SELECT path, bytes FROM registry_files WHERE path = ANY($1)")
        .bind(paths)
        .fetch_all(&mut **tx)
        .await?;
    rows_to_files(rows)
}

fn rows_to_files(rows: Vec<sqlx::postgres::PgRow>) -> Result<Files> {
    rows.into_iter()
        .map(|r| Ok((r.try_get("path")?, r.try_get("bytes")?)))
        .collect()
}

/// The repository path of every target any role of `repo` lists (modules and documents).
fn listed_target_paths(repo: &Repository) -> Vec<String> {
    listed_targets(repo).into_iter().map(|(p, _)| p).collect()
}

/// Each listed module's repository path with the SHA-256 its entry signs.
fn listed_targets(repo: &Repository) -> Vec<(String, Sha256Hash)> {
    let roles = std::iter::once(repo.targets()).chain(
        repo.current_snapshot()
            .meta
            .keys()
            .filter_map(|f| repo.delegated(f.strip_suffix(".json").unwrap_or(f))),
    );
    let mut out: Vec<(String, Sha256Hash)> = roles
        .flat_map(|t| t.targets.iter())
        .filter_map(|(name, file)| {
            let hex = file.hashes.get("sha256")?;
            let sha = Sha256Hash::from_hex(hex).ok()?;
            Some((target_file_path(name, &sha), sha))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Refuses `new` unless its timestamp version is above `stored`'s and its snapshot, targets
/// and root versions are not below.
fn check_forward(stored: &Repository, new: &Repository) -> Result<()> {
    let (st, ss) = stored.versions();
    let (nt, ns) = new.versions();
    let checks = [
        ("timestamp", st, nt, nt > st),
        ("snapshot", ss, ns, ns >= ss),
        (
            "targets",
            stored.targets().version,
            new.targets().version,
            new.targets().version >= stored.targets().version,
        ),
        (
            "root",
            stored.root().version,
            new.root().version,
            new.root().version >= stored.root().version,
        ),
    ];
    match checks.into_iter().find(|c| !c.3) {
        Some((role, stored, new, _)) => Err(RegistryDbError::Rollback { role, stored, new }),
        None => Ok(()),
    }
}

/// Files that may be replaced: the current timestamp and the copy of the latest root.
fn replaceable(path: &str) -> bool {
    path == TIMESTAMP_PATH || path == metadata_path("root", None)
}

/// Writes the files of `files` that are new or replaceable and changed; refuses (before
/// writing anything) a stored versioned file with other bytes. Returns how many it wrote.
async fn write_changed(tx: &mut Transaction<'_, Postgres>, files: &Files) -> Result<usize> {
    let paths: Vec<String> = files.keys().cloned().collect();
    let rows =
        sqlx::query("SELECT path, sha256(bytes) AS sha FROM registry_files WHERE path = ANY($1)")
            .bind(&paths)
            .fetch_all(&mut **tx)
            .await?;
    let mut stored: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for r in rows {
        stored.insert(r.try_get("path")?, r.try_get("sha")?);
    }
    let mut changed = Vec::new();
    for (path, bytes) in files {
        match stored.get(path) {
            Some(sha) if sha.as_slice() == sha256_of(bytes).as_slice() => {}
            Some(_) if !replaceable(path) => {
                return Err(RegistryDbError::Conflict { path: path.clone() });
            }
            _ => changed.push((path, bytes)),
        }
    }
    for (path, bytes) in &changed {
        sqlx::query(
            "INSERT INTO registry_files (path, bytes) VALUES ($1, $2) \
             ON CONFLICT (path) DO UPDATE SET bytes = EXCLUDED.bytes",
        )
        .bind(path.as_str())
        .bind(bytes.as_slice())
        .execute(&mut **tx)
        .await?;
    }
    Ok(changed.len())
}

/// Every file under `dir/metadata` and `dir/targets`, by repository path.
fn read_dir_files(dir: &Path) -> Result<Files> {
    let mut out = Files::new();
    for top in ["metadata", "targets"] {
        walk(dir, top, &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, rel: &str, out: &mut Files) -> Result<()> {
    let path = root.join(rel);
    let io = |source| RegistryDbError::Io {
        path: path.clone(),
        source,
    };
    for entry in std::fs::read_dir(&path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = format!("{rel}/{name}");
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(root, &child, out)?;
        } else if kind.is_file() {
            let bytes =
                kasane_registry::files::read_capped(&root.join(&child), MAX_IMPORT_FILE, &child)?;
            out.insert(child, bytes);
        }
    }
    Ok(())
}
