//! The scale-out backend: PostgreSQL, shared by any number of host replicas.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};

use super::{Backend, Result, SqlStore, StoreError};

/// Migrations for PostgreSQL (`host/migrations/postgres/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// [`Store`](super::Store) on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

impl Backend for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const LOCKED_AT_BEGIN: bool = false;
    const MULTI_STATEMENT: bool = false;
    const BACKEND: &'static str = "postgres";
    const BACKUP_HINT: Option<&'static str> = Some(
        "run `pg_dump --format=custom --file=kasane.dump \"$DATABASE_URL\"` \
         (restore with `pg_restore --clean --if-exists --dbname=\"$DATABASE_URL\" kasane.dump`)",
    );

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn as_postgres(pool: &sqlx::PgPool) -> Option<&sqlx::PgPool> {
        Some(pool)
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://…`) and runs the migrations. Concurrent replicas are
    /// safe: sqlx serializes migrations with an advisory lock.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
        Self::open_with(options, 16).await
    }

    /// Connects with explicit options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`]) and at most `max_connections` durable ones (plus half as
    /// many for relaxed commits, with `synchronous_commit = off`: see [`SqlStore`]), and runs
    /// the migrations.
    pub async fn open_with(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = pool_options(max_connections)
            .after_connect(|conn, _| Box::pin(durable_commits(conn)))
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        MIGRATOR.run(&pool).await?;
        let relaxed = pool_options((max_connections / 2).max(1))
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await
            .map_err(connect_error)?;
        Ok(Self {
            pool,
            relaxed,
            file: None,
            direct: None,
        })
    }
}

/// Makes a durable connection's commits wait for the WAL flush: a server, database or role
/// set to `synchronous_commit = off` (a common tuning) would otherwise have the host
/// acknowledge messages and logouts a database crash can take back. Any other value
/// (`local`, `remote_write`, `remote_apply`) is durable on this server and is kept.
async fn durable_commits(conn: &mut sqlx::PgConnection) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'on', false) \
         WHERE current_setting('synchronous_commit') = 'off'",
    )
    .execute(conn)
    .await
    .map(drop)
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
}

/// A failed connection: TLS failures get their own variant, so the error says that TLS (and not,
/// say, the network or a password) is what failed. sqlx reports a server without TLS as
/// `Error::Tls`, and a failed handshake (e.g. an unknown issuer) as an I/O error around
/// rustls's error.
fn connect_error(e: sqlx::Error) -> StoreError {
    let handshake = matches!(&e, sqlx::Error::Io(io)
        if io.get_ref().is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>()));
    if handshake || matches!(e, sqlx::Error::Tls(_)) {
        StoreError::Tls(e)
    } else {
        StoreError::Database(e)
    }
}
