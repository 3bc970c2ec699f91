//! The login path's store calls on a SQLite file, each run whole by rusqlite as blocking
//! work ([`kasane_os::blocking::run`]: in place on the host's multi-thread runtime, else on
//! tokio's blocking pool): [`DirectSqlite`].
//!
//! Why beside sqlx: sqlx runs each statement of a SQLite connection on that connection's
//! worker thread and wakes the calling task with the answer, so a login's fifteen statements
//! were fifteen hand-offs between threads, each about 60 µs of CPU on this project's 2-vCPU
//! machine, with SQLite's own work under a tenth of it (BENCHMARKS.md, the seventh session's
//! login section). Here a call is one piece of blocking work, however many statements it runs:
//! the check, count and counter of a start is one instead of five, and in place it needs no
//! hand-off at all. The calls wait for SQLite's write lock as blocking work, never on an
//! async worker that tokio still counts on. The statements and the decisions
//! between them are [`login_sql`]'s, the ones the sqlx path runs (on PostgreSQL, and on an
//! in-memory SQLite database), so both answer alike; the store tests run both.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, OpenFlags, TransactionBehavior};
use tokio::sync::Semaphore;

use super::committer::is_unique_violation;
use super::login_sql::{self, ForgivenRow, Stmt};
use super::rows::{
    FromRusqlite, HeadRow, LoginRow, PairRow, PendingRow, SessionIdRow, StartLookupRow,
    ThrottleRow, convert,
};
use super::{
    Backoff, ChallengePair, Counted, LoginStage, NewPendingLogin, NewSession, PendingBounds,
    Result, StartLookup, StoreError, ThrottleState, UnixSeconds, Zeroizing,
};

/// Most calls run at once, and most connections kept open.
const CONNECTIONS: usize = 8;

/// The login path's calls on the store's SQLite file (relaxed commits: `synchronous =
/// NORMAL`, as the sqlx relaxed pool's).
#[derive(Debug)]
pub(super) struct DirectSqlite {
    path: Arc<Path>,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl DirectSqlite {
    /// Calls on the existing database file at `path` (the store made it, in WAL mode, and
    /// ran the migrations); connections are opened as calls need them.
    pub(super) fn new(path: Arc<Path>) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::with_capacity(CONNECTIONS)),
            permits: Arc::new(Semaphore::new(CONNECTIONS)),
        }
    }

    /// Runs `f` on a connection, as blocking work. At most [`CONNECTIONS`] run at once; a
    /// call whose caller went away still runs to its end (a transaction is never left open),
    /// holding its permit.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await;
        let permit = permit.map_err(|_| StoreError::CallAborted)?;
        let this = self.clone();
        let call = kasane_os::blocking::run(move || {
            let idle = this.lock().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => open(&this.path)?,
            };
            let out = f(&mut conn);
            // A closed store keeps no connection (`close`).
            if !this.permits.is_closed() {
                this.lock().push(conn);
            }
            drop(permit);
            out
        });
        call.await.map_err(|_| StoreError::CallAborted)?
    }

    /// Closes the idle connections and refuses new calls ([`StoreError::CallAborted`]); a
    /// call under way closes its connection when it ends.
    pub(super) fn close(&self) {
        self.permits.close();
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // Nothing panics while the lock is held; a poisoned list is still a list of
        // connections.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Store::start_lookup`](super::Store::start_lookup).
    pub(super) async fn start_lookup(
        self: &Arc<Self>,
        user: &str,
        network: &str,
        keys: [String; 3],
    ) -> Result<StartLookup> {
        let (user, network) = (user.to_owned(), network.to_owned());
        self.run(move |c| {
            let row: Option<StartLookupRow> =
                rows(c, &login_sql::start_lookup(&user, &network, &keys))?.pop();
            row.ok_or(StoreError::OutOfRange {
                what: "start lookup",
            })?
            .lookup()
        })
        .await
    }

    /// [`Store::count_start`](super::Store::count_start): `BEGIN IMMEDIATE` takes the write
    /// lock before the check, as on the sqlx path.
    pub(super) async fn count_start(
        self: &Arc<Self>,
        keys: Vec<String>,
        user: Option<&str>,
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Option<Counted>> {
        let (user, backoff) = (user.map(str::to_owned), *backoff);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let before = states_on(&tx, &keys)?;
            if before.iter().any(|s| s.is_locked(now)) {
                tx.commit()?;
                return Ok(None);
            }
            let after = count_failures(&tx, &keys, now, &backoff)?;
            let drawn: Option<LoginRow> = match &user {
                Some(user) => rows(&tx, &login_sql::draw_counter(user))?.pop(),
                None => None,
            };
            let login = drawn.map(LoginRow::record).transpose()?;
            tx.commit()?;
            Ok(Some(Counted {
                before,
                after,
                login,
            }))
        })
        .await
    }

    /// [`Store::throttle_states`](super::Store::throttle_states).
    pub(super) async fn throttle_states(
        self: &Arc<Self>,
        keys: Vec<String>,
    ) -> Result<Vec<ThrottleState>> {
        self.run(move |c| states_on(c, &keys)).await
    }

    /// [`Store::forgive_failures`](super::Store::forgive_failures).
    pub(super) async fn forgive_failures(
        self: &Arc<Self>,
        forgiven: Vec<ForgivenRow>,
    ) -> Result<()> {
        self.run(move |c| execute(c, &login_sql::forgive(&forgiven)?).map(drop))
            .await
    }

    /// [`Store::clear_throttle`](super::Store::clear_throttle).
    pub(super) async fn clear_throttle(self: &Arc<Self>, key: String) -> Result<()> {
        self.run(move |c| execute(c, &login_sql::clear_throttle(&key)).map(drop))
            .await
    }

    /// [`Store::put_pending_login`](super::Store::put_pending_login): the evictions, then
    /// the insert, in one transaction (one commit). An insert refused as a duplicate is a
    /// failed statement the transaction survives: the evictions are committed all the same.
    pub(super) async fn put_pending_login(
        self: &Arc<Self>,
        login: &NewPendingLogin,
        now: UnixSeconds,
        bounds: PendingBounds,
    ) -> Result<u64> {
        let login = login.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let evicted = execute(&tx, &login_sql::evict_pending(&login, now, bounds)?)?;
            let inserted = execute(&tx, &login_sql::insert_pending(&login, 1)?).map_err(duplicate);
            // The insert's error first, as in `open_session`.
            inserted.and(tx.commit().map_err(StoreError::from))?;
            Ok(evicted as u64)
        })
        .await
    }

    /// [`Store::take_pending_login`](super::Store::take_pending_login).
    pub(super) async fn take_pending_login(
        self: &Arc<Self>,
        id: &[u8],
        stage: LoginStage,
        now: UnixSeconds,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let id = id.to_vec();
        self.run(move |c| {
            let row: Option<PendingRow> = rows(c, &login_sql::take_pending(&id, stage))?.pop();
            row.map_or(Ok(None), |login| login.unexpired(now))
        })
        .await
    }

    /// [`Store::challenge_pairs`](super::Store::challenge_pairs).
    pub(super) async fn challenge_pairs(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Vec<ChallengePair>> {
        let name = name.to_owned();
        self.run(move |c| pairs_of(c, &name)).await
    }

    /// [`Store::challenge_pairs_forgiving`](super::Store::challenge_pairs_forgiving): the
    /// forgiving (its own commit), then the read.
    pub(super) async fn challenge_pairs_forgiving(
        self: &Arc<Self>,
        name: &str,
        forgiven: Vec<ForgivenRow>,
    ) -> Result<Vec<ChallengePair>> {
        let name = name.to_owned();
        self.run(move |c| {
            if !forgiven.is_empty() {
                let forgiving = login_sql::forgive(&forgiven).and_then(|stmt| execute(c, &stmt));
                if let Err(e) = forgiving {
                    tracing::error!(error = %e, "forgiving a start");
                }
            }
            pairs_of(c, &name)
        })
        .await
    }

    /// [`Store::make_durable`](super::Store::make_durable): the barrier's write, committed
    /// with `synchronous = FULL`, which syncs the WAL and every relaxed commit before it.
    pub(super) async fn make_durable(self: &Arc<Self>) -> Result<()> {
        let done = self
            .run(|c| durably(c, |c| Ok(c.execute(login_sql::MARK_DURABLE, [])?)))
            .await;
        login_sql::marked(done.map(|n| n as u64))
    }

    /// [`Store::delete_session`](super::Store::delete_session), committed durably (a logout
    /// is not undone by a crash).
    pub(super) async fn delete_session(
        self: &Arc<Self>,
        token_hash: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let hash = token_hash.to_vec();
        self.run(move |c| {
            let stmt = login_sql::delete_session(&hash);
            let row: Option<SessionIdRow> = durably(c, |c| Ok(rows(c, &stmt)?.pop()))?;
            Ok(row.map(|r| r.session_id))
        })
        .await
    }

    /// [`Store::audit_head`](super::Store::audit_head) (the logout's read after its
    /// [`delete_session`](Self::delete_session)).
    pub(super) async fn audit_head(
        self: &Arc<Self>,
        session_id: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let id = session_id.to_vec();
        self.run(move |c| {
            let row: Option<HeadRow> = rows(c, &login_sql::chain_head(&id))?.pop();
            row.map(TryInto::try_into).transpose()
        })
        .await
    }

    /// [`Store::create_session`](super::Store::create_session).
    pub(super) async fn create_session(self: &Arc<Self>, s: &NewSession) -> Result<()> {
        let s = s.clone();
        self.run(move |c| insert_session(c, &s)).await
    }

    /// [`Store::open_session`](super::Store::open_session): the clearing, then the session, in
    /// one transaction. A session refused (a duplicate, no such user) is a failed statement
    /// that the transaction survives: the clearing is committed all the same.
    pub(super) async fn open_session(
        self: &Arc<Self>,
        s: &NewSession,
        cleared: String,
        forgiven: Vec<ForgivenRow>,
    ) -> Result<()> {
        let s = s.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cleared = execute(&tx, &login_sql::clear_throttle(&cleared));
            let forgave = if forgiven.is_empty() {
                Ok(0)
            } else {
                login_sql::forgive(&forgiven).and_then(|f| execute(&tx, &f))
            };
            if let Err(e) = cleared.and(forgave) {
                tracing::error!(error = %e, "clearing the user's throttle");
            }
            let created = insert_session(&tx, &s);
            // The session's error first: after some errors SQLite has ended the transaction
            // itself, and the commit's own error would hide why.
            created.and(tx.commit().map_err(StoreError::from))
        })
        .await
    }
}

/// The pairs of user `name`, in card order.
fn pairs_of(c: &Connection, name: &str) -> Result<Vec<ChallengePair>> {
    let pairs: Vec<PairRow> = rows(c, &login_sql::challenge_pairs(name))?;
    Ok(pairs.into_iter().map(ChallengePair::from).collect())
}

/// Stores the new session `s`.
fn insert_session(c: &Connection, s: &NewSession) -> Result<()> {
    match execute(c, &login_sql::create_session(s)?) {
        Ok(0) => Err(StoreError::UserNotFound),
        Ok(_) => {
            let ended = login_sql::trim_sessions(s).and_then(|t| execute(c, &t));
            login_sql::trimmed(&s.user, ended.map(|n| n as u64));
            Ok(())
        }
        done => done.map(drop).map_err(duplicate),
    }
}

/// Opens the store's file with the relaxed pool's settings.
fn open(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Runs `f` with the connection's commits durable (`synchronous = FULL`, as the sqlx durable
/// pool's), then relaxed again. Should the switch back fail, the connection stays durable:
/// slower, never less safe.
fn durably<T>(c: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    c.pragma_update(None, "synchronous", "FULL")?;
    let out = f(c);
    if let Err(e) = c.pragma_update(None, "synchronous", "NORMAL") {
        tracing::warn!(error = %e, "a store connection stays with synchronous = FULL");
    }
    out
}

/// A duplicate key becomes [`StoreError::Duplicate`].
fn duplicate(e: StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(e) if is_unique_violation(&e) => StoreError::Duplicate,
        e => e,
    }
}

/// `stmt` prepared (from the connection's cache) with its parameters bound by number: a
/// `$n` may come more than once, and out of order.
fn bound<'c>(c: &'c Connection, stmt: &Stmt<'_>) -> Result<CachedStatement<'c>> {
    let mut prepared = c.prepare_cached(&stmt.sql)?;
    for (i, p) in stmt.params.iter().enumerate() {
        if let Some(at) = prepared.parameter_index(&format!("${}", i + 1))? {
            prepared.raw_bind_parameter(at, p)?;
        }
    }
    Ok(prepared)
}

/// Runs `stmt` to its end: the rows it returned.
fn rows<R: FromRusqlite>(c: &Connection, stmt: &Stmt<'_>) -> Result<Vec<R>> {
    let mut prepared = bound(c, stmt)?;
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(R::from_rusqlite(row)?);
    }
    Ok(out)
}

/// Runs `stmt`: the rows it changed.
fn execute(c: &Connection, stmt: &Stmt<'_>) -> Result<usize> {
    Ok(bound(c, stmt)?.raw_execute()?)
}

/// The states of `keys`, in their order.
fn states_on(c: &Connection, keys: &[String]) -> Result<Vec<ThrottleState>> {
    let found: Vec<ThrottleRow> = rows(c, &login_sql::states(keys))?;
    Ok(login_sql::states_in_order(keys, &convert(found)?))
}

/// Counts one failure of each key and writes the locks due, as the sqlx path does.
fn count_failures(
    c: &Connection,
    keys: &[String],
    now: UnixSeconds,
    backoff: &Backoff,
) -> Result<Vec<ThrottleState>> {
    let counted: Vec<ThrottleRow> = rows(c, &login_sql::count_failures(keys, now, backoff)?)?;
    let counted = convert(counted)?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (state, due) = login_sql::lock_due(login_sql::counted(&counted, k)?, now, backoff);
        if due {
            execute(c, &login_sql::lock_until(k, state.locked_until)?)?;
        }
        out.push(state);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(c: &Connection) -> i64 {
        c.pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_durable_call_commits_with_full_sync_then_relaxes_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER)")
            .unwrap();
        let mut c = open(&path).unwrap();
        assert_eq!(synchronous(&c), 1, "NORMAL");
        let inside = durably(&mut c, |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(synchronous(c))
        });
        assert_eq!(inside.unwrap(), 2, "FULL for the call");
        assert_eq!(synchronous(&c), 1, "NORMAL again after it");
        let failed: Result<()> = durably(&mut c, |c| Ok(c.execute_batch("NOT SQL")?));
        assert!(failed.is_err());
        assert_eq!(synchronous(&c), 1, "NORMAL again after a failed call");
    }
}
