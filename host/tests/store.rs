//! The storage test suite, written once against `dyn Store` and run on both backends:
//! SQLite in a temporary directory, and PostgreSQL at `KASANE_TEST_DATABASE_URL` in a fresh
//! schema per test (so tests run in parallel), dropped afterwards.
//!
//! Without `KASANE_TEST_DATABASE_URL` the PostgreSQL tests print
//! "skipped: KASANE_TEST_DATABASE_URL not set" and pass — unless `CI=true`, where they fail.
//!
//! Every case gets two stores over the same database (`main` and `replica`), as two host
//! replicas would have.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use kasane_host::audit_chain::{genesis_hash, record_hash};
use kasane_host::store::{
    AcceptMessage, AcceptOutcome, AuditCheckpoint, AuditCursor, AuditReader, AuditRecord, Backoff,
    ChallengePair, Direction, Forgiven, LoginStage, NewPendingLogin, NewSession, NewUser,
    PendingBounds, PgStore, QueueQuota, SqliteStore, Store, StoreError, ThrottleEntry, ThrottleKey,
    ThrottleState, Zeroizing,
};

/// Two handles on one database, and direct SQL access to it.
#[derive(Clone)]
struct Stores {
    main: Arc<dyn Store>,
    replica: Arc<dyn Store>,
    raw: Raw,
    /// The main store's pool of relaxed commits.
    relaxed: Raw,
}

/// The database under test, for what `dyn Store` does not show (rows out of its reach).
#[derive(Clone)]
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    /// The number of rows in `table`.
    async fn count(&self, table: &str) -> i64 {
        let q = format!("SELECT COUNT(*) FROM {table}");
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(&q).fetch_one(pool).await.unwrap(),
            Self::Pg(pool) => sqlx::query_scalar(&q).fetch_one(pool).await.unwrap(),
        }
    }

    /// The sum of `column` over `table` (0 for no rows).
    async fn sum(&self, table: &str, column: &str) -> i64 {
        let q = format!("SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM {table}");
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(&q).fetch_one(pool).await.unwrap(),
            Self::Pg(pool) => sqlx::query_scalar(&q).fetch_one(pool).await.unwrap(),
        }
    }

    /// Runs `sql` (no parameters) behind the store's back.
    async fn execute(&self, sql: &str) {
        match self {
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Self::Pg(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// Deletes the audit records of session `sid` behind the store's back.
    async fn delete_chain(&self, sid: &[u8]) -> Result<u64, sqlx::Error> {
        let q = "DELETE FROM audit_log WHERE session_id = $1";
        Ok(match self {
            Self::Sqlite(pool) => sqlx::query(q)
                .bind(sid)
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Pg(pool) => sqlx::query(q)
                .bind(sid)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Whether a commit on this pool waits for the disk: SQLite's `synchronous` is FULL (2)
    /// rather than NORMAL (1); PostgreSQL's `synchronous_commit` is `on` rather than `off`.
    async fn commits_durably(&self) -> bool {
        match self {
            Self::Sqlite(pool) => {
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert!(matches!(level, 1 | 2), "synchronous = {level}");
                level == 2
            }
            Self::Pg(pool) => {
                let level: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert!(matches!(level.as_str(), "on" | "off"), "{level}");
                level == "on"
            }
        }
    }
}

/// Runs `case` against SQLite in a fresh temporary directory.
async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("kasane.db").display()
    );
    let main = SqliteStore::open(&url).await.unwrap();
    let replica = SqliteStore::open(&url).await.unwrap();
    let stores = Stores {
        main: Arc::new(main.clone()),
        replica: Arc::new(replica.clone()),
        raw: Raw::Sqlite(main.pool().clone()),
        relaxed: Raw::Sqlite(main.relaxed_pool().clone()),
    };
    let outcome = tokio::spawn(case(stores)).await;
    main.close().await;
    replica.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `case` against PostgreSQL in a fresh schema, dropped afterwards (also when the case panics).
async fn run_pg<F, Fut>(case: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = common::PgSchema::create("kasane_test").await else {
        return;
    };
    let options = schema.options();
    let main = PgStore::open_with(options.clone(), 8).await.unwrap();
    let replica = PgStore::open_with(options, 8).await.unwrap();
    let stores = Stores {
        main: Arc::new(main.clone()),
        replica: Arc::new(replica.clone()),
        raw: Raw::Pg(main.pool().clone()),
        relaxed: Raw::Pg(main.relaxed_pool().clone()),
    };
    let outcome = tokio::spawn(case(stores)).await;
    main.close().await;
    replica.close().await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Instantiates every case for both backends.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_sqlite(super::cases::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_pg(super::cases::$case).await;
                }
            )*
        }
    };
}

suite!(
    users_create_get_list_remove,
    replace_pairs_keeps_order,
    counter_increments_per_user,
    counter_50_concurrent_callers_distinct_and_contiguous,
    count_start_draws_the_counter_with_the_record,
    start_lookup_reads_record_and_locks,
    commits_durable_and_relaxed,
    throttle_states_in_key_order,
    dead_letters_and_facts,
    throttle_decays_caps_lists_and_purges,
    pending_login_is_taken_once_at_its_stage,
    pending_login_expired_is_refused_and_deleted,
    pending_logins_end_with_the_user_s_credentials,
    a_credential_change_applies_only_to_the_record_it_replaces,
    pending_login_concurrent_takes_one_winner,
    pending_logins_are_bounded,
    session_idle_timeout,
    session_absolute_lifetime,
    session_logout_and_errors,
    a_login_s_combined_calls_do_both_halves,
    a_user_s_sessions_beyond_the_cap_end_least_recently_used_first,
    seq_compare_and_set_refuses_replay,
    seq_concurrent_same_value_one_winner,
    throttle_backoff_per_key,
    throttle_concurrent_failures_all_counted,
    throttle_check_and_count_lets_no_more_through_than_serially,
    relay_queue_roundtrip,
    queue_quota_bounds_known_and_unknown_recipients_alike,
    a_sender_s_daily_budget_counts_every_session_and_renews_the_next_day,
    a_large_batch_decides_each_message_as_if_alone,
    the_committer_sees_what_others_commit_between_its_batches,
    audit_chain_appends_and_reads_in_order,
    audit_concurrent_appends_one_winner_per_position,
    audit_checkpoints_vouch_for_existing_records,
    audit_chains_are_pruned_whole_once_ended_and_read,
    session_ends_are_noted_for_every_way_a_session_leaves,
    purge_removes_expired,
    known_networks_are_noted_refreshed_and_forgotten,
    removing_user_cascades,
    ping_answers_and_backup_copies_sqlite_only,
    after_restore_ends_sessions_and_logins_and_moves_counters,
    end_sessions_ends_one_user_s_sessions_only,
);

/// Fixtures shared by the cases.
mod common;

mod fixture {
    use super::*;

    pub(crate) fn pair(prompt: &str, verifier: &[u8]) -> ChallengePair {
        ChallengePair {
            prompt: prompt.to_owned(),
            salt: format!("salt-{prompt}").into_bytes(),
            verifier: Zeroizing::new(verifier.to_vec()),
        }
    }

    pub(crate) fn user(name: &str, pairs: usize) -> NewUser {
        NewUser {
            name: name.to_owned(),
            opaque_record: format!("record of {name}").into_bytes(),
            pairs: (0..pairs)
                .map(|i| pair(&format!("C{i:02}"), &[i as u8; 32]))
                .collect(),
        }
    }

    pub(crate) fn session(user: &str, id: u8, created: u64, expires_at: u64) -> NewSession {
        NewSession {
            token_hash: vec![id; 32],
            session_id: vec![id, 0xee],
            user: user.to_owned(),
            created,
            expires_at,
            secret: Zeroizing::new(vec![0x5e; 32]),
            max_per_user: 128,
        }
    }

    pub(crate) fn audit(session: &[u8], seq: u64, prev: &[u8], hash: &[u8]) -> AuditRecord {
        AuditRecord {
            session_id: session.to_vec(),
            seq,
            prev_hash: prev.to_vec(),
            record_hash: hash.to_vec(),
            payload: format!("payload {seq}").into_bytes(),
            created: 1_000 + seq,
        }
    }
}

/// The cases: each takes the two stores and asserts on `dyn Store` only.
mod cases {

    /// `ping` answers; SQLite writes a backup holding the data (and refuses an existing
    /// file), PostgreSQL refuses and names `pg_dump`.
    pub(super) async fn ping_answers_and_backup_copies_sqlite_only(s: Stores) {
        s.main.ping().await.unwrap();
        s.main
            .create_user(&fixture::user("alice", 1), 1)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.db");
        if s.main.backend() == "postgres" {
            let err = s.main.backup_to(&path).await.unwrap_err();
            assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
            assert!(err.to_string().contains("pg_dump"), "{err}");
            assert!(!path.exists());
            return;
        }
        s.main.backup_to(&path).await.unwrap();
        let again = s.main.backup_to(&path).await.unwrap_err();
        assert!(matches!(again, StoreError::BackupFile { .. }), "{again:?}");
        let copy = kasane_host::store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert!(copy.get_user("alice").await.unwrap().is_some());
    }
    use super::fixture::*;
    use super::*;

    /// After a restore: no session and no login in flight is left, every counter moved
    /// ahead by the jump (the next one drawn is past every one drawn before), nothing else.
    pub(crate) async fn after_restore_ends_sessions_and_logins_and_moves_counters(s: Stores) {
        use kasane_host::store::RESTORE_COUNTER_JUMP;
        let st = &*s.main;
        st.create_user(&user("alice", 2), 1).await.unwrap();
        st.create_user(&user("bob", 2), 1).await.unwrap();
        assert_eq!(st.next_counter("alice").await.unwrap(), 1);
        st.create_session(&session("alice", 1, 10, 10_000))
            .await
            .unwrap();
        st.create_session(&session("bob", 2, 10, 10_000))
            .await
            .unwrap();
        let login = pending(3, LoginStage::Start, 10_000);
        st.put_pending_login(&login, 10, ROOMY).await.unwrap();

        let done = s.replica.after_restore().await.unwrap();
        assert_eq!(
            (done.sessions, done.pending_logins, done.counters),
            (2, 1, 2)
        );
        for token in [[1; 32], [2; 32]] {
            assert!(st.touch_session(&token, 20, 3600).await.unwrap().is_none());
        }
        let taken = st.take_pending_login(&[3; 16], LoginStage::Start, 20).await;
        assert!(taken.unwrap().is_none());
        let alice = st.next_counter("alice").await.unwrap();
        assert_eq!(alice, 2 + RESTORE_COUNTER_JUMP);
        assert_eq!(
            st.next_counter("bob").await.unwrap(),
            1 + RESTORE_COUNTER_JUMP
        );
        assert_eq!(st.get_user("bob").await.unwrap().unwrap().pairs.len(), 2);
    }

    /// `user logout`: every session of the user ends, another user's stays.
    pub(crate) async fn end_sessions_ends_one_user_s_sessions_only(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        st.create_session(&session("alice", 1, 10, 10_000))
            .await
            .unwrap();
        st.create_session(&session("alice", 2, 10, 10_000))
            .await
            .unwrap();
        st.create_session(&session("bob", 3, 10, 10_000))
            .await
            .unwrap();
        let sessions = |list: Vec<kasane_host::store::UserSummary>| {
            list.into_iter().map(|u| u.sessions).collect::<Vec<_>>()
        };
        assert_eq!(sessions(st.list_users().await.unwrap()), [2, 1]);
        assert_eq!(s.replica.end_sessions("alice").await.unwrap(), Some(2));
        assert_eq!(sessions(st.list_users().await.unwrap()), [0, 1]);
        for token in [[1; 32], [2; 32]] {
            assert!(st.touch_session(&token, 20, 3600).await.unwrap().is_none());
        }
        assert!(
            st.touch_session(&[3; 32], 20, 3600)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(st.end_sessions("alice").await.unwrap(), Some(0));
        assert_eq!(st.end_sessions("nobody").await.unwrap(), None);
    }

    pub(crate) async fn users_create_get_list_remove(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("bob", 3), 100).await.unwrap();
        st.create_user(&user("alice", 2), 200).await.unwrap();
        let dup = st.create_user(&user("alice", 1), 300).await;
        assert!(matches!(dup, Err(StoreError::UserExists)), "{dup:?}");

        let alice = s.replica.get_user("alice").await.unwrap().unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.created, 200);
        assert_eq!(alice.counter, 0);
        assert_eq!(alice.opaque_record, Some(user("alice", 0).opaque_record));
        assert_eq!(alice.pairs, user("alice", 2).pairs);
        assert!(st.get_user("carol").await.unwrap().is_none());

        let list = st.list_users().await.unwrap();
        let names: Vec<_> = list
            .iter()
            .map(|u| (u.name.as_str(), u.pair_count))
            .collect();
        assert_eq!(names, [("alice", 2), ("bob", 3)]);
        assert_eq!(list[1].created, 100);
        assert_eq!(list[0].throttle, ThrottleState::default());

        assert!(st.remove_user("alice").await.unwrap());
        assert!(!st.remove_user("alice").await.unwrap());
        assert!(st.get_user("alice").await.unwrap().is_none());
        assert_eq!(st.list_users().await.unwrap().len(), 1);
        // The name is free again, with a fresh counter.
        st.create_user(&user("alice", 1), 400).await.unwrap();
        assert_eq!(st.next_counter("alice").await.unwrap(), 1);
    }

    pub(crate) async fn replace_pairs_keeps_order(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 4), 1).await.unwrap();
        let new = vec![pair("Z9", b"v1"), pair("A0", b"v2"), pair("M5", b"v3")];
        assert!(st.replace_pairs("alice", &new).await.unwrap());
        let got = s.replica.get_user("alice").await.unwrap().unwrap();
        assert_eq!(got.pairs, new);
        assert!(!st.replace_pairs("nobody", &new).await.unwrap());
        assert_eq!(st.list_users().await.unwrap()[0].pair_count, 3);
    }

    pub(crate) async fn counter_increments_per_user(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        assert_eq!(st.next_counter("alice").await.unwrap(), 1);
        assert_eq!(s.replica.next_counter("alice").await.unwrap(), 2);
        assert_eq!(st.next_counter("bob").await.unwrap(), 1);
        assert_eq!(st.next_counter("alice").await.unwrap(), 3);
        // Persisted: the other replica reads it.
        assert_eq!(
            s.replica.get_user("alice").await.unwrap().unwrap().counter,
            3
        );
        let missing = st.next_counter("nobody").await;
        assert!(
            matches!(missing, Err(StoreError::UserNotFound)),
            "{missing:?}"
        );
    }

    pub(crate) async fn counter_50_concurrent_callers_distinct_and_contiguous(s: Stores) {
        s.main.create_user(&user("alice", 1), 1).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            // Half through each replica: two hosts sharing one database.
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move { st.next_counter("alice").await.unwrap() });
        }
        let mut got = Vec::new();
        while let Some(v) = tasks.join_next().await {
            got.push(v.unwrap());
        }
        let distinct: HashSet<_> = got.iter().copied().collect();
        assert_eq!(distinct.len(), 50, "a counter value repeated: {got:?}");
        got.sort_unstable();
        assert_eq!(got, (1..=50).collect::<Vec<u64>>());
        assert_eq!(s.main.get_user("alice").await.unwrap().unwrap().counter, 50);
        assert_eq!(s.replica.next_counter("alice").await.unwrap(), 51);
    }

    pub(crate) async fn count_start_draws_the_counter_with_the_record(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 3), 1).await.unwrap();
        st.create_user(&user("bob", 0), 1).await.unwrap();
        async fn start(st: &dyn Store, name: &str) -> Option<kasane_host::store::Counted> {
            let keys = [
                ThrottleKey::User(name),
                ThrottleKey::Source("192.0.2.9".parse().unwrap()),
            ];
            let free = Backoff {
                free_failures: 100,
                ..Backoff::default()
            };
            st.count_start(&keys, Some(name), 10, &free).await.unwrap()
        }
        let counted = start(st, "alice").await.unwrap();
        let want = s.replica.get_user("alice").await.unwrap().unwrap();
        let login = counted.login.unwrap();
        assert_eq!(Some(login.opaque_record), want.opaque_record);
        assert_eq!((login.counter, want.counter), (1, 1));
        assert_eq!(counted.after[0].failures, 1, "the start is counted");
        // One counter, whichever replica or method draws it.
        let again = start(&*s.replica, "alice").await.unwrap();
        assert_eq!(again.login.unwrap().counter, 2);
        assert_eq!(st.next_counter("alice").await.unwrap(), 3);
        // Only a user with pairs has a record to answer from, and a counter drawn.
        for name in ["bob", "nobody"] {
            let counted = start(st, name).await.unwrap();
            assert_eq!((counted.login, counted.after[0].failures), (None, 1));
        }
        assert_eq!(st.get_user("bob").await.unwrap().unwrap().counter, 0);
        let no_keys = st
            .count_start(&[], Some("alice"), 10, &Backoff::default())
            .await;
        assert!(matches!(no_keys, Err(StoreError::OutOfRange { .. })));
        // A bundle's pairs, in card order; none for no such user.
        assert_eq!(st.challenge_pairs("alice").await.unwrap(), want.pairs);
        assert!(st.challenge_pairs("nobody").await.unwrap().is_empty());
        st.make_durable().await.unwrap();
        s.replica.make_durable().await.unwrap();
    }

    /// A start's lookup: the record only for a user that can log in, and each key's lock
    /// end in the keys' order, on any replica.
    pub(crate) async fn start_lookup_reads_record_and_locks(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 3), 1).await.unwrap();
        st.create_user(&user("bob", 0), 1).await.unwrap();
        let source = ThrottleKey::Source("192.0.2.9".parse().unwrap());
        let keys = |name| [ThrottleKey::User(name), source, ThrottleKey::User("carol")];
        let want = st.get_user("alice").await.unwrap().unwrap().opaque_record;
        let found = s.replica.start_lookup("alice", "a:x", keys("alice")).await;
        assert_eq!(found.unwrap().opaque_record, want);
        for name in ["bob", "nobody"] {
            let found = st.start_lookup(name, "a:x", keys(name)).await.unwrap();
            assert_eq!((found.opaque_record, found.locked_until), (None, [0; 3]));
        }
        let locking = Backoff {
            free_failures: 0,
            base_secs: 60,
            ..Backoff::default()
        };
        let carol = [ThrottleKey::User("carol")];
        st.record_failures(&carol, 100, &locking).await.unwrap();
        st.record_failures(&[source], 100, &locking).await.unwrap();
        let found = s.replica.start_lookup("alice", "a:x", keys("alice")).await;
        let [own, by_source, by_carol] = found.unwrap().locked_until;
        assert_eq!(own, 0);
        assert!(by_source > 100 && by_carol > 100, "{by_source} {by_carol}");
    }

    pub(crate) async fn commits_durable_and_relaxed(s: Stores) {
        assert!(s.raw.commits_durably().await, "the durable pool");
        assert!(!s.relaxed.commits_durably().await, "the relaxed pool");
        // Both pools see one database: a relaxed write is read through the durable pool.
        let login = pending(9, LoginStage::Start, 500);
        s.main.put_pending_login(&login, 1, ROOMY).await.unwrap();
        assert_eq!(s.raw.count("pending_logins").await, 1);
    }

    pub(crate) async fn throttle_states_in_key_order(s: Stores) {
        let st = &*s.main;
        let (alice, addr) = (
            ThrottleKey::User("alice"),
            ThrottleKey::Source("192.0.2.7".parse().unwrap()),
        );
        let b = Backoff::default();
        for _ in 0..2 {
            st.record_failure(addr, 10, &b).await.unwrap();
        }
        let got = s.replica.throttle_states(&[alice, addr]).await.unwrap();
        let counted = ThrottleState {
            failures: 2,
            locked_until: 0,
        };
        assert_eq!(got, [ThrottleState::default(), counted]);
        let got = st.throttle_states(&[addr, alice, addr]).await.unwrap();
        assert_eq!(got, [counted, ThrottleState::default(), counted]);
        assert!(st.throttle_states(&[]).await.unwrap().is_empty());

        // Both keys counted in one statement; the third failure of `addr` locks it (2 free).
        let b = Backoff {
            free_failures: 2,
            base_secs: 30,
            max_secs: 60,
            decay_secs: 300,
        };
        let after = st.record_failures(&[alice, addr], 20, &b).await.unwrap();
        let locked = ThrottleState {
            failures: 3,
            locked_until: 50,
        };
        let alice_once = ThrottleState {
            failures: 1,
            locked_until: 0,
        };
        assert_eq!(after, [alice_once, locked]);
        assert_eq!(
            s.replica.throttle_states(&[alice, addr]).await.unwrap(),
            [alice_once, locked]
        );
        // Taken back together: the lock `addr`'s failure engaged goes back to what it was.
        let forgiven = [
            Forgiven {
                key: alice,
                engaged: 0,
                before: 0,
            },
            Forgiven {
                key: addr,
                engaged: 50,
                before: 0,
            },
        ];
        s.replica.forgive_failures(&forgiven).await.unwrap();
        assert_eq!(
            st.throttle_states(&[alice, addr]).await.unwrap(),
            [ThrottleState::default(), counted]
        );
        // Never below zero.
        st.forgive_failures(&forgiven[..1]).await.unwrap();
        assert_eq!(st.throttle_state(alice).await.unwrap().failures, 0);
        assert!(st.record_failures(&[], 1, &b).await.unwrap().is_empty());
        st.forgive_failures(&[]).await.unwrap();
    }

    pub(crate) async fn throttle_decays_caps_lists_and_purges(s: Stores) {
        let st = &*s.main;
        let b = Backoff {
            free_failures: 2,
            base_secs: 10,
            max_secs: 40,
            decay_secs: 100,
        };
        let net = ThrottleKey::network("2001:db8::7".parse().unwrap(), 64);
        let mut last = ThrottleState::default();
        for _ in 0..10 {
            last = st.record_failures(&[net], 1000, &b).await.unwrap()[0];
        }
        // Capped where the lock is longest: ten failures count as five.
        assert_eq!(last.failures, b.ceiling());
        assert_eq!(last.locked_until, 1040);
        // 250 s later two have leaked away: this one makes four (a 20 s lock, not longer).
        let after = s.replica.record_failures(&[net], 1250, &b).await.unwrap()[0];
        assert_eq!((after.failures, after.locked_until), (4, 1270));
        let listed = st.list_throttle().await.unwrap();
        assert_eq!(
            listed,
            [ThrottleEntry {
                key: "a:2001:db8::/64".into(),
                failures: 4,
                locked_until: 1270,
                last_failure: 1250,
            }]
        );
        // Kept until unlocked and decayed to nothing (4 · 100 s after the last failure).
        assert_eq!(st.purge_throttle(1649, &b).await.unwrap(), 0);
        assert_eq!(s.replica.purge_throttle(1650, &b).await.unwrap(), 1);
        assert!(st.list_throttle().await.unwrap().is_empty());
        // Cleared by the key as listed.
        st.record_failures(&[net], 2000, &b).await.unwrap();
        assert!(!st.clear_throttle_key("a:2001:db8::7").await.unwrap());
        assert!(st.clear_throttle_key("a:2001:db8::/64").await.unwrap());
        assert_eq!(
            st.throttle_state(net).await.unwrap(),
            ThrottleState::default()
        );
    }

    pub(crate) async fn dead_letters_and_facts(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        let bad = st
            .enqueue_message("alice", b"does not open", 5)
            .await
            .unwrap();
        let good = st.enqueue_message("alice", b"fine", 6).await.unwrap();
        assert!(
            !st.dead_letter_message("bob", bad, 9).await.unwrap(),
            "not bob's"
        );
        assert!(
            s.replica
                .dead_letter_message("alice", bad, 9)
                .await
                .unwrap()
        );
        assert!(
            !st.dead_letter_message("alice", bad, 9).await.unwrap(),
            "moved once"
        );
        let left = st.fetch_messages("alice", 0, 10).await.unwrap();
        assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), [good]);
        let dead = s.replica.dead_letters(0, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        let d = &dead[0];
        assert_eq!(
            (d.id, d.recipient.as_str(), d.created, d.moved),
            (bad, "alice", 5, 9)
        );
        assert!(d.bytes > 0 && d.audit.is_none(), "{d:?}");
        assert!(
            st.dead_letters(bad, 10).await.unwrap().is_empty(),
            "after its id"
        );
        assert!(st.remove_dead_letter(bad).await.unwrap());
        assert!(
            !s.replica.remove_dead_letter(bad).await.unwrap(),
            "removed once"
        );
        assert_eq!(s.raw.count("relay_dead_letters").await, 0);
        // The first claim of a fact wins, on every replica.
        assert_eq!(st.claim_fact("queue_key_id", b"one").await.unwrap(), b"one");
        assert_eq!(
            s.replica.claim_fact("queue_key_id", b"two").await.unwrap(),
            b"one"
        );
        assert_eq!(st.claim_fact("other", b"two").await.unwrap(), b"two");
    }

    fn pending(id: u8, stage: LoginStage, expires_at: u64) -> NewPendingLogin {
        NewPendingLogin {
            id: vec![id; 16],
            stage,
            source: "a:192.0.2.1/32".into(),
            user: "alice".into(),
            parts: Zeroizing::new(vec![9, 8, 7, id]),
            expires_at,
        }
    }

    /// Room for ten logins, five starts per source.
    const ROOMY: PendingBounds = PendingBounds {
        total: 10,
        per_source: 5,
        bundles_per_user: 5,
    };

    pub(crate) async fn pending_login_is_taken_once_at_its_stage(s: Stores) {
        let st = &*s.main;
        st.put_pending_login(&pending(1, LoginStage::Start, 500), 1, ROOMY)
            .await
            .unwrap();
        st.put_pending_login(&pending(2, LoginStage::Start, 50), 1, ROOMY)
            .await
            .unwrap();
        assert_eq!(s.raw.count("pending_logins").await, 2);
        // Refused as a duplicate, at a time when login 2 has expired: evicted all the same.
        let dup = st
            .put_pending_login(&pending(1, LoginStage::Bundle, 600), 100, ROOMY)
            .await;
        assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
        assert_eq!(s.raw.count("pending_logins").await, 1);
        // Another stage does not match (and does not consume it).
        assert!(
            s.replica
                .take_pending_login(&[1; 16], LoginStage::Bundle, 100)
                .await
                .unwrap()
                .is_none()
        );
        let got = s
            .replica
            .take_pending_login(&[1; 16], LoginStage::Start, 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_slice(), [9, 8, 7, 1]);
        assert!(
            st.take_pending_login(&[1; 16], LoginStage::Start, 100)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            st.take_pending_login(&[7; 16], LoginStage::Start, 100)
                .await
                .unwrap()
                .is_none()
        );
    }

    /// `kasane passwd` replaces the record it read: a change sent again (or two at once) finds
    /// another record and changes nothing, neither the record nor the pairs nor the sessions.
    pub(crate) async fn a_credential_change_applies_only_to_the_record_it_replaces(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 2), 1).await.unwrap();
        st.create_session(&session("alice", 1, 1, 1000))
            .await
            .unwrap();
        let first = user("x", 3);
        let changed = st.reenroll("alice", b"record of alice", b"second", &first.pairs, &[]);
        assert_eq!(changed.await.unwrap(), Some(vec![vec![1; 32]]));
        st.create_session(&session("alice", 2, 2, 1000))
            .await
            .unwrap();
        // The same change again, and one naming a record alice never had: both refused.
        let third = user("y", 1);
        for replacing in [&b"record of alice"[..], b"third"] {
            let again = st.reenroll("alice", replacing, b"third", &third.pairs, &[]);
            assert_eq!(again.await.unwrap(), None);
        }
        let alice = st.get_user("alice").await.unwrap().unwrap();
        assert_eq!(alice.opaque_record.as_deref(), Some(&b"second"[..]));
        assert_eq!(alice.pairs.len(), 3);
        assert!(st.touch_session(&[2; 32], 3, 1000).await.unwrap().is_some());
    }

    /// A credential change, `user logout`, a new card and `user remove` each end the user's
    /// logins in flight (a held bundle must not open a session afterwards), and only theirs.
    pub(crate) async fn pending_logins_end_with_the_user_s_credentials(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 2), 1).await.unwrap();
        st.create_user(&user("bob", 2), 1).await.unwrap();
        let bob = NewPendingLogin {
            user: "bob".into(),
            ..pending(99, LoginStage::Bundle, 500)
        };
        st.put_pending_login(&bob, 1, ROOMY).await.unwrap();
        let held = |id: u8| {
            let st = s.main.clone();
            async move {
                st.take_pending_login(&[id; 16], LoginStage::Bundle, 2)
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        for (id, how) in [(1u8, "reenroll"), (2, "logout"), (3, "card"), (4, "remove")] {
            st.put_pending_login(&pending(id, LoginStage::Bundle, 500), 1, ROOMY)
                .await
                .unwrap();
            match how {
                "reenroll" => {
                    let new = user("alice", 2);
                    let r = st.reenroll("alice", b"record of alice", b"new", &new.pairs, &[]);
                    assert!(r.await.unwrap().is_some());
                }
                "logout" => assert_eq!(st.end_sessions("alice").await.unwrap(), Some(0)),
                "card" => assert!(
                    st.replace_pairs("alice", &user("x", 3).pairs)
                        .await
                        .unwrap()
                ),
                _ => assert!(st.remove_user("alice").await.unwrap()),
            }
            assert!(!held(id).await, "{how}: alice's bundle outlived it");
        }
        assert!(held(99).await, "bob's bundle went too");
    }

    pub(crate) async fn pending_login_expired_is_refused_and_deleted(s: Stores) {
        let st = &*s.main;
        st.put_pending_login(&pending(2, LoginStage::Bundle, 500), 1, ROOMY)
            .await
            .unwrap();
        assert!(
            st.take_pending_login(&[2; 16], LoginStage::Bundle, 500)
                .await
                .unwrap()
                .is_none()
        );
        // Gone, even for a caller whose clock is behind.
        assert!(
            st.take_pending_login(&[2; 16], LoginStage::Bundle, 10)
                .await
                .unwrap()
                .is_none()
        );
        st.put_pending_login(&pending(3, LoginStage::Start, 100), 1, ROOMY)
            .await
            .unwrap();
        st.put_pending_login(&pending(4, LoginStage::Start, 300), 1, ROOMY)
            .await
            .unwrap();
        let purged = s.replica.purge_expired(200, 10).await.unwrap();
        assert_eq!(purged.pending_logins, 1);
        assert!(
            st.take_pending_login(&[4; 16], LoginStage::Start, 200)
                .await
                .unwrap()
                .is_some()
        );
    }

    pub(crate) async fn pending_login_concurrent_takes_one_winner(s: Stores) {
        s.main
            .put_pending_login(&pending(5, LoginStage::Start, 500), 1, ROOMY)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move {
                st.take_pending_login(&[5; 16], LoginStage::Start, 1)
                    .await
                    .unwrap()
                    .is_some()
            });
        }
        let mut winners = 0;
        while let Some(v) = tasks.join_next().await {
            winners += usize::from(v.unwrap());
        }
        assert_eq!(winners, 1);
    }

    pub(crate) async fn pending_logins_are_bounded(s: Stores) {
        let bounds = PendingBounds {
            total: 6,
            per_source: 3,
            bundles_per_user: 2,
        };
        let put = |id: u8, source: &str, expires_at: u64| {
            let (st, source) = (s.main.clone(), source.to_owned());
            async move {
                let mut login = pending(id, LoginStage::Start, expires_at);
                login.source = source;
                st.put_pending_login(&login, 100, bounds).await.unwrap()
            }
        };
        let kept = |ids: &[u8]| {
            let st = s.replica.clone();
            let ids = ids.to_vec();
            async move {
                let mut out = Vec::new();
                for id in ids {
                    let got = st
                        .take_pending_login(&[id; 16], LoginStage::Start, 100)
                        .await;
                    out.push(got.unwrap().is_some());
                }
                out
            }
        };
        // One network floods: only its own oldest starts make room, never a refusal.
        assert_eq!(put(1, "a:198.51.100.0/24", 500).await, 0);
        let mut evicted = Vec::new();
        for id in 10..16 {
            evicted.push(put(id, "a:203.0.113.0/24", 500).await);
        }
        assert_eq!(
            evicted,
            [0, 0, 0, 1, 1, 1],
            "each put past three evicts one"
        );
        assert_eq!(s.raw.count("pending_logins").await, 4);
        assert_eq!(
            kept(&[1, 10, 11, 12, 13, 14, 15]).await,
            [true, false, false, false, true, true, true]
        );
        // Overall, the oldest go first (an expired row goes anyway).
        put(20, "a:192.0.2.0/24", 50).await;
        for (i, id) in (30..36).enumerate() {
            put(id, &format!("a:10.0.{i}.0/24"), 500).await;
        }
        assert_eq!(s.raw.count("pending_logins").await, 6);
        assert_eq!(kept(&[20, 30, 31, 35]).await, [false, true, true, true]);
        // A bundle is never evicted for its source's starts.
        let mut bundle = pending(40, LoginStage::Bundle, 500);
        bundle.source = "a:203.0.113.0/24".into();
        s.main
            .put_pending_login(&bundle, 100, bounds)
            .await
            .unwrap();
        for id in 41..45 {
            put(id, "a:203.0.113.0/24", 500).await;
        }
        // Nor for starts from everywhere else (past `total`): a bundle is past the password.
        for id in 50..60 {
            put(id, &format!("a:10.1.{id}.0/24"), 500).await;
        }
        let b = s
            .replica
            .take_pending_login(&[40; 16], LoginStage::Bundle, 100);
        assert!(b.await.unwrap().is_some());
        // A user's bundles past `bundles_per_user` evict that user's oldest, no one else's.
        let bundle = |id: u8, user: &str| {
            let mut b = pending(id, LoginStage::Bundle, 500);
            b.user = user.to_owned();
            b
        };
        let (st, r) = (&s.main, &s.replica);
        st.put_pending_login(&bundle(70, "bob"), 100, bounds)
            .await
            .unwrap();
        for id in 71..75 {
            st.put_pending_login(&bundle(id, "alice"), 100, bounds)
                .await
                .unwrap();
        }
        let mut left = Vec::new();
        for id in 70..75 {
            left.push(
                r.take_pending_login(&[id; 16], LoginStage::Bundle, 100)
                    .await
                    .unwrap()
                    .is_some(),
            );
        }
        assert_eq!(left, [true, false, false, true, true]);
    }

    pub(crate) async fn session_idle_timeout(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_session(&session("alice", 1, 1_000, 10_000))
            .await
            .unwrap();
        let idle = 100;
        let got = st
            .touch_session(&[1; 32], 1_050, idle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.user, "alice");
        assert_eq!(got.session_id, vec![1, 0xee]);
        assert_eq!(got.created, 1_000);
        assert_eq!(got.last_seen, 1_050);
        assert_eq!(got.expires_at, 10_000);
        assert_eq!(&got.secret[..], &[0x5e; 32]);
        // The touch moved last_seen: 1_149 is within 100 s of 1_050.
        assert!(
            s.replica
                .touch_session(&[1; 32], 1_149, idle)
                .await
                .unwrap()
                .is_some()
        );
        // Idle for exactly the timeout: ended, and deleted.
        assert!(
            st.touch_session(&[1; 32], 1_249, idle)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            st.touch_session(&[1; 32], 1_150, idle)
                .await
                .unwrap()
                .is_none()
        );
        assert!(st.delete_session(&[1; 32]).await.unwrap().is_none());
    }

    pub(crate) async fn session_absolute_lifetime(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_session(&session("alice", 2, 1_000, 1_200))
            .await
            .unwrap();
        let idle = 100;
        for now in [1_050, 1_100, 1_150, 1_199] {
            assert!(
                st.touch_session(&[2; 32], now, idle)
                    .await
                    .unwrap()
                    .is_some(),
                "{now}"
            );
        }
        assert!(
            st.touch_session(&[2; 32], 1_200, idle)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            st.touch_session(&[2; 32], 1_100, idle)
                .await
                .unwrap()
                .is_none()
        );
    }

    pub(crate) async fn session_logout_and_errors(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        let missing = st.create_session(&session("nobody", 3, 1, 100)).await;
        assert!(
            matches!(missing, Err(StoreError::UserNotFound)),
            "{missing:?}"
        );
        st.create_session(&session("alice", 3, 1, 100))
            .await
            .unwrap();
        let dup = st.create_session(&session("alice", 3, 1, 100)).await;
        assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
        assert_eq!(
            s.replica.delete_session(&[3; 32]).await.unwrap(),
            Some(vec![3, 0xee])
        );
        assert!(st.touch_session(&[3; 32], 2, 50).await.unwrap().is_none());
        assert!(st.delete_session(&[3; 32]).await.unwrap().is_none());
    }

    /// `open_session` and `challenge_pairs_forgiving` (one call on a SQLite file, two side
    /// by side on PostgreSQL): both halves done, the write's half even when the other fails.
    pub(crate) async fn a_login_s_combined_calls_do_both_halves(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 3), 1).await.unwrap();
        let alice = ThrottleKey::User("alice");
        let b = Backoff::default();
        let counted = |n| ThrottleState {
            failures: n,
            locked_until: 0,
        };
        for _ in 0..2 {
            st.record_failure(alice, 10, &b).await.unwrap();
        }
        // Forgiven once while the pairs are read, in card order.
        let forgiven = [Forgiven {
            key: alice,
            engaged: 0,
            before: 0,
        }];
        let pairs = s
            .replica
            .challenge_pairs_forgiving("alice", &forgiven)
            .await
            .unwrap();
        let prompts: Vec<&str> = pairs.iter().map(|p| p.prompt.as_str()).collect();
        assert_eq!(prompts, ["C00", "C01", "C02"]);
        assert_eq!(st.throttle_state(alice).await.unwrap(), counted(1));
        // No such user: no pairs, and the forgiving still done.
        let none = st.challenge_pairs_forgiving("bob", &forgiven).await;
        assert!(none.unwrap().is_empty());
        assert_eq!(st.throttle_state(alice).await.unwrap(), counted(0));
        // The session stored, the user's throttle cleared and the source's count taken back.
        let net = ThrottleKey::Network("192.0.2.0".parse().unwrap(), 24);
        st.record_failure(alice, 10, &b).await.unwrap();
        for _ in 0..2 {
            st.record_failure(net, 10, &b).await.unwrap();
        }
        let back = [Forgiven {
            key: net,
            engaged: 0,
            before: 0,
        }];
        st.open_session(&session("alice", 7, 1, 100), alice, &back)
            .await
            .unwrap();
        assert!(st.touch_session(&[7; 32], 2, 50).await.unwrap().is_some());
        assert_eq!(st.throttle_state(alice).await.unwrap(), counted(0));
        assert_eq!(st.throttle_state(net).await.unwrap(), counted(1));
        // A session refused (a duplicate; no such user) still clears the throttle.
        st.record_failure(alice, 10, &b).await.unwrap();
        let dup = s
            .replica
            .open_session(&session("alice", 7, 1, 100), alice, &[])
            .await;
        assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
        assert_eq!(st.throttle_state(alice).await.unwrap(), counted(0));
        st.record_failure(alice, 10, &b).await.unwrap();
        let missing = st
            .open_session(&session("nobody", 8, 1, 100), alice, &[])
            .await;
        assert!(
            matches!(missing, Err(StoreError::UserNotFound)),
            "{missing:?}"
        );
        assert_eq!(st.throttle_state(alice).await.unwrap(), counted(0));
    }

    /// `session.max_per_user`: a new session ends the user's least recently used ones beyond
    /// the cap (on either path: `create_session` and `open_session`), never itself, and never
    /// another user's.
    pub(crate) async fn a_user_s_sessions_beyond_the_cap_end_least_recently_used_first(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        let capped = |id: u8, created: u64, cap: u32| NewSession {
            max_per_user: cap,
            ..session("alice", id, created, 10_000)
        };
        for id in 1..=3 {
            st.create_session(&capped(id, u64::from(id), 3))
                .await
                .unwrap();
        }
        st.create_session(&session("bob", 9, 1, 10_000))
            .await
            .unwrap();
        // Session 1, the oldest, was used last: 2 is now the least recently used.
        assert!(
            st.touch_session(&[1; 32], 50, 1_000)
                .await
                .unwrap()
                .is_some()
        );
        s.replica.create_session(&capped(4, 60, 3)).await.unwrap();
        assert_eq!(
            live_at(st, &[1, 2, 3, 4], 70).await,
            [true, false, true, true]
        );
        // A cap of one keeps only the new session, on the login's combined call too.
        let alice = ThrottleKey::User("alice");
        st.open_session(&capped(5, 80, 1), alice, &[])
            .await
            .unwrap();
        assert_eq!(
            live_at(st, &[1, 3, 4, 5, 9], 90).await,
            [false, false, false, true, true]
        );
        assert_eq!(s.raw.count("sessions").await, 2);
    }

    /// Whether each of `ids`' sessions is live at `now` (touched: it counts as a use).
    async fn live_at(st: &dyn Store, ids: &[u8], now: u64) -> Vec<bool> {
        let mut live = Vec::new();
        for id in ids {
            live.push(
                st.touch_session(&[*id; 32], now, 1_000)
                    .await
                    .unwrap()
                    .is_some(),
            );
        }
        live
    }

    pub(crate) async fn seq_compare_and_set_refuses_replay(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_session(&session("alice", 4, 1, 10_000))
            .await
            .unwrap();
        let id = [4, 0xee];
        let from = Direction::ClientToHost;
        assert!(st.advance_seq(&id, from, 1).await.unwrap());
        assert!(
            !s.replica.advance_seq(&id, from, 1).await.unwrap(),
            "replay accepted"
        );
        assert!(st.advance_seq(&id, from, 3).await.unwrap());
        assert!(
            !st.advance_seq(&id, from, 2).await.unwrap(),
            "reordered accepted"
        );
        assert!(!st.advance_seq(&id, from, 0).await.unwrap());
        // The other direction has its own sequence.
        assert!(
            st.advance_seq(&id, Direction::HostToClient, 1)
                .await
                .unwrap()
        );
        assert_eq!(st.next_seq(&id, Direction::HostToClient).await.unwrap(), 2);
        assert_eq!(
            s.replica
                .next_seq(&id, Direction::HostToClient)
                .await
                .unwrap(),
            3
        );
        let got = st.touch_session(&[4; 32], 2, 100).await.unwrap().unwrap();
        assert_eq!((got.from_client.top(), got.last_seq_to_client), (3, 3));
        assert!(!st.advance_seq(&[9, 9], from, 1).await.unwrap());
        let missing = st.next_seq(&[9, 9], from).await;
        assert!(
            matches!(missing, Err(StoreError::SessionNotFound)),
            "{missing:?}"
        );
        // An ended session accepts nothing.
        assert!(st.delete_session(&[4; 32]).await.unwrap().is_some());
        assert!(!st.advance_seq(&id, from, 10).await.unwrap());
    }

    pub(crate) async fn seq_concurrent_same_value_one_winner(s: Stores) {
        s.main.create_user(&user("alice", 1), 1).await.unwrap();
        s.main
            .create_session(&session("alice", 5, 1, 10_000))
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move {
                st.advance_seq(&[5, 0xee], Direction::ClientToHost, 7)
                    .await
                    .unwrap()
            });
        }
        let mut winners = 0;
        while let Some(v) = tasks.join_next().await {
            winners += usize::from(v.unwrap());
        }
        assert_eq!(winners, 1, "one message accepted more than once");
    }

    pub(crate) async fn throttle_backoff_per_key(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        let b = Backoff {
            free_failures: 2,
            base_secs: 10,
            max_secs: 25,
            decay_secs: 300,
        };
        let alice = ThrottleKey::User("alice");
        let addr = ThrottleKey::Source("192.0.2.7".parse().unwrap());
        let mut states = Vec::new();
        for now in [100, 101, 102, 103, 104] {
            states.push(st.record_failure(alice, now, &b).await.unwrap());
        }
        let until: Vec<_> = states
            .iter()
            .map(|t| (t.failures, t.locked_until))
            .collect();
        assert_eq!(until, [(1, 0), (2, 0), (3, 112), (4, 123), (5, 129)]);
        assert!(states[4].is_locked(128));
        assert!(!states[4].is_locked(129));
        // Read back (through the other replica), and shown by `user list`.
        let state = s.replica.throttle_state(alice).await.unwrap();
        assert_eq!(state, states[4]);
        assert_eq!(st.list_users().await.unwrap()[0].throttle, state);
        // The source address is a separate key.
        assert_eq!(
            st.throttle_state(addr).await.unwrap(),
            ThrottleState::default()
        );
        assert_eq!(st.record_failure(addr, 100, &b).await.unwrap().failures, 1);
        // A lock never shrinks, even from a caller whose clock is behind; the count stays at
        // the ceiling (five: where the lock is longest).
        let later = st.record_failure(alice, 50, &b).await.unwrap();
        assert_eq!((later.failures, later.locked_until), (5, 129));
        // Success clears one key only; `user unlock` clears the user's.
        st.clear_throttle(addr).await.unwrap();
        assert_eq!(
            st.throttle_state(addr).await.unwrap(),
            ThrottleState::default()
        );
        assert_eq!(st.throttle_state(alice).await.unwrap().failures, 5);
        assert!(st.unlock_user("alice").await.unwrap());
        assert_eq!(
            st.throttle_state(alice).await.unwrap(),
            ThrottleState::default()
        );
        assert!(!st.unlock_user("nobody").await.unwrap());
    }

    /// Issue 14, item 3: of 30 concurrent check-and-counts of one user and one source, as
    /// many pass as would one after another — the free failures and the one that engages
    /// the lock — and the others count nothing.
    pub(crate) async fn throttle_check_and_count_lets_no_more_through_than_serially(s: Stores) {
        let b = Backoff {
            free_failures: 3,
            base_secs: 60,
            max_secs: 600,
            decay_secs: 600,
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..30 {
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move {
                let keys = [
                    ThrottleKey::User("alice"),
                    ThrottleKey::Source("192.0.2.1".parse().unwrap()),
                ];
                st.count_start(&keys, Some("alice"), 1_000, &b)
                    .await
                    .unwrap()
            });
        }
        let mut passed = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Some(counted) = done.unwrap() {
                passed.push(counted.after[0].failures);
            }
        }
        passed.sort_unstable();
        assert_eq!(passed, [1, 2, 3, 4]);
        let state = s
            .main
            .throttle_state(ThrottleKey::User("alice"))
            .await
            .unwrap();
        assert_eq!((state.failures, state.locked_until), (4, 1_060));
    }

    pub(crate) async fn throttle_concurrent_failures_all_counted(s: Stores) {
        // A ceiling above 30 (the lock doubles far longer), no decay within the test.
        let b = Backoff {
            free_failures: 3,
            base_secs: 2,
            max_secs: 1 << 40,
            decay_secs: 1 << 30,
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..30 {
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move {
                let key = ThrottleKey::Source("2001:db8::1".parse().unwrap());
                st.record_failure(key, 100, &b).await.unwrap().failures
            });
        }
        let mut got = Vec::new();
        while let Some(v) = tasks.join_next().await {
            got.push(v.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (1..=30).collect::<Vec<u64>>(), "a failure was lost");
        let key = ThrottleKey::Source("2001:db8::1".parse().unwrap());
        let state = s.main.throttle_state(key).await.unwrap();
        assert_eq!(state.failures, 30);
        assert_eq!(state.locked_until, 100 + b.lock_secs(30));
    }

    /// `messages.max_user_bytes_per_day`: the audit bytes of all of a user's sessions count
    /// against its UTC day, on every replica; past the budget a message is refused
    /// (`BudgetSpent`, nothing written, its number still free) until the next day; purging
    /// keeps today's and yesterday's counts.
    pub(crate) async fn a_sender_s_daily_budget_counts_every_session_and_renews_the_next_day(
        s: Stores,
    ) {
        let st = &*s.main;
        alice_s_session_and_bob(st).await;
        st.create_session(&session("alice", 7, 1, 1_000_000))
            .await
            .unwrap();
        let roomy = QueueQuota {
            max_messages: 100,
            max_bytes: 1_000,
        };
        // Each record 1 byte (`to`'s payload); two a day.
        let m = |sid: u8, seq: u64, created: u64| AcceptMessage {
            session_id: vec![sid, 0xee],
            daily_budget: 2,
            created,
            ..to("bob", seq, 1, roomy)
        };
        let accepted = |got: AcceptOutcome| matches!(got, AcceptOutcome::Accepted { .. });
        assert!(accepted(st.accept_message(&m(6, 1, 100)).await.unwrap()));
        assert!(accepted(
            s.replica.accept_message(&m(7, 1, 200)).await.unwrap()
        ));
        for (store, sid) in [(st, 6), (&*s.replica, 7)] {
            let spent = store.accept_message(&m(sid, 2, 300)).await.unwrap();
            assert_eq!(spent, AcceptOutcome::BudgetSpent, "session {sid}");
        }
        // An answer (a gateway response, sent by the host) is counted, never refused.
        let answer = AcceptMessage {
            sent_by: kasane_host::store::SentBy::Host,
            queue: None,
            ..m(7, 2, 300)
        };
        assert!(accepted(s.replica.accept_message(&answer).await.unwrap()));
        assert_eq!(s.raw.count("audit_log").await, 3);
        assert_eq!(
            s.raw.sum("user_usage", "bytes").await,
            3,
            "the answer counted"
        );
        assert_eq!(s.raw.count("relay_queue").await, 2);
        let next_day = 86_400 + 5;
        assert!(accepted(
            st.accept_message(&m(7, 2, next_day)).await.unwrap()
        ));
        assert_eq!(s.raw.count("user_usage").await, 2);
        st.purge_expired(2 * 86_400 + 5, 86_400).await.unwrap();
        assert_eq!(s.raw.count("user_usage").await, 1, "yesterday's count kept");
    }

    /// Users alice and bob, and alice's session `[6, 0xee]` (what [`to`] sends from).
    async fn alice_s_session_and_bob(st: &dyn Store) {
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        st.create_session(&session("alice", 6, 1, 10_000))
            .await
            .unwrap();
    }

    /// A message from alice's session `[6, 0xee]` with sequence number `seq` for
    /// `recipient`, its sealed body `len` bytes, under `quota`.
    fn to(recipient: &str, seq: u64, len: usize, quota: QueueQuota) -> AcceptMessage {
        AcceptMessage {
            session_id: vec![6, 0xee],
            seq,
            payload: vec![seq as u8],
            queue: Some(kasane_host::store::QueueEntry {
                recipient: recipient.to_owned(),
                sealed: vec![0xb0; len],
                bytes: len as u64,
            }),
            quota,
            daily_budget: u64::MAX,
            held: 0,
            created: 10 + seq,
            sent_by: kasane_host::store::SentBy::Client,
        }
    }

    /// Issue 14: a recipient's queue is bounded in messages and bytes, a full one refuses
    /// (`QueueFull`, nothing written, the sequence number still free) until the recipient
    /// acknowledges; a name with no user fills the same way, so the answer does not say
    /// whether the recipient exists.
    pub(crate) async fn queue_quota_bounds_known_and_unknown_recipients_alike(s: Stores) {
        let st = &*s.main;
        alice_s_session_and_bob(st).await;
        let quota = QueueQuota {
            max_messages: 3,
            max_bytes: 100,
        };
        let mut seq = 0;
        for name in ["bob", "nobody"] {
            for _ in 0..3 {
                seq += 1;
                let got = s.replica.accept_message(&to(name, seq, 10, quota)).await;
                assert!(
                    matches!(got, Ok(AcceptOutcome::Accepted { .. })),
                    "{name} {seq}: {got:?}"
                );
            }
            let full = st.accept_message(&to(name, seq + 1, 10, quota)).await;
            assert_eq!(full.unwrap(), AcceptOutcome::QueueFull, "{name}");
        }
        let audited = s.raw.count("audit_log").await;
        assert_eq!((audited, s.raw.count("relay_queue").await), (6, 3));
        // bob reads one: room for one more, and the refused sequence number is still free.
        let queued = st.fetch_messages("bob", 0, 10).await.unwrap();
        assert!(st.ack_message("bob", queued[0].id).await.unwrap());
        seq += 1;
        let again = st.accept_message(&to("bob", seq, 10, quota)).await.unwrap();
        assert!(matches!(
            again,
            AcceptOutcome::Accepted { queued: true, .. }
        ));
        // "nobody" never reads: still full, as a user who does not read would be.
        seq += 1;
        let still = st.accept_message(&to("nobody", seq, 10, quota)).await;
        assert_eq!(still.unwrap(), AcceptOutcome::QueueFull);
        // Bytes bound too (with room for messages): 70 + 31 do not fit in 100, 70 + 30 do,
        // and then not one byte more.
        for id in st.fetch_messages("bob", 0, 10).await.unwrap() {
            assert!(st.ack_message("bob", id.id).await.unwrap());
        }
        seq += 1;
        let big = st.accept_message(&to("bob", seq, 70, quota)).await.unwrap();
        assert!(matches!(big, AcceptOutcome::Accepted { .. }), "{big:?}");
        seq += 1;
        let over = st.accept_message(&to("bob", seq, 31, quota)).await;
        assert_eq!(over.unwrap(), AcceptOutcome::QueueFull);
        let fits = st.accept_message(&to("bob", seq, 30, quota)).await.unwrap();
        assert!(matches!(fits, AcceptOutcome::Accepted { .. }), "{fits:?}");
        let byte = st.accept_message(&to("bob", seq + 1, 1, quota)).await;
        assert_eq!(byte.unwrap(), AcceptOutcome::QueueFull);
        assert_eq!(s.raw.count("audit_log").await, audited + 3);
        // A user made under a name takes over from its stand-in queue: empty.
        st.create_user(&user("nobody", 1), 20).await.unwrap();
        seq += 1;
        let fresh = st
            .accept_message(&to("nobody", seq, 10, quota))
            .await
            .unwrap();
        assert!(matches!(
            fresh,
            AcceptOutcome::Accepted { queued: true, .. }
        ));
    }

    /// A batch larger than one statement's rows (100 messages from 70 sessions: `IN` lists
    /// of 64 + 6 sessions, inserts of 64 + 32 + 4 rows) with replays inside it: each message
    /// gets the answer it would get alone, the chains link across the batch and continue
    /// after it, and only a user's messages are queued. On SQLite the batch goes through the
    /// store's own committer (rusqlite, the message path's) and the message after it through
    /// the other store's sqlx pool: both paths read and write the same rows alike.
    pub(crate) async fn a_large_batch_decides_each_message_as_if_alone(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        for id in 1..=70 {
            st.create_session(&session("alice", id, 1, 10_000))
                .await
                .unwrap();
        }
        let quota = QueueQuota {
            max_messages: 1000,
            max_bytes: 1 << 20,
        };
        let message = |k: usize| {
            let recipient = if k.is_multiple_of(3) { "nobody" } else { "bob" };
            let mut m = to(recipient, 1 + (k / 70) as u64, 8, quota);
            m.session_id = vec![1 + (k % 70) as u8, 0xee];
            m.payload = vec![k as u8, 1];
            m
        };
        let mut batch: Vec<AcceptMessage> = (0..100).map(message).collect();
        batch.push(message(0)); // session 1, seq 1 again
        batch.push(message(75)); // session 6, seq 2 again
        let outcomes = accept_on_committer(&*s.replica, batch).await;
        for (k, o) in outcomes.iter().enumerate().take(100) {
            let want = (1 + (k / 70) as u64, k % 3 != 0);
            match o {
                AcceptOutcome::Accepted {
                    audit_seq, queued, ..
                } => assert_eq!((*audit_seq, *queued), want, "message {k}"),
                other => panic!("message {k}: {other:?}"),
            }
        }
        assert_eq!(outcomes[100..], [AcceptOutcome::Replayed; 2]);
        assert_eq!(s.raw.count("audit_log").await, 100);
        assert_eq!(s.raw.count("relay_queue").await, 66);
        // Session 1's chain: messages 0 and 70, then one accepted alone continues it.
        let sid = [1, 0xee];
        let first = record_hash(&sid, 1, &genesis_hash(&sid), &[0, 1]);
        let second = record_hash(&sid, 2, &first, &[70, 1]);
        let head = st.audit_head(&sid).await.unwrap().unwrap();
        assert_eq!(head, (2, second.to_vec()));
        let mut next = to("bob", 3, 8, quota);
        next.session_id = sid.to_vec();
        let alone = st.accept_message(&next).await.unwrap();
        assert!(matches!(
            alone,
            AcceptOutcome::Accepted { audit_seq: 3, .. }
        ));
    }

    /// One committer (the message path's, kept across batches: on SQLite it remembers what
    /// its commits wrote and skips those reads) sees every write another connection commits
    /// between its batches: a message accepted elsewhere is a replay, a chain extended
    /// elsewhere continues from its new head, a session ended elsewhere is gone, and a queue
    /// drained elsewhere has room again.
    pub(crate) async fn the_committer_sees_what_others_commit_between_its_batches(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        for id in [6, 7] {
            st.create_session(&session("alice", id, 1, 10_000))
                .await
                .unwrap();
        }
        let quota = QueueQuota {
            max_messages: 4,
            max_bytes: 1 << 20,
        };
        let on = |sid: u8, seq: u64| {
            let mut m = to("bob", seq, 8, quota);
            m.session_id = vec![sid, 0xee];
            m
        };
        let mut c = Committer::new(&*s.replica);
        let first = c.accept(vec![on(6, 1), on(7, 1)]).await;
        assert!(
            first
                .iter()
                .all(|o| matches!(o, AcceptOutcome::Accepted { .. }))
        );
        let again = c.accept(vec![on(6, 2)]).await;
        assert!(matches!(
            again[0],
            AcceptOutcome::Accepted { audit_seq: 2, .. }
        ));
        // Session 6's third message, accepted through the other store's connection.
        let elsewhere = st.accept_message(&on(6, 3)).await.unwrap();
        assert!(matches!(
            elsewhere,
            AcceptOutcome::Accepted { audit_seq: 3, .. }
        ));
        let after = c.accept(vec![on(6, 3), on(6, 4)]).await;
        assert_eq!(after[0], AcceptOutcome::Replayed);
        // Bob's queue is full (four messages): the fifth is refused …
        assert!(matches!(after[1], AcceptOutcome::QueueFull));
        // … until one is taken off it elsewhere.
        let queued = st.fetch_messages("bob", 0, 10).await.unwrap();
        assert!(st.ack_message("bob", queued[0].id).await.unwrap());
        let room = c.accept(vec![on(6, 4)]).await;
        assert!(matches!(
            room[0],
            AcceptOutcome::Accepted { audit_seq: 4, .. }
        ));
        // Session 7 ended elsewhere.
        st.delete_session(&[7; 32]).await.unwrap().unwrap();
        assert_eq!(c.accept(vec![on(7, 2)]).await, [AcceptOutcome::NoSession]);
        let head = st.audit_head(&[6, 0xee]).await.unwrap().unwrap();
        assert_eq!(head.0, 4);
    }

    /// The message path's committer, kept across batches: the store's own on SQLite (run on a
    /// blocking thread), else [`Store::accept_messages`].
    struct Committer<'a> {
        store: &'a dyn Store,
        own: Option<kasane_host::store::SqliteCommitter>,
    }

    impl<'a> Committer<'a> {
        fn new(store: &'a dyn Store) -> Self {
            let own = store.message_committer().unwrap();
            assert_eq!(own.is_some(), store.backend() == "sqlite");
            Self { store, own }
        }

        async fn accept(&mut self, batch: Vec<AcceptMessage>) -> Vec<AcceptOutcome> {
            let Some(mut c) = self.own.take() else {
                return self.store.accept_messages(&batch).await.unwrap();
            };
            let (c, outcomes) = tokio::task::spawn_blocking(move || {
                let outcomes = c.accept(&batch);
                (c, outcomes)
            })
            .await
            .unwrap();
            self.own = Some(c);
            outcomes.unwrap()
        }
    }

    /// `batch` through the store's own committer (the message path's, on a thread), which
    /// a SQLite file has and PostgreSQL has not; else through [`Store::accept_messages`].
    async fn accept_on_committer(st: &dyn Store, batch: Vec<AcceptMessage>) -> Vec<AcceptOutcome> {
        let committer = st.message_committer().unwrap();
        assert_eq!(committer.is_some(), st.backend() == "sqlite");
        match committer {
            Some(mut c) => tokio::task::spawn_blocking(move || c.accept(&batch))
                .await
                .unwrap()
                .unwrap(),
            None => st.accept_messages(&batch).await.unwrap(),
        }
    }

    pub(crate) async fn relay_queue_roundtrip(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        st.create_user(&user("bob", 1), 1).await.unwrap();
        let a1 = st.enqueue_message("alice", b"one", 10).await.unwrap();
        let b1 = s
            .replica
            .enqueue_message("bob", b"for bob", 11)
            .await
            .unwrap();
        let a2 = st.enqueue_message("alice", b"two", 12).await.unwrap();
        let a3 = st.enqueue_message("alice", b"three", 13).await.unwrap();
        assert!(a1 < b1 && b1 < a2 && a2 < a3);
        let missing = st.enqueue_message("nobody", b"x", 1).await;
        assert!(
            matches!(missing, Err(StoreError::UserNotFound)),
            "{missing:?}"
        );

        let all = s.replica.fetch_messages("alice", 0, 100).await.unwrap();
        let bodies: Vec<_> = all.iter().map(|m| m.body.as_slice()).collect();
        assert_eq!(bodies, [b"one".as_slice(), b"two", b"three"]);
        assert_eq!(
            (all[0].id, all[0].created, all[0].recipient.as_str()),
            (a1, 10, "alice")
        );
        let page = st.fetch_messages("alice", a1, 1).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, a2);

        assert!(
            !st.ack_message("bob", a1).await.unwrap(),
            "acked another user's message"
        );
        assert!(st.ack_message("alice", a1).await.unwrap());
        assert!(!st.ack_message("alice", a1).await.unwrap());
        let left: Vec<_> = st
            .fetch_messages("alice", 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, [a2, a3]);
        assert_eq!(st.fetch_messages("bob", 0, 100).await.unwrap().len(), 1);
        assert!(
            st.fetch_messages("nobody", 0, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Many ids in one call (more than one statement's worth, some repeated, bob's and
        // unknown ones among them): exactly alice's queued ones go.
        let mut ids = vec![a2, b1, a2, u64::try_from(i64::MAX).unwrap()];
        for n in 0..150u64 {
            ids.push(st.enqueue_message("alice", b"m", 20 + n).await.unwrap());
        }
        ids.push(a3);
        assert_eq!(st.ack_messages("alice", &ids).await.unwrap(), 152);
        assert!(
            st.fetch_messages("alice", 0, 1000)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(st.fetch_messages("bob", 0, 100).await.unwrap()[0].id, b1);
    }

    pub(crate) async fn audit_chain_appends_and_reads_in_order(s: Stores) {
        let st = &*s.main;
        let (a, b) = (b"session-a".as_slice(), b"session-b".as_slice());
        assert!(st.audit_head(a).await.unwrap().is_none());
        // The first record must be seq 1.
        let gap = st.append_audit(&audit(a, 2, b"g", b"h2")).await;
        assert!(
            matches!(gap, Err(StoreError::AuditChainMismatch)),
            "{gap:?}"
        );
        st.append_audit(&audit(a, 1, b"genesis-a", b"h1"))
            .await
            .unwrap();
        st.append_audit(&audit(b, 1, b"genesis-b", b"k1"))
            .await
            .unwrap();
        // Wrong previous hash, a gap, and a second record at a taken position: all refused.
        for bad in [
            audit(a, 2, b"not-h1", b"h2"),
            audit(a, 3, b"h1", b"h3"),
            audit(a, 1, b"genesis-a", b"h1-again"),
        ] {
            let r = s.replica.append_audit(&bad).await;
            assert!(
                matches!(r, Err(StoreError::AuditChainMismatch)),
                "{bad:?}: {r:?}"
            );
        }
        st.append_audit(&audit(a, 2, b"h1", b"h2")).await.unwrap();
        s.replica
            .append_audit(&audit(b, 2, b"k1", b"k2"))
            .await
            .unwrap();
        st.append_audit(&audit(a, 3, b"h2", b"h3")).await.unwrap();
        assert_eq!(st.audit_head(a).await.unwrap(), Some((3, b"h3".to_vec())));
        assert_eq!(st.audit_head(b).await.unwrap(), Some((2, b"k2".to_vec())));

        // Log order: by session, then seq; pages continue where the last one ended.
        let first = st.audit_page(None, 2).await.unwrap();
        assert_eq!(
            first,
            [audit(a, 1, b"genesis-a", b"h1"), audit(a, 2, b"h1", b"h2")]
        );
        let cursor = AuditCursor {
            session_id: a.to_vec(),
            seq: 2,
        };
        let rest = st.audit_page(Some(&cursor), 10).await.unwrap();
        let keys: Vec<_> = rest
            .iter()
            .map(|r| (r.session_id.as_slice(), r.seq))
            .collect();
        assert_eq!(keys, [(a, 3), (b, 1), (b, 2)]);

        let mut reader = AuditReader::new(&*s.replica);
        let mut all = Vec::new();
        while let Some(r) = reader.next().await.unwrap() {
            all.push((r.session_id, r.seq, r.prev_hash, r.record_hash));
        }
        assert_eq!(all.len(), 5);
        // Across pages of `AUDIT_READ_PAGE`: a longer chain is read whole, in order.
        let n = u64::from(kasane_host::store::AUDIT_READ_PAGE) * 2 + 3;
        let mut prev = b"genesis-c".to_vec();
        for seq in 1..=n {
            let hash = seq.to_be_bytes().to_vec();
            st.append_audit(&audit(b"c", seq, &prev, &hash))
                .await
                .unwrap();
            prev = hash;
        }
        let mut reader = AuditReader::new(&*s.main);
        let mut seqs = Vec::new();
        while let Some(r) = reader.next().await.unwrap() {
            if r.session_id == b"c" {
                seqs.push(r.seq);
            }
        }
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        // Each record links to its predecessor in the same session.
        for w in all.windows(2) {
            if w[0].0 == w[1].0 {
                assert_eq!(w[1].1, w[0].1 + 1);
                assert_eq!(w[1].2, w[0].3);
            }
        }
    }

    pub(crate) async fn audit_concurrent_appends_one_winner_per_position(s: Stores) {
        s.main
            .append_audit(&audit(b"s", 1, b"g", b"h1"))
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20u8 {
            let st = if i % 2 == 0 {
                s.main.clone()
            } else {
                s.replica.clone()
            };
            tasks.spawn(async move {
                // Twenty writers race to append position 2 of one chain...
                let mine = st.append_audit(&audit(b"s", 2, b"h1", &[b'x', i])).await;
                // ...while each also starts a chain of its own: no global lock stops them.
                st.append_audit(&audit(&[b'c', i], 1, b"g", b"c1"))
                    .await
                    .unwrap();
                match mine {
                    Ok(()) => true,
                    Err(StoreError::AuditChainMismatch) => false,
                    Err(e) => panic!("{e:?}"),
                }
            });
        }
        let mut winners = 0;
        while let Some(v) = tasks.join_next().await {
            winners += usize::from(v.unwrap());
        }
        assert_eq!(winners, 1);
        assert_eq!(s.main.audit_head(b"s").await.unwrap().unwrap().0, 2);
        assert_eq!(s.main.audit_page(None, 100).await.unwrap().len(), 22);
    }

    pub(crate) async fn audit_checkpoints_vouch_for_existing_records(s: Stores) {
        let st = &*s.main;
        let cp = |sid: &[u8], seq: u64, hash: &[u8]| AuditCheckpoint {
            session_id: sid.to_vec(),
            seq,
            record_hash: hash.to_vec(),
            signature: vec![0x51; 64],
            created: 2_000 + seq,
        };
        st.append_audit(&audit(b"a", 1, b"g", b"h1")).await.unwrap();
        st.append_audit(&audit(b"a", 2, b"h1", b"h2"))
            .await
            .unwrap();
        st.append_audit(&audit(b"b", 1, b"g", b"k1")).await.unwrap();
        // Only a checkpoint of a record that exists, with its hash.
        for bad in [cp(b"a", 3, b"h3"), cp(b"a", 2, b"h1"), cp(b"z", 1, b"h1")] {
            let r = st.put_audit_checkpoint(&bad).await;
            assert!(
                matches!(r, Err(StoreError::AuditChainMismatch)),
                "{bad:?}: {r:?}"
            );
        }
        st.put_audit_checkpoint(&cp(b"a", 2, b"h2")).await.unwrap();
        s.replica
            .put_audit_checkpoint(&cp(b"b", 1, b"k1"))
            .await
            .unwrap();
        st.put_audit_checkpoint(&cp(b"a", 1, b"h1")).await.unwrap();
        let dup = st.put_audit_checkpoint(&cp(b"a", 2, b"h2")).await;
        assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");

        let all = s.replica.audit_checkpoint_page(None, 10).await.unwrap();
        assert_eq!(
            all,
            [cp(b"a", 1, b"h1"), cp(b"a", 2, b"h2"), cp(b"b", 1, b"k1")]
        );
        let cursor = AuditCursor {
            session_id: b"a".to_vec(),
            seq: 1,
        };
        let rest = st.audit_checkpoint_page(Some(&cursor), 1).await.unwrap();
        assert_eq!(rest, [cp(b"a", 2, b"h2")]);
    }

    /// Every way a session leaves `sessions` (logout, a user's sessions ended, the user
    /// removed, expiry) is noted in `session_ends` by the database's clock, for the other
    /// processes' caches; housekeeping keeps two minutes of ends before the newest.
    pub(crate) async fn session_ends_are_noted_for_every_way_a_session_leaves(s: Stores) {
        let st = &*s.main;
        let now = kasane_host::store::Clock::now(&kasane_host::store::SystemClock);
        for name in ["alice", "bob", "carol"] {
            st.create_user(&user(name, 1), 1).await.unwrap();
        }
        for (name, id) in [("alice", 1), ("alice", 2), ("bob", 3), ("carol", 4)] {
            let expires = if id == 4 { 50 } else { now + 1_000 };
            st.create_session(&session(name, id, now, expires))
                .await
                .unwrap();
        }
        assert!(st.session_ends_since(0, 10).await.unwrap().is_empty());
        assert!(st.delete_session(&[1; 32]).await.unwrap().is_some());
        assert_eq!(st.end_sessions("alice").await.unwrap(), Some(1));
        st.remove_user("bob").await.unwrap();
        st.purge_expired(now, 3_600).await.unwrap();
        let ends = s.replica.session_ends_since(0, 10).await.unwrap();
        let mut hashes: Vec<u8> = ends.iter().map(|(h, _)| h[0]).collect();
        hashes.sort_unstable();
        assert_eq!(hashes, [1, 2, 3, 4]);
        assert!(
            ends.iter().all(|(_, at)| now.abs_diff(*at) < 60),
            "{ends:?}"
        );
        assert_eq!(st.session_ends_since(now + 100, 10).await.unwrap(), []);
        assert_eq!(st.session_ends_since(0, 2).await.unwrap().len(), 2);
        // Kept while within two minutes of the newest; older ones go.
        s.raw
            .execute("INSERT INTO session_ends (token_hash, ended_at) VALUES ('x', 1000)")
            .await;
        st.purge_expired(now, 3_600).await.unwrap();
        assert_eq!(st.session_ends_since(0, 10).await.unwrap().len(), 4);
    }

    /// Retention: a chain is prunable once its session has ended, nobody is still to read
    /// a message it holds, and its last record is at or before the cut-off; pruning stores
    /// the marker and deletes the whole chain at once, or nothing; nothing else can delete.
    pub(crate) async fn audit_chains_are_pruned_whole_once_ended_and_read(s: Stores) {
        let st = &*s.main;
        let mark = |sid: &[u8], seq: u64, hash: &[u8]| AuditCheckpoint {
            session_id: sid.to_vec(),
            seq,
            record_hash: hash.to_vec(),
            signature: vec![0x52; 64],
            created: 9_000,
        };
        st.append_audit(&audit(b"a", 1, b"g", b"h1")).await.unwrap();
        st.append_audit(&audit(b"a", 2, b"h1", b"h2"))
            .await
            .unwrap();
        let mut late = audit(b"b", 1, b"g", b"k1");
        late.created = 3_000;
        st.append_audit(&late).await.unwrap();
        // alice's live session [6, 0xee]: a message to bob (queued).
        alice_s_session_and_bob(st).await;
        let quota = QueueQuota {
            max_messages: 9,
            max_bytes: 900,
        };
        st.accept_message(&to("bob", 1, 10, quota)).await.unwrap();
        let replica = &*s.replica;
        let prunable = |after: Option<&'static [u8]>| async move {
            let heads = replica.prunable_audit_chains(after, 2_000, 10).await;
            let heads = heads.unwrap().into_iter().map(|(sid, seq, _)| (sid, seq));
            heads.collect::<Vec<_>>()
        };
        assert_eq!(
            prunable(None).await,
            [(b"a".to_vec(), 2)],
            "b is too new, 6 live"
        );
        assert!(prunable(Some(b"a")).await.is_empty(), "after a");
        // Ended, but bob has not read its message; once he has, it goes too.
        let sid = [6, 0xee];
        let (_, head) = st.audit_head(&sid).await.unwrap().unwrap();
        let m6 = mark(&sid, 1, &head);
        let live = st.prune_audit_chain(&m6).await;
        assert!(
            matches!(live, Err(StoreError::NotPrunable)),
            "live: {live:?}"
        );
        st.end_sessions("alice").await.unwrap();
        assert_eq!(prunable(None).await.len(), 1);
        let unread = st.prune_audit_chain(&m6).await;
        assert!(matches!(unread, Err(StoreError::NotPrunable)), "{unread:?}");
        // Dead-lettered, it still names the record; removed, it no longer does.
        let queued = st.fetch_messages("bob", 0, 10).await.unwrap();
        assert!(
            st.dead_letter_message("bob", queued[0].id, 20)
                .await
                .unwrap()
        );
        assert_eq!(prunable(None).await.len(), 1);
        let dead = st.dead_letters(0, 10).await.unwrap();
        assert_eq!(dead[0].audit.as_ref().map(|a| a.seq), Some(1));
        assert!(st.remove_dead_letter(queued[0].id).await.unwrap());
        let both = [(sid.to_vec(), 1), (b"a".to_vec(), 2)];
        assert_eq!(prunable(None).await, both, "in log order");

        // Only at the chain's head, whole; refused, it writes nothing.
        let bad = [
            mark(b"a", 1, b"h1"),
            mark(b"a", 2, b"h1"),
            mark(b"a", 3, b"h3"),
        ];
        for bad in bad {
            let r = st.prune_audit_chain(&bad).await;
            assert!(matches!(r, Err(StoreError::NotPrunable)), "{bad:?}: {r:?}");
        }
        // A chain with a gap (its record 2 written behind the store's back, no record 1) is
        // refused as broken, not as one another prune took.
        s.raw
            .execute(match &s.raw {
                Raw::Sqlite(_) => {
                    "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, \
                     created_at) VALUES (x'63', 2, x'00', x'01', x'00', 1000)"
                }
                Raw::Pg(_) => {
                    "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, \
                     created_at) VALUES ('\\x63', 2, '\\x00', '\\x01', '\\x00', 1000)"
                }
            })
            .await;
        let gap = st.prune_audit_chain(&mark(b"c", 2, &[1])).await;
        assert!(
            matches!(gap, Err(StoreError::AuditChainMismatch)),
            "{gap:?}"
        );
        assert_eq!(s.raw.count("audit_pruned").await, 0);
        assert_eq!(
            st.prune_audit_chain(&mark(b"a", 2, b"h2")).await.unwrap(),
            2
        );
        assert_eq!(s.replica.prune_audit_chain(&m6).await.unwrap(), 1);
        let again = s.replica.prune_audit_chain(&mark(b"a", 2, b"h2")).await;
        assert!(matches!(again, Err(StoreError::NotPrunable)), "{again:?}");
        assert!(st.audit_head(b"a").await.unwrap().is_none());
        let marks = s.replica.audit_pruned_page(None, 10).await.unwrap();
        assert_eq!(marks, [m6, mark(b"a", 2, b"h2")]);
        assert_eq!(s.raw.count("audit_log").await, 2, "b and c kept");
        // The append-only guard still holds for every chain not marked pruned.
        assert!(s.raw.delete_chain(b"b").await.is_err());
        assert_eq!(s.raw.count("audit_log").await, 2);
    }

    /// Issue 14, item 1: a network a user logged in from is known for 30 days after its last
    /// success (another replica sees it at once); housekeeping forgets it after.
    pub(crate) async fn known_networks_are_noted_refreshed_and_forgotten(s: Stores) {
        use kasane_host::store::KNOWN_NETWORK_SECS;
        let st = &*s.main;
        let net = "a:203.0.113.0/24";
        async fn last(st: &dyn Store, user: &str, net: &str) -> Option<u64> {
            let keys = [ThrottleKey::User(user); 3];
            st.start_lookup(user, net, keys).await.unwrap().last_success
        }
        assert_eq!(last(st, "alice", net).await, None);
        st.note_known_network("alice", net, 1_000).await.unwrap();
        assert_eq!(last(st, "alice", net).await, Some(1_000));
        assert_eq!(last(&*s.replica, "alice", net).await, Some(1_000));
        assert_eq!(last(st, "bob", net).await, None);
        let other = "a:198.51.100.0/24";
        assert_eq!(last(st, "alice", other).await, None);
        // A later success moves it forward (upsert, not a second row).
        st.note_known_network("alice", net, 5_000).await.unwrap();
        assert_eq!(last(st, "alice", net).await, Some(5_000));
        st.purge_expired(5_000 + KNOWN_NETWORK_SECS, 60)
            .await
            .unwrap();
        assert_eq!(last(st, "alice", net).await, Some(5_000));
        st.purge_expired(5_001 + KNOWN_NETWORK_SECS, 60)
            .await
            .unwrap();
        assert_eq!(last(st, "alice", net).await, None);
    }

    pub(crate) async fn purge_removes_expired(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 1), 1).await.unwrap();
        for (id, expires_at) in [(1, 100), (2, 300)] {
            let login = pending(id, LoginStage::Bundle, expires_at);
            st.put_pending_login(&login, 1, ROOMY).await.unwrap();
        }
        st.create_session(&session("alice", 1, 0, 150))
            .await
            .unwrap(); // absolute expiry
        st.create_session(&session("alice", 2, 190, 10_000))
            .await
            .unwrap(); // idle
        st.create_session(&session("alice", 3, 250, 10_000))
            .await
            .unwrap(); // live
        let purged = st.purge_expired(200, 10).await.unwrap();
        assert_eq!((purged.pending_logins, purged.sessions), (1, 2));
        let kept = st.take_pending_login(&[2; 16], LoginStage::Bundle, 200);
        assert!(kept.await.unwrap().is_some());
        assert!(st.touch_session(&[3; 32], 255, 10).await.unwrap().is_some());
    }

    pub(crate) async fn removing_user_cascades(s: Stores) {
        let st = &*s.main;
        st.create_user(&user("alice", 2), 1).await.unwrap();
        st.create_session(&session("alice", 1, 1, 10_000))
            .await
            .unwrap();
        st.enqueue_message("alice", b"m", 1).await.unwrap();
        st.record_failure(ThrottleKey::User("alice"), 1, &Backoff::default())
            .await
            .unwrap();
        st.append_audit(&audit(&[1, 0xee], 1, b"g", b"h"))
            .await
            .unwrap();
        assert!(st.remove_user("alice").await.unwrap());
        assert!(st.touch_session(&[1; 32], 2, 100).await.unwrap().is_none());
        // Gone from the database, not merely out of reach: a new user gets a new id, so
        // nothing read through the store could show rows left behind.
        for table in ["challenge_pairs", "sessions", "relay_queue"] {
            assert_eq!(s.raw.count(table).await, 0, "rows left in {table}");
        }
        assert_eq!(
            st.throttle_state(ThrottleKey::User("alice")).await.unwrap(),
            ThrottleState::default()
        );
        // A new alice inherits nothing...
        st.create_user(&user("alice", 1), 5).await.unwrap();
        assert!(st.fetch_messages("alice", 0, 10).await.unwrap().is_empty());
        // ...and the audit log keeps everything.
        assert_eq!(st.audit_head(&[1, 0xee]).await.unwrap().unwrap().0, 1);
    }
}

/// SQLite only: `end_sessions` reads before it writes, so it must take the write lock at its
/// start and wait for another writer (the busy timeout), not fail at once with
/// `SQLITE_BUSY` as a deferred transaction's upgrade does (`user logout` while the host
/// serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_end_sessions_waits_for_another_writer() {
    run_sqlite(|s| async move {
        let Raw::Sqlite(pool) = &s.raw else {
            unreachable!("run_sqlite")
        };
        s.main
            .create_user(&fixture::user("alice", 1), 1)
            .await
            .unwrap();
        let mut writer = pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *writer)
            .await
            .unwrap();
        let st = s.replica.clone();
        let ending = tokio::spawn(async move { st.end_sessions("alice").await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut *writer).await.unwrap();
        assert_eq!(ending.await.unwrap().unwrap(), Some(0));
    })
    .await;
}

/// SQLite only: the database is in WAL mode with full sync, and `open` picks the backend by URL.
#[tokio::test]
async fn sqlite_open_uses_wal_and_runs_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = kasane_host::store::open(&url).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    store
        .create_user(&fixture::user("alice", 1), 1)
        .await
        .unwrap();
    drop(store);
    // Reopening runs the (already applied) migrations again and keeps the data.
    let st = SqliteStore::open(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(st.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(st.pool())
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
    assert!(st.get_user("alice").await.unwrap().is_some());
    // Writes go to the write-ahead log (SQLite removes it when the last connection closes,
    // so look while this one is open).
    st.next_counter("alice").await.unwrap();
    let wal = path.with_extension("db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len > 0, "no write-ahead log at {}", wal.display());
    st.close().await;
}

/// SQLite only: the database file is created with mode 0600 before SQLite opens it, so the
/// `-wal` and `-shm` files SQLite makes beside it get 0600 too; through a URL and a path.
/// (The process umask here must leave group/other bits, e.g. 022, for this to test anything:
/// SQLite alone would then make the files 0644.)
#[cfg(unix)]
#[tokio::test]
async fn sqlite_database_files_are_private_from_creation() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let by_url = dir.path().join("url.db");
    let url = format!("sqlite://{}?mode=rwc", by_url.display());
    let by_path = dir.path().join("path.db");
    let stores = [
        SqliteStore::open(&url).await.unwrap(),
        SqliteStore::open_file(&by_path).await.unwrap(),
    ];
    for (st, db) in stores.iter().zip([&by_url, &by_path]) {
        st.create_user(&fixture::user("alice", 1), 1).await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
        }
        st.close().await;
    }
}

/// SQLite only: the audit table refuses updates and deletes.
#[tokio::test]
async fn sqlite_audit_log_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let st = SqliteStore::open(&url).await.unwrap();
    st.append_audit(&fixture::audit(b"s", 1, b"g", b"h"))
        .await
        .unwrap();
    for q in [
        "UPDATE audit_log SET payload = x'00'",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(q).execute(st.pool()).await.unwrap_err();
        // Refused by the trigger, not by some other failure of the statement.
        assert!(err.to_string().contains("append-only"), "{q}: {err}");
    }
    assert_eq!(st.audit_page(None, 10).await.unwrap().len(), 1);
    st.close().await;
}

/// PostgreSQL only: `open` picks the backend by URL and migrates, and the audit table refuses
/// updates and deletes.
#[tokio::test]
async fn postgres_open_and_audit_log_is_append_only() {
    let Some(schema) = common::PgSchema::create("kasane_test").await else {
        return;
    };
    let store = kasane_host::store::open(&schema.url()).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    store
        .append_audit(&fixture::audit(b"s", 1, b"g", b"h"))
        .await
        .unwrap();
    drop(store);
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema.name)
    .fetch_one(schema.admin())
    .await
    .unwrap();
    assert!(
        tables >= 7,
        "migrations ran in the test schema ({tables} tables)"
    );
    let options = schema.options();
    let st = PgStore::open_with(options, 2).await.unwrap();
    for q in [
        "UPDATE audit_log SET payload = '\\x00'",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(q).execute(st.pool()).await.unwrap_err();
        // Refused by the trigger, not by some other failure of the statement.
        assert!(err.to_string().contains("append-only"), "{q}: {err}");
    }
    assert_eq!(st.audit_page(None, 10).await.unwrap().len(), 1);
    st.close().await;
    schema.drop().await;
}

/// PostgreSQL only: the durable pool's commits wait for the WAL flush even where the server,
/// database or role sets `synchronous_commit = off` (here the connection's options do).
#[tokio::test]
async fn postgres_durable_commits_are_synchronous_whatever_the_server_says() {
    let Some(schema) = common::PgSchema::create("kasane_sync").await else {
        return;
    };
    let options = schema.options().options([("synchronous_commit", "off")]);
    let st = PgStore::open_with(options, 2).await.unwrap();
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(st.pool())
        .await
        .unwrap();
    assert_eq!(setting, "on");
    st.close().await;
    schema.drop().await;
}
