//! The scale-out backend: PostgreSQL, shared by any number of host replicas.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};

use super::{Backend, Result, SqlStore};

/// Migrations for PostgreSQL (`host/migrations/postgres/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// [`Store`](super::Store) on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://…`) and runs the migrations. Concurrent replicas are
    /// safe: sqlx serializes migrations with an advisory lock.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        Self::open_with(options, 16).await
    }

    /// Connects with explicit options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`]) and at most `max_connections`, and runs the migrations.
    pub async fn open_with(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}
