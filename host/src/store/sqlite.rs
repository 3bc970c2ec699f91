//! The embedded default backend: SQLite in the data directory, WAL mode.

use std::io;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use super::direct::DirectSqlite;
use super::{Backend, Result, SqlStore, StoreError};

/// Migrations for SQLite (`host/migrations/sqlite/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// [`Store`](super::Store) on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl Backend for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";
    const LOCKED_AT_BEGIN: bool = true;
    const MULTI_STATEMENT: bool = true;
    const BACKEND: &'static str = "sqlite";
    const BACKUP_HINT: Option<&'static str> = None;

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn as_postgres(_: &sqlx::Pool<Self>) -> Option<&sqlx::PgPool> {
        None
    }
}

impl SqlStore<Sqlite> {
    /// Opens `url` (`sqlite://<path>?mode=rwc`), in WAL mode with `synchronous = FULL` (a
    /// commit is on disk when the call returns; `NORMAL` on the relaxed pool, see
    /// [`SqlStore`]), foreign keys on, and runs the migrations.
    /// With `mode=rwc` a missing database file is created with mode 0600 first.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let target = UrlTarget::of(url);
        if target == (UrlTarget::File { create: true }) {
            create_private(options.get_filename())?;
        }
        Self::connect(options, target == UrlTarget::Memory).await
    }

    /// Opens (creating it with mode 0600 if missing) the database file at `path`, e.g.
    /// `<data dir>/kasane.db`. Unlike a URL, any path works here (spaces, `?`, `#`…).
    pub async fn open_file(path: &Path) -> Result<Self> {
        create_private(path)?;
        Self::open_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
    }

    /// Opens the store with explicit connection options (journal mode, synchronous, foreign
    /// keys and busy timeout are set here), and runs the migrations. A file these options
    /// create is created by SQLite with the process's umask: [`open`](Self::open) and
    /// [`open_file`](Self::open_file) create it with mode 0600 first.
    pub async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let in_memory = options.get_filename().as_os_str() == ":memory:";
        Self::connect(options, in_memory).await
    }

    /// [`open_with`](Self::open_with), told whether the database is in memory.
    async fn connect(options: SqliteConnectOptions, in_memory: bool) -> Result<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            // Writers queue on SQLite's lock; this bounds the wait under contention.
            .busy_timeout(Duration::from_secs(30));
        let durable = options.clone().synchronous(SqliteSynchronous::Full);
        let file = (!in_memory).then(|| Arc::from(options.get_filename()));
        let pool = pool_options(in_memory).connect_with(durable).await?;
        MIGRATOR.run(&pool).await?;
        // An in-memory database lives in its one connection: both kinds of commit use it
        // (and neither reaches a disk).
        let relaxed = if in_memory {
            pool.clone()
        } else {
            let normal = options.synchronous(SqliteSynchronous::Normal);
            pool_options(false).connect_with(normal).await?
        };
        // The login path's calls on the file run whole on rusqlite (`super::direct`).
        let direct = file.clone().map(|f| Arc::new(DirectSqlite::new(f)));
        Ok(Self {
            pool,
            relaxed,
            file,
            direct,
        })
    }
}

/// A pool: eight connections to a file; exactly one, kept open, to an in-memory database
/// (which lives as long as a connection to it).
fn pool_options(in_memory: bool) -> SqlitePoolOptions {
    let (idle, lifetime) = if in_memory {
        (None, None)
    } else {
        (
            Some(Duration::from_secs(600)),
            Some(Duration::from_secs(3600)),
        )
    };
    SqlitePoolOptions::new()
        // sqlx pings a connection before handing it out by default: a round trip to the
        // connection's worker thread on every acquire, which can only find a broken network
        // link, and a SQLite connection has none.
        .test_before_acquire(false)
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(u32::from(in_memory))
        .idle_timeout(idle)
        .max_lifetime(lifetime)
}

/// The database file a `sqlite:` URL names; `None` for another backend or an in-memory
/// database.
pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    if !url.starts_with("sqlite:") || UrlTarget::of(url) == UrlTarget::Memory {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
    Ok(Some(options.get_filename().to_owned()))
}

/// What a `sqlite:` URL opens, as sqlx reads it (its options do not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlTarget {
    /// An in-memory database: `:memory:` or `mode=memory`.
    Memory,
    /// A file; `create`: created if missing (`mode=rwc`, and no `mode=ro`, which wins).
    File { create: bool },
}

impl UrlTarget {
    fn of(url: &str) -> Self {
        let rest = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let modes: Vec<&str> = params
            .split('&')
            .filter_map(|p| p.strip_prefix("mode="))
            .collect();
        if database == ":memory:" || modes.contains(&"memory") {
            Self::Memory
        } else {
            Self::File {
                create: modes.contains(&"rwc") && !modes.contains(&"ro"),
            }
        }
    }
}

/// Creates the database file at `path` empty with mode 0600, unless it exists: SQLite then
/// opens it as a new database and gives its `-wal` and `-shm` files the same mode, so no
/// file of the database is ever readable by others.
fn create_private(path: &Path) -> Result<()> {
    match kasane_os::fs::create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::CreateFile(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store as _;

    #[test]
    fn urls_say_memory_or_file_and_only_rwc_creates() {
        let file = |create| UrlTarget::File { create };
        for (url, want) in [
            ("sqlite:///d/k.db?mode=rwc", file(true)),
            ("sqlite://k.db?cache=shared&mode=rwc", file(true)),
            ("sqlite:///d/k.db", file(false)),
            ("sqlite:///d/k.db?mode=rw", file(false)),
            ("sqlite:///d/k.db?mode=rwc&mode=ro", file(false)),
            ("sqlite::memory:", UrlTarget::Memory),
            ("sqlite://:memory:?mode=rwc", UrlTarget::Memory),
            ("sqlite://?mode=memory", UrlTarget::Memory),
            ("sqlite://k.db?mode=rwc&mode=memory", UrlTarget::Memory),
        ] {
            assert_eq!(UrlTarget::of(url), want, "{url}");
        }
    }

    #[tokio::test]
    async fn open_file_creates_the_database_at_an_awkward_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data dir ?#%").join("kasane.db");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let st = SqliteStore::open_file(&path).await.unwrap();
        let now = 5;
        st.create_user(
            &crate::store::NewUser {
                name: "u".into(),
                opaque_record: vec![1],
                pairs: vec![],
            },
            now,
        )
        .await
        .unwrap();
        st.close().await;
        assert!(path.exists());
        let again = SqliteStore::open_file(&path).await.unwrap();
        assert!(again.get_user("u").await.unwrap().is_some());
    }
}
