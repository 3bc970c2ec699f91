//! The shapes of the rows the store reads, one type per shape, decoded by column name
//! (`sqlx::FromRow`), and their conversion to the store's types. The databases hold `i64`;
//! the conversions check the range ([`from_db`]).

use kasane_protocol::ReplayWindow;

use super::accept::Usage;
use super::budget::SenderDay;
use super::{
    AuditCheckpoint, AuditCursor, AuditRecord, ChallengePair, DeadLetter, LoginRecord,
    QueuedMessage, Result, Session, StartLookup, ThrottleEntry, ThrottleState, UnixSeconds,
    UserRecord, UserSummary, Zeroizing, from_db,
};

/// A generated id (`users.id`, `relay_queue.id`).
#[derive(sqlx::FromRow)]
pub(super) struct IdRow {
    pub(super) id: i64,
}

/// A count (`COUNT(*) AS n`).
#[derive(sqlx::FromRow)]
pub(super) struct CountRow {
    pub(super) n: i64,
}

/// A session's token hash.
#[derive(sqlx::FromRow)]
pub(super) struct TokenHashRow {
    pub(super) token_hash: Vec<u8>,
}

/// A user's access counter.
#[derive(sqlx::FromRow)]
pub(super) struct CounterRow {
    pub(super) counter: i64,
}

/// A user's OPAQUE registration record and access counter, as a login start draws it.
#[derive(sqlx::FromRow)]
pub(super) struct LoginRow {
    opaque_record: Vec<u8>,
    counter: i64,
}

impl LoginRow {
    /// The record with its counter.
    pub(super) fn record(self) -> Result<LoginRecord> {
        Ok(LoginRecord {
            opaque_record: self.opaque_record,
            counter: from_db(self.counter, "counter")?,
        })
    }
}

/// The value of a `host_facts` entry.
#[derive(sqlx::FromRow)]
pub(super) struct FactRow {
    pub(super) value: Vec<u8>,
}

/// A session's public id (`DELETE … RETURNING session_id`).
#[derive(sqlx::FromRow)]
pub(super) struct SessionIdRow {
    pub(super) session_id: Vec<u8>,
}

/// A sequence number (a session's, aliased `AS seq`).
#[derive(sqlx::FromRow)]
pub(super) struct SeqRow {
    pub(super) seq: i64,
}

impl SeqRow {
    pub(super) fn seq(&self) -> Result<u64> {
        from_db(self.seq, "seq")
    }
}

/// `users` without its pairs.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: i64,
    opaque_record: Option<Vec<u8>>,
    counter: i64,
    created_at: i64,
}

impl UserRow {
    pub(super) fn into_record(self, name: &str, pairs: Vec<ChallengePair>) -> Result<UserRecord> {
        Ok(UserRecord {
            name: name.to_owned(),
            opaque_record: self.opaque_record,
            pairs,
            counter: from_db(self.counter, "counter")?,
            created: from_db(self.created_at, "created_at")?,
        })
    }
}

/// `challenge_pairs` of one user.
#[derive(sqlx::FromRow)]
pub(super) struct PairRow {
    prompt: String,
    salt: Vec<u8>,
    verifier: Vec<u8>,
}

impl From<PairRow> for ChallengePair {
    fn from(r: PairRow) -> Self {
        Self {
            prompt: r.prompt,
            salt: r.salt,
            verifier: Zeroizing::new(r.verifier),
        }
    }
}

/// A line of the user list: the user, its throttle entry and its pair count.
#[derive(sqlx::FromRow)]
pub(super) struct UserSummaryRow {
    name: String,
    created_at: i64,
    failures: i64,
    locked_until: i64,
    pair_count: i64,
    sessions: i64,
}

impl TryFrom<UserSummaryRow> for UserSummary {
    type Error = super::StoreError;
    fn try_from(r: UserSummaryRow) -> Result<Self> {
        Ok(Self {
            name: r.name,
            created: from_db(r.created_at, "created_at")?,
            throttle: ThrottleState {
                failures: from_db(r.failures, "failures")?,
                locked_until: from_db(r.locked_until, "locked_until")?,
            },
            pair_count: from_db(r.pair_count, "pair count")?,
            sessions: from_db(r.sessions, "sessions")?,
        })
    }
}

/// A pending login taken back.
#[derive(sqlx::FromRow)]
pub(super) struct PendingRow {
    parts: Vec<u8>,
    expires_at: i64,
}

impl PendingRow {
    /// The login state, unless it expired at `now`.
    pub(super) fn unexpired(self, now: UnixSeconds) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let parts = Zeroizing::new(self.parts);
        let expires_at = from_db(self.expires_at, "expires_at")?;
        Ok((now < expires_at).then_some(parts))
    }
}

/// A session as `touch_session` returns it (its user's name aliased `user_name`).
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    session_id: Vec<u8>,
    user_name: String,
    created_at: i64,
    expires_at: i64,
    secret: Vec<u8>,
    last_seq_from_client: i64,
    seq_window: i64,
    last_seq_to_client: i64,
}

/// A session's replay window as stored: its highest number and its bitmap.
#[derive(sqlx::FromRow)]
pub(super) struct WindowRow {
    session_id: Vec<u8>,
    user_id: i64,
    last_seq_from_client: i64,
    seq_window: i64,
}

impl TryFrom<WindowRow> for (Vec<u8>, ReplayWindow, i64) {
    type Error = super::StoreError;
    fn try_from(r: WindowRow) -> Result<Self> {
        let w = window(r.last_seq_from_client, r.seq_window)?;
        Ok((r.session_id, w, r.user_id))
    }
}

/// What a user had audited on one day (`user_usage`).
#[derive(sqlx::FromRow)]
pub(super) struct SpentRow {
    user_id: i64,
    day: i64,
    bytes: i64,
}

impl TryFrom<SpentRow> for (SenderDay, u64) {
    type Error = super::StoreError;
    fn try_from(r: SpentRow) -> Result<Self> {
        let key = SenderDay {
            user_id: r.user_id,
            day: from_db(r.day, "day")?,
        };
        Ok((key, from_db(r.bytes, "bytes")?))
    }
}

/// How much a recipient's queue holds: a user's (with its id), or an unknown name's stand-in
/// queue (no id).
#[derive(sqlx::FromRow)]
pub(super) struct QueueUsageRow {
    id: Option<i64>,
    name: String,
    messages: i64,
    bytes: i64,
}

impl TryFrom<QueueUsageRow> for (String, Usage) {
    type Error = super::StoreError;
    fn try_from(r: QueueUsageRow) -> Result<Self> {
        let usage = Usage {
            user_id: r.id,
            messages: from_db(r.messages, "messages")?,
            bytes: from_db(r.bytes, "bytes")?,
        };
        Ok((r.name, usage))
    }
}

/// A replay window from its two columns (the bitmap is the same 64 bits, signed).
fn window(top: i64, bits: i64) -> Result<ReplayWindow> {
    Ok(ReplayWindow::from_parts(
        from_db(top, "seq")?,
        u64::from_le_bytes(bits.to_le_bytes()),
    ))
}

impl SessionRow {
    /// The session, last seen at `now`.
    pub(super) fn into_session(self, now: UnixSeconds) -> Result<Session> {
        Ok(Session {
            session_id: self.session_id,
            user: self.user_name,
            created: from_db(self.created_at, "created_at")?,
            last_seen: now,
            expires_at: from_db(self.expires_at, "expires_at")?,
            secret: Zeroizing::new(self.secret),
            from_client: window(self.last_seq_from_client, self.seq_window)?,
            last_seq_to_client: from_db(self.last_seq_to_client, "seq")?,
        })
    }
}

/// A `throttle` entry with its key (several keys in one query).
#[derive(sqlx::FromRow)]
pub(super) struct ThrottleRow {
    key: String,
    failures: i64,
    locked_until: i64,
}

impl TryFrom<ThrottleRow> for (String, ThrottleState) {
    type Error = super::StoreError;

    fn try_from(r: ThrottleRow) -> Result<Self> {
        let state = ThrottleState {
            failures: from_db(r.failures, "failures")?,
            locked_until: from_db(r.locked_until, "locked_until")?,
        };
        Ok((r.key, state))
    }
}

/// What a login start reads before it counts ([`super::Store::start_lookup`]).
#[derive(sqlx::FromRow)]
pub(super) struct StartLookupRow {
    last_success: Option<i64>,
    opaque_record: Option<Vec<u8>>,
    lock_a: Option<i64>,
    lock_b: Option<i64>,
    lock_c: Option<i64>,
}

impl StartLookupRow {
    pub(super) fn lookup(self) -> Result<StartLookup> {
        let lock = |v: Option<i64>| from_db(v.unwrap_or(0), "locked_until");
        Ok(StartLookup {
            last_success: self
                .last_success
                .map(|t| from_db(t, "last_success"))
                .transpose()?,
            opaque_record: self.opaque_record,
            locked_until: [lock(self.lock_a)?, lock(self.lock_b)?, lock(self.lock_c)?],
        })
    }
}

/// A `throttle` entry as listed.
#[derive(sqlx::FromRow)]
pub(super) struct ThrottleListRow {
    key: String,
    failures: i64,
    locked_until: i64,
    last_failure: i64,
}

impl TryFrom<ThrottleListRow> for ThrottleEntry {
    type Error = super::StoreError;
    fn try_from(r: ThrottleListRow) -> Result<Self> {
        Ok(Self {
            key: r.key,
            failures: from_db(r.failures, "failures")?,
            locked_until: from_db(r.locked_until, "locked_until")?,
            last_failure: from_db(r.last_failure, "last_failure")?,
        })
    }
}

/// A queued message of a known recipient.
#[derive(sqlx::FromRow)]
pub(super) struct QueuedRow {
    id: i64,
    body: Vec<u8>,
    created_at: i64,
    /// The audit record the entry names (migration 0013/0014), if any.
    pub(super) audit_session: Option<Vec<u8>>,
    pub(super) audit_seq: Option<i64>,
    /// That record's payload, where the query joined it.
    #[sqlx(default)]
    audit_payload: Option<Vec<u8>>,
}

impl QueuedRow {
    pub(super) fn into_message(self, recipient: &str) -> Result<QueuedMessage> {
        // The record is appended in the entry's own transaction and never deleted; one gone
        // anyway (the file tampered with) reads as an empty payload, which opens nothing, so
        // the inbox moves the entry to the dead letters instead of failing on it.
        let audit = match (self.audit_session, self.audit_payload) {
            (Some(_), payload) => Some(payload.unwrap_or_default()),
            (None, _) => None,
        };
        Ok(QueuedMessage {
            id: from_db(self.id, "message id")?,
            recipient: recipient.to_owned(),
            body: self.body,
            created: from_db(self.created_at, "created_at")?,
            audit,
        })
    }
}

/// An `audit_log` record.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    session_id: Vec<u8>,
    seq: i64,
    prev_hash: Vec<u8>,
    record_hash: Vec<u8>,
    payload: Vec<u8>,
    created_at: i64,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = super::StoreError;
    fn try_from(r: AuditRow) -> Result<Self> {
        Ok(Self {
            session_id: r.session_id,
            seq: from_db(r.seq, "seq")?,
            prev_hash: r.prev_hash,
            record_hash: r.record_hash,
            payload: r.payload,
            created: from_db(r.created_at, "created_at")?,
        })
    }
}

/// The head of one session's audit chain: (`seq`, `record_hash`).
#[derive(sqlx::FromRow)]
pub(super) struct HeadRow {
    seq: i64,
    record_hash: Vec<u8>,
}

impl TryFrom<HeadRow> for (u64, Vec<u8>) {
    type Error = super::StoreError;
    fn try_from(r: HeadRow) -> Result<Self> {
        Ok((from_db(r.seq, "seq")?, r.record_hash))
    }
}

/// A row of `relay_dead_letters`, its body's length only.
#[derive(sqlx::FromRow)]
pub(super) struct DeadLetterRow {
    id: i64,
    recipient: String,
    bytes: i64,
    created_at: i64,
    moved_at: i64,
    audit_session: Option<Vec<u8>>,
    audit_seq: Option<i64>,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = super::StoreError;
    fn try_from(r: DeadLetterRow) -> Result<Self> {
        let audit = r.audit_session.zip(r.audit_seq).map(|(session_id, seq)| {
            Ok::<_, super::StoreError>(AuditCursor {
                session_id,
                seq: from_db(seq, "audit_seq")?,
            })
        });
        Ok(Self {
            id: from_db(r.id, "id")?,
            recipient: r.recipient,
            bytes: from_db(r.bytes, "bytes")?,
            created: from_db(r.created_at, "created_at")?,
            moved: from_db(r.moved_at, "moved_at")?,
            audit: audit.transpose()?,
        })
    }
}

/// A session's end: (`token_hash`, `ended_at`).
#[derive(sqlx::FromRow)]
pub(super) struct SessionEndRow {
    token_hash: Vec<u8>,
    ended_at: i64,
}

impl TryFrom<SessionEndRow> for (Vec<u8>, UnixSeconds) {
    type Error = super::StoreError;
    fn try_from(r: SessionEndRow) -> Result<Self> {
        Ok((r.token_hash, from_db(r.ended_at, "ended_at")?))
    }
}

/// The head of some session's audit chain: (`session_id`, `seq`, `record_hash`).
#[derive(sqlx::FromRow)]
pub(super) struct SessionHeadRow {
    session_id: Vec<u8>,
    seq: i64,
    record_hash: Vec<u8>,
}

impl TryFrom<SessionHeadRow> for (Vec<u8>, u64, Vec<u8>) {
    type Error = super::StoreError;
    fn try_from(r: SessionHeadRow) -> Result<Self> {
        Ok((r.session_id, from_db(r.seq, "seq")?, r.record_hash))
    }
}

/// The rows the SQLite message committer reads through rusqlite
/// ([`super::committer`]), by the column names sqlx's `FromRow` reads them by.
pub(super) trait FromRusqlite: Sized {
    /// The row's columns.
    fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// `impl FromRusqlite` for a row struct whose fields are named as its columns.
macro_rules! from_rusqlite {
    ($($row:ident { $($field:ident),+ })+) => {$(
        impl FromRusqlite for $row {
            fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(Self {
                    $($field: r.get(stringify!($field))?,)+
                })
            }
        }
    )+};
}

from_rusqlite! {
    ThrottleRow { key, failures, locked_until }
    LoginRow { opaque_record, counter }
    StartLookupRow { last_success, opaque_record, lock_a, lock_b, lock_c }
    PendingRow { parts, expires_at }
    PairRow { prompt, salt, verifier }
    WindowRow { session_id, user_id, last_seq_from_client, seq_window }
    SpentRow { user_id, day, bytes }
    SessionHeadRow { session_id, seq, record_hash }
    HeadRow { seq, record_hash }
    QueueUsageRow { id, name, messages, bytes }
    SessionIdRow { session_id }
}

/// An `audit_checkpoints` row.
#[derive(sqlx::FromRow)]
pub(super) struct CheckpointRow {
    session_id: Vec<u8>,
    seq: i64,
    record_hash: Vec<u8>,
    signature: Vec<u8>,
    created_at: i64,
}

impl TryFrom<CheckpointRow> for AuditCheckpoint {
    type Error = super::StoreError;
    fn try_from(r: CheckpointRow) -> Result<Self> {
        Ok(Self {
            session_id: r.session_id,
            seq: from_db(r.seq, "seq")?,
            record_hash: r.record_hash,
            signature: r.signature,
            created: from_db(r.created_at, "created_at")?,
        })
    }
}

/// Converts every row (the first failure wins).
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = super::StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
