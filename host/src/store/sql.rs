//! The one implementation of [`Store`] for both backends: [`SqlStore<DB>`], generic over the
//! sqlx database ([`SqliteStore`](super::SqliteStore) = `SqlStore<Sqlite>`,
//! [`PgStore`](super::PgStore) = `SqlStore<Postgres>`).
//!
//! The SQL below is the dialect SQLite (≥ 3.35) and PostgreSQL share: `$n` parameters (the
//! SQLite driver binds `$n` by number), `RETURNING`, `ON CONFLICT … DO UPDATE`. Integers are
//! `i64` on both sides (`BIGINT` in PostgreSQL), byte strings `BLOB`/`BYTEA`. Only the DDL
//! (the migrations) differs. Rows are read by column name into the types of [`super::rows`].

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::accept::{self, Found, Plan};
use super::batch_sql::{
    self, BATCH_ROWS, Param, heads_sql, padded, unknown_queues_sql, user_queues_sql, windows_sql,
};
use super::direct::DirectSqlite;
use super::login_sql::{self, Stmt};
use super::rows::{
    AuditRow, CheckpointRow, CountRow, CounterRow, DeadLetterRow, FactRow, HeadRow, IdRow,
    LoginRow, PairRow, PendingRow, QueueUsageRow, QueuedRow, SeqRow, SessionEndRow, SessionHeadRow,
    SessionIdRow, SessionRow, SpentRow, StartLookupRow, ThrottleListRow, ThrottleRow, TokenHashRow,
    UserRow, UserSummaryRow, WindowRow, convert,
};
use super::{
    AcceptMessage, AcceptOutcome, AuditCheckpoint, AuditCursor, AuditRecord, Backoff,
    ChallengePair, Counted, DeadLetter, Direction, Forgiven, LoginRecord, LoginStage,
    NewPendingLogin, NewSession, NewUser, PendingBounds, Purged, QueuedMessage,
    RESTORE_COUNTER_JUMP, Restored, Result, Session, SqliteCommitter, StartLookup, Store,
    StoreError, ThrottleEntry, ThrottleKey, ThrottleState, UnixSeconds, UserRecord, UserSummary,
    Zeroizing, from_db, is_unique_violation, to_db,
};
use kasane_protocol::ProtocolError;

/// The outcome of a sequence number its replay window refuses.
pub(super) fn window_refusal(e: &ProtocolError) -> AcceptOutcome {
    match e {
        ProtocolError::Replayed { .. } => AcceptOutcome::Replayed,
        _ => AcceptOutcome::Reordered,
    }
}

/// What the shared implementation needs of a backend beyond [`sqlx::Database`].
pub trait Backend: Database {
    /// The backend's name (`"sqlite"`, `"postgres"`), for logs and metrics.
    const BACKEND: &'static str;
    /// Begins a transaction that will write: SQLite's `BEGIN IMMEDIATE` takes the write lock
    /// at once (a read that upgrades later can fail with `SQLITE_BUSY` instead of waiting);
    /// PostgreSQL's `BEGIN`, its writes taking row locks.
    const BEGIN_WRITE: &'static str;
    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends:
    /// PostgreSQL's ` FOR UPDATE`; nothing on SQLite, whose `BEGIN IMMEDIATE` holds the one
    /// write lock already.
    const LOCK_ROWS: &'static str;
    /// Whether [`Backend::BEGIN_WRITE`] holds every lock a writing transaction needs
    /// (SQLite: the database's one write lock), so that no statement must take row locks
    /// first; PostgreSQL: no.
    const LOCKED_AT_BEGIN: bool;
    /// Whether one query may hold several statements (`;`-separated, their `$n` numbering
    /// the arguments of the whole query), run one after another in one round trip: SQLite
    /// (sqlx binds `$n` to the n-th argument in every statement); PostgreSQL's prepared
    /// statements hold one.
    const MULTI_STATEMENT: bool;
    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// `None` if the backend backs itself up with `VACUUM INTO` (SQLite), else what to use
    /// instead (PostgreSQL: the `pg_dump` command line).
    const BACKUP_HINT: Option<&'static str>;
    /// The pool itself if this backend is PostgreSQL (which holds the registry), else `None`.
    fn as_postgres(pool: &Pool<Self>) -> Option<&sqlx::PgPool>;
}

/// The [`Store`] on two pools of backend `DB` over the same database:
///
/// - `pool` commits durably (SQLite `synchronous = FULL`, PostgreSQL's default
///   `synchronous_commit`): users, counters, logout, messages, the audit log;
/// - `relaxed` commits without waiting for the disk (SQLite `synchronous = NORMAL` in WAL
///   mode, PostgreSQL `synchronous_commit = off`) for the short-lived login state: logins in
///   flight, throttle counts, session creation and last-seen times. Such a commit survives a
///   crash of the host process; a power loss (SQLite) or a crash of the database server
///   (PostgreSQL) may take back the last ones, never part of one, and never one that a later
///   durable commit follows (both logs are written in order). docs/STORAGE.md says what that
///   costs (a login in flight fails, a few throttle counts are forgotten, a session ends).
///
/// On a SQLite file, `file` is its path, which the message path's
/// [`SqliteCommitter`] opens a connection of its own to.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    pub(super) relaxed: Pool<DB>,
    pub(super) file: Option<std::sync::Arc<std::path::Path>>,
    /// On a SQLite file, the login path's calls ([`DirectSqlite`]).
    pub(super) direct: Option<std::sync::Arc<DirectSqlite>>,
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("pool", &self.pool)
            .field("relaxed", &self.relaxed)
            .field("file", &self.file)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            relaxed: self.relaxed.clone(),
            file: self.file.clone(),
            direct: self.direct.clone(),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    /// The underlying pool (for tests and administrative tools).
    #[must_use]
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The pool of relaxed commits (see [`SqlStore`]).
    #[must_use]
    pub fn relaxed_pool(&self) -> &Pool<DB> {
        &self.relaxed
    }

    /// Closes both pools, waiting for their connections to end, and the login path's
    /// SQLite connections.
    pub async fn close(&self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.relaxed.close().await;
        self.pool.close().await;
    }
}

/// A unique-constraint violation becomes `on_unique`; any other error stays a database error.
fn unique_as(e: sqlx::Error, on_unique: StoreError) -> StoreError {
    if is_unique_violation(&e) {
        on_unique
    } else {
        StoreError::Database(e)
    }
}

/// The compare-and-set of a client's sequence number (`$1` session id, `$2` the new value).
/// Every number below the new one counts as seen in the replay window (`seq_window = -1`,
/// all bits): a message accepted this way (`kasane passwd`) ends whatever was in flight.
const ADVANCE_FROM_CLIENT: &str = "UPDATE sessions SET last_seq_from_client = $2, \
     seq_window = -1 WHERE session_id = $1 AND last_seq_from_client < $2";

/// Queues `$2` (body) at `$3` (now) for the user named `$1`; no row if there is no such user.
const ENQUEUE: &str = "INSERT INTO relay_queue (recipient_id, body, created_at) \
     SELECT id, $2, $3 FROM users WHERE name = $1 RETURNING id";

/// The head of the audit chain of session `$1`.
pub(super) const CHAIN_HEAD: &str = "SELECT seq, record_hash FROM audit_log WHERE session_id = $1 \
     ORDER BY seq DESC LIMIT 1";

/// Every chain's head (`session_id`, `seq`, `record_hash` of its last record), to be narrowed
/// with `AND …` (the audit log aliased `a`).
const CHAIN_HEADS: &str = "SELECT a.session_id, a.seq, a.record_hash FROM audit_log a \
     WHERE a.seq = (SELECT MAX(b.seq) FROM audit_log b WHERE b.session_id = a.session_id)";

/// Deletes the session with token hash `$1`.
const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";

/// Alive iff `last_seen > now − idle` (and `expires_at > now`): the bound on `last_seen`,
/// written so that nothing overflows (it may be negative).
fn idle_seen_after(now: i64, idle_timeout: u64) -> Result<i64> {
    Ok(now.saturating_sub(to_db(idle_timeout, "idle_timeout")?))
}

/// `$query` (a `Query` or a `QueryAs`) with `$params` ([`Param`]s) bound in order. A macro:
/// the two query types share `bind` but no trait that names it.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for p in $params {
            query = match *p {
                Param::Int(v) => query.bind(v),
                Param::Blob(b) => query.bind(b),
                Param::Text(t) => query.bind(t),
            };
        }
        query
    }};
}

/// Rows of type `$row` from `$sql(n)` with the `IN` list `$keys` (padded to `n`, a power of
/// two; see [`padded`]). A macro rather than a function: each use binds its own key type,
/// and the backend-generic bounds name only `&[u8]` and `&str`, not a key type parameter.
macro_rules! select_in {
    ($conn:expr, $row:ty, $sql:expr, $keys:expr) => {{
        let keys = padded($keys);
        let sql = $sql(keys.len());
        let mut query = sqlx::query_as::<_, $row>(&sql);
        for k in &keys {
            query = query.bind(*k);
        }
        query.fetch_all(&mut *$conn).await
    }};
}

// The bounds the shared code needs of a backend: its connections execute queries, its
// arguments take `i64`, `&str` and `&[u8]`, and its rows give `i64`, `String` and `Vec<u8>`
// by column name. They are written twice: on the helpers and on the `Store` impl.

/// Statements used by more than one [`Store`] method, on a connection (of the pool or of a
/// transaction).
impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    /// `stmt` as a query, its parameters bound in order.
    fn query<'q>(stmt: &'q Stmt<'q>) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>> {
        bind_params!(sqlx::query(&stmt.sql), &stmt.params)
    }

    /// `stmt` as a query of rows of type `R`, its parameters bound in order.
    fn query_as<'q, R>(stmt: &'q Stmt<'q>) -> sqlx::query::QueryAs<'q, DB, R, DB::Arguments<'q>>
    where
        R: for<'r> FromRow<'r, DB::Row>,
    {
        bind_params!(sqlx::query_as(&stmt.sql), &stmt.params)
    }

    /// Counts one failure of each of `keys` (distinct, non-empty) in one statement and locks
    /// each per `backoff` ([`login_sql::lock_due`]); the new states in their order.
    async fn count_failures(
        conn: &mut DB::Connection,
        keys: &[String],
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Vec<ThrottleState>> {
        let stmt = login_sql::count_failures(keys, now, backoff)?;
        let rows: Vec<ThrottleRow> = Self::query_as(&stmt).fetch_all(&mut *conn).await?;
        let counted = convert(rows)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (state, due) = login_sql::lock_due(login_sql::counted(&counted, k)?, now, backoff);
            if due {
                let lock = login_sql::lock_until(k, state.locked_until)?;
                Self::query(&lock).execute(&mut *conn).await?;
            }
            out.push(state);
        }
        Ok(out)
    }

    /// Writes every key's throttle row (made if missing, unchanged if there), in lock order:
    /// on PostgreSQL, locks the rows until the transaction ends.
    async fn lock_throttle_rows(
        conn: &mut DB::Connection,
        keys: &[String],
        now: UnixSeconds,
    ) -> Result<()> {
        let rows: Vec<String> = (2..=keys.len() + 1)
            .map(|i| format!("(${i}, 0, 0, $1)"))
            .collect();
        let sql = format!(
            "INSERT INTO throttle (key, failures, locked_until, last_failure) VALUES {} \
             ON CONFLICT (key) DO UPDATE SET failures = throttle.failures",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(to_db(now, "now")?);
        for k in login_sql::in_lock_order(keys) {
            query = query.bind(k.as_str());
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }

    /// Increments the access counter of `user` if it can log in (an OPAQUE record and
    /// pairs), and returns the record with the new counter.
    async fn draw_counter(conn: &mut DB::Connection, user: &str) -> Result<Option<LoginRecord>> {
        let stmt = login_sql::draw_counter(user);
        let row: Option<LoginRow> = Self::query_as(&stmt).fetch_optional(&mut *conn).await?;
        row.map(LoginRow::record).transpose()
    }

    /// The states of `keys`, in their order (all zero for a key with no entry).
    async fn states_on(conn: &mut DB::Connection, keys: &[String]) -> Result<Vec<ThrottleState>> {
        let stmt = login_sql::states(keys);
        let rows: Vec<ThrottleRow> = Self::query_as(&stmt).fetch_all(&mut *conn).await?;
        Ok(login_sql::states_in_order(keys, &convert(rows)?))
    }

    /// Inserts `pairs` for user `id` in card order.
    async fn insert_pairs(
        conn: &mut DB::Connection,
        id: i64,
        pairs: &[ChallengePair],
    ) -> Result<()> {
        for (idx, p) in pairs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO challenge_pairs (user_id, idx, prompt, salt, verifier) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(to_db(idx as u64, "pair index")?)
            .bind(p.prompt.as_str())
            .bind(p.salt.as_slice())
            .bind(&p.verifier[..])
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Replaces the pairs of `user` (whose row the caller's write has locked) and commits;
    /// false if there is no such user.
    async fn swap_pairs(
        mut tx: sqlx::Transaction<'_, DB>,
        user: Option<IdRow>,
        pairs: &[ChallengePair],
    ) -> Result<bool> {
        let Some(user) = user else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM challenge_pairs WHERE user_id = $1")
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        Self::insert_pairs(&mut *tx, user.id, pairs).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes the sessions of user `user_id` but the one whose id is `keep` (none has an
    /// empty id: all of them); their token hashes.
    /// Ends the logins in flight of the user named `name` (its credentials changed, its
    /// sessions ended, or it is gone: a held bundle must not open a session afterwards).
    async fn end_pending_of(conn: &mut DB::Connection, name: &str) -> Result<()> {
        sqlx::query(login_sql::DELETE_PENDING_OF_USER)
            .bind(name)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn end_sessions_of(
        conn: &mut DB::Connection,
        user_id: i64,
        keep: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        let ended: Vec<TokenHashRow> = sqlx::query_as(
            "DELETE FROM sessions WHERE user_id = $1 AND session_id <> $2 RETURNING token_hash",
        )
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ended.into_iter().map(|r| r.token_hash).collect())
    }

    /// Queues `body` for `recipient`: its queue id, or `None` if there is no such user.
    async fn enqueue(
        conn: &mut DB::Connection,
        recipient: &str,
        body: &[u8],
        now: UnixSeconds,
    ) -> Result<Option<u64>> {
        let row: Option<IdRow> = sqlx::query_as(ENQUEUE)
            .bind(recipient)
            .bind(body)
            .bind(to_db(now, "now")?)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| from_db(r.id, "message id")).transpose()
    }

    /// The head (`seq`, `record_hash`) of a session's audit chain.
    async fn chain_head(
        conn: &mut DB::Connection,
        session_id: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let row: Option<HeadRow> = sqlx::query_as(CHAIN_HEAD)
            .bind(session_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// What a batch's plan needs (see [`accept`]): its sessions' replay windows (locked for
    /// the transaction) and users, their chains' heads, its recipients' queues (users' first,
    /// then the stand-in queues of the other names) and its senders' daily counts.
    async fn read_batch(conn: &mut DB::Connection, batch: &[AcceptMessage]) -> Result<Found> {
        let mut found = Found::default();
        for chunk in accept::sessions(batch).chunks(BATCH_ROWS) {
            let rows = select_in!(conn, WindowRow, windows_sql::<DB>, chunk)?;
            found.take_sessions(convert(rows)?);
            let rows = select_in!(conn, SessionHeadRow, heads_sql, chunk)?;
            let heads: Vec<(Vec<u8>, u64, Vec<u8>)> = convert(rows)?;
            found
                .heads
                .extend(heads.into_iter().map(|(s, q, h)| (s, (q, h))));
        }
        let names = accept::recipients(batch);
        for chunk in names.chunks(BATCH_ROWS) {
            let rows = select_in!(conn, QueueUsageRow, user_queues_sql, chunk)?;
            found.queues.extend(convert(rows)?);
        }
        for chunk in accept::unknown(names, &found).chunks(BATCH_ROWS) {
            let rows = select_in!(conn, QueueUsageRow, unknown_queues_sql, chunk)?;
            found.queues.extend(convert(rows)?);
        }
        let keys = found.spent_keys(batch);
        let mut rows = Vec::new();
        for (sql, params) in batch_sql::spent_reads(&keys)? {
            let query = bind_params!(sqlx::query_as::<_, SpentRow>(&sql), &params);
            rows.extend(query.fetch_all(&mut *conn).await?);
        }
        found.take_spent(&keys, convert(rows)?);
        Ok(found)
    }

    /// Writes a batch's plan: its windows, audit records, queue entries and stand-in counts,
    /// a few multi-row statements each ([`batch_sql::writes`]).
    async fn write_batch(conn: &mut DB::Connection, plan: &Plan<'_>) -> Result<()> {
        for w in batch_sql::writes(plan)? {
            let done = bind_params!(sqlx::query(&w.sql), &w.params)
                .execute(&mut *conn)
                .await;
            done.map_err(|e| match w.appends_audit {
                true => unique_as(e, StoreError::AuditChainMismatch),
                false => StoreError::Database(e),
            })?;
        }
        Ok(())
    }

    /// One page of `table` (`audit_checkpoints` or `audit_pruned`: signed chain heads).
    async fn signed_heads_page(
        &self,
        table: &str,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>> {
        let select =
            format!("SELECT session_id, seq, record_hash, signature, created_at FROM {table}");
        let rows: Vec<CheckpointRow> = self.keyset_page(&select, after, limit).await?;
        convert(rows)
    }

    /// One page of `select` (a `SELECT … FROM t` over a table keyed by `(session_id, seq)`),
    /// in key order, strictly after `after`. Shared by the audit log and its checkpoints so
    /// both page the same way.
    async fn keyset_page<R>(
        &self,
        select: &str,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    {
        let rows = match after {
            None => {
                let sql = format!("{select} ORDER BY session_id, seq LIMIT $1");
                sqlx::query_as(&sql)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(c) => {
                let sql = format!(
                    "{select} WHERE session_id > $1 OR (session_id = $1 AND seq > $2) \
                     ORDER BY session_id, seq LIMIT $3"
                );
                sqlx::query_as(&sql)
                    .bind(c.session_id.as_slice())
                    .bind(to_db(c.seq, "seq")?)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        DB::as_postgres(&self.pool)
    }

    fn message_committer(&self) -> Result<Option<SqliteCommitter>> {
        self.file.as_deref().map(SqliteCommitter::open).transpose()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        if let Some(hint) = DB::BACKUP_HINT {
            return Err(StoreError::Unsupported {
                backend: DB::BACKEND,
                hint,
            });
        }
        let target = path.to_str().ok_or_else(|| StoreError::BackupPath {
            path: path.to_owned(),
        })?;
        let file_error = |source| StoreError::BackupFile {
            path: path.to_owned(),
            source,
        };
        // Created empty with mode 0600 first (`VACUUM INTO` accepts an empty file and keeps
        // its mode); `create_new` refuses an existing file, which is then left alone.
        let file = kasane_os::fs::create_private_file(path).map_err(file_error)?;
        let written = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await;
        if let Err(e) = written {
            // The file is ours (created above): a half-written backup is no backup.
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        file.sync_all().map_err(file_error)
    }

    async fn create_user(&self, user: &NewUser, now: UnixSeconds) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: IdRow = sqlx::query_as(
            "INSERT INTO users (name, opaque_record, counter, created_at) \
             VALUES ($1, $2, 0, $3) RETURNING id",
        )
        .bind(user.name.as_str())
        .bind(user.opaque_record.as_slice())
        .bind(to_db(now, "now")?)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_as(e, StoreError::UserExists))?;
        Self::insert_pairs(&mut *tx, row.id, &user.pairs).await?;
        // The name's stand-in queue, if it had one, is replaced by the user's real one.
        sqlx::query("DELETE FROM relay_unknown_recipients WHERE name = $1")
            .bind(user.name.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        // One snapshot for the user and its pairs.
        let mut tx = self.pool.begin().await?;
        let user: Option<UserRow> = sqlx::query_as(
            "SELECT id, opaque_record, counter, created_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let pairs: Vec<PairRow> = sqlx::query_as(
            "SELECT prompt, salt, verifier FROM challenge_pairs WHERE user_id = $1 ORDER BY idx",
        )
        .bind(user.id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let pairs = pairs.into_iter().map(ChallengePair::from).collect();
        user.into_record(name, pairs).map(Some)
    }

    async fn list_users(&self) -> Result<Vec<UserSummary>> {
        let rows: Vec<UserSummaryRow> = sqlx::query_as(
            "SELECT u.name, u.created_at, \
               COALESCE(t.failures, 0) AS failures, COALESCE(t.locked_until, 0) AS locked_until, \
               (SELECT COUNT(*) FROM challenge_pairs p WHERE p.user_id = u.id) AS pair_count, \
               (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id) AS sessions \
             FROM users u LEFT JOIN throttle t ON t.key = 'u:' || u.name \
             ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?;
        convert(rows)
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        // A writer from the start (SQLite: a read first would fix a snapshot that a commit in
        // between makes stale, and the write would then fail at once, busy).
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // The sessions first, locked in session-id order as a message commit locks them,
        // then the user: a commit locks its senders' sessions, then (for `user_usage`'s key)
        // their users' rows, so the cascade's order (user, then sessions in heap order) could
        // deadlock with it on PostgreSQL.
        if !DB::LOCKED_AT_BEGIN {
            let lock = format!(
                "SELECT session_id FROM sessions \
                 WHERE user_id = (SELECT id FROM users WHERE name = $1) ORDER BY session_id{}",
                DB::LOCK_ROWS
            );
            sqlx::query(&lock).bind(name).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Self::end_pending_of(&mut tx, name).await?;
        sqlx::query(login_sql::DELETE_THROTTLE)
            .bind(ThrottleKey::User(name).to_key().as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn unlock_user(&self, name: &str) -> Result<bool> {
        sqlx::query(login_sql::DELETE_THROTTLE)
            .bind(ThrottleKey::User(name).to_key().as_str())
            .execute(&self.pool)
            .await?;
        let users: CountRow = sqlx::query_as("SELECT COUNT(*) AS n FROM users WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(users.n > 0)
    }

    async fn replace_pairs(&self, name: &str, pairs: &[ChallengePair]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // A write first: locks the user row (PostgreSQL) / takes the write lock (SQLite).
        let user: Option<IdRow> =
            sqlx::query_as("UPDATE users SET name = name WHERE name = $1 RETURNING id")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        Self::end_pending_of(&mut tx, name).await?;
        Self::swap_pairs(tx, user, pairs).await
    }

    async fn reenroll(
        &self,
        name: &str,
        replacing: &[u8],
        opaque_record: &[u8],
        pairs: &[ChallengePair],
        keep: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let mut tx = self.pool.begin().await?;
        let user: Option<IdRow> = sqlx::query_as(
            "UPDATE users SET opaque_record = $2 WHERE name = $1 AND opaque_record = $3 \
             RETURNING id",
        )
        .bind(name)
        .bind(opaque_record)
        .bind(replacing)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = user.as_ref().map(|u| u.id) else {
            return Ok(None);
        };
        let ended = Self::end_sessions_of(&mut tx, id, keep).await?;
        Self::end_pending_of(&mut tx, name).await?;
        Self::swap_pairs(tx, user, pairs).await?;
        Ok(Some(ended))
    }

    async fn after_restore(&self) -> Result<Restored> {
        let jump = to_db(RESTORE_COUNTER_JUMP, "counter jump")?;
        let mut tx = self.pool.begin().await?;
        // A write first: takes the write lock (SQLite) before the check reads.
        let sessions = sqlx::query("DELETE FROM sessions")
            .execute(&mut *tx)
            .await?;
        let too_far: CountRow =
            sqlx::query_as("SELECT COUNT(*) AS n FROM users WHERE counter > $1")
                .bind(i64::MAX - jump)
                .fetch_one(&mut *tx)
                .await?;
        if too_far.n > 0 {
            return Err(StoreError::OutOfRange {
                what: "access counter",
            });
        }
        let pending = sqlx::query("DELETE FROM pending_logins")
            .execute(&mut *tx)
            .await?;
        let counters = sqlx::query("UPDATE users SET counter = counter + $1")
            .bind(jump)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Restored {
            sessions: DB::rows_affected(&sessions),
            pending_logins: DB::rows_affected(&pending),
            counters: DB::rows_affected(&counters),
        })
    }

    async fn end_sessions(&self, name: &str) -> Result<Option<u64>> {
        // It reads before it writes: on SQLite a deferred transaction would then fail with
        // `SQLITE_BUSY` at once, not wait, while another connection writes.
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let user: Option<IdRow> = sqlx::query_as("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let ended = Self::end_sessions_of(&mut tx, user.id, &[]).await?;
        Self::end_pending_of(&mut tx, name).await?;
        tx.commit().await?;
        Ok(Some(ended.len() as u64))
    }

    async fn next_counter(&self, name: &str) -> Result<u64> {
        let row: CounterRow = sqlx::query_as(
            "UPDATE users SET counter = counter + 1 WHERE name = $1 RETURNING counter",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::UserNotFound)?;
        from_db(row.counter, "counter")
    }

    async fn challenge_pairs(&self, name: &str) -> Result<Vec<ChallengePair>> {
        if let Some(direct) = &self.direct {
            return direct.challenge_pairs(name).await;
        }
        let stmt = login_sql::challenge_pairs(name);
        let pairs: Vec<PairRow> = Self::query_as(&stmt).fetch_all(&self.relaxed).await?;
        Ok(pairs.into_iter().map(ChallengePair::from).collect())
    }

    async fn make_durable(&self) -> Result<()> {
        if let Some(direct) = &self.direct {
            return direct.make_durable().await;
        }
        let done = sqlx::query(login_sql::MARK_DURABLE)
            .execute(&self.pool)
            .await;
        login_sql::marked(done.map(|d| DB::rows_affected(&d)))
    }

    async fn put_pending_login(
        &self,
        login: &NewPendingLogin,
        now: UnixSeconds,
        bounds: PendingBounds,
    ) -> Result<u64> {
        if let Some(direct) = &self.direct {
            return direct.put_pending_login(login, now, bounds).await;
        }
        // Room first ([`login_sql::evict_pending`]), then the insert: in the same round trip
        // where the backend allows it.
        let evict = login_sql::evict_pending(login, now, bounds)?;
        if DB::MULTI_STATEMENT {
            let insert = login_sql::insert_pending(login, evict.params.len() + 1)?;
            let both = Stmt {
                sql: format!("{}; {}", evict.sql, insert.sql),
                params: evict.params.into_iter().chain(insert.params).collect(),
            };
            let done = Self::query(&both)
                .execute(&self.relaxed)
                .await
                .map_err(|e| unique_as(e, StoreError::Duplicate))?;
            // The insert's one row, and the evicted ones.
            return Ok(DB::rows_affected(&done).saturating_sub(1));
        }
        let evicted = Self::query(&evict).execute(&self.relaxed).await?;
        let insert = login_sql::insert_pending(login, 1)?;
        Self::query(&insert)
            .execute(&self.relaxed)
            .await
            .map_err(|e| unique_as(e, StoreError::Duplicate))?;
        Ok(DB::rows_affected(&evicted))
    }

    async fn take_pending_login(
        &self,
        id: &[u8],
        stage: LoginStage,
        now: UnixSeconds,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(direct) = &self.direct {
            return direct.take_pending_login(id, stage, now).await;
        }
        let stmt = login_sql::take_pending(id, stage);
        let row: Option<PendingRow> = Self::query_as(&stmt).fetch_optional(&self.relaxed).await?;
        row.map_or(Ok(None), |login| login.unexpired(now))
    }

    async fn open_session(
        &self,
        s: &NewSession,
        cleared: ThrottleKey<'_>,
        forgiven: &[Forgiven<'_>],
    ) -> Result<()> {
        match &self.direct {
            Some(direct) => {
                let forgiven = login_sql::forgiven_rows(forgiven);
                direct.open_session(s, cleared.to_key(), forgiven).await
            }
            None => super::open_side_by_side(self, s, cleared, forgiven).await,
        }
    }

    async fn create_session(&self, s: &NewSession) -> Result<()> {
        if let Some(direct) = &self.direct {
            return direct.create_session(s).await;
        }
        let stmt = login_sql::create_session(s)?;
        let done = Self::query(&stmt)
            .execute(&self.relaxed)
            .await
            .map_err(|e| unique_as(e, StoreError::Duplicate))?;
        if DB::rows_affected(&done) == 0 {
            return Err(StoreError::UserNotFound);
        }
        let trim = login_sql::trim_sessions(s)?;
        let ended = Self::query(&trim).execute(&self.relaxed).await;
        login_sql::trimmed(&s.user, ended.map(|d| DB::rows_affected(&d)));
        Ok(())
    }

    async fn touch_session(
        &self,
        token_hash: &[u8],
        now: UnixSeconds,
        idle_timeout: u64,
    ) -> Result<Option<Session>> {
        let now_db = to_db(now, "now")?;
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET last_seen = $2 \
             WHERE token_hash = $1 AND last_seen > $3 AND expires_at > $2 \
             RETURNING session_id, (SELECT name FROM users WHERE id = user_id) AS user_name, \
               created_at, expires_at, secret, last_seq_from_client, seq_window, \
               last_seq_to_client",
        )
        .bind(token_hash)
        .bind(now_db)
        .bind(idle_seen_after(now_db, idle_timeout)?)
        .fetch_optional(&self.relaxed)
        .await?;
        let Some(row) = row else {
            // Expired (or absent): make sure it is gone.
            sqlx::query(DELETE_SESSION)
                .bind(token_hash)
                .execute(&self.relaxed)
                .await?;
            return Ok(None);
        };
        row.into_session(now).map(Some)
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(direct) = &self.direct {
            return direct.delete_session(token_hash).await;
        }
        let row: Option<SessionIdRow> = sqlx::query_as(login_sql::DELETE_SESSION)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.session_id))
    }

    async fn advance_seq(&self, session_id: &[u8], direction: Direction, seq: u64) -> Result<bool> {
        let q = match direction {
            Direction::ClientToHost => ADVANCE_FROM_CLIENT,
            Direction::HostToClient => {
                "UPDATE sessions SET last_seq_to_client = $2 \
                 WHERE session_id = $1 AND last_seq_to_client < $2"
            }
        };
        let done = sqlx::query(q)
            .bind(session_id)
            .bind(to_db(seq, "seq")?)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn next_seq(&self, session_id: &[u8], direction: Direction) -> Result<u64> {
        let q = match direction {
            Direction::ClientToHost => {
                "UPDATE sessions SET last_seq_from_client = last_seq_from_client + 1, \
                   seq_window = -1 WHERE session_id = $1 RETURNING last_seq_from_client AS seq"
            }
            Direction::HostToClient => {
                "UPDATE sessions SET last_seq_to_client = last_seq_to_client + 1 \
                 WHERE session_id = $1 RETURNING last_seq_to_client AS seq"
            }
        };
        let row: SeqRow = sqlx::query_as(q)
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::SessionNotFound)?;
        row.seq()
    }

    async fn record_failures(
        &self,
        keys: &[ThrottleKey<'_>],
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Vec<ThrottleState>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(ThrottleKey::to_key).collect();
        let mut conn = self.relaxed.acquire().await?;
        Self::count_failures(&mut *conn, &keys, now, backoff).await
    }

    async fn count_start(
        &self,
        keys: &[ThrottleKey<'_>],
        user: Option<&str>,
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Option<Counted>> {
        if keys.is_empty() {
            return Err(StoreError::OutOfRange {
                what: "throttle keys",
            });
        }
        let keys = login_sql::key_strings(keys);
        if let Some(direct) = &self.direct {
            return direct.count_start(keys, user, now, backoff).await;
        }
        // No other check-and-count of these keys may run between the check below and the
        // count: SQLite's `BEGIN IMMEDIATE` takes its write lock; on PostgreSQL a write on
        // every key's row (made if missing) locks the rows.
        let mut tx = self.relaxed.begin_with(DB::BEGIN_WRITE).await?;
        if !DB::LOCKED_AT_BEGIN {
            Self::lock_throttle_rows(&mut tx, &keys, now).await?;
        }
        let before = Self::states_on(&mut *tx, &keys).await?;
        if before.iter().any(|s| s.is_locked(now)) {
            tx.commit().await?;
            return Ok(None);
        }
        let after = Self::count_failures(&mut *tx, &keys, now, backoff).await?;
        let login = match user {
            Some(user) => Self::draw_counter(&mut *tx, user).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(Some(Counted {
            before,
            after,
            login,
        }))
    }

    async fn throttle_states(&self, keys: &[ThrottleKey<'_>]) -> Result<Vec<ThrottleState>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = login_sql::key_strings(keys);
        if let Some(direct) = &self.direct {
            return direct.throttle_states(keys).await;
        }
        let mut conn = self.relaxed.acquire().await?;
        Self::states_on(&mut *conn, &keys).await
    }

    async fn note_known_network(&self, user: &str, network: &str, now: UnixSeconds) -> Result<()> {
        sqlx::query(
            "INSERT INTO known_networks (user_name, network, last_success) VALUES ($1, $2, $3) \
             ON CONFLICT (user_name, network) DO UPDATE SET last_success = $3",
        )
        .bind(user)
        .bind(network)
        .bind(to_db(now, "now")?)
        .execute(&self.relaxed)
        .await?;
        Ok(())
    }

    async fn start_lookup(
        &self,
        user: &str,
        network: &str,
        keys: [ThrottleKey<'_>; 3],
    ) -> Result<StartLookup> {
        let keys = keys.map(|k| k.to_key());
        if let Some(direct) = &self.direct {
            return direct.start_lookup(user, network, keys).await;
        }
        let stmt = login_sql::start_lookup(user, network, &keys);
        let row: StartLookupRow = Self::query_as(&stmt).fetch_one(&self.relaxed).await?;
        row.lookup()
    }

    async fn clear_throttle(&self, key: ThrottleKey<'_>) -> Result<()> {
        let key = key.to_key();
        if let Some(direct) = &self.direct {
            return direct.clear_throttle(key).await;
        }
        let stmt = login_sql::clear_throttle(&key);
        Self::query(&stmt).execute(&self.relaxed).await?;
        Ok(())
    }

    async fn list_throttle(&self) -> Result<Vec<ThrottleEntry>> {
        let rows: Vec<ThrottleListRow> = sqlx::query_as(
            "SELECT key, failures, locked_until, last_failure FROM throttle ORDER BY key",
        )
        .fetch_all(&self.relaxed)
        .await?;
        convert(rows)
    }

    async fn clear_throttle_key(&self, key: &str) -> Result<bool> {
        let done = sqlx::query(login_sql::DELETE_THROTTLE)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn purge_throttle(&self, now: UnixSeconds, backoff: &Backoff) -> Result<u64> {
        // Decayed to nothing: failures · decay_secs seconds since the last one. The count is
        // at most the ceiling, so the product fits.
        let done = sqlx::query(
            "DELETE FROM throttle WHERE locked_until <= $1 \
               AND last_failure + failures * $2 <= $1",
        )
        .bind(to_db(now, "now")?)
        .bind(to_db(backoff.decay_secs.max(1), "decay_secs")?)
        .execute(&self.relaxed)
        .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn forgive_failures(&self, forgiven: &[Forgiven<'_>]) -> Result<()> {
        if forgiven.is_empty() {
            return Ok(());
        }
        let rows = login_sql::forgiven_rows(forgiven);
        if let Some(direct) = &self.direct {
            return direct.forgive_failures(rows).await;
        }
        let stmt = login_sql::forgive(&rows)?;
        Self::query(&stmt).execute(&self.relaxed).await?;
        Ok(())
    }

    async fn challenge_pairs_forgiving(
        &self,
        name: &str,
        forgiven: &[Forgiven<'_>],
    ) -> Result<Vec<ChallengePair>> {
        let Some(direct) = &self.direct else {
            return super::pairs_side_by_side(self, name, forgiven).await;
        };
        let rows = login_sql::forgiven_rows(forgiven);
        direct.challenge_pairs_forgiving(name, rows).await
    }

    async fn enqueue_message(&self, recipient: &str, body: &[u8], now: UnixSeconds) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        Self::enqueue(&mut *conn, recipient, body, now)
            .await?
            .ok_or(StoreError::UserNotFound)
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>> {
        let rows: Vec<QueuedRow> = sqlx::query_as(
            "SELECT q.id, q.body, q.created_at, q.audit_session, q.audit_seq, \
               a.payload AS audit_payload \
             FROM relay_queue q JOIN users u ON u.id = q.recipient_id \
             LEFT JOIN audit_log a ON a.session_id = q.audit_session AND a.seq = q.audit_seq \
             WHERE u.name = $1 AND q.id > $2 ORDER BY q.id LIMIT $3",
        )
        .bind(recipient)
        .bind(to_db(after, "after")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| r.into_message(recipient))
            .collect()
    }

    async fn ack_messages(&self, recipient: &str, ids: &[u64]) -> Result<u64> {
        let ids = ids
            .iter()
            .map(|id| to_db(*id, "message id"))
            .collect::<Result<Vec<i64>>>()?;
        let mut tx = self.pool.begin().await?;
        let mut acked = 0;
        for chunk in ids.chunks(BATCH_ROWS) {
            let chunk = padded(chunk);
            let sql = batch_sql::ack_sql(chunk.len());
            let mut query = sqlx::query(&sql).bind(recipient);
            for id in chunk {
                query = query.bind(id);
            }
            acked += DB::rows_affected(&query.execute(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(acked)
    }

    async fn dead_letter_message(
        &self,
        recipient: &str,
        id: u64,
        now: UnixSeconds,
    ) -> Result<bool> {
        let id = to_db(id, "message id")?;
        let mut tx = self.pool.begin().await?;
        // The delete first: it takes the write lock (SQLite) and the row (PostgreSQL).
        let row: Option<QueuedRow> = sqlx::query_as(
            "DELETE FROM relay_queue WHERE id = $2 \
             AND recipient_id = (SELECT id FROM users WHERE name = $1) \
             RETURNING id, body, created_at, audit_session, audit_seq",
        )
        .bind(recipient)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut row) = row else {
            return Ok(false);
        };
        let audit = row.audit_session.take().zip(row.audit_seq);
        let moved = row.into_message(recipient)?;
        sqlx::query(
            "INSERT INTO relay_dead_letters (id, recipient, body, created_at, moved_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(recipient)
        .bind(moved.body.as_slice())
        .bind(to_db(moved.created, "created_at")?)
        .bind(to_db(now, "now")?)
        .execute(&mut *tx)
        .await?;
        // The audit record it names, if any, goes with it.
        if let Some((session, seq)) = audit {
            sqlx::query(
                "UPDATE relay_dead_letters SET audit_session = $1, audit_seq = $2 WHERE id = $3",
            )
            .bind(session.as_slice())
            .bind(seq)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_fact(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO host_facts (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        let row: FactRow = sqlx::query_as("SELECT value FROM host_facts WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.value)
    }

    async fn append_audit(&self, r: &AuditRecord) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, \
               created_at) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE ($2 = 1 AND NOT EXISTS \
                     (SELECT 1 FROM audit_log WHERE session_id = $1)) \
                OR EXISTS (SELECT 1 FROM audit_log \
                     WHERE session_id = $1 AND seq = $2 - 1 AND record_hash = $3)",
        )
        .bind(r.session_id.as_slice())
        .bind(to_db(r.seq, "seq")?)
        .bind(r.prev_hash.as_slice())
        .bind(r.record_hash.as_slice())
        .bind(r.payload.as_slice())
        .bind(to_db(r.created, "created")?)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_as(e, StoreError::AuditChainMismatch))?;
        if DB::rows_affected(&done) == 1 {
            Ok(())
        } else {
            Err(StoreError::AuditChainMismatch)
        }
    }

    async fn accept_messages(&self, batch: &[AcceptMessage]) -> Result<Vec<AcceptOutcome>> {
        // One transaction for the batch, begun as a writer: read, decide, write (see
        // [`accept`]).
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let mut found = Self::read_batch(&mut *tx, batch).await?;
        let plan = accept::plan(batch, &mut found)?;
        Self::write_batch(&mut *tx, &plan).await?;
        tx.commit().await?;
        Ok(plan.outcomes)
    }

    async fn unchecked_audit_heads(&self, limit: u32) -> Result<Vec<(Vec<u8>, u64, Vec<u8>)>> {
        let sql = format!(
            "{CHAIN_HEADS} AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c \
                               WHERE c.session_id = a.session_id AND c.seq = a.seq) \
             ORDER BY a.session_id LIMIT $1"
        );
        let rows: Vec<SessionHeadRow> = sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        convert(rows)
    }

    async fn audit_head(&self, session_id: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        if let Some(direct) = &self.direct {
            return direct.audit_head(session_id).await;
        }
        let mut conn = self.pool.acquire().await?;
        Self::chain_head(&mut *conn, session_id).await
    }

    async fn audit_page(
        &self,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        const COLS: &str = "SELECT session_id, seq, prev_hash, record_hash, payload, created_at \
             FROM audit_log";
        let rows: Vec<AuditRow> = self.keyset_page(COLS, after, limit).await?;
        convert(rows)
    }

    async fn put_audit_checkpoint(&self, c: &AuditCheckpoint) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (session_id, seq, record_hash, signature, \
               created_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE EXISTS (SELECT 1 FROM audit_log \
               WHERE session_id = $1 AND seq = $2 AND record_hash = $3)",
        )
        .bind(c.session_id.as_slice())
        .bind(to_db(c.seq, "seq")?)
        .bind(c.record_hash.as_slice())
        .bind(c.signature.as_slice())
        .bind(to_db(c.created, "created")?)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_as(e, StoreError::Duplicate))?;
        if DB::rows_affected(&done) == 1 {
            Ok(())
        } else {
            Err(StoreError::AuditChainMismatch)
        }
    }

    async fn audit_checkpoint_page(
        &self,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>> {
        self.signed_heads_page("audit_checkpoints", after, limit)
            .await
    }

    async fn dead_letters(&self, after: u64, limit: u32) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(
            "SELECT id, recipient, CAST(LENGTH(body) AS BIGINT) AS bytes, created_at, \
               moved_at, audit_session, audit_seq FROM relay_dead_letters \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(to_db(after, "after")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        convert(rows)
    }

    async fn remove_dead_letter(&self, id: u64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM relay_dead_letters WHERE id = $1")
            .bind(to_db(id, "id")?)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn session_ends_since(
        &self,
        since: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, UnixSeconds)>> {
        let rows: Vec<SessionEndRow> = sqlx::query_as(
            "SELECT token_hash, ended_at FROM session_ends WHERE ended_at >= $1 \
             ORDER BY ended_at LIMIT $2",
        )
        .bind(to_db(since, "since")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        convert(rows)
    }

    async fn prunable_audit_chains(
        &self,
        after: Option<&[u8]>,
        cutoff: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, u64, Vec<u8>)>> {
        // `NOT IN` over the queues: each subquery is read once, not once per chain.
        let sql = format!(
            "{CHAIN_HEADS} AND a.session_id > $1 AND a.created_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = a.session_id) \
               AND a.session_id NOT IN (SELECT q.audit_session FROM relay_queue q \
                                        WHERE q.audit_session IS NOT NULL) \
               AND a.session_id NOT IN (SELECT d.audit_session FROM relay_dead_letters d \
                                        WHERE d.audit_session IS NOT NULL) \
             ORDER BY a.session_id LIMIT $3"
        );
        let rows: Vec<SessionHeadRow> = sqlx::query_as(&sql)
            .bind(after.unwrap_or_default())
            .bind(to_db(cutoff, "cutoff")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        convert(rows)
    }

    async fn prune_audit_chain(&self, m: &AuditCheckpoint) -> Result<u64> {
        let seq = to_db(m.seq, "seq")?;
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let marked = sqlx::query(
            "INSERT INTO audit_pruned (session_id, seq, record_hash, signature, created_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE EXISTS (SELECT 1 FROM audit_log \
                           WHERE session_id = $1 AND seq = $2 AND record_hash = $3) \
               AND NOT EXISTS (SELECT 1 FROM audit_log WHERE session_id = $1 AND seq > $2) \
               AND NOT EXISTS (SELECT 1 FROM sessions WHERE session_id = $1) \
               AND NOT EXISTS (SELECT 1 FROM relay_queue WHERE audit_session = $1) \
               AND NOT EXISTS (SELECT 1 FROM relay_dead_letters WHERE audit_session = $1)",
        )
        .bind(m.session_id.as_slice())
        .bind(seq)
        .bind(m.record_hash.as_slice())
        .bind(m.signature.as_slice())
        .bind(to_db(m.created, "created")?)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_as(e, StoreError::NotPrunable))?;
        if DB::rows_affected(&marked) != 1 {
            return Err(StoreError::NotPrunable);
        }
        let deleted = sqlx::query("DELETE FROM audit_log WHERE session_id = $1")
            .bind(m.session_id.as_slice())
            .execute(&mut *tx)
            .await?;
        // A chain with a gap is not pruned (dropping `tx` rolls the marker back).
        let deleted = DB::rows_affected(&deleted);
        if deleted != m.seq {
            return Err(StoreError::AuditChainMismatch);
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn audit_pruned_page(
        &self,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>> {
        self.signed_heads_page("audit_pruned", after, limit).await
    }

    async fn purge_expired(&self, now: UnixSeconds, idle_timeout: u64) -> Result<Purged> {
        let now_db = to_db(now, "now")?;
        let idle_seen_after = idle_seen_after(now_db, idle_timeout)?;
        let pending_logins = sqlx::query("DELETE FROM pending_logins WHERE expires_at <= $1")
            .bind(now_db)
            .execute(&self.relaxed)
            .await?;
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen <= $2")
                .bind(now_db)
                .bind(idle_seen_after)
                .execute(&self.relaxed)
                .await?;
        sqlx::query("DELETE FROM known_networks WHERE last_success < $1")
            .bind(now_db.saturating_sub(to_db(super::KNOWN_NETWORK_SECS, "known")?))
            .execute(&self.relaxed)
            .await?;
        sqlx::query(
            "DELETE FROM session_ends \
             WHERE ended_at < (SELECT MAX(ended_at) FROM session_ends) - $1",
        )
        .bind(to_db(super::SESSION_ENDS_KEPT_SECS, "kept")?)
        .execute(&self.relaxed)
        .await?;
        // Daily counts: today's and yesterday's are kept (a clock near midnight).
        sqlx::query("DELETE FROM user_usage WHERE day < $1")
            .bind(to_db(super::budget::day_of(now).saturating_sub(1), "day")?)
            .execute(&self.relaxed)
            .await?;
        Ok(Purged {
            sessions: DB::rows_affected(&sessions),
            pending_logins: DB::rows_affected(&pending_logins),
            ..Purged::default()
        })
    }
}
