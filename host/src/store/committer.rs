//! The message path's group commit on SQLite, on a connection of its own, run by a thread
//! of its own (`GroupCommit::spawn_thread`): [`SqliteCommitter`].
//!
//! Why rusqlite beside sqlx: sqlx runs every statement of a SQLite connection on that
//! connection's worker thread and wakes the calling task with each answer, so a batch of
//! eight statements is eight round trips between threads, each a park and a wake-up; on
//! this project's 2-core machine they were most of a commit's time (BENCHMARKS.md, issue
//! 15). A committer that owns its connection runs the whole transaction — `BEGIN
//! IMMEDIATE`, the batch's reads, its writes, `COMMIT` — on the calling thread, and the
//! thread that calls it takes the next batch as soon as this one is durable. Both crates
//! link the same SQLite (`libsqlite3-sys` 0.30); the file, its WAL and its locks are
//! shared with the store's sqlx pools like those of any two connections.
//!
//! The statements are the ones sqlx runs for [`Store::accept_messages`](super::Store)
//! ([`super::batch_sql`]) and the decisions are [`accept::plan`]'s, so the two paths
//! answer a batch alike (the store tests run both). One difference: the committer skips the
//! reads whose answers its own last commits wrote, while no other connection has committed
//! since ([`Known`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, Transaction, TransactionBehavior};
use sqlx::Sqlite;

use super::accept::{self, Found};
use super::batch_sql::{
    self, BATCH_ROWS, Param, heads_sql, padded, unknown_queues_sql, user_queues_sql, windows_sql,
};
use super::rows::{FromRusqlite, QueueUsageRow, SessionHeadRow, SpentRow, WindowRow, convert};
use super::{AcceptMessage, AcceptOutcome, Result, StoreError};

/// Commits batches of messages like [`Store::accept_messages`](super::Store), blocking, on
/// its own connection to the store's SQLite file (`synchronous = FULL`: a commit is on disk
/// when [`accept`](Self::accept) returns).
#[derive(Debug)]
pub struct SqliteCommitter {
    conn: Connection,
    /// What the last commit left for the keys it touched ([`Known`]).
    known: Known,
}

/// Most entries (windows, heads, queues and daily counts together; each session's user
/// goes with its window) [`Known`] holds; past that it starts over.
const MAX_KNOWN: usize = 4096;

/// What this committer's last commits left in the database for the sessions and recipients
/// they touched (each session's window, user and chain head, each name's queue usage, each
/// sender's daily count), so that
/// the next batch reads only what is not here: on a busy host, most batches read nothing.
///
/// Valid while no other connection has committed to the file since: SQLite's
/// `PRAGMA data_version` changes with every commit of any other connection (of this process
/// or another) and not with this connection's own. The committer reads it at the start of
/// each transaction, under the write lock (`BEGIN IMMEDIATE`: nobody else commits until this
/// transaction ends), and a different value drops everything here. A failed batch drops it
/// too (its plan may have moved what it held). So a login, a logout, an inbox's
/// acknowledgement or another replica's write costs the next batch its reads, never a stale
/// window: a replay is refused as it would be without this.
#[derive(Debug, Default)]
struct Known {
    /// The `data_version` the entries were read or written under.
    version: Option<i64>,
    /// The entries: a session is known when it has a window, a head and a user here, a name
    /// when it has a queue, a sender's day when it has a count (anything else is read).
    found: Found,
}

impl Known {
    /// What is known under `version`: this, if it was known under that version; else nothing.
    fn under(self, version: i64) -> Self {
        if self.version == Some(version) {
            self
        } else {
            Self {
                version: Some(version),
                found: Found::default(),
            }
        }
    }

    /// Takes in what a committed batch's plan left in `found`.
    fn remember(&mut self, found: Found) {
        let total = |f: &Found| f.windows.len() + f.heads.len() + f.queues.len() + f.spent.len();
        if total(&self.found) + total(&found) > MAX_KNOWN {
            self.found = Found::default();
        }
        self.found.windows.extend(found.windows);
        self.found.heads.extend(found.heads);
        self.found.queues.extend(found.queues);
        self.found.owners.extend(found.owners);
        self.found.spent.extend(found.spent);
    }
}

impl SqliteCommitter {
    /// Opens the existing database file at `path` (the store made it, in WAL mode, and ran
    /// the migrations) with the durable pool's settings.
    pub(super) fn open(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The batch statements' shapes: five reads and five writes, each in up to seven
        // power-of-two sizes.
        conn.set_prepared_statement_cache_capacity(80);
        Ok(Self {
            conn,
            known: Known::default(),
        })
    }

    /// Accepts `batch` in one transaction (see [`accept`]): one outcome per message, in
    /// order, once the commit is durable; on an error nothing of the batch is stored.
    pub fn accept(&mut self, batch: &[AcceptMessage]) -> Result<Vec<AcceptOutcome>> {
        // Taken out: only a committed batch puts back what it knows.
        let cached = std::mem::take(&mut self.known);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let mut known = cached.under(version);
        let mut found = read_batch(&tx, batch, &known.found)?;
        let plan = accept::plan(batch, &mut found)?;
        for w in batch_sql::writes(&plan)? {
            let mut statement = tx.prepare_cached(&w.sql)?;
            match statement.execute(rusqlite::params_from_iter(&w.params)) {
                Err(e) if w.appends_audit && is_unique_violation(&e) => {
                    return Err(StoreError::AuditChainMismatch);
                }
                done => done?,
            };
        }
        tx.commit()?;
        known.remember(found);
        self.known = known;
        Ok(plan.outcomes)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Int(v) => ValueRef::Integer(v),
            Param::Blob(b) => ValueRef::Blob(b),
            Param::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

/// What a batch's plan needs: the sessions' windows and users (the transaction holds
/// SQLite's one write lock already), their chains' heads, the recipients' queues (users'
/// first, then the stand-in queues of the other names), the senders' daily counts: from
/// `known` where it has them, the rest read with the same statements as the sqlx path's.
fn read_batch(tx: &Transaction<'_>, batch: &[AcceptMessage], known: &Found) -> Result<Found> {
    let mut found = Found::default();
    let mut sessions = Vec::new();
    for sid in accept::sessions(batch) {
        let known = (
            known.windows.get(sid),
            known.heads.get(sid),
            known.owners.get(sid),
        );
        match known {
            (Some(w), Some(h), Some(o)) => {
                found.windows.insert(sid.to_vec(), *w);
                found.heads.insert(sid.to_vec(), h.clone());
                found.owners.insert(sid.to_vec(), *o);
            }
            _ => sessions.push(sid),
        }
    }
    read_sessions(tx, &sessions, &mut found)?;
    read_spent(tx, batch, known, &mut found)?;
    let mut names = Vec::new();
    for name in accept::recipients(batch) {
        match known.queues.get(name) {
            Some(usage) => {
                found.queues.insert(name.to_owned(), *usage);
            }
            None => names.push(name),
        }
    }
    read_queues(tx, names, &mut found)?;
    Ok(found)
}

/// The windows and chain heads of `sessions` into `found`.
fn read_sessions(tx: &Transaction<'_>, sessions: &[&[u8]], found: &mut Found) -> Result<()> {
    for chunk in sessions.chunks(BATCH_ROWS) {
        let rows: Vec<WindowRow> = select_in(tx, &windows_sql::<Sqlite>, chunk)?;
        found.take_sessions(convert(rows)?);
        let rows: Vec<SessionHeadRow> = select_in(tx, &heads_sql, chunk)?;
        let heads: Vec<(Vec<u8>, u64, Vec<u8>)> = convert(rows)?;
        found
            .heads
            .extend(heads.into_iter().map(|(s, q, h)| (s, (q, h))));
    }
    Ok(())
}

/// The daily counts of `batch`'s senders into `found` (its sessions read): from `known`
/// where it has them, the rest read.
fn read_spent(
    tx: &Transaction<'_>,
    batch: &[AcceptMessage],
    known: &Found,
    found: &mut Found,
) -> Result<()> {
    let mut keys = found.spent_keys(batch);
    keys.retain(|key| match known.spent.get(key) {
        Some(bytes) => {
            found.spent.insert(*key, *bytes);
            false
        }
        None => true,
    });
    let mut rows = Vec::new();
    for (sql, params) in batch_sql::spent_reads(&keys)? {
        let mut statement = tx.prepare_cached(&sql)?;
        let read =
            statement.query_map(rusqlite::params_from_iter(&params), SpentRow::from_rusqlite)?;
        rows.extend(read.collect::<rusqlite::Result<Vec<SpentRow>>>()?);
    }
    found.take_spent(&keys, convert(rows)?);
    Ok(())
}

/// The queues of `names` into `found`: users' first, then the other names' stand-ins.
fn read_queues(tx: &Transaction<'_>, names: Vec<&str>, found: &mut Found) -> Result<()> {
    for chunk in names.chunks(BATCH_ROWS) {
        let rows: Vec<QueueUsageRow> = select_in(tx, &user_queues_sql, chunk)?;
        found.queues.extend(convert(rows)?);
    }
    for chunk in accept::unknown(names, found).chunks(BATCH_ROWS) {
        let rows: Vec<QueueUsageRow> = select_in(tx, &unknown_queues_sql, chunk)?;
        found.queues.extend(convert(rows)?);
    }
    Ok(())
}

/// The rows of `sql(n)` with the `IN` list `keys` (padded to `n`, a power of two, as the
/// sqlx path does).
fn select_in<K: ToSql + Copy, R: FromRusqlite>(
    tx: &Transaction<'_>,
    sql: &dyn Fn(usize) -> String,
    keys: &[K],
) -> Result<Vec<R>> {
    let keys = padded(keys);
    let mut statement = tx.prepare_cached(&sql(keys.len()))?;
    let rows = statement.query_map(rusqlite::params_from_iter(&keys), R::from_rusqlite)?;
    Ok(rows.collect::<rusqlite::Result<Vec<R>>>()?)
}

/// Whether `e` is SQLite's refusal of a duplicate key.
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}
