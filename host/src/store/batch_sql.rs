//! The group commit's statements (see [`accept`](super::accept)), shared by both ways of
//! running them: sqlx's ([`SqlStore::accept_messages`](super::SqlStore), both backends) and
//! the SQLite committer's ([`super::committer`], rusqlite on a thread of its own).
//!
//! Each statement takes up to [`BATCH_ROWS`] rows, and is written for a power-of-two count
//! of them (an `IN` list padded with its last item, an insert split 13 = 8 + 4 + 1), so that
//! a statement cache holds a few shapes of each rather than one per batch size.

use std::collections::BTreeMap;

use super::accept::Plan;
use super::budget::SenderDay;
use super::sql::Backend;
use super::{Result, to_db};
use kasane_protocol::ReplayWindow;

/// Most rows one batch statement carries (parameters: at most 6 × 64, far below both
/// backends' limits).
pub(super) const BATCH_ROWS: usize = 64;

/// The sessions' replay windows and users, locked for the transaction (`$1…`: session ids).
pub(super) fn windows_sql<DB: Backend>(n: usize) -> String {
    format!(
        "SELECT session_id, user_id, last_seq_from_client, seq_window FROM sessions \
         WHERE session_id IN ({}) ORDER BY session_id{}",
        params(1, n),
        DB::LOCK_ROWS
    )
}

/// The heads of the sessions' audit chains (`$1…`: session ids): one index seek per session
/// (an `IN` list with `seq = (SELECT MAX(seq) …)` walks every record of each chain).
pub(super) fn heads_sql(n: usize) -> String {
    let one = |i: usize| {
        format!(
            "SELECT * FROM (SELECT session_id, seq, record_hash FROM audit_log \
             WHERE session_id = ${i} ORDER BY seq DESC LIMIT 1) AS h{i}"
        )
    };
    let list: Vec<String> = (1..=n).map(one).collect();
    list.join(" UNION ALL ")
}

/// Deletes the queued messages of the user named `$1` whose ids are `$2…` (`n` of them).
pub(super) fn ack_sql(n: usize) -> String {
    format!(
        "DELETE FROM relay_queue WHERE recipient_id = (SELECT id FROM users WHERE name = $1) \
         AND id IN ({})",
        params(2, n)
    )
}

/// The users named `$1…`: their ids and how much their queues hold (`relay_queue_usage`,
/// kept by triggers on `relay_queue`: one row however long the queue).
pub(super) fn user_queues_sql(n: usize) -> String {
    format!(
        "SELECT users.id, users.name, COALESCE(q.messages, 0) AS messages, \
           COALESCE(q.bytes, 0) AS bytes \
         FROM users LEFT JOIN relay_queue_usage q ON q.recipient_id = users.id \
         WHERE users.name IN ({})",
        params(1, n)
    )
}

/// What the users `$2…` had audited on day `$1` (no row: nothing).
fn spent_sql(n: usize) -> String {
    format!(
        "SELECT user_id, day, bytes FROM user_usage WHERE day = $1 AND user_id IN ({})",
        params(2, n)
    )
}

/// The reads of the daily counts `keys` (sorted), as [`spent_sql`]
/// statements: one per day and [`BATCH_ROWS`] users, their `IN` lists padded.
pub(super) fn spent_reads(keys: &[SenderDay]) -> Result<Vec<(String, Vec<Param<'static>>)>> {
    let mut by_day: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for key in keys {
        by_day.entry(key.day).or_default().push(key.user_id);
    }
    let mut reads = Vec::new();
    for (day, users) in by_day {
        for chunk in users.chunks(BATCH_ROWS) {
            let users = padded(chunk);
            let mut params = vec![Param::Int(to_db(day, "day")?)];
            params.extend(users.iter().map(|u| Param::Int(*u)));
            reads.push((spent_sql(users.len()), params));
        }
    }
    Ok(reads)
}

/// How much the stand-in queues of the unknown names `$1…` hold (no row: nothing).
pub(super) fn unknown_queues_sql(n: usize) -> String {
    format!(
        "SELECT CAST(NULL AS BIGINT) AS id, name, messages, bytes FROM relay_unknown_recipients \
         WHERE name IN ({})",
        params(1, n)
    )
}

/// Sets `n` sessions' replay windows (rows of session id, highest number, bitmap).
fn set_windows_sql(n: usize) -> String {
    format!(
        "UPDATE sessions SET last_seq_from_client = v.column2, seq_window = v.column3 \
         FROM (VALUES {}) AS v WHERE sessions.session_id = v.column1",
        values(n, 3)
    )
}

/// Appends `n` audit records.
fn insert_audit_sql(n: usize) -> String {
    format!(
        "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, created_at) \
         VALUES {}",
        values(n, 6)
    )
}

/// Queues `n` entries (rows of recipient id, sealed key, created, counted bytes, and the
/// audit record's session and position).
fn insert_queue_sql(n: usize) -> String {
    format!(
        "INSERT INTO relay_queue \
         (recipient_id, body, created_at, counted, audit_session, audit_seq) VALUES {}",
        values(n, 6)
    )
}

/// Counts messages in `n` stand-in queues (rows of name, messages, bytes; each name once).
fn count_unknown_sql(n: usize) -> String {
    format!(
        "INSERT INTO relay_unknown_recipients (name, messages, bytes) VALUES {} \
         ON CONFLICT (name) DO UPDATE \
         SET messages = relay_unknown_recipients.messages + excluded.messages, \
             bytes = relay_unknown_recipients.bytes + excluded.bytes",
        values(n, 3)
    )
}

/// Adds to `n` users' daily counts (rows of user id, day, bytes; each key once).
fn add_spent_sql(n: usize) -> String {
    format!(
        "INSERT INTO user_usage (user_id, day, bytes) VALUES {} \
         ON CONFLICT (user_id, day) DO UPDATE SET bytes = user_usage.bytes + excluded.bytes",
        values(n, 3)
    )
}

/// `$first, …` for `n` parameters.
pub(super) fn params(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    list.join(", ")
}

/// `($1, …, $cols), (…), …` for `rows` rows.
fn values(rows: usize, cols: usize) -> String {
    let list: Vec<String> = (0..rows)
        .map(|r| format!("({})", params(r * cols + 1, cols)))
        .collect();
    list.join(", ")
}

/// `items` in pieces of power-of-two length, at most [`BATCH_ROWS`] each.
fn pow2_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = items.len().min(BATCH_ROWS);
        let n = 1 << n.ilog2();
        let (chunk, rest) = items.split_at(n);
        items = rest;
        Some(chunk)
    })
}

/// An `IN` list's keys: `keys` (not empty) with its last repeated up to a power of two.
pub(super) fn padded<K: Copy>(keys: &[K]) -> Vec<K> {
    let mut list = keys.to_vec();
    if let Some(last) = keys.last() {
        list.resize(keys.len().next_power_of_two(), *last);
    }
    list
}

/// A value bound to a batch statement: the three types the schema's columns take.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    /// `INTEGER` / `BIGINT`.
    Int(i64),
    /// `BLOB` / `BYTEA`.
    Blob(&'a [u8]),
    /// `TEXT`.
    Text(&'a str),
}

/// One multi-row write of a batch's plan, its parameters in order (`$1…`).
#[derive(Debug)]
pub(super) struct Write<'a> {
    /// The statement.
    pub(super) sql: String,
    /// Its parameters.
    pub(super) params: Vec<Param<'a>>,
    /// Whether it appends to the audit log, where a unique violation means another writer
    /// took a chain position first (`StoreError::AuditChainMismatch`).
    pub(super) appends_audit: bool,
}

/// A replay window's bitmap as the database's signed 64-bit integer (the same bits).
fn window_bits(w: &ReplayWindow) -> i64 {
    i64::from_le_bytes(w.seen().to_le_bytes())
}

/// The writes of `plan`, in order: windows, audit records, queue entries, stand-in counts,
/// the senders' daily counts.
pub(super) fn writes<'a>(plan: &'a Plan<'a>) -> Result<Vec<Write<'a>>> {
    let mut out = Vec::new();
    for chunk in pow2_chunks(&plan.windows) {
        let mut params = Vec::with_capacity(chunk.len() * 3);
        for (sid, w) in chunk {
            params.extend([
                Param::Blob(sid),
                Param::Int(to_db(w.top(), "seq")?),
                Param::Int(window_bits(w)),
            ]);
        }
        out.push(write(set_windows_sql(chunk.len()), params, false));
    }
    for chunk in pow2_chunks(&plan.audit) {
        let mut params = Vec::with_capacity(chunk.len() * 6);
        for r in chunk {
            params.extend([
                Param::Blob(r.session_id),
                Param::Int(to_db(r.seq, "seq")?),
                Param::Blob(&r.prev_hash),
                Param::Blob(&r.record_hash),
                Param::Blob(r.payload),
                Param::Int(to_db(r.created, "created")?),
            ]);
        }
        out.push(write(insert_audit_sql(chunk.len()), params, true));
    }
    queue_writes(plan, &mut out)?;
    Ok(out)
}

/// The queue and count half of [`writes`].
fn queue_writes<'a>(plan: &'a Plan<'a>, out: &mut Vec<Write<'a>>) -> Result<()> {
    for chunk in pow2_chunks(&plan.queue) {
        let mut params = Vec::with_capacity(chunk.len() * 6);
        for r in chunk {
            params.extend([
                Param::Int(r.recipient_id),
                Param::Blob(r.body),
                Param::Int(to_db(r.created, "created")?),
                Param::Int(to_db(r.counted, "counted")?),
                Param::Blob(r.audit.0),
                Param::Int(to_db(r.audit.1, "audit seq")?),
            ]);
        }
        out.push(write(insert_queue_sql(chunk.len()), params, false));
    }
    for chunk in pow2_chunks(&plan.unknown) {
        let mut params = Vec::with_capacity(chunk.len() * 3);
        for (name, messages, bytes) in chunk {
            params.extend([
                Param::Text(name),
                Param::Int(to_db(*messages, "messages")?),
                Param::Int(to_db(*bytes, "bytes")?),
            ]);
        }
        out.push(write(count_unknown_sql(chunk.len()), params, false));
    }
    for chunk in pow2_chunks(&plan.spent) {
        let mut params = Vec::with_capacity(chunk.len() * 3);
        for (key, bytes) in chunk {
            params.extend([
                Param::Int(key.user_id),
                Param::Int(to_db(key.day, "day")?),
                Param::Int(to_db(*bytes, "bytes")?),
            ]);
        }
        out.push(write(add_spent_sql(chunk.len()), params, false));
    }
    Ok(())
}

fn write(sql: String, params: Vec<Param<'_>>, appends_audit: bool) -> Write<'_> {
    Write {
        sql,
        params,
        appends_audit,
    }
}
