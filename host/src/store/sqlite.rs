//! The embedded default backend: SQLite in the data directory, WAL mode.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::Result;

/// Migrations for SQLite (`host/migrations/sqlite/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// [`Store`](super::Store) on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens `url` (`sqlite://<path>?mode=rwc`), in WAL mode with `synchronous = FULL` (a
    /// commit is on disk when the call returns), foreign keys on, and runs the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        Self::open_with(options).await
    }

    /// Opens (creating it if missing) the database file at `path`, e.g. `<data dir>/kasane.db`.
    /// Unlike a URL, any path works here (spaces, `?`, `#`…).
    pub async fn open_file(path: &std::path::Path) -> Result<Self> {
        Self::open_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
    }

    /// Opens the store with explicit connection options (journal mode, synchronous, foreign
    /// keys and busy timeout are set here), and runs the migrations.
    pub async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Writers queue on SQLite's lock; this bounds the wait under contention.
            .busy_timeout(Duration::from_secs(30));
        // An in-memory database is private to its connection: keep exactly one.
        let in_memory = options.get_filename().as_os_str() == ":memory:";
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(u32::from(in_memory))
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for tests and administrative tools).
    #[must_use]
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    /// Closes the pool, waiting for its connections to end.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, "sqlite");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store as _;

    #[tokio::test]
    async fn open_file_creates_the_database_at_an_awkward_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data dir ?#%").join("kasane.db");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let st = SqliteStore::open_file(&path).await.unwrap();
        st.put_bundle(&crate::store::NewBundle {
            id: vec![1],
            user: "u".into(),
            body: vec![],
            expires_at: 10,
        })
        .await
        .unwrap();
        st.close().await;
        assert!(path.exists());
        let again = SqliteStore::open_file(&path).await.unwrap();
        assert!(again.take_bundle(&[1], 5).await.unwrap().is_some());
    }
}
