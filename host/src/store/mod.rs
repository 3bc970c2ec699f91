//! Storage: one [`Store`] trait, an embedded SQLite backend (the default) and a PostgreSQL
//! backend for scale-out (DESIGN.md §5).
//!
//! [`open`] takes a URL — `sqlite://<path>?mode=rwc` or `postgres://…` — connects, runs the
//! backend's migrations (`host/migrations/sqlite/`, `host/migrations/postgres/`, embedded
//! with `sqlx::migrate!`) and hands back an `Arc<dyn Store>`. Both backends are one
//! implementation, [`SqlStore`], generic over the sqlx database: the SQL is written once in
//! the dialect the two share (`$n` parameters, `RETURNING`, `ON CONFLICT … DO UPDATE`); only
//! the DDL differs. Rows are read by column name into one `sqlx::FromRow` type per shape.
//!
//! The store never reads the clock: every method that depends on time takes `now` (unix
//! seconds) from the caller, so tests control time ([`Clock`] is the host's source of it).
//!
//! # Example
//!
//! ```
//! use kasane_host::store::{self, ChallengePair, NewUser, Zeroizing};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Runtime::new()?;
//! # rt.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}?mode=rwc", dir.path().join("kasane.db").display());
//! let store = store::open(&url).await?;
//! let now = 1_700_000_000;
//! store
//!     .create_user(
//!         &NewUser {
//!             name: "alice".into(),
//!             opaque_record: vec![0; 192],
//!             pairs: vec![ChallengePair {
//!                 prompt: "A7".into(),
//!                 salt: vec![0; 16],
//!                 verifier: Zeroizing::new(vec![0; 32]),
//!             }],
//!         },
//!         now,
//!     )
//!     .await?;
//! // One access counter per user, each value handed out once (a login draws its value with
//! // `count_start`, which also counts the attempt).
//! assert_eq!(store.next_counter("alice").await?, 1);
//! assert_eq!(store.next_counter("alice").await?, 2);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Schema
//!
//! | table | key | holds |
//! |---|---|---|
//! | `users` | `id`, unique `name` | OPAQUE registration record (nothing password-equivalent; `NULL` for a user from before login v2), access `counter`, `created_at` |
//! | `challenge_pairs` | (`user_id`, `idx`) | prompt, per-pair salt, keyed response verifier (HMAC under a key from OPAQUE's export key; never the response) |
//! | `pending_logins` | `id` (login id or bundle id) | `stage` (`start` / `bundle`), `source`, `user_name`, the host's encoded login state (secret: OPAQUE's server state or session key, verifiers), `expires_at` |
//! | `sessions` | `token_hash` (only a hash of the token), unique `session_id` | user, created / last seen / absolute expiry, the host's encoded session state (`secret`: session secret, transform context, verifiers), last sequence number per direction |
//! | `throttle` | `key` (`u:<user>`, `a:<address>`, `a:<network>/<prefix>` or `un:<network>/<prefix>\|<user>`) | consecutive failures, `locked_until` |
//! | `relay_queue` | `id` (increasing) | recipient, the message's key sealed at rest and the audit record (`audit_session`, `audit_seq`) holding its body (before migration 0013/0014: the sealed body), bytes counted against the quota, `created_at` |
//! | `relay_queue_usage` | `recipient_id` | how many messages and bytes a user's queue holds, kept by triggers on `relay_queue` (the quota check reads this one row) |
//! | `relay_unknown_recipients` | `name` | for a name with no user: how many messages and bytes its stand-in queue holds (the quota counts them as for a real queue; no bodies) |
//! | `audit_log` | (`session_id`, `seq`) | previous record hash, record hash, payload as received; append-only (triggers refuse `UPDATE`/`DELETE`, except `DELETE` of a chain `audit_pruned` marks) |
//! | `audit_checkpoints` | (`session_id`, `seq`) | record hash at that position, host-key signature; append-only |
//! | `audit_pruned` | `session_id` | the head (`seq`, record hash) of a chain `audit prune` removed, host-key signature; append-only |
//! | `relay_dead_letters` | `id` (its queue id) | recipient, the body that did not open, `created_at`, `moved_at` |
//! | `host_facts` | `name` | what every host on the database must agree with (`queue_key_id`) |
//! | `durable_marks` | `id` (one row) | a count a durable commit increments to put every earlier relaxed commit on disk ([`Store::make_durable`]) |
//!
//! Deleting a user cascades to its pairs, sessions and queued messages; the audit log keeps
//! everything until [`Store::prune_audit_chain`] removes an ended session's chain.
//!
//! # Atomicity
//!
//! Every operation that must not race is **one SQL statement**, so it is atomic on both
//! backends without application locks, and equally so across any number of host replicas
//! sharing one PostgreSQL database:
//!
//! - [`Store::next_counter`]: `UPDATE users SET counter = counter + 1 … RETURNING counter`.
//!   PostgreSQL takes the row lock and re-reads the committed row under READ COMMITTED;
//!   SQLite serializes writers on the database lock. Each caller gets a distinct, contiguous
//!   value, and it is committed (SQLite: WAL with `synchronous = FULL`; PostgreSQL: the
//!   default `synchronous_commit`) before the method returns.
//! - [`Store::take_pending_login`]: `DELETE … RETURNING`: at most one caller gets the row,
//!   so a login step is served once, by whichever replica gets the request first.
//! - [`Store::advance_seq`]: `UPDATE … SET last_seq = $seq WHERE last_seq < $seq` — a
//!   compare-and-set: a replayed or reordered sequence number matches no row.
//! - [`Store::record_failure`]: `INSERT … ON CONFLICT DO UPDATE SET failures = failures + 1
//!   RETURNING failures`, then, past the free failures, `UPDATE … SET locked_until = $t
//!   WHERE locked_until < $t`: a lock only moves later, so concurrent failures leave the
//!   longest lock whatever their order.
//! - [`Store::count_start`]: one transaction that takes the write lock first (SQLite's
//!   `BEGIN IMMEDIATE`; PostgreSQL: a write to every key's row), then reads the keys' locks
//!   and, only if none is locked, counts and draws the user's next access counter: the check
//!   and the count cannot be interleaved. It commits relaxed; [`Store::make_durable`], a
//!   durable write started after it, puts the counter on disk before any bundle carries it.
//! - [`Store::accept_messages`]: one transaction for a batch of messages (group commit),
//!   a fixed number of statements whatever its size: it reads its sessions' replay windows
//!   (`last_seq_from_client`, `seq_window`: the highest number accepted and a bitmap of the 64
//!   below it) locked (SQLite's write lock; PostgreSQL `FOR UPDATE`, in session order), their
//!   chains' heads and its recipients' queue usage, decides each message in order in memory
//!   (window, quota, chain position), then writes the moved windows, the audit records and
//!   the queue entries in multi-row statements, and commits once. The quota is a bound, not
//!   an exact cap on PostgreSQL: batches from different sessions to one recipient may each
//!   pass the check at once and overshoot it by as many as run concurrently (on SQLite the
//!   batch holds the write lock, so it is exact).
//! - [`Store::append_audit`]: `INSERT … SELECT … WHERE` the previous record of *this session*
//!   has `seq - 1` and `record_hash = prev_hash` (or the chain is empty and `seq = 1`); the
//!   primary key (`session_id`, `seq`) makes a concurrent second append at the same position
//!   fail. Chains are per session, so there is no global lock on the hot path.
//!
//! Transactions that write more than one statement (creating a user with its pairs,
//! replacing pairs) start with a write, so SQLite takes its write lock at once rather
//! than upgrading a read lock (which fails with `SQLITE_BUSY` instead of waiting).
//!
//! # Durability
//!
//! Two kinds of commit (see [`SqlStore`]). **Durable** (on disk, or on the PostgreSQL
//! server's disk, when the call returns): users and pairs, the access counter, logout,
//! messages and the audit log, checkpoints. **Relaxed** (survives a crash of the host
//! process, not necessarily a power loss or a database-server crash): logins in flight,
//! throttle counts, session creation and last-seen times, housekeeping. A relaxed commit is
//! never lost while a later durable one is kept: both backends write their log in order.
//!
//! # Secrets
//!
//! Verifiers and session secrets are held in [`Zeroizing`] buffers, and no type here prints
//! secret bytes in `Debug`. Errors never carry query parameters.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
pub use zeroize::Zeroizing;

mod accept;
mod batch_sql;
mod budget;
mod committer;
mod direct;
mod login_sql;
mod postgres;
mod restore;
mod rows;
mod sql;
mod sqlite;

pub use committer::SqliteCommitter;
pub use postgres::PgStore;
pub use restore::{RestoreReport, restore_file};
pub use sql::{Backend, SqlStore};
pub use sqlite::{SqliteStore, database_file};

/// Unix time in seconds, as passed to the store by its caller.
pub use kasane_os::clock::UnixSeconds;

pub use kasane_os::clock::{Clock, SystemClock};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A SQLite connection of the message committer ([`SqliteCommitter`]) or of the login
    /// path's calls failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A store call's blocking thread ended without an answer (it panicked).
    #[error("database call aborted")]
    CallAborted,
    /// Running the migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating a new SQLite database file (mode 0600) failed.
    #[error("creating the database file")]
    CreateFile(#[source] std::io::Error),
    /// The URL names no supported backend (only the scheme is reported: URLs can hold passwords).
    #[error("unsupported database URL scheme {scheme:?} (expected sqlite: or postgres:)")]
    UnsupportedUrl {
        /// The scheme of the URL, up to its first `:`.
        scheme: String,
    },
    /// The database URL could not be parsed (e.g. an unknown `sslmode`). The URL itself is not
    /// reported: it may hold a password.
    #[error("invalid database URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The TLS connection to the database could not be made: the URL asks for TLS
    /// (`sslmode=require`, `verify-ca` or `verify-full`) and the server offers none, the
    /// handshake failed, or its certificate does not verify against `sslrootcert` (or the
    /// built-in roots) or does not name the host.
    #[error("TLS connection to the database failed")]
    Tls(#[source] sqlx::Error),
    /// The backend cannot write a backup of itself; `hint` says what to run instead.
    #[error("the {backend} backend does not back itself up: {hint}")]
    Unsupported {
        /// The backend (`"postgres"`).
        backend: &'static str,
        /// What to use instead (for PostgreSQL, the `pg_dump` command line).
        hint: &'static str,
    },
    /// The backup file exists already (it is never overwritten), or creating, writing or
    /// syncing it failed.
    #[error("writing the backup file {}", path.display())]
    BackupFile {
        /// The backup file.
        path: std::path::PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The backup path is not UTF-8, which SQLite's `VACUUM INTO` needs.
    #[error("the backup path {} is not UTF-8", path.display())]
    BackupPath {
        /// The backup file.
        path: std::path::PathBuf,
    },
    /// The database file is open elsewhere (a serving host): it cannot be replaced.
    #[error("{} is in use: stop the host (and anything else that has it open) first", path.display())]
    InUse {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// The file to restore is not a database of this host.
    #[error("{} is not a Kasane host database: {reason}", path.display())]
    NotADatabase {
        /// The file.
        path: std::path::PathBuf,
        /// What SQLite or the check said.
        reason: String,
    },
    /// Reading the backup, or writing, syncing or renaming a file of the restore, failed (a
    /// file the restore would create exists already: it is never overwritten).
    #[error("restoring: {}", path.display())]
    RestoreFile {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A user with this name already exists.
    #[error("user already exists")]
    UserExists,
    /// No user with this name.
    #[error("no such user")]
    UserNotFound,
    /// No live session with this id.
    #[error("no such session")]
    SessionNotFound,
    /// A session or bundle with this id already exists.
    #[error("duplicate id")]
    Duplicate,
    /// The audit record does not extend its session's chain (wrong sequence number or
    /// previous hash, or another record was appended at that position first), or a chain
    /// being pruned does not hold every record up to its head.
    #[error("audit record does not extend the chain of its session")]
    AuditChainMismatch,
    /// An audit chain cannot be pruned: it was pruned already (by another process, say), it
    /// no longer ends at the head given, its session is live, or a queued message names one
    /// of its records.
    #[error(
        "audit chain not prunable (pruned already, it grew, its session is live, or a queued \
         message needs it)"
    )]
    NotPrunable,
    /// The durable write that puts earlier relaxed commits on disk failed, or found no row
    /// to write (`durable_marks`): they may not be durable.
    #[error("earlier commits could not be made durable")]
    NotDurable,
    /// A number does not fit the database's signed 64-bit integers, or a stored value is invalid.
    #[error("value out of range: {what}")]
    OutOfRange {
        /// Which value.
        what: &'static str,
    },
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One registered challenge/response pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengePair {
    /// The challenge shown to the user (the code on their card).
    pub prompt: String,
    /// Per-pair salt for the verifier.
    pub salt: Vec<u8>,
    /// HMAC(K_resp, u8(len(salt)) ‖ salt ‖ normalize(response)): never the response itself.
    pub verifier: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChallengePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengePair")
            .field("prompt", &self.prompt)
            .field("salt_len", &self.salt.len())
            .field("verifier", &"<redacted>")
            .finish()
    }
}

/// A user to create.
#[derive(Clone)]
pub struct NewUser {
    /// Unique user name.
    pub name: String,
    /// The OPAQUE registration record (RFC 9807): nothing password-equivalent.
    pub opaque_record: Vec<u8>,
    /// The user's challenge/response pairs, in card order.
    pub pairs: Vec<ChallengePair>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("opaque_record", &"<redacted>")
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

/// A stored user.
#[derive(Clone)]
pub struct UserRecord {
    /// User name.
    pub name: String,
    /// The OPAQUE registration record; `None` for a user stored before login v2, who must be
    /// enrolled again.
    pub opaque_record: Option<Vec<u8>>,
    /// Pairs in card order.
    pub pairs: Vec<ChallengePair>,
    /// The last access counter handed out (0: none yet).
    pub counter: u64,
    /// When the user was created.
    pub created: UnixSeconds,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("opaque_record", &"<redacted>")
            .field("pairs", &self.pairs.len())
            .field("counter", &self.counter)
            .field("created", &self.created)
            .finish()
    }
}

/// A line of `user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// User name.
    pub name: String,
    /// When the user was created.
    pub created: UnixSeconds,
    /// Throttling state of the user's key (failures since the last success, lock end).
    pub throttle: ThrottleState,
    /// Number of registered pairs.
    pub pair_count: u64,
    /// Sessions stored for the user (live ones, and ones ended by a timeout that
    /// housekeeping has not purged yet: at most a minute).
    pub sessions: u64,
}

/// Which request a pending login waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginStage {
    /// After the start: waits for the finish request (keyed by login id).
    Start,
    /// After the challenge bundle: waits for the response (keyed by bundle id).
    Bundle,
}

impl LoginStage {
    /// The stored form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Bundle => "bundle",
        }
    }
}

/// A login between two of its requests, kept in the store so that any replica can serve the
/// next step (see [`Store::put_pending_login`]).
#[derive(Clone)]
pub struct NewPendingLogin {
    /// The login id (stage [`LoginStage::Start`]) or bundle id (stage [`LoginStage::Bundle`]).
    pub id: Vec<u8>,
    /// The request it waits for.
    pub stage: LoginStage,
    /// The throttle key of the source network it came from (`a:<network>/<prefix>`).
    pub source: String,
    /// The user name the start asked for: a credential change, `user logout` and `user
    /// remove` of that name end its logins in flight ([`Store::reenroll`],
    /// [`Store::end_sessions`], [`Store::remove_user`]).
    pub user: String,
    /// The host's encoding of the login state: secret (OPAQUE's server state or session key).
    pub parts: Zeroizing<Vec<u8>>,
    /// After this time it is refused (and purged).
    pub expires_at: UnixSeconds,
}

impl std::fmt::Debug for NewPendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPendingLogin")
            .field("id", &self.id)
            .field("stage", &self.stage)
            .field("source", &self.source)
            .field("parts", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How many logins may wait between steps: at most `per_source` starts of one source network
/// and at most `total` logins in all; beyond either, the oldest are evicted (their logins fail
/// at the next step) to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBounds {
    /// All starts waiting for their finish (before the password is proved).
    pub total: u64,
    /// Starts waiting for their finish, per source network.
    pub per_source: u64,
    /// Challenge bundles waiting for their response, per user (past the password: only the
    /// password's holder makes them, and only that user's are evicted for them).
    pub bundles_per_user: u64,
}

/// A session to create.
#[derive(Clone)]
pub struct NewSession {
    /// Hash of the session token (the token itself is never stored).
    pub token_hash: Vec<u8>,
    /// Public session id (bound into message AAD and the audit chain).
    pub session_id: Vec<u8>,
    /// The user.
    pub user: String,
    /// Creation time (also the first `last_seen`).
    pub created: UnixSeconds,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
    /// Session secret material.
    pub secret: Zeroizing<Vec<u8>>,
    /// Most sessions the user keeps, this one included: creating it ends the user's least
    /// recently used sessions beyond that (`session.max_per_user`).
    pub max_per_user: u32,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("session_id", &self.session_id)
            .field("user", &self.user)
            .field("created", &self.created)
            .field("expires_at", &self.expires_at)
            .field("max_per_user", &self.max_per_user)
            .finish_non_exhaustive()
    }
}

/// A live session, as returned by [`Store::touch_session`].
#[derive(Clone)]
pub struct Session {
    /// Public session id.
    pub session_id: Vec<u8>,
    /// The user.
    pub user: String,
    /// Creation time.
    pub created: UnixSeconds,
    /// Last use (the `now` of this touch).
    pub last_seen: UnixSeconds,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
    /// Session secret material.
    pub secret: Zeroizing<Vec<u8>>,
    /// The client's sequence numbers accepted so far: the highest (0: none yet) and the
    /// replay window below it.
    pub from_client: ReplayWindow,
    /// Last sequence number used towards the client (0: none yet).
    pub last_seq_to_client: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("user", &self.user)
            .field("created", &self.created)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .field("from_client", &self.from_client)
            .field("last_seq_to_client", &self.last_seq_to_client)
            .finish_non_exhaustive()
    }
}

/// Message direction, for per-direction sequence numbers (the ABI's own type).
pub use kasane_abi::Direction;

/// A session's anti-replay window for client-to-host messages (the protocol's own type).
pub use kasane_protocol::ReplayWindow;

/// A throttling key: users and source networks are throttled separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKey<'a> {
    /// Failures for one user name.
    User(&'a str),
    /// Failures from one source address (its /32 or /128 network).
    Source(IpAddr),
    /// Failures from a source network: the address with the bits past `prefix` cleared
    /// (build with [`ThrottleKey::network`]).
    Network(IpAddr, u8),
    /// Failures for one user from one network it is known to log in from (see
    /// [`Store::is_known_network`]): what throttles that user there instead of
    /// [`ThrottleKey::User`], so that a flood naming the user from elsewhere does not lock it
    /// out of its own networks (see [`Store::start_lookup`]). The network as in
    /// [`ThrottleKey::Network`].
    UserFrom(&'a str, IpAddr, u8),
}

impl ThrottleKey<'_> {
    /// The key of `addr`'s network of `prefix` bits (capped at the address's length).
    #[must_use]
    pub fn network(addr: IpAddr, prefix: u8) -> ThrottleKey<'static> {
        let net = match addr {
            IpAddr::V4(a) => {
                let p = u32::from(prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let p = u32::from(prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        ThrottleKey::Network(net, prefix.min(max))
    }

    /// The stored form: `u:<name>`, `a:<address>`, `a:<network>/<prefix>`, or
    /// `un:<network>/<prefix>|<name>` (a network never holds `|`, so the form is unambiguous).
    #[must_use]
    pub fn to_key(&self) -> String {
        match self {
            Self::User(name) => format!("u:{name}"),
            Self::Source(addr) => format!("a:{addr}"),
            Self::Network(net, prefix) => format!("a:{net}/{prefix}"),
            Self::UserFrom(name, net, prefix) => format!("un:{net}/{prefix}|{name}"),
        }
    }
}

/// How long a network a user logged in from stays known ([`Store::start_lookup`]):
/// 30 days; housekeeping forgets it after.
pub const KNOWN_NETWORK_SECS: u64 = 30 * 86_400;

/// Exponential backoff with decay: after `free_failures` failures, each further failure locks
/// the key for `base_secs · 2^(extra − 1)` seconds, capped at `max_secs`. A failure counts
/// onto what is left of the count after one failure is forgotten per `decay_secs` since the
/// last one, and the count never exceeds [`Backoff::ceiling`] (where the lock is longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed before any lock.
    pub free_failures: u32,
    /// First lock duration.
    pub base_secs: u64,
    /// Longest lock duration.
    pub max_secs: u64,
    /// One failure is forgotten per this many seconds without a new one (at least 1).
    pub decay_secs: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_secs: 2,
            max_secs: 15 * 60,
            decay_secs: 5 * 60,
        }
    }
}

impl Backoff {
    /// The highest count kept: the first count whose lock is `max_secs` (more would only
    /// take longer to decay, not lock longer).
    #[must_use]
    pub fn ceiling(&self) -> u64 {
        let mut n = u64::from(self.free_failures) + 1;
        while self.lock_secs(n) < self.max_secs && n < u64::from(self.free_failures) + 64 {
            n += 1;
        }
        n
    }

    /// What is left at `now` of `failures` counted last at `last_failure`.
    #[must_use]
    pub fn decayed(&self, failures: u64, last_failure: UnixSeconds, now: UnixSeconds) -> u64 {
        let leaked = now.saturating_sub(last_failure) / self.decay_secs.max(1);
        failures.saturating_sub(leaked)
    }

    /// Lock duration after `failures` consecutive failures (0 = not locked).
    #[must_use]
    pub fn lock_secs(&self, failures: u64) -> u64 {
        let Some(extra) = failures.checked_sub(u64::from(self.free_failures)) else {
            return 0;
        };
        if extra == 0 {
            return 0;
        }
        let shift = u32::try_from(extra - 1).unwrap_or(u32::MAX).min(63);
        self.base_secs
            .saturating_mul(1u64 << shift)
            .min(self.max_secs)
    }
}

/// A throttle entry as stored (`kasane-host throttle list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleEntry {
    /// The stored key: `u:<user>`, `a:<address>` or `a:<network>/<prefix>`.
    pub key: String,
    /// Failures as last counted (before decay).
    pub failures: u64,
    /// Locked while `now < locked_until`.
    pub locked_until: UnixSeconds,
    /// When the last failure was counted.
    pub last_failure: UnixSeconds,
}

/// One failure to take back ([`Store::forgive_failures`]): the lock goes back to `before` if
/// it still ends at `engaged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgiven<'a> {
    /// The key whose failure is taken back.
    pub key: ThrottleKey<'a>,
    /// The lock end the counted failure set.
    pub engaged: UnixSeconds,
    /// The lock end before it.
    pub before: UnixSeconds,
}

/// Throttling state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Consecutive failures since the last success or unlock.
    pub failures: u64,
    /// Locked while `now < locked_until`.
    pub locked_until: UnixSeconds,
}

impl ThrottleState {
    /// Whether the key is locked at `now`.
    #[must_use]
    pub fn is_locked(&self, now: UnixSeconds) -> bool {
        now < self.locked_until
    }
}

/// A message in the relay queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Queue id (increasing per store).
    pub id: u64,
    /// Recipient user name.
    pub recipient: String,
    /// The message sealed at rest by the host: its body, or (with `audit`) the key that
    /// opens the audit record's ciphertext.
    pub body: Vec<u8>,
    /// When it was queued.
    pub created: UnixSeconds,
    /// The payload of the message's audit record, for an entry that names one (every
    /// client message queued since migration 0013/0014); `None`: `body` holds the message.
    pub audit: Option<Vec<u8>>,
}

/// A queued message that did not open, moved out of the queue and kept for the operator
/// (`kasane-host dead-letters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its queue id.
    pub id: u64,
    /// The recipient's name.
    pub recipient: String,
    /// The stored entry's length (the sealed body, or the sealed key of an audit record).
    pub bytes: u64,
    /// When it was queued.
    pub created: UnixSeconds,
    /// When it was moved out of the queue.
    pub moved: UnixSeconds,
    /// The audit record holding its body, if it names one.
    pub audit: Option<AuditCursor>,
}

/// One audit record, as appended and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The session whose chain this record extends.
    pub session_id: Vec<u8>,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// `record_hash` of record `seq − 1` (the chain's genesis value for `seq = 1`).
    pub prev_hash: Vec<u8>,
    /// Hash over `prev_hash` and this record (computed by the caller).
    pub record_hash: Vec<u8>,
    /// The message as received (ciphertext, AAD, parameters), serialized by the caller.
    pub payload: Vec<u8>,
    /// When it was appended.
    pub created: UnixSeconds,
}

/// What [`Store::count_start`] counted: the states of its keys before and after, and the
/// user's login record with its new access counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Before the count, in the keys' order.
    pub before: Vec<ThrottleState>,
    /// After it (lock included), in the keys' order.
    pub after: Vec<ThrottleState>,
    /// `None` for no such user, or one without an OPAQUE record or pairs.
    pub login: Option<LoginRecord>,
}

/// What [`Store::start_lookup`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartLookup {
    /// When the user last logged in from the network.
    pub last_success: Option<UnixSeconds>,
    /// The user's OPAQUE registration record, if it can log in.
    pub opaque_record: Option<Vec<u8>>,
    /// The lock end of each key, in the keys' order.
    pub locked_until: [UnixSeconds; 3],
}

/// A user's OPAQUE registration record and the access counter drawn for this login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// The OPAQUE registration record (public by OPAQUE's design).
    pub opaque_record: Vec<u8>,
    /// The counter, incremented by this login (not yet durable: see [`Store::count_start`]).
    pub counter: u64,
}

/// A client message to accept with [`Store::accept_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptMessage {
    /// The sender's session.
    pub session_id: Vec<u8>,
    /// The message's sequence number (client to host).
    pub seq: u64,
    /// The audit payload (the message as received), serialized by the caller.
    pub payload: Vec<u8>,
    /// The recipient's queue entry, if the message is for a user; not queued (but still
    /// audited) if there is no such user.
    pub queue: Option<QueueEntry>,
    /// How much the recipient's queue may hold, this message included.
    pub quota: QueueQuota,
    /// Most bytes of audit records the sender's sessions may add in the UTC day of
    /// `created`, this message included (see [`AcceptOutcome::BudgetSpent`]).
    pub daily_budget: u64,
    /// Bytes the host process holds against that budget for answers not yet counted (the
    /// largest response of each of the user's gateway requests in flight there, this one's
    /// included): a client message passes only if its record and these fit. 0 for a host
    /// message.
    pub held: u64,
    /// Now.
    pub created: UnixSeconds,
    /// Who sent it: a client (its number enters the replay window) or the host (the
    /// sealed answer to a gateway request: only audited).
    pub sent_by: SentBy,
}

/// A client's message in its recipient's queue ([`AcceptMessage::queue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The recipient user name.
    pub recipient: String,
    /// Sealed at rest by the host: the message key that opens the message's audit record
    /// (the body is written once, as received, in the audit log), with its sender and time.
    pub sealed: Vec<u8>,
    /// What the entry counts against the recipient's quota: the body's length as received.
    pub bytes: u64,
}

/// Who sent an [`AcceptMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentBy {
    /// The session's client: the quota, the replay window, the audit record, the queue.
    Client,
    /// The host (a gateway response): the audit record alone.
    Host,
}

/// The most a recipient's queue may hold: messages, and bytes (each message's
/// [`QueueEntry::bytes`]: its length as received).
///
/// A name with no user has a stand-in queue (`relay_unknown_recipients`) that counts toward
/// the same quota and never drains, so a full queue does not tell a sender whether the
/// recipient exists: it looks like a user who does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueQuota {
    /// Most queued messages.
    pub max_messages: u64,
    /// Most bytes of queued (sealed-at-rest) bodies.
    pub max_bytes: u64,
}

impl QueueQuota {
    /// Whether a queue holding `messages` messages of `bytes` bytes has room for one more
    /// of `len` bytes.
    #[must_use]
    pub fn has_room(&self, messages: u64, bytes: u64, len: u64) -> bool {
        messages < self.max_messages && bytes.saturating_add(len) <= self.max_bytes
    }
}

/// What [`Store::accept_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Accepted: the audit record's position and whether the body was queued for a user.
    Accepted {
        /// Position of the audit record in the session's chain.
        audit_seq: u64,
        /// Queued for a user (false: audited only, or counted in an unknown name's
        /// stand-in queue).
        queued: bool,
        /// The session's replay window with this message's number in it.
        window: ReplayWindow,
    },
    /// `seq` was accepted already (it is in the replay window); nothing written.
    Replayed,
    /// `seq` is below the replay window (or 0); nothing written.
    Reordered,
    /// No such session; nothing written.
    NoSession,
    /// The recipient's queue (or an unknown name's stand-in queue) is at its
    /// [`QueueQuota`]; nothing written, the sequence number not used.
    QueueFull,
    /// The sender's user would pass [`AcceptMessage::daily_budget`] bytes of audit records
    /// today (UTC) with this message's (and the room held, [`AcceptMessage::held`]); nothing
    /// written, the sequence number not used. (A host message, a gateway response, is
    /// counted but never refused.)
    BudgetSpent,
}

/// Where a reader of the audit log is: after record (`session_id`, `seq`) in the log's order
/// (by session id, then seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    /// Session id of the last record read.
    pub session_id: Vec<u8>,
    /// Its sequence number.
    pub seq: u64,
}

/// A signed checkpoint of one session's audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The session whose chain it vouches for.
    pub session_id: Vec<u8>,
    /// The chain's length at the checkpoint.
    pub seq: u64,
    /// The `record_hash` of record `seq`.
    pub record_hash: Vec<u8>,
    /// The host key's signature (over what the host defines).
    pub signature: Vec<u8>,
    /// When it was made.
    pub created: UnixSeconds,
}

/// What [`Store::purge_expired`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Sessions past their idle timeout or absolute lifetime.
    pub sessions: u64,
    /// Expired pending logins.
    pub pending_logins: u64,
    /// Throttle entries unlocked and decayed to nothing ([`Store::purge_throttle`]; 0 from
    /// [`Store::purge_expired`], which leaves them).
    pub throttle: u64,
    /// Audit chains pruned by `[audit] retain_days` ([`Host::prune_audit_if_due`]; 0 from
    /// the store's purges).
    ///
    /// [`Host::prune_audit_if_due`]: crate::host::Host::prune_audit_if_due
    pub audit_chains: u64,
    /// The records of those chains.
    pub audit_records: u64,
}

/// How far [`Store::after_restore`] moves every access counter ahead: 2^32, more logins
/// than one user makes between a backup and its restore, so that no counter drawn before the
/// restore is drawn again.
pub const RESTORE_COUNTER_JUMP: u64 = 1 << 32;

/// What [`Store::after_restore`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// Sessions ended: every one the database held.
    pub sessions: u64,
    /// Logins in flight ended: every one.
    pub pending_logins: u64,
    /// Users whose access counter moved [`RESTORE_COUNTER_JUMP`] ahead: every one.
    pub counters: u64,
}

/// The host's storage. Object-safe (`Arc<dyn Store>`), shared by all request handlers.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is (`"sqlite"` or `"postgres"`), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// The PostgreSQL pool of durable commits, `None` on SQLite: with PostgreSQL the
    /// registry lives in the database (`registry_files`, [`crate::registry_db`]).
    fn postgres_pool(&self) -> Option<&sqlx::PgPool>;

    /// Answers a trivial query (`SELECT 1`): the database is reachable (readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Writes a consistent copy of the database to the new file `path` (mode 0600) while the
    /// store may be serving. SQLite: `VACUUM INTO`; a `path` that exists is refused
    /// ([`StoreError::BackupFile`]) and left as it is. PostgreSQL: [`StoreError::Unsupported`],
    /// whose hint gives the `pg_dump` command line.
    async fn backup_to(&self, path: &std::path::Path) -> Result<()>;

    /// Makes a database restored from a backup safe to serve, in one durable transaction:
    /// ends every session (the backup may hold sessions logged out since, with replay
    /// windows behind the messages accepted since) and every login in flight, and moves
    /// every user's access counter [`RESTORE_COUNTER_JUMP`] ahead (the counters drawn since
    /// the backup are never drawn again). [`StoreError::OutOfRange`] if a counter cannot move
    /// that far (nothing changes).
    async fn after_restore(&self) -> Result<Restored>;

    // --- users ---

    /// Creates a user with its pairs. [`StoreError::UserExists`] if the name is taken.
    async fn create_user(&self, user: &NewUser, now: UnixSeconds) -> Result<()>;
    /// The user with this name, with its pairs in card order.
    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>>;
    /// All users, by name.
    async fn list_users(&self) -> Result<Vec<UserSummary>>;
    /// Removes a user (and its pairs, sessions, queued messages and logins in flight). False
    /// if there was none.
    async fn remove_user(&self, name: &str) -> Result<bool>;
    /// Ends every session and login in flight of the user (`kasane-host user logout`, a
    /// durable commit): how many sessions. `None` if there is no such user.
    async fn end_sessions(&self, name: &str) -> Result<Option<u64>>;
    /// Clears the user's throttling. False if there is no such user.
    async fn unlock_user(&self, name: &str) -> Result<bool>;
    /// Replaces the user's pairs and ends its logins in flight (a bundle of the old card).
    /// False if there is no such user.
    async fn replace_pairs(&self, name: &str, pairs: &[ChallengePair]) -> Result<bool>;
    /// Atomically increments the user's access counter and returns the new value, committed
    /// before it returns. [`StoreError::UserNotFound`] if there is no such user.
    async fn next_counter(&self, name: &str) -> Result<u64>;
    /// The user's pairs in card order (what a challenge bundle is drawn from; empty for no
    /// such user).
    async fn challenge_pairs(&self, name: &str) -> Result<Vec<ChallengePair>>;
    /// Returns once every commit that returned before this call began is durable (on disk,
    /// whatever the pool that made it): one durable write, `durable_marks`.
    async fn make_durable(&self) -> Result<()>;

    // --- pending logins ---

    /// Keeps a login's state until [`Store::take_pending_login`]. First evicts what the
    /// `bounds` leave no room for — the oldest starts of the login's source network beyond
    /// `per_source − 1`, the oldest logins beyond `total − 1`, and anything expired at `now` —
    /// so a flood from one network only ever evicts its own starts (unless `per_source` times
    /// the flooding networks exceeds `total`), and a full table never refuses a new login. Returns how many were evicted.
    /// [`StoreError::Duplicate`] if the id exists.
    async fn put_pending_login(
        &self,
        login: &NewPendingLogin,
        now: UnixSeconds,
        bounds: PendingBounds,
    ) -> Result<u64>;
    /// Removes and returns the state of login `id` waiting at `stage`: only the first caller
    /// (on any replica) gets it. `None` if it was never stored, already taken, waits at
    /// another stage, or expired at `now` (an expired one is deleted too).
    async fn take_pending_login(
        &self,
        id: &[u8],
        stage: LoginStage,
        now: UnixSeconds,
    ) -> Result<Option<Zeroizing<Vec<u8>>>>;

    // --- sessions ---

    /// Creates a session, then ends the user's least recently used sessions beyond
    /// `session.max_per_user` (never the new one). [`StoreError::UserNotFound`] if the user
    /// does not exist, [`StoreError::Duplicate`] if the token hash or session id does.
    async fn create_session(&self, session: &NewSession) -> Result<()>;
    /// A successful login's writes: [`Store::create_session`] (its result is returned),
    /// [`Store::clear_throttle`] of `cleared`, the key that throttled the login, and
    /// [`Store::forgive_failures`] of `forgiven` (what the response step counted against the
    /// other keys). The throttle writes are best effort: the failures are forgotten even when
    /// the session cannot be stored (the response proved password and card), and one that
    /// fails is logged, not returned. On a SQLite file one call and one commit; elsewhere the
    /// calls side by side.
    async fn open_session(
        &self,
        session: &NewSession,
        cleared: ThrottleKey<'_>,
        forgiven: &[Forgiven<'_>],
    ) -> Result<()>;
    /// The live session for this token hash, with `last_seen` set to `now`. A session idle
    /// for `idle_timeout` seconds or more, or at or past its absolute expiry, is deleted and
    /// `None` is returned.
    async fn touch_session(
        &self,
        token_hash: &[u8],
        now: UnixSeconds,
        idle_timeout: u64,
    ) -> Result<Option<Session>>;
    /// Ends a session (logout, a durable commit); its session id, or `None` if there was none.
    async fn delete_session(&self, token_hash: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Compare-and-set: accepts `seq` in `direction` only if it is greater than the last one
    /// accepted, and records it. False for a replay or a reordered message, or no session.
    async fn advance_seq(&self, session_id: &[u8], direction: Direction, seq: u64) -> Result<bool>;
    /// Atomically allocates the next sequence number in `direction` (for messages the host
    /// sends). [`StoreError::SessionNotFound`] if there is no such session.
    async fn next_seq(&self, session_id: &[u8], direction: Direction) -> Result<u64>;

    // --- throttling ---

    /// Counts one failure for `key` and locks it per `backoff`; returns the new state.
    async fn record_failure(
        &self,
        key: ThrottleKey<'_>,
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<ThrottleState> {
        let mut states = self.record_failures(&[key], now, backoff).await?;
        states.pop().ok_or(StoreError::OutOfRange {
            what: "throttle states",
        })
    }
    /// [`Store::record_failure`] for each of `keys` (distinct), counted in one statement;
    /// the new states in their order.
    async fn record_failures(
        &self,
        keys: &[ThrottleKey<'_>],
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Vec<ThrottleState>>;
    /// A login step's check-and-count, in one transaction: unless one of `keys` (distinct) is
    /// locked at `now`, counts a failure of each as [`Store::record_failures`] does, and (a
    /// start: `user` given) if `user` exists with an OPAQUE record and pairs, increments its
    /// access counter and returns the record with the new counter; if a key is locked, does
    /// nothing and returns `None`. Atomic against every other check-and-count of the same
    /// keys, on any replica: of concurrent callers, no more pass than would one after another
    /// (a separate read and count let them all pass the check before any had counted). The
    /// commit is relaxed: [`Store::make_durable`] puts it on disk.
    async fn count_start(
        &self,
        keys: &[ThrottleKey<'_>],
        user: Option<&str>,
        now: UnixSeconds,
        backoff: &Backoff,
    ) -> Result<Option<Counted>>;
    /// The state of `key` (all zero if it has none).
    async fn throttle_state(&self, key: ThrottleKey<'_>) -> Result<ThrottleState> {
        let mut states = self.throttle_states(&[key]).await?;
        Ok(states.pop().unwrap_or_default())
    }
    /// The states of `keys`, in their order, read in one statement.
    async fn throttle_states(&self, keys: &[ThrottleKey<'_>]) -> Result<Vec<ThrottleState>>;
    /// Forgets the failures of `key` (after a success).
    async fn clear_throttle(&self, key: ThrottleKey<'_>) -> Result<()>;
    /// Records that `user` logged in from `network` (a source network's throttle key, as
    /// [`ThrottleKey::to_key`] writes it) at `now`.
    async fn note_known_network(&self, user: &str, network: &str, now: UnixSeconds) -> Result<()>;
    /// What a login start reads before it counts, in one statement: when `user` last logged
    /// in from `network` (as [`Store::note_known_network`] recorded it, if within what
    /// housekeeping keeps), its OPAQUE record if it can log in (a record and pairs, as
    /// [`Store::count_start`] requires), and the lock end of each of `keys` (0 for a key
    /// with no entry).
    async fn start_lookup(
        &self,
        user: &str,
        network: &str,
        keys: [ThrottleKey<'_>; 3],
    ) -> Result<StartLookup>;
    /// Every throttle entry, by key (`kasane-host throttle list`).
    async fn list_throttle(&self) -> Result<Vec<ThrottleEntry>>;
    /// Forgets the entry stored under `key` as [`ThrottleEntry::key`] shows it
    /// (`kasane-host throttle clear`). False if there was none.
    async fn clear_throttle_key(&self, key: &str) -> Result<bool>;
    /// Deletes the entries that are unlocked at `now` and whose count has decayed to nothing
    /// under `backoff` (housekeeping); how many.
    async fn purge_throttle(&self, now: UnixSeconds, backoff: &Backoff) -> Result<u64>;
    /// Replaces a user's OPAQUE record and pairs and ends every other session and every login
    /// in flight of the user (all sessions but the one whose id is `keep`, the session the
    /// change came through), in one
    /// transaction (`kasane passwd`): the ended sessions' token hashes. Only while the user's
    /// record is still `replacing` (compared and replaced in one statement, so a change
    /// applies once even when sent twice at once): `None` if there is no such user or its
    /// record is another.
    async fn reenroll(
        &self,
        name: &str,
        replacing: &[u8],
        opaque_record: &[u8],
        pairs: &[ChallengePair],
        keep: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>>;
    /// Takes back one failure of `key` (never below zero): a login start is counted as a
    /// failure until its finish proves the password. If that failure engaged the lock (the
    /// lock still ends at `engaged`), the lock goes back to `before`.
    async fn forgive_failure(
        &self,
        key: ThrottleKey<'_>,
        engaged: UnixSeconds,
        before: UnixSeconds,
    ) -> Result<()> {
        self.forgive_failures(&[Forgiven {
            key,
            engaged,
            before,
        }])
        .await
    }
    /// [`Store::forgive_failure`] for each entry (distinct keys), in one statement.
    async fn forgive_failures(&self, forgiven: &[Forgiven<'_>]) -> Result<()>;
    /// A login finish's two calls: [`Store::forgive_failures`] of `forgiven` (best effort: a
    /// failure is logged, not returned) and [`Store::challenge_pairs`] of `name`, whose
    /// result it returns. On a SQLite file one call; elsewhere the two side by side.
    async fn challenge_pairs_forgiving(
        &self,
        name: &str,
        forgiven: &[Forgiven<'_>],
    ) -> Result<Vec<ChallengePair>>;

    // --- relay queue ---

    /// Queues a message for `recipient`; returns its id. [`StoreError::UserNotFound`] if
    /// there is no such user (the host answers the sender the same way in both cases).
    async fn enqueue_message(&self, recipient: &str, body: &[u8], now: UnixSeconds) -> Result<u64>;
    /// Up to `limit` queued messages for `recipient` with an id above `after`, oldest first.
    async fn fetch_messages(
        &self,
        recipient: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>>;
    /// Deletes delivered messages, in one transaction of a few statements (one commit,
    /// however many ids): how many were queued for this recipient. Ids of other recipients'
    /// messages, or of none, are ignored.
    async fn ack_messages(&self, recipient: &str, ids: &[u64]) -> Result<u64>;
    /// Deletes one delivered message. False if it was not queued for this recipient.
    async fn ack_message(&self, recipient: &str, id: u64) -> Result<bool> {
        Ok(self.ack_messages(recipient, &[id]).await? > 0)
    }
    /// Moves a queued message of `recipient` that cannot be delivered (its body does not open)
    /// out of the queue into `relay_dead_letters`, in one transaction. False if it was not
    /// queued for this recipient.
    async fn dead_letter_message(&self, recipient: &str, id: u64, now: UnixSeconds)
    -> Result<bool>;
    /// Up to `limit` dead letters with an id above `after`, by id.
    async fn dead_letters(&self, after: u64, limit: u32) -> Result<Vec<DeadLetter>>;
    /// Deletes dead letter `id` (its audit chain may then be pruned). False if there is none.
    async fn remove_dead_letter(&self, id: u64) -> Result<bool>;

    // --- facts every host on this database agrees with ---

    /// The value of fact `name`: `value` if this call is the first to claim it, else the
    /// value claimed before (atomic: concurrent first claims agree on one).
    async fn claim_fact(&self, name: &str, value: &[u8]) -> Result<Vec<u8>>;

    // --- audit log ---

    /// Appends a record to its session's chain. [`StoreError::AuditChainMismatch`] unless
    /// `seq` is 1 on an empty chain, or `seq − 1` exists with `record_hash == prev_hash`.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Accepts a client's message: [`Store::accept_messages`] with a batch of one.
    async fn accept_message(&self, m: &AcceptMessage) -> Result<AcceptOutcome> {
        self.accept_messages(std::slice::from_ref(m))
            .await?
            .pop()
            .ok_or(StoreError::OutOfRange { what: "batch" })
    }
    /// Accepts a batch of client messages (from any sessions) in ONE transaction and one
    /// commit (group commit), each in order as if alone: accepts its `seq` into the
    /// session's replay window (read locked: not seen, not below the window), appends
    /// the audit record to the session's chain (position = chain length + 1, hashes by
    /// [`crate::audit_chain::record_hash`]) and, if `m.queue` names an existing user, queues
    /// the body for them (else counts it in the name's stand-in queue). If that queue is at
    /// `m.quota`, [`AcceptOutcome::QueueFull`]; if the sender's user would pass
    /// `m.daily_budget` today, [`AcceptOutcome::BudgetSpent`] (both checked exactly on a
    /// SQLite file; on PostgreSQL, concurrent batches of other replicas may each pass them
    /// once). A refused message writes nothing; an error
    /// fails the whole batch and commits none of it. Answers one outcome per message, in
    /// order, once the commit is durable.
    async fn accept_messages(&self, batch: &[AcceptMessage]) -> Result<Vec<AcceptOutcome>>;
    /// A blocking committer of message batches, [`Store::accept_messages`] on a connection
    /// of its own, for the message path's group commit to run on a thread of its own: on a
    /// SQLite file. `None` where [`Store::accept_messages`] is the way: PostgreSQL (each
    /// statement a network round trip whoever sends it) and in-memory SQLite (the database
    /// lives in its one pooled connection).
    fn message_committer(&self) -> Result<Option<SqliteCommitter>>;
    /// Heads (`session_id`, `seq`, `record_hash`) of up to `limit` audit chains whose head has
    /// no checkpoint yet.
    async fn unchecked_audit_heads(&self, limit: u32) -> Result<Vec<(Vec<u8>, u64, Vec<u8>)>>;
    /// The last record's (`seq`, `record_hash`) of a session's chain.
    async fn audit_head(&self, session_id: &[u8]) -> Result<Option<(u64, Vec<u8>)>>;
    /// Up to `limit` records after `after` (from the start if `None`), in log order.
    async fn audit_page(&self, after: Option<&AuditCursor>, limit: u32)
    -> Result<Vec<AuditRecord>>;

    /// Stores a signed checkpoint. [`StoreError::AuditChainMismatch`] unless record
    /// (`session_id`, `seq`) exists with this `record_hash`; [`StoreError::Duplicate`] if
    /// that position already has a checkpoint.
    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<()>;
    /// Up to `limit` checkpoints after `after` (from the start if `None`), in log order.
    async fn audit_checkpoint_page(
        &self,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>>;
    /// Heads (`session_id`, `seq`, `record_hash`) of up to `limit` audit chains after
    /// session `after` (in log order) that may be pruned: the last record was written at or
    /// before `cutoff`, the session has ended (no `sessions` row), and no queued or
    /// dead-lettered message names one of its records.
    async fn prunable_audit_chains(
        &self,
        after: Option<&[u8]>,
        cutoff: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, u64, Vec<u8>)>>;
    /// Prunes one chain in one durable transaction: stores `marker` (its head, signed by
    /// the host key over [`crate::audit_chain::pruned_message`]) and deletes its records.
    /// [`StoreError::NotPrunable`] (nothing written) unless the chain still ends at
    /// (`marker.seq`, `marker.record_hash`) with `marker.seq` records, its session has
    /// ended, and no queued or dead-lettered message names one of its records (the cut-off
    /// is the caller's). Returns the records deleted.
    async fn prune_audit_chain(&self, marker: &AuditCheckpoint) -> Result<u64>;
    /// Up to `limit` markers of pruned chains after `after` (from the start if `None`), in
    /// log order.
    async fn audit_pruned_page(
        &self,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>>;

    // --- housekeeping ---

    /// Deletes expired pending logins and sessions (and session ends more than
    /// [`SESSION_ENDS_KEPT_SECS`] older than the newest, and the daily counts of days before
    /// yesterday).
    async fn purge_expired(&self, now: UnixSeconds, idle_timeout: u64) -> Result<Purged>;
    /// Up to `limit` sessions that ended (left `sessions`, by any process, for any reason)
    /// at or after `since` by the database's clock: (`token_hash`, when), oldest first.
    async fn session_ends_since(
        &self,
        since: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, UnixSeconds)>>;
}

/// How long [`Store::purge_expired`] keeps a session's end (`session_ends`) after the newest
/// one: readers ([`crate::session_ends`]) that fall further behind forget every session.
pub const SESSION_ENDS_KEPT_SECS: u64 = 120;

/// Records an [`AuditReader`] holds at once: a record carries a message as received (up to
/// about 1 MiB), so a page is at most about 16 MiB whatever the log holds.
pub const AUDIT_READ_PAGE: u32 = 16;

/// Reads the whole audit log in order, one page at a time (see [`Store::audit_page`]).
#[derive(Debug)]
pub struct AuditReader<'a> {
    store: &'a dyn Store,
    cursor: Option<AuditCursor>,
    page: std::collections::VecDeque<AuditRecord>,
    page_size: u32,
    done: bool,
}

impl<'a> AuditReader<'a> {
    /// A reader from the start of the log.
    #[must_use]
    pub fn new(store: &'a dyn Store) -> Self {
        Self::from_cursor(store, None)
    }

    /// A reader of the records after `cursor` (for one chain: its session id, seq 0).
    #[must_use]
    pub fn after(store: &'a dyn Store, cursor: AuditCursor) -> Self {
        Self::from_cursor(store, Some(cursor))
    }

    fn from_cursor(store: &'a dyn Store, cursor: Option<AuditCursor>) -> Self {
        Self {
            store,
            cursor,
            page: std::collections::VecDeque::new(),
            page_size: AUDIT_READ_PAGE,
            done: false,
        }
    }

    /// The next record, or `None` at the end of the log.
    pub async fn next(&mut self) -> Result<Option<AuditRecord>> {
        if self.page.is_empty() && !self.done {
            let page = self
                .store
                .audit_page(self.cursor.as_ref(), self.page_size)
                .await?;
            if page.len() < self.page_size as usize {
                self.done = true;
            }
            if let Some(last) = page.last() {
                self.cursor = Some(AuditCursor {
                    session_id: last.session_id.clone(),
                    seq: last.seq,
                });
            }
            self.page.extend(page);
        }
        Ok(self.page.pop_front())
    }
}

/// [`Store::challenge_pairs_forgiving`] as two calls side by side, each on a connection of
/// its own.
pub(super) async fn pairs_side_by_side<S: Store + ?Sized>(
    store: &S,
    name: &str,
    forgiven: &[Forgiven<'_>],
) -> Result<Vec<ChallengePair>> {
    let (pairs, forgiving) = tokio::join!(
        store.challenge_pairs(name),
        store.forgive_failures(forgiven)
    );
    if let Err(e) = forgiving {
        tracing::error!(error = %e, "forgiving a start");
    }
    pairs
}

/// [`Store::open_session`] as two calls side by side, each on a connection of its own.
pub(super) async fn open_side_by_side<S: Store + ?Sized>(
    store: &S,
    session: &NewSession,
    cleared: ThrottleKey<'_>,
    forgiven: &[Forgiven<'_>],
) -> Result<()> {
    let (created, clearing, forgiving) = tokio::join!(
        store.create_session(session),
        store.clear_throttle(cleared),
        store.forgive_failures(forgiven)
    );
    if let Err(e) = clearing.and(forgiving) {
        tracing::error!(error = %e, "clearing the user's throttle");
    }
    created
}

/// Opens the store at `url` and runs its migrations: `sqlite://<path>?mode=rwc` (WAL,
/// `synchronous = FULL`) or `postgres://…` / `postgresql://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let scheme = url.split(':').next().unwrap_or_default();
    let store: Arc<dyn Store> = match scheme {
        "sqlite" => Arc::new(SqliteStore::open(url).await?),
        "postgres" | "postgresql" => Arc::new(PgStore::open(url).await?),
        _ => {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.chars().take(32).collect(),
            });
        }
    };
    // Never the URL: it may hold a password.
    tracing::info!(
        backend = store.backend(),
        "store opened, migrations applied"
    );
    Ok(store)
}

/// u64 → the databases' i64.
fn to_db(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange { what })
}

/// The databases' i64 → u64.
fn from_db(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::OutOfRange { what })
}

/// Whether `e` is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            free_failures: 2,
            base_secs: 3,
            max_secs: 20,
            decay_secs: 300,
        };
        let got: Vec<u64> = (0..=7).map(|n| b.lock_secs(n)).collect();
        assert_eq!(got, [0, 0, 0, 3, 6, 12, 20, 20]);
        assert_eq!(b.lock_secs(u64::MAX), 20);
    }

    #[test]
    fn source_networks_mask_the_host_bits() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        assert_eq!(ThrottleKey::network(v4, 24).to_key(), "a:203.0.113.0/24");
        assert_eq!(ThrottleKey::network(v4, 32).to_key(), "a:203.0.113.77/32");
        assert_eq!(ThrottleKey::network(v4, 99).to_key(), "a:203.0.113.77/32");
        assert_eq!(ThrottleKey::network(v6, 64).to_key(), "a:2001:db8:1:2::/64");
        assert_eq!(ThrottleKey::network(v6, 48).to_key(), "a:2001:db8:1::/48");
        assert_eq!(
            ThrottleKey::network(v6, 128).to_key(),
            "a:2001:db8:1:2:aaaa:bbbb:cccc:dddd/128"
        );
        // Two addresses of one /64: one key.
        let other: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(
            ThrottleKey::network(other, 64),
            ThrottleKey::network(v6, 64)
        );
    }

    #[test]
    fn backoff_decays_and_caps_where_the_lock_is_longest() {
        let b = Backoff {
            free_failures: 2,
            base_secs: 10,
            max_secs: 40,
            decay_secs: 100,
        };
        // Locks 10, 20, 40 s from the third failure on: the fifth reaches the longest.
        assert_eq!(b.ceiling(), 5);
        assert_eq!(b.lock_secs(b.ceiling()), 40);
        assert_eq!(b.decayed(5, 1000, 1099), 5);
        assert_eq!(b.decayed(5, 1000, 1250), 3);
        assert_eq!(b.decayed(5, 1000, 9999), 0);
        // A clock behind the last failure forgets nothing.
        assert_eq!(b.decayed(5, 1000, 10), 5);
    }

    #[test]
    fn throttle_keys_are_separate_namespaces() {
        let user = ThrottleKey::User("127.0.0.1").to_key();
        let addr = ThrottleKey::Source("127.0.0.1".parse().unwrap()).to_key();
        assert_ne!(user, addr);
        assert_eq!(addr, "a:127.0.0.1");
    }

    #[test]
    fn debug_prints_no_secrets() {
        let pair = ChallengePair {
            prompt: "A1".into(),
            salt: vec![1; 16],
            verifier: Zeroizing::new(b"SECRETVERIFIER".to_vec()),
        };
        let s = NewSession {
            token_hash: b"TOKENHASH".to_vec(),
            session_id: vec![7],
            user: "alice".into(),
            created: 1,
            expires_at: 2,
            secret: Zeroizing::new(b"SESSIONSECRET".to_vec()),
            max_per_user: 1,
        };
        let u = NewUser {
            name: "alice".into(),
            opaque_record: b"OPAQUERECORD".to_vec(),
            pairs: vec![pair.clone()],
        };
        let text = format!("{pair:?} {s:?} {u:?}");
        for secret in [
            "SECRETVERIFIER",
            "TOKENHASH",
            "SESSIONSECRET",
            "OPAQUERECORD",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Byte vectors print as numbers; make sure those are absent too.
        assert!(!text.contains(&format!("{:?}", b"SECRETVERIFIER")));
    }

    #[test]
    fn u64_beyond_i64_is_refused() {
        assert!(matches!(
            to_db(u64::MAX, "x"),
            Err(StoreError::OutOfRange { what: "x" })
        ));
        assert_eq!(to_db(5, "x").unwrap(), 5);
        assert!(from_db(-1, "y").is_err());
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_one_database() {
        // An in-memory database exists per connection: the pool must keep exactly one.
        let st = open("sqlite::memory:").await.unwrap();
        st.create_user(
            &NewUser {
                name: "a".into(),
                opaque_record: vec![1],
                pairs: vec![],
            },
            1,
        )
        .await
        .unwrap();
        for want in 1..=5 {
            assert_eq!(st.next_counter("a").await.unwrap(), want);
        }
        assert_eq!(st.list_users().await.unwrap().len(), 1);
        // The above holds for a shared-cache pool of several connections too, until they all
        // close when idle and the database is gone: check the pool itself.
        for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
            let pool = SqliteStore::open(url).await.unwrap();
            let options = pool.pool().options();
            assert_eq!(options.get_max_connections(), 1, "{url}");
            assert_eq!(options.get_min_connections(), 1, "{url}");
            assert_eq!(options.get_idle_timeout(), None, "{url}");
        }
    }

    #[tokio::test]
    async fn open_refuses_unknown_scheme_without_echoing_the_url() {
        let err = open("mysql://root:hunter2@db/x").await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
        assert!(!err.to_string().contains("hunter2"));
    }
}
