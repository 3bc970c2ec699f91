//! The login path's statements, shared by both ways of running them: sqlx's
//! ([`SqlStore`](super::SqlStore), both backends) and, on a SQLite file, rusqlite on the
//! blocking pool ([`super::direct`]), so that the two answer alike (the store tests run
//! both). Each is its SQL with its parameters in order (`$1…`); the decisions between them
//! (a lock due, a state per key) are the functions here, also shared.

use super::batch_sql::{Param, params};
use super::{
    Backoff, Forgiven, LoginStage, NewPendingLogin, NewSession, PendingBounds, Result, StoreError,
    ThrottleKey, ThrottleState, UnixSeconds, to_db,
};

/// One statement and its parameters (`$1…`, in order).
#[derive(Debug)]
pub(super) struct Stmt<'a> {
    pub(super) sql: String,
    pub(super) params: Vec<Param<'a>>,
}

impl<'a> Stmt<'a> {
    fn new(sql: impl Into<String>, params: Vec<Param<'a>>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// A time or count as the databases hold it.
fn int(v: u64, what: &'static str) -> Result<Param<'static>> {
    Ok(Param::Int(to_db(v, what)?))
}

/// The stored form of each key.
pub(super) fn key_strings(keys: &[ThrottleKey<'_>]) -> Vec<String> {
    keys.iter().map(ThrottleKey::to_key).collect()
}

/// Throttle keys in the order their rows are to be locked: sorted, as an `UPDATE … WHERE key
/// IN (…)` walks the primary key, so that on PostgreSQL two statements locking the same
/// user and source rows never wait for each other in a cycle.
pub(super) fn in_lock_order(keys: &[String]) -> Vec<&String> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    sorted
}

/// [`Store::start_lookup`](super::Store::start_lookup)'s one statement.
pub(super) fn start_lookup<'a>(user: &'a str, network: &'a str, keys: &'a [String; 3]) -> Stmt<'a> {
    let sql = "SELECT (SELECT last_success FROM known_networks \
                 WHERE user_name = $1 AND network = $2) AS last_success, \
           (SELECT opaque_record FROM users WHERE name = $1 AND opaque_record IS NOT NULL \
              AND EXISTS (SELECT 1 FROM challenge_pairs p WHERE p.user_id = users.id)) \
             AS opaque_record, \
           (SELECT locked_until FROM throttle WHERE key = $3) AS lock_a, \
           (SELECT locked_until FROM throttle WHERE key = $4) AS lock_b, \
           (SELECT locked_until FROM throttle WHERE key = $5) AS lock_c";
    let [a, b, c] = keys;
    let p = vec![
        Param::Text(user),
        Param::Text(network),
        Param::Text(a),
        Param::Text(b),
        Param::Text(c),
    ];
    Stmt::new(sql, p)
}

/// The rows of `keys` (`key, failures, locked_until`), in no order: see [`states_in_order`].
pub(super) fn states(keys: &[String]) -> Stmt<'_> {
    let sql = format!(
        "SELECT key, failures, locked_until FROM throttle WHERE key IN ({})",
        params(1, keys.len())
    );
    Stmt::new(sql, keys.iter().map(|k| Param::Text(k)).collect())
}

/// Each key's state from `rows` (`(key, state)`), in the keys' order; all zero for a key
/// with no row.
pub(super) fn states_in_order(
    keys: &[String],
    rows: &[(String, ThrottleState)],
) -> Vec<ThrottleState> {
    keys.iter()
        .map(|k| rows.iter().find(|(r, _)| r == k).map(|(_, s)| *s))
        .map(Option::unwrap_or_default)
        .collect()
}

/// Counts one failure of each of `keys` (distinct, non-empty) in one upsert, `RETURNING key,
/// failures, locked_until`: what is left of the count after one failure leaked per
/// `decay_secs` since the last (never negative, nothing for a clock behind), plus this one,
/// capped at the ceiling.
pub(super) fn count_failures<'a>(
    keys: &'a [String],
    now: UnixSeconds,
    backoff: &Backoff,
) -> Result<Stmt<'a>> {
    let rows: Vec<String> = (4..=keys.len() + 3)
        .map(|i| format!("(${i}, 1, 0, $1)"))
        .collect();
    // $1 now, $2 decay_secs, $3 the ceiling.
    let leaked = "(CASE WHEN $1 > throttle.last_failure \
         THEN ($1 - throttle.last_failure) / $2 ELSE 0 END)";
    let left = format!(
        "(CASE WHEN throttle.failures > {leaked} THEN throttle.failures - {leaked} ELSE 0 END)"
    );
    let sql = format!(
        "INSERT INTO throttle (key, failures, locked_until, last_failure) VALUES {} \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN {left} + 1 > $3 THEN $3 ELSE {left} + 1 END, \
           last_failure = $1 \
         RETURNING key, failures, locked_until",
        rows.join(", ")
    );
    let mut p = vec![
        int(now, "now")?,
        int(backoff.decay_secs.max(1), "decay_secs")?,
        int(backoff.ceiling(), "ceiling")?,
    ];
    p.extend(in_lock_order(keys).into_iter().map(|k| Param::Text(k)));
    Ok(Stmt::new(sql, p))
}

/// The state after the failure that brought a key to `counted`, locked per `backoff`, and
/// whether that lock is to be written ([`lock_until`]): a lock only ever moves later, so
/// concurrent failures (each with its own count) leave the longest lock, in any order.
pub(super) fn lock_due(
    counted: ThrottleState,
    now: UnixSeconds,
    backoff: &Backoff,
) -> (ThrottleState, bool) {
    let lock = backoff.lock_secs(counted.failures);
    if lock == 0 {
        return (counted, false);
    }
    // Capped to what the database holds.
    let locked_until = now
        .saturating_add(lock)
        .min(i64::MAX as u64)
        .max(counted.locked_until);
    let state = ThrottleState {
        failures: counted.failures,
        locked_until,
    };
    (state, true)
}

/// The state a count returned for `key` (`counted` is the upsert's `RETURNING` rows).
pub(super) fn counted(counted: &[(String, ThrottleState)], key: &str) -> Result<ThrottleState> {
    let found = counted.iter().find(|(k, _)| k == key);
    let (_, state) = found.ok_or(StoreError::OutOfRange {
        what: "throttle key",
    })?;
    Ok(*state)
}

/// Writes the lock [`lock_due`] decided, unless a later one is there already.
pub(super) fn lock_until(key: &str, locked_until: UnixSeconds) -> Result<Stmt<'_>> {
    let sql = "UPDATE throttle SET locked_until = $2 WHERE key = $1 AND locked_until < $2";
    let p = vec![Param::Text(key), int(locked_until, "locked_until")?];
    Ok(Stmt::new(sql, p))
}

/// Increments the access counter of `user` if it can log in (an OPAQUE record and pairs),
/// `RETURNING opaque_record, counter`.
pub(super) fn draw_counter(user: &str) -> Stmt<'_> {
    let sql = "UPDATE users SET counter = counter + 1 \
         WHERE name = $1 AND opaque_record IS NOT NULL \
           AND EXISTS (SELECT 1 FROM challenge_pairs p WHERE p.user_id = users.id) \
         RETURNING opaque_record, counter";
    Stmt::new(sql, vec![Param::Text(user)])
}

/// Room for a pending login: expired rows; the source's oldest starts past `per_source − 1`;
/// the oldest starts past `total − 1`; the user's oldest bundles past `bundles_per_user − 1`.
/// Each walks its index over at most the rows it bounds (few unless under attack). A flood
/// of starts never evicts a bundle: a bundle exists only past the password, and only the
/// same user's bundles make room for it.
pub(super) fn evict_pending<'a>(
    login: &'a NewPendingLogin,
    now: UnixSeconds,
    bounds: PendingBounds,
) -> Result<Stmt<'a>> {
    let sql = "DELETE FROM pending_logins WHERE expires_at <= $1 \
         OR (stage = 'start' AND seq <= (SELECT seq FROM pending_logins WHERE stage = 'start' \
              ORDER BY seq DESC LIMIT 1 OFFSET $2)) \
         OR (stage = 'start' AND source = $3 AND seq <= \
             (SELECT seq FROM pending_logins WHERE stage = 'start' AND source = $3 \
              ORDER BY seq DESC LIMIT 1 OFFSET $4)) \
         OR (stage = 'bundle' AND user_name = $5 AND seq <= \
             (SELECT seq FROM pending_logins WHERE stage = 'bundle' AND user_name = $5 \
              ORDER BY seq DESC LIMIT 1 OFFSET $6))";
    let p = vec![
        int(now, "now")?,
        int(bounds.total.saturating_sub(1), "total")?,
        Param::Text(&login.source),
        int(bounds.per_source.saturating_sub(1), "per_source")?,
        Param::Text(&login.user),
        int(
            bounds.bundles_per_user.saturating_sub(1),
            "bundles_per_user",
        )?,
    ];
    Ok(Stmt::new(sql, p))
}

/// Keeps `login` (its six values from `$first`).
pub(super) fn insert_pending(login: &NewPendingLogin, first: usize) -> Result<Stmt<'_>> {
    let sql = format!(
        "INSERT INTO pending_logins (id, stage, source, parts, expires_at, user_name) \
         VALUES ({})",
        params(first, 6)
    );
    let p = vec![
        Param::Blob(&login.id),
        Param::Text(login.stage.as_str()),
        Param::Text(&login.source),
        Param::Blob(&login.parts),
        int(login.expires_at, "expires_at")?,
        Param::Text(&login.user),
    ];
    Ok(Stmt::new(sql, p))
}

/// Ends the logins in flight of the user named `$1` (their credentials changed, their
/// sessions ended, or the user is gone).
pub(super) const DELETE_PENDING_OF_USER: &str = "DELETE FROM pending_logins WHERE user_name = $1";

/// Takes the pending login `id` at `stage` (`RETURNING parts, expires_at`).
pub(super) fn take_pending(id: &[u8], stage: LoginStage) -> Stmt<'_> {
    let sql = "DELETE FROM pending_logins WHERE id = $1 AND stage = $2 \
         RETURNING parts, expires_at";
    Stmt::new(sql, vec![Param::Blob(id), Param::Text(stage.as_str())])
}

/// A forgiven key's stored form, the lock end its counted failure set, and the one before.
pub(super) type ForgivenRow = (String, UnixSeconds, UnixSeconds);

/// The stored forms of `forgiven`.
pub(super) fn forgiven_rows(forgiven: &[Forgiven<'_>]) -> Vec<ForgivenRow> {
    forgiven
        .iter()
        .map(|f| (f.key.to_key(), f.engaged, f.before))
        .collect()
}

/// Takes back one failure of each key, and its lock back to the one before if the lock is
/// still the one the failure set.
pub(super) fn forgive(forgiven: &[ForgivenRow]) -> Result<Stmt<'_>> {
    // Per key `$k`: back to `$k+2` if the lock still ends at `$k+1`.
    let mut cases = Vec::with_capacity(forgiven.len());
    let mut list = Vec::with_capacity(forgiven.len());
    let mut p = Vec::with_capacity(3 * forgiven.len());
    for (i, (key, engaged, before)) in forgiven.iter().enumerate() {
        let k = 3 * i + 1;
        cases.push(format!(
            "WHEN key = ${k} AND locked_until = ${} THEN ${}",
            k + 1,
            k + 2
        ));
        list.push(format!("${k}"));
        p.extend([
            Param::Text(key),
            int(*engaged, "engaged")?,
            int(*before, "before")?,
        ]);
    }
    let sql = format!(
        "UPDATE throttle SET failures = failures - 1, \
           locked_until = CASE {} ELSE locked_until END \
         WHERE key IN ({}) AND failures > 0",
        cases.join(" "),
        list.join(", ")
    );
    Ok(Stmt::new(sql, p))
}

/// A user's pairs in card order (`prompt, salt, verifier`).
pub(super) fn challenge_pairs(name: &str) -> Stmt<'_> {
    let sql = "SELECT prompt, salt, verifier FROM challenge_pairs \
         WHERE user_id = (SELECT id FROM users WHERE name = $1) ORDER BY idx";
    Stmt::new(sql, vec![Param::Text(name)])
}

/// Creates session `s` (nothing if its user is gone).
pub(super) fn create_session(s: &NewSession) -> Result<Stmt<'_>> {
    let sql = "INSERT INTO sessions (token_hash, session_id, user_id, created_at, \
           last_seen, expires_at, secret, last_seq_from_client, last_seq_to_client) \
         SELECT $1, $2, id, $3, $3, $4, $5, 0, 0 FROM users WHERE name = $6";
    let p = vec![
        Param::Blob(&s.token_hash),
        Param::Blob(&s.session_id),
        int(s.created, "created")?,
        int(s.expires_at, "expires_at")?,
        Param::Blob(&s.secret),
        Param::Text(&s.user),
    ];
    Ok(Stmt::new(sql, p))
}

/// Ends the least recently used sessions of `s`'s user beyond `s.max_per_user`, `s` itself
/// never (it is counted first). Ties in `last_seen` go by age, then by token hash, so the
/// statement decides the same on either backend.
pub(super) fn trim_sessions(s: &NewSession) -> Result<Stmt<'_>> {
    let sql = "DELETE FROM sessions WHERE token_hash IN (\
           SELECT token_hash FROM (\
             SELECT token_hash, ROW_NUMBER() OVER (\
               ORDER BY last_seen DESC, created_at DESC, token_hash) AS n \
             FROM sessions \
             WHERE user_id = (SELECT id FROM users WHERE name = $1) AND token_hash <> $2\
           ) AS older WHERE n >= $3)";
    let p = vec![
        Param::Text(&s.user),
        Param::Blob(&s.token_hash),
        int(u64::from(s.max_per_user), "max_per_user")?,
    ];
    Ok(Stmt::new(sql, p))
}

/// What [`trim_sessions`] came to: how many sessions it ended (logged; a failure is logged
/// too and costs the login nothing, as the next login trims again).
pub(super) fn trimmed<E: std::fmt::Display>(user: &str, ended: std::result::Result<u64, E>) {
    match ended {
        Ok(0) => {}
        Ok(n) => tracing::info!(user, ended = n, "sessions ended: the user's session cap"),
        Err(e) => tracing::error!(user, error = %e, "ending sessions beyond the user's cap"),
    }
}

/// The durable barrier's write ([`Store::make_durable`](super::Store::make_durable)): it
/// changes a row, so its commit has something to sync.
pub(super) const MARK_DURABLE: &str = "UPDATE durable_marks SET n = n + 1 WHERE id = 1";

/// What [`MARK_DURABLE`] came to, on either path: one row changed, else
/// [`StoreError::NotDurable`] (a failure is logged here; the caller's answer is uniform).
pub(super) fn marked<E: std::fmt::Display>(changed: std::result::Result<u64, E>) -> Result<()> {
    match changed {
        Ok(1) => Ok(()),
        Ok(_) => Err(StoreError::NotDurable),
        Err(e) => {
            tracing::error!(error = %e, "durable_marks");
            Err(StoreError::NotDurable)
        }
    }
}

/// Ends the session whose token hashes to `$1`, returning its public id.
pub(super) const DELETE_SESSION: &str =
    "DELETE FROM sessions WHERE token_hash = $1 RETURNING session_id";

/// [`DELETE_SESSION`] for `token_hash`.
pub(super) fn delete_session(token_hash: &[u8]) -> Stmt<'_> {
    Stmt::new(DELETE_SESSION, vec![Param::Blob(token_hash)])
}

/// Deletes the throttle entry `$1`.
pub(super) const DELETE_THROTTLE: &str = "DELETE FROM throttle WHERE key = $1";

/// Forgets the failures of `key`.
pub(super) fn clear_throttle(key: &str) -> Stmt<'_> {
    Stmt::new(DELETE_THROTTLE, vec![Param::Text(key)])
}

/// The head of session `$1`'s audit chain (the logout's read).
pub(super) fn chain_head(session_id: &[u8]) -> Stmt<'_> {
    Stmt::new(super::sql::CHAIN_HEAD, vec![Param::Blob(session_id)])
}
