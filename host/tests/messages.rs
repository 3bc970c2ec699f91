//! Sealed messages through a real host over TLS: `POST /v1/messages`, the inbox, its ack,
//! every refusal (and that a refused message leaves nothing behind), the audit log's
//! verification and tamper detection, on SQLite and (with `KASANE_TEST_DATABASE_URL`)
//! PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::sync::Arc;

use common::{Conn, TestHost, login, start, start_with_store};
use ed25519_dalek::VerifyingKey;
use hyper::StatusCode;
use kasane_host::audit::{self, AuditPayload};
use kasane_host::store::{Clock, QueueQuota, Store};
use kasane_protocol::wire::{
    ChallengeBundle, Delivery, Inbox, InboxAck, Message, MessageAccepted, MessageRefused,
    RefusalReason, SealedMessage,
};
use kasane_protocol::{Padding, Session};

/// A quota no test here comes near.
const ROOMY: QueueQuota = QueueQuota {
    max_messages: 1 << 20,
    max_bytes: 1 << 40,
};

/// Runs the bundle's transform on a message `input` (client side; no responses, §8).
async fn derive(
    th: &TestHost,
    conn: &mut Conn,
    bundle: &ChallengeBundle,
    input: kasane_abi::DeriveInputBuf,
) -> Vec<u8> {
    let transform = th.transform(conn, bundle).await;
    tokio::task::spawn_blocking(move || {
        kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
            .unwrap()
            .unwrap()
            .key
            .as_bytes()
            .to_vec()
    })
    .await
    .unwrap()
}

/// A user logged in: its connection, client session, token and bundle.
struct User {
    conn: Conn,
    session: Session,
    token: [u8; 32],
    bundle: ChallengeBundle,
}

async fn user(th: &TestHost, name: &str) -> User {
    th.add_user(name).await;
    login_user(th, name).await
}

async fn login_user(th: &TestHost, name: &str) -> User {
    let mut conn = th.connect().await;
    let (session, token, bundle) = login(th, &mut conn, name).await;
    User {
        conn,
        session,
        token,
        bundle,
    }
}

impl User {
    async fn seal(&mut self, th: &TestHost, recipient: &str, body: &[u8]) -> SealedMessage {
        let (seq, input) = self.session.prepare_seal().unwrap();
        let t = derive(th, &mut self.conn, &self.bundle, input).await;
        self.session.seal(seq, &t, recipient, body).unwrap()
    }

    async fn post(&mut self, sealed: &SealedMessage) -> (StatusCode, Vec<u8>) {
        self.post_raw(sealed.encode().unwrap()).await
    }

    async fn post_raw(&mut self, bytes: Vec<u8>) -> (StatusCode, Vec<u8>) {
        self.conn
            .request("POST", "/v1/messages", bytes, Some(self.token))
            .await
    }

    async fn send(&mut self, th: &TestHost, recipient: &str, body: &[u8]) -> MessageAccepted {
        let sealed = self.seal(th, recipient, body).await;
        let (status, answer) = self.post(&sealed).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{:?}",
            MessageRefused::decode(&answer)
        );
        let a = MessageAccepted::decode(&answer).unwrap();
        assert_eq!(a.seq, sealed.seq);
        a
    }

    async fn inbox(&mut self, th: &TestHost, wait: u64) -> (Vec<Delivery>, bool) {
        let (status, body) = self
            .conn
            .get(&format!("/v1/inbox?wait={wait}"), Some(self.token))
            .await;
        assert_eq!(status, StatusCode::OK);
        let inbox = Inbox::decode(&body).unwrap();
        let mut out = Vec::new();
        for m in &inbox.messages {
            let input = self.session.prepare_open(m).unwrap();
            let t = derive(th, &mut self.conn, &self.bundle, input).await;
            let plain = self.session.open(m, &t).unwrap();
            out.push(Delivery::decode(&plain).unwrap());
        }
        (out, inbox.more)
    }

    async fn ack(&mut self, ids: Vec<u64>) -> StatusCode {
        self.conn
            .request(
                "POST",
                "/v1/inbox/ack",
                InboxAck { ids }.encode().unwrap(),
                Some(self.token),
            )
            .await
            .0
    }
}

fn refusal(answer: &(StatusCode, Vec<u8>)) -> (StatusCode, RefusalReason) {
    (answer.0, MessageRefused::decode(&answer.1).unwrap().reason)
}

/// (audit records, queued messages for `user`).
async fn counts(store: &dyn Store, user: &str) -> (usize, usize) {
    (
        store.audit_page(None, 10_000).await.unwrap().len(),
        store.fetch_messages(user, 0, 10_000).await.unwrap().len(),
    )
}

fn host_key(th: &TestHost) -> VerifyingKey {
    VerifyingKey::from_bytes(&th.host.host_public_key()).unwrap()
}

/// The whole flow: alice → bob, bob reads and acks; the audit log holds it and verifies.
async fn relay_flow(th: &TestHost) {
    let mut alice = user(th, "alice").await;
    th.add_user("bob").await;
    let a = alice.send(th, "bob", b"hello bob").await;
    assert_eq!(a.received_at, th.clock.now());
    alice.send(th, "bob", b"second").await;
    // Each body is written once, in its audit record: the queue entry holds the sealed key
    // that opens that record, and names it.
    let queued = th.host.store().fetch_messages("bob", 0, 10).await.unwrap();
    assert_eq!(queued.len(), 2);
    for (q, seq) in queued.iter().zip(1u64..) {
        let payload = q
            .audit
            .as_deref()
            .expect("the entry names its audit record");
        assert_eq!(AuditPayload::decode(payload).unwrap().seq, seq);
        assert!(
            q.body.len() < 160,
            "the entry holds a key, not the body: {}",
            q.body.len()
        );
    }
    // Bob logs in after the messages were queued: the queue is per user.
    let mut bob = login_user(th, "bob").await;
    let (got, more) = bob.inbox(th, 0).await;
    assert!(!more);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].from.as_str(), got[0].body.as_slice()),
        ("alice", &b"hello bob"[..])
    );
    assert_eq!(got[1].body, b"second");
    assert!(got[0].id < got[1].id);
    // An id no entry can have (past 2^63 - 1) is ignored like another user's.
    assert_eq!(
        bob.ack(vec![1 << 63, got[0].id]).await,
        StatusCode::NO_CONTENT
    );
    let (left, _) = bob.inbox(th, 0).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, got[1].id);
    // Alice cannot ack bob's message.
    assert_eq!(alice.ack(vec![got[1].id]).await, StatusCode::NO_CONTENT);
    assert_eq!(bob.inbox(th, 0).await.0.len(), 1);
    assert_eq!(bob.ack(vec![got[1].id]).await, StatusCode::NO_CONTENT);
    assert!(bob.inbox(th, 0).await.0.is_empty());

    // The audit log: two records in alice's chain, as received.
    let records = th.host.store().audit_page(None, 100).await.unwrap();
    assert_eq!(records.len(), 2);
    let p = AuditPayload::decode(&records[0].payload).unwrap();
    assert_eq!(
        (p.sender.as_str(), p.recipient.as_str(), p.seq),
        ("alice", "bob", 1)
    );
    let summary = audit::verify(th.host.store().as_ref(), &host_key(th))
        .await
        .unwrap();
    assert_eq!((summary.chains, summary.records), (1, 2));
    // Checkpoints: signed once, verified.
    assert_eq!(th.host.checkpoint_audit().await.unwrap(), 1);
    assert_eq!(th.host.checkpoint_audit().await.unwrap(), 0);
    let summary = audit::verify(th.host.store().as_ref(), &host_key(th))
        .await
        .unwrap();
    assert_eq!(summary.checkpoints, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_is_relayed_acked_and_audited_sqlite() {
    let th = start(|_| {}).await;
    relay_flow(&th).await;
}

/// Waits (bounded) until one inbox long-poll is parked on the host.
async fn until_parked(th: &TestHost) {
    for _ in 0..2000 {
        if th.host.inbox_waiting() > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the long-poll never parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_poll_returns_when_a_message_arrives() {
    // The store is re-read only after the whole wait: a long-poll that ends well before it
    // was woken by the message, not by a re-read.
    let th = Arc::new(start(|c| c.messages.inbox_recheck_secs = 3600).await);
    let mut alice = user(&th, "alice").await;
    let mut bob = user(&th, "bob").await;
    let th2 = th.clone();
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let (got, _) = bob.inbox(&th2, 20).await;
        (got, started.elapsed())
    });
    // Send only once the long-poll has found the queue empty and is parked.
    until_parked(&th).await;
    alice.send(&th, "bob", b"ping").await;
    let (got, took) = waiting.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"ping");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    // A bad wait is malformed.
    let (status, _) = alice.conn.get("/v1/inbox?wait=31", Some(alice.token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_messages_leave_nothing_behind() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    let store = th.host.store().clone();
    let good = alice.seal(&th, "bob", b"one").await;
    assert_eq!(alice.post(&good).await.0, StatusCode::OK);
    let base = counts(store.as_ref(), "bob").await;
    assert_eq!(base, (1, 1));

    // Replayed.
    assert_eq!(
        refusal(&alice.post(&good).await),
        (StatusCode::CONFLICT, RefusalReason::Replayed)
    );
    // Out of order inside the replay window (several messages in flight): accepted, each
    // once.
    let m2 = alice.seal(&th, "bob", b"two").await;
    let m3 = alice.seal(&th, "bob", b"three").await;
    assert_eq!(alice.post(&m3).await.0, StatusCode::OK);
    assert_eq!(alice.post(&m2).await.0, StatusCode::OK);
    assert_eq!(
        refusal(&alice.post(&m2).await),
        (StatusCode::CONFLICT, RefusalReason::Replayed)
    );
    // Below the window: reordered.
    let old = alice.seal(&th, "bob", b"old").await;
    let mut ahead = None;
    for _ in 0..kasane_protocol::window::WINDOW {
        ahead = Some(alice.seal(&th, "bob", b"ahead").await);
    }
    assert_eq!(alice.post(&ahead.unwrap()).await.0, StatusCode::OK);
    let base = counts(store.as_ref(), "bob").await;
    assert_eq!(
        refusal(&alice.post(&old).await),
        (StatusCode::CONFLICT, RefusalReason::Reordered)
    );
    assert_eq!(counts(store.as_ref(), "bob").await, base);

    let fresh = alice.seal(&th, "bob", b"four").await;
    // A flipped bit in the ciphertext, in seq (upwards, else it reads as reordered), a
    // re-addressed recipient: the AEAD refuses them.
    let mut c = fresh.clone();
    c.ciphertext[3] ^= 1;
    let mut s = fresh.clone();
    s.seq ^= 1 << 8;
    let mut r = fresh.clone();
    r.recipient = "bobby".into();
    let mut r2 = fresh.clone();
    r2.recipient = "cob".into();
    for bad in [c, s, r, r2] {
        assert_eq!(
            refusal(&alice.post(&bad).await),
            (StatusCode::UNPROCESSABLE_ENTITY, RefusalReason::Altered)
        );
    }
    // A flipped bit in the session id.
    let mut sid = fresh.clone();
    sid.session_id[0] ^= 1;
    assert_eq!(
        refusal(&alice.post(&sid).await),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            RefusalReason::WrongSession
        )
    );
    // The wrong direction.
    let mut dir = fresh.clone();
    dir.direction = kasane_abi::Direction::HostToClient;
    assert_eq!(
        refusal(&alice.post(&dir).await),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            RefusalReason::WrongDirection
        )
    );
    // Garbage.
    assert_eq!(
        refusal(&alice.post_raw(vec![1, 2, 3]).await),
        (StatusCode::BAD_REQUEST, RefusalReason::Malformed)
    );
    // No token.
    let (status, body) = alice
        .conn
        .request("POST", "/v1/messages", fresh.encode().unwrap(), None)
        .await;
    assert_eq!(
        refusal(&(status, body)),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
    assert_eq!(counts(store.as_ref(), "bob").await, base);
    // The untouched original still goes through: nothing above consumed its seq.
    assert_eq!(alice.post(&fresh).await.0, StatusCode::OK);

    // Ended session.
    let after = alice.seal(&th, "bob", b"five").await;
    let (status, _) = alice
        .conn
        .request("POST", "/v1/logout", Vec::new(), Some(alice.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let base = counts(store.as_ref(), "bob").await;
    assert_eq!(
        refusal(&alice.post(&after).await),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
    assert_eq!(counts(store.as_ref(), "bob").await, base);
    // Logout signed the chain's head; the log verifies.
    let summary = audit::verify(store.as_ref(), &host_key(&th)).await.unwrap();
    assert_eq!((summary.records, summary.checkpoints), (5, 1));
}

/// A number past 2^63 - 1 (any client can seal one) is refused on its own: the store keeps
/// numbers as signed 64-bit integers, and such a number once failed the shared commit of
/// every message batched with it, as a 503 to all their senders, over and over.
#[tokio::test]
async fn a_number_the_store_cannot_hold_is_refused_alone() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    let mut bob = user(&th, "bob").await;
    let mut parts = alice.session.into_parts();
    parts.last_sent = i64::MAX as u64;
    alice.session = Session::from_parts(parts);
    let huge = alice.seal(&th, "bob", b"huge").await;
    assert_eq!(huge.seq, 1 << 63);
    assert_eq!(
        refusal(&alice.post(&huge).await),
        (StatusCode::BAD_REQUEST, RefusalReason::Malformed)
    );
    bob.send(&th, "alice", b"still served").await;
    let store = th.host.store().clone();
    assert_eq!(counts(store.as_ref(), "bob").await.1, 0);
    assert_eq!(counts(store.as_ref(), "alice").await.1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_recipient_gets_the_same_answer_and_nothing_is_queued() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    let known = alice.seal(&th, "bob", b"x").await;
    let unknown = alice.seal(&th, "nobody", b"x").await;
    let (s1, b1) = alice.post(&known).await;
    let (s2, b2) = alice.post(&unknown).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let (a1, a2) = (
        MessageAccepted::decode(&b1).unwrap(),
        MessageAccepted::decode(&b2).unwrap(),
    );
    assert_eq!(b1.len(), b2.len());
    assert_eq!((a1.seq + 1, a1.received_at), (a2.seq, a2.received_at));
    // Both audited; only bob's queued (nobody has no queue to hold it).
    let store = th.host.store();
    assert_eq!(counts(store.as_ref(), "bob").await, (2, 1));
    assert!(
        store
            .fetch_messages("nobody", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A message for the host itself ("") is audited, not queued.
    alice.send(&th, "", b"to the host").await;
    assert_eq!(counts(store.as_ref(), "bob").await, (3, 1));
}

/// Issue 14: a recipient's queue holds at most `messages.max_queue_messages`; the next
/// message is refused `507 queue-full` (the same bytes for a name with no user, whose
/// stand-in queue fills alike), nothing of it is kept, and once the recipient reads and
/// acknowledges, sending works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_until_the_recipient_acknowledges() {
    let th = start(|c| c.messages.max_queue_messages = 3).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    let mut answers = Vec::new();
    for name in ["bob", "nobody"] {
        for i in 0..3u8 {
            alice.send(&th, name, &[i]).await;
        }
        let refused = alice.seal(&th, name, b"one too many").await;
        let answer = alice.post(&refused).await;
        assert_eq!(
            refusal(&answer),
            (StatusCode::INSUFFICIENT_STORAGE, RefusalReason::QueueFull),
            "{name}"
        );
        answers.push(answer);
    }
    assert_eq!(
        answers[0], answers[1],
        "a full queue says nothing of existence"
    );
    assert_eq!(counts(th.host.store().as_ref(), "bob").await, (6, 3));
    let mut bob = login_user(&th, "bob").await;
    let (got, _) = bob.inbox(&th, 0).await;
    assert_eq!(got.len(), 3);
    assert_eq!(bob.ack(vec![got[0].id]).await, StatusCode::NO_CONTENT);
    alice.send(&th, "bob", b"room again").await;
    let refused = alice.seal(&th, "bob", b"full again").await;
    assert_eq!(
        refusal(&alice.post(&refused).await).1,
        RefusalReason::QueueFull
    );
    // "nobody" never reads: still full.
    let refused = alice.seal(&th, "nobody", b"x").await;
    assert_eq!(
        refusal(&alice.post(&refused).await).1,
        RefusalReason::QueueFull
    );
}

/// `messages.max_user_bytes_per_day`: once a user's sessions have had the day's budget
/// audited, a message that would pass it is refused `429 budget-spent` (on any of its
/// sessions, whoever the recipient, nothing of it kept; a smaller one that fits still
/// passes), other users' are not, and the next UTC day it sends again with the refused
/// sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_past_its_daily_byte_budget_is_refused_until_the_next_day() {
    let th = start(|c| {
        // The smallest budget this allows (twice the largest record) holds three records of
        // ~100 KB, not four.
        c.messages.max_body_bytes = 128 * 1024;
        c.gateway.max_body_bytes = 1024;
        c.messages.max_user_bytes_per_day = 2 * (128 + 64) * 1024;
        // Alive into the next day.
        c.session.idle_timeout_secs = 2 * 86_400;
        c.session.absolute_timeout_secs = 2 * 86_400;
    })
    .await;
    th.add_user("bob").await;
    let mut alice = user(&th, "alice").await;
    let mut other = login_user(&th, "alice").await;
    let mut bob = login_user(&th, "bob").await;
    let body = vec![b'x'; 100_000];
    alice.send(&th, "bob", &body).await;
    other.send(&th, "", &body).await;
    alice.send(&th, "nobody", &body).await;
    let base = counts(th.host.store().as_ref(), "bob").await;
    let refused = alice.seal(&th, "bob", &body).await;
    let answer = alice.post(&refused).await;
    assert_eq!(
        refusal(&answer),
        (StatusCode::TOO_MANY_REQUESTS, RefusalReason::BudgetSpent)
    );
    let to_host = other.seal(&th, "", &body).await;
    assert_eq!(
        refusal(&other.post(&to_host).await).1,
        RefusalReason::BudgetSpent
    );
    assert_eq!(counts(th.host.store().as_ref(), "bob").await, base);
    // What is left still takes a smaller message.
    other.send(&th, "bob", b"a small one").await;
    bob.send(&th, "alice", &body).await;
    // The next day: the refused message goes through as it was.
    let now = th.clock.now();
    th.clock.advance(86_400 - now % 86_400);
    assert_eq!(alice.post(&refused).await.0, StatusCode::OK);
}

/// `session.max_per_user`: a login beyond the cap ends the user's least recently used
/// session (its next message is refused `SessionEnded`, nothing of it kept), and the others
/// go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_beyond_the_user_s_session_cap_ends_the_least_recently_used() {
    let th = start(|c| c.session.max_per_user = 2).await;
    th.add_user("bob").await;
    let mut first = user(&th, "alice").await;
    th.clock.advance(10);
    let mut second = login_user(&th, "alice").await;
    // Used after the second login, and after the cache's write-through interval (60 s at
    // the default idle timeout), so the store knows: the second is now the least recently
    // used, though younger.
    th.clock.advance(61);
    first.send(&th, "bob", b"first").await;
    let mut third = login_user(&th, "alice").await;
    let base = counts(th.host.store().as_ref(), "bob").await;
    let refused = second.seal(&th, "bob", b"second").await;
    assert_eq!(
        refusal(&second.post(&refused).await),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
    assert_eq!(counts(th.host.store().as_ref(), "bob").await, base);
    first.send(&th, "bob", b"first again").await;
    third.send(&th, "bob", b"third").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_large_is_refused_and_padding_still_delivers() {
    let th = start(|c| {
        c.messages.max_body_bytes = 1024;
        c.messages.pad = true;
    })
    .await;
    let mut alice = user(&th, "alice").await;
    let mut bob = user(&th, "bob").await;
    let big = alice.seal(&th, "bob", &[7; 1025]).await;
    assert_eq!(
        refusal(&alice.post(&big).await),
        (StatusCode::PAYLOAD_TOO_LARGE, RefusalReason::TooLarge)
    );
    assert_eq!(counts(th.host.store().as_ref(), "bob").await, (0, 0));
    alice.send(&th, "bob", &[7; 1024]).await;
    alice.send(&th, "bob", b"hi").await;
    // Padded: both deliveries seal to the same bucket size class at least as big as 1 KiB.
    let (status, body) = bob.conn.get("/v1/inbox", Some(bob.token)).await;
    assert_eq!(status, StatusCode::OK);
    let inbox = Inbox::decode(&body).unwrap();
    assert_eq!(inbox.messages.len(), 2);
    let short = &inbox.messages[1];
    assert_eq!(
        short.ciphertext.len(),
        kasane_protocol::seal::padded_len(
            Delivery {
                id: 2,
                from: "alice".into(),
                sent_at: th.clock.now(),
                body: b"hi".to_vec()
            }
            .encode()
            .unwrap()
            .len(),
            Padding::Buckets
        ) + 16
    );
    let (got, _) = bob.inbox(&th, 0).await;
    assert_eq!(got[1].body, b"hi");
}

/// All rows of the audit log, to put back after each tamper.
type Row = (Vec<u8>, i64, Vec<u8>, Vec<u8>, Vec<u8>, i64);

async fn rows(pool: &sqlx::SqlitePool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT session_id, seq, prev_hash, record_hash, payload, created_at FROM audit_log \
         ORDER BY session_id, seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn put_back(pool: &sqlx::SqlitePool, all: &[Row]) {
    sqlx::query("DELETE FROM audit_log")
        .execute(pool)
        .await
        .unwrap();
    for r in all {
        insert(pool, r).await;
    }
}

async fn insert(pool: &sqlx::SqlitePool, r: &Row) {
    sqlx::query(
        "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.0)
    .bind(r.1)
    .bind(&r.2)
    .bind(&r.3)
    .bind(&r.4)
    .bind(r.5)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_verify_detects_changed_deleted_inserted_and_reordered_records() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    for i in 0..4u8 {
        alice.send(&th, "bob", &[i; 10]).await;
    }
    let store = th.host.store().clone();
    let key = host_key(&th);
    assert_eq!(
        audit::verify(store.as_ref(), &key).await.unwrap().records,
        4
    );

    // The attacker: the database file, without the append-only triggers.
    let pool = sqlx::SqlitePool::connect(&th.cfg.database_url)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    let original = rows(&pool).await;
    let sid = original[0].0.clone();
    let broken_at = |e: audit::VerifyError| match e {
        audit::VerifyError::Broken(b) => {
            assert_eq!(b.session_id, sid);
            assert!(b.to_string().contains(&hex::encode(&sid)));
            b.seq
        }
        other => panic!("{other}"),
    };

    // Changed: one byte of record 2's payload.
    sqlx::query("UPDATE audit_log SET payload = $1 WHERE seq = 2")
        .bind({
            let mut p = original[1].4.clone();
            let last = p.len() - 1;
            p[last] ^= 1;
            p
        })
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        broken_at(audit::verify(store.as_ref(), &key).await.unwrap_err()),
        2
    );
    put_back(&pool, &original).await;
    audit::verify(store.as_ref(), &key).await.unwrap();

    // Deleted: record 2.
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        broken_at(audit::verify(store.as_ref(), &key).await.unwrap_err()),
        3
    );
    put_back(&pool, &original).await;

    // Inserted: a well-formed record (hashes recomputed) at position 2, the rest moved up.
    sqlx::query("DELETE FROM audit_log")
        .execute(&pool)
        .await
        .unwrap();
    insert(&pool, &original[0]).await;
    let payload = original[1].4.clone();
    let forged_hash = audit::record_hash(&sid, 2, &original[0].3, &payload);
    insert(
        &pool,
        &(
            sid.clone(),
            2,
            original[0].3.clone(),
            forged_hash.to_vec(),
            payload,
            0,
        ),
    )
    .await;
    for r in &original[1..] {
        let mut r = r.clone();
        r.1 += 1;
        insert(&pool, &r).await;
    }
    assert_eq!(
        broken_at(audit::verify(store.as_ref(), &key).await.unwrap_err()),
        3
    );
    put_back(&pool, &original).await;

    // Reordered: records 2 and 3 swap places.
    sqlx::query("DELETE FROM audit_log")
        .execute(&pool)
        .await
        .unwrap();
    for (i, r) in original.iter().enumerate() {
        let mut r = r.clone();
        r.1 = match i {
            1 => 3,
            2 => 2,
            _ => r.1,
        };
        insert(&pool, &r).await;
    }
    assert_eq!(
        broken_at(audit::verify(store.as_ref(), &key).await.unwrap_err()),
        2
    );
    put_back(&pool, &original).await;
    audit::verify(store.as_ref(), &key).await.unwrap();

    // A cut-off tail is caught by the signed checkpoint of the head.
    assert_eq!(th.host.checkpoint_audit().await.unwrap(), 1);
    sqlx::query("DELETE FROM audit_log WHERE seq = 4")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        broken_at(audit::verify(store.as_ref(), &key).await.unwrap_err()),
        4
    );
    put_back(&pool, &original).await;

    // Export: one JSON line per record.
    let mut out = Vec::new();
    assert_eq!(audit::export(store.as_ref(), &mut out).await.unwrap(), 4);
    let text = String::from_utf8(out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["session_id"], hex::encode(&sid));
    assert_eq!(first["message"]["sender"], "alice");
    pool.close().await;
}

/// Pruning: once alice's session has ended and bob has read her messages, her chain goes,
/// and `verify` accepts its checkpoints up to the signed head, and no checkpoint past it or
/// vouching for another head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pruned_chain_verifies_by_its_marker_and_its_checkpoints() {
    use ed25519_dalek::Signer as _;
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    let store = th.host.store().clone();
    for i in 0..3u8 {
        alice.send(&th, "bob", &[i; 10]).await;
        if i == 1 {
            assert_eq!(th.host.checkpoint_audit().await.unwrap(), 1);
        }
    }
    assert_eq!(th.host.checkpoint_audit().await.unwrap(), 1);
    let key = kasane_host::keyfile::load_identity_key(&th.cfg.keys_dir).unwrap();
    let now = th.clock.now();
    let prune = || kasane_host::audit_prune::prune(store.as_ref(), &key, now, now, None);
    assert_eq!(prune().await.unwrap().chains, 0, "a live session");
    store.end_sessions("alice").await.unwrap();
    assert_eq!(prune().await.unwrap().chains, 0, "bob has not read them");
    for m in store.fetch_messages("bob", 0, 10).await.unwrap() {
        assert!(store.ack_message("bob", m.id).await.unwrap());
    }
    let pruned = prune().await.unwrap();
    assert_eq!((pruned.chains, pruned.records), (1, 3));
    let s = audit::verify(store.as_ref(), &host_key(&th)).await.unwrap();
    assert_eq!((s.records, s.checkpoints, s.pruned), (0, 2, 1));

    // Checkpoints past the marked head, or of another head, even signed by the host key.
    let pool = sqlx::SqlitePool::connect(&th.cfg.database_url)
        .await
        .unwrap();
    let (sid, head): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT session_id, record_hash FROM audit_pruned")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("DROP TRIGGER audit_checkpoints_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    for (seq, hash, what) in [
        (4, head.clone(), audit::Defect::CheckpointWithoutRecord),
        (3, vec![7; 32], audit::Defect::CheckpointMismatch),
    ] {
        sqlx::query("DELETE FROM audit_checkpoints WHERE seq = 3")
            .execute(&pool)
            .await
            .unwrap();
        let signature = key.sign(&audit::checkpoint_message(&sid, seq, &hash));
        sqlx::query(
            "INSERT INTO audit_checkpoints (session_id, seq, record_hash, signature, \
             created_at) VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(&sid)
        .bind(seq as i64)
        .bind(&hash)
        .bind(signature.to_bytes().as_slice())
        .execute(&pool)
        .await
        .unwrap();
        match audit::verify(store.as_ref(), &host_key(&th)).await {
            Err(audit::VerifyError::Broken(b)) => assert_eq!((b.seq, b.what), (seq, what)),
            other => panic!("{other:?}"),
        }
    }
    pool.close().await;
}

/// A new user `name`'s audit chain that a prune may take once old enough: one message to bob
/// (who exists), its session ended, the message read by bob.
async fn prunable_chain(th: &TestHost, name: &str) {
    prunable_chain_of(th, name, 1).await;
}

/// [`prunable_chain`] with `n` messages.
async fn prunable_chain_of(th: &TestHost, name: &str, n: usize) {
    let mut u = user(th, name).await;
    for _ in 0..n {
        u.send(th, "bob", b"hi").await;
    }
    let store = th.host.store();
    store.end_sessions(name).await.unwrap();
    for m in store.fetch_messages("bob", 0, 1_000).await.unwrap() {
        assert!(store.ack_message("bob", m.id).await.unwrap());
    }
}

/// `[audit] retain_days`: housekeeping prunes what `audit prune` would, once a day, into an
/// archive file of its own (left only when it holds something) that `audit verify
/// --archive` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn housekeeping_prunes_the_audit_log_once_a_day_into_an_archive() {
    let archives = tempfile::tempdir().unwrap();
    let dir = archives.path().to_owned();
    let th = start(move |c| {
        c.audit.retain_days = 1;
        c.audit.archive_dir = dir;
    })
    .await;
    th.add_user("bob").await;
    let store = th.host.store().clone();
    let archived = || {
        let files = std::fs::read_dir(archives.path()).unwrap();
        files.map(|f| f.unwrap().path()).collect::<Vec<_>>()
    };
    // Not in the pass before serving: the first run is a minute after the start.
    let t = th.clock.now();
    prunable_chain(&th, "alice").await;
    let due = || async { th.host.prune_audit_if_due().await.unwrap() };
    assert!(due().await.is_none(), "not due");
    th.clock.set(t + 60);
    let run = due().await.expect("due");
    assert_eq!(run.chains, 0, "not a day old");
    assert!(archived().is_empty(), "an empty archive is removed");

    // A day after that run, housekeeping takes alice's chain (a day old).
    let second = t + 60 + 86_400;
    th.clock.set(second);
    let purged = th.host.housekeeping().await.unwrap();
    assert_eq!((purged.audit_chains, purged.audit_records), (1, 1));
    let files = archived();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = std::io::BufReader::new(std::fs::File::open(&files[0]).unwrap());
    let summary = kasane_host::audit_archive::verify_archive(file, &[host_key(&th)]).unwrap();
    assert_eq!((summary.chains, summary.records), (1, 1));

    // carol's chain is three days old at once, but the next run is due a day after this one.
    th.clock.set(t - 2 * 86_400);
    prunable_chain(&th, "carol").await;
    th.clock.set(second + 60);
    assert!(due().await.is_none(), "not due");
    th.clock.set(second + 86_400);
    let run = due().await.expect("due");
    assert_eq!((run.chains, run.records, run.more), (1, 1, false));
    let s = audit::verify(store.as_ref(), &host_key(&th)).await.unwrap();
    assert_eq!((s.records, s.pruned), (0, 2));
}

/// Two prunes at once (a cron job on each replica): each chain goes once, and the prune that
/// finds a chain taken by the other counts it as skipped instead of failing: here the other
/// prune runs while this one writes its first archive line, so this one finds its first
/// chain marked when it comes to delete it, and its second chain gone when it comes to read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prune_skips_the_chains_another_prune_took_meanwhile() {
    let th = start(|_| {}).await;
    th.add_user("bob").await;
    let store = th.host.store().clone();
    for name in ["alice", "carol"] {
        prunable_chain(&th, name).await;
    }
    let (mut racing, key, now) = Racing::new(&th, None);
    // In the test's `block_on` of a multi-thread runtime, where `block_in_place` may run.
    let pruned = kasane_host::audit_prune::prune(&*store, &key, now, now, Some(&mut racing));
    let pruned = pruned.await.unwrap();
    let other = racing.other.expect("the other prune ran");
    assert_eq!((other.chains, other.records, other.skipped), (2, 2, 0));
    assert_eq!((pruned.chains, pruned.records, pruned.skipped), (0, 0, 2));
    assert_eq!(
        racing.lines, 2,
        "the first chain's record and marker, nothing of the second"
    );
    let s = audit::verify(th.host.store().as_ref(), &host_key(&th))
        .await
        .unwrap();
    assert_eq!((s.records, s.pruned), (0, 2));
}

/// Two prunes at once, the other taking a chain longer than one read page while this one
/// archives it: this one counts it skipped, and takes back what it had written of it, so its
/// archive file holds no half chain (`audit verify --archive` refuses one without its marker).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_chain_another_prune_took_leaves_no_half_chain_in_the_archive() {
    let th = start(|_| {}).await;
    th.add_user("bob").await;
    let store = th.host.store().clone();
    prunable_chain_of(&th, "alice", 20).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.jsonl");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (mut racing, key, now) = Racing::new(&th, Some(file));
    let pruned = kasane_host::audit_prune::prune(&*store, &key, now, now, Some(&mut racing));
    let pruned = pruned.await.unwrap();
    let other = racing.other.take().expect("the other prune ran");
    assert_eq!((other.chains, other.records), (1, 20));
    assert_eq!((pruned.chains, pruned.skipped), (0, 1));
    drop(racing);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"",
        "nothing of the chain stays"
    );
}

/// An archive during whose first line another process prunes every chain.
struct Racing {
    store: Arc<dyn Store>,
    key: ed25519_dalek::SigningKey,
    now: u64,
    lines: usize,
    other: Option<kasane_host::audit_prune::Pruned>,
    /// Where the lines go, if anywhere (then half chains can be taken back).
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Racing {
    /// The archive for a prune on `th`'s store now, with the host's key and the time.
    fn new(
        th: &TestHost,
        file: Option<std::io::BufWriter<std::fs::File>>,
    ) -> (Self, ed25519_dalek::SigningKey, u64) {
        let key = kasane_host::keyfile::load_identity_key(&th.cfg.keys_dir).unwrap();
        let now = th.clock.now();
        let racing = Racing {
            store: th.host.store().clone(),
            key: key.clone(),
            now,
            lines: 0,
            other: None,
            file,
        };
        (racing, key, now)
    }
}

impl kasane_host::audit_prune::Archive for Racing {
    fn line(&mut self, line: &serde_json::Value) -> std::io::Result<()> {
        self.lines += 1;
        if let Some(f) = self.file.as_mut() {
            f.line(line)?;
        }
        if self.other.is_none() {
            let (store, key, now) = (self.store.clone(), self.key.clone(), self.now);
            let other = tokio::task::block_in_place(|| {
                let prune = kasane_host::audit_prune::prune(&*store, &key, now, now, None);
                tokio::runtime::Handle::current().block_on(prune)
            });
            self.other = Some(other.map_err(std::io::Error::other)?);
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.sync())
    }

    fn position(&mut self) -> std::io::Result<u64> {
        self.file.as_mut().map_or(Ok(0), |f| f.position())
    }

    fn truncate(&mut self, at: u64) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.truncate(at))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_is_relayed_acked_and_audited_postgres() {
    let Some(schema) = common::PgSchema::create("kasane_msg").await else {
        return;
    };
    let options = schema.options();
    let pg = kasane_host::store::PgStore::open_with(options, 8)
        .await
        .unwrap();
    let outcome = tokio::spawn({
        let pg = pg.clone();
        async move {
            let th = start_with_store(|_| {}, Some(Arc::new(pg))).await;
            relay_flow(&th).await;
            // A replay on PostgreSQL too.
            let mut carol = user(&th, "carol").await;
            let m = carol.seal(&th, "alice", b"c").await;
            assert_eq!(carol.post(&m).await.0, StatusCode::OK);
            assert_eq!(
                refusal(&carol.post(&m).await),
                (StatusCode::CONFLICT, RefusalReason::Replayed)
            );
        }
    })
    .await;
    pg.close().await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `accept_message` is all-or-nothing and compare-and-set: of 16 concurrent accepts of one
/// sequence number exactly one wins, and the chain stays contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_of_one_seq_yield_one_record_sqlite() {
    on_sqlite(concurrent_accepts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_of_one_seq_yield_one_record_postgres() {
    on_postgres("kasane_acc", concurrent_accepts).await;
}

/// Runs a store-level test on a fresh SQLite file.
async fn on_sqlite<Fut: std::future::Future<Output = ()>>(
    body: impl FnOnce(Arc<dyn Store>) -> Fut,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    body(kasane_host::store::open(&url).await.unwrap()).await;
}

/// Runs a store-level test on PostgreSQL in a fresh schema, dropped afterwards even when the
/// test panics (skipped, with its printed reason, where `PgSchema::create` finds no server).
async fn on_postgres<Fut>(prefix: &str, body: impl FnOnce(Arc<dyn Store>) -> Fut)
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(schema) = common::PgSchema::create(prefix).await else {
        return;
    };
    let pg = kasane_host::store::PgStore::open_with(schema.options(), 8)
        .await
        .unwrap();
    let outcome = tokio::spawn(body(Arc::new(pg.clone()))).await;
    pg.close().await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn concurrent_accepts(st: Arc<dyn Store>) {
    use kasane_host::store::{AcceptMessage, AcceptOutcome, NewSession, NewUser, Zeroizing};
    for name in ["alice", "bob"] {
        st.create_user(
            &NewUser {
                name: name.into(),
                opaque_record: vec![1],
                pairs: vec![],
            },
            1,
        )
        .await
        .unwrap();
    }
    st.create_session(&NewSession {
        token_hash: vec![1; 32],
        session_id: vec![7; 16],
        user: "alice".into(),
        created: 1,
        expires_at: 100,
        secret: Zeroizing::new(vec![0; 4]),
        max_per_user: 128,
    })
    .await
    .unwrap();
    for seq in [1u64, 2] {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let st = st.clone();
            tasks.push(tokio::spawn(async move {
                st.accept_message(&AcceptMessage {
                    session_id: vec![7; 16],
                    seq,
                    payload: vec![seq as u8],
                    queue: Some(kasane_host::store::QueueEntry {
                        recipient: "bob".into(),
                        sealed: vec![9],
                        bytes: 1,
                    }),
                    quota: ROOMY,
                    daily_budget: u64::MAX,
                    held: 0,
                    created: 2,
                    sent_by: kasane_host::store::SentBy::Client,
                })
                .await
                .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                AcceptOutcome::Accepted {
                    audit_seq, queued, ..
                } => {
                    assert_eq!(audit_seq, seq);
                    assert!(queued);
                    won += 1;
                }
                AcceptOutcome::Replayed => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(won, 1);
    }
    assert_eq!(counts(st.as_ref(), "bob").await, (2, 2));
    // Seen already (inside the replay window): replayed; no session: NoSession; nothing
    // written.
    let m = |sid: Vec<u8>, seq| AcceptMessage {
        session_id: sid,
        seq,
        payload: vec![0],
        queue: None,
        quota: ROOMY,
        daily_budget: u64::MAX,
        held: 0,
        created: 3,
        sent_by: kasane_host::store::SentBy::Client,
    };
    assert_eq!(
        st.accept_message(&m(vec![7; 16], 1)).await.unwrap(),
        AcceptOutcome::Replayed
    );
    assert_eq!(
        st.accept_message(&m(vec![8; 16], 5)).await.unwrap(),
        AcceptOutcome::NoSession
    );
    assert_eq!(counts(st.as_ref(), "bob").await, (2, 2));
}

/// Queued messages that do not open under the queue key (here: sealed under another key, as
/// a replica with its own `queue.key` would have) are moved to the dead letters instead of
/// holding back what was queued after them — even more of them than one inbox holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_that_do_not_open_are_dead_lettered_not_blocking() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    let bad = kasane_protocol::wire::MAX_INBOX_MESSAGES + 6;
    for i in 0..bad {
        let body = [vec![i as u8; 12], vec![0xee; 40]].concat();
        th.host
            .store()
            .enqueue_message("bob", &body, th.clock.now())
            .await
            .unwrap();
    }
    alice.send(&th, "bob", b"after the bad ones").await;
    let mut bob = login_user(&th, "bob").await;
    let (got, more) = bob.inbox(&th, 0).await;
    assert!(!more);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"after the bad ones");
    // Kept for the operator, out of the queue, and counted.
    let store = th.host.store();
    assert_eq!(store.fetch_messages("bob", 0, 1000).await.unwrap().len(), 1);
    let metrics = String::from_utf8(
        bob.conn
            .get("/metrics", Some(*th.host.metrics_token()))
            .await
            .1,
    )
    .unwrap();
    assert!(
        metrics.contains(&format!("kasane_queue_dead_letters_total {bad}")),
        "{metrics}"
    );
}

/// A queue entry whose audit record was altered or deleted (the database file tampered
/// with: the log is append-only) opens nothing: it is moved to the dead letters, naming the
/// record, and the messages queued after it are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_entry_whose_audit_record_is_gone_or_altered_is_dead_lettered() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    for body in [&b"one"[..], b"two", b"three"] {
        alice.send(&th, "bob", body).await;
    }
    let pool = sqlx::SqlitePool::connect(&th.cfg.database_url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
         DELETE FROM audit_log WHERE seq = 1; \
         UPDATE audit_log SET payload = substr(payload, 1, length(payload) - 1) WHERE seq = 2;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut bob = login_user(&th, "bob").await;
    let (got, _) = bob.inbox(&th, 0).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, [&b"three"[..]]);
    let dead: Vec<(Option<i64>,)> =
        sqlx::query_as("SELECT audit_seq FROM relay_dead_letters ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(dead, [(Some(1),), (Some(2),)]);
}

/// A host whose `keys/queue.key` is not the one the database's messages are sealed with
/// refuses to start, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_with_another_queue_key_refuses_the_database() {
    let th = start(|_| {}).await;
    let other = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&th.cfg.keys_dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), other.path().join(entry.file_name())).unwrap();
    }
    let queue_key = other.path().join(kasane_host::messages::QUEUE_KEY_FILE);
    std::fs::write(&queue_key, rand::random::<[u8; 32]>()).unwrap();
    let mut cfg = th.cfg.clone();
    cfg.keys_dir = other.path().to_owned();
    let clock: Arc<dyn Clock> = Arc::new(kasane_host::store::SystemClock);
    let refused =
        kasane_host::setup::load_host_with_store(cfg, th.host.store().clone(), clock).await;
    match refused {
        Err(kasane_host::HostError::Key { path, source }) => {
            assert_eq!(path, queue_key);
            assert!(matches!(
                source,
                kasane_host::crypto::KeyError::OtherQueueKey
            ));
        }
        other => panic!("expected the queue key refused, got {other:?}"),
    }
    // The same keys as the first host: accepted.
    let clock: Arc<dyn Clock> = Arc::new(kasane_host::store::SystemClock);
    kasane_host::setup::load_host_with_store(th.cfg.clone(), th.host.store().clone(), clock)
        .await
        .unwrap();
}

/// A logout signs the head of its own session's audit chain, and only that one (other
/// chains are housekeeping's): it does not scan the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_signs_its_own_chain_only() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    let mut bob = user(&th, "bob").await;
    alice.send(&th, "bob", b"one").await;
    alice.send(&th, "bob", b"two").await;
    bob.send(&th, "alice", b"three").await;
    let (status, _) = alice
        .conn
        .request("POST", "/v1/logout", Vec::new(), Some(alice.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let store = th.host.store();
    let checkpoints = store.audit_checkpoint_page(None, 10).await.unwrap();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert_eq!(
        (checkpoints[0].session_id.as_slice(), checkpoints[0].seq),
        (alice.session.session_id().as_slice(), 2)
    );
    let summary = audit::verify(store.as_ref(), &host_key(&th)).await.unwrap();
    assert_eq!(summary.checkpoints, 1);
    // Bob's chain is signed by the next housekeeping pass.
    th.host.housekeeping().await.unwrap();
    assert_eq!(
        store.audit_checkpoint_page(None, 10).await.unwrap().len(),
        2
    );
}

/// An inbox read stops at what one inbox carries (8 MiB): ten messages of 0.9 MiB come in two
/// reads, `more` set on the first, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inbox_read_is_bounded_by_bytes() {
    let th = start(|_| {}).await;
    let mut alice = user(&th, "alice").await;
    th.add_user("bob").await;
    for i in 0..10u8 {
        alice.send(&th, "bob", &vec![i; 900_000]).await;
    }
    let mut bob = login_user(&th, "bob").await;
    let (first, more) = bob.inbox(&th, 0).await;
    assert!(more);
    assert!(first.len() < 10 && !first.is_empty(), "{}", first.len());
    let total: usize = first.iter().map(|d| d.body.len()).sum();
    assert!(total <= kasane_protocol::wire::MAX_INBOX_LEN);
    let ids = first.iter().map(|d| d.id).collect();
    assert_eq!(bob.ack(ids).await, StatusCode::NO_CONTENT);
    let (rest, more) = bob.inbox(&th, 0).await;
    assert!(!more);
    let bodies: Vec<u8> = first.iter().chain(&rest).map(|d| d.body[0]).collect();
    assert_eq!(bodies, (0..10).collect::<Vec<u8>>());
}

/// One session may have `messages.max_inbox_reads_per_session` inbox reads in progress at
/// once: the next is answered 503 at once (each read may hold an inbox of bodies), and once
/// the parked ones end, reads work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbox_reads_per_session_are_bounded() {
    let th = start(|c| c.messages.max_inbox_reads_per_session = 2).await;
    let bob = user(&th, "bob").await;
    let token = bob.token;
    let mut parked = Vec::new();
    for _ in 0..2 {
        let mut conn = th.connect().await;
        parked.push(tokio::spawn(async move {
            conn.get("/v1/inbox?wait=3", Some(token)).await
        }));
    }
    for _ in 0..2000 {
        if th.host.inbox_waiting() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(th.host.inbox_waiting(), 2);
    let mut third = th.connect().await;
    let refused = third.get("/v1/inbox?wait=0", Some(token)).await;
    assert_eq!(
        refusal(&refused),
        (StatusCode::SERVICE_UNAVAILABLE, RefusalReason::Unavailable)
    );
    for p in parked {
        assert_eq!(p.await.unwrap().0, StatusCode::OK);
    }
    let (status, _) = third.get("/v1/inbox?wait=0", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Issue 15: the store's replay window, alone and in one group-committed batch — out of
/// order inside the window, a duplicate inside it, below it, far ahead — on SQLite and on
/// PostgreSQL; the audit chain stays contiguous and records each accepted message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_window_edges_sqlite() {
    on_sqlite(replay_window_edges).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_window_edges_postgres() {
    on_postgres("kasane_win", replay_window_edges).await;
}

async fn replay_window_edges(st: Arc<dyn Store>) {
    use kasane_host::store::{AcceptMessage, AcceptOutcome::*, NewSession, NewUser, Zeroizing};
    let user = NewUser {
        name: "alice".into(),
        opaque_record: vec![1],
        pairs: vec![],
    };
    st.create_user(&user, 1).await.unwrap();
    let sid = vec![5; 16];
    st.create_session(&NewSession {
        token_hash: vec![2; 32],
        session_id: sid.clone(),
        user: "alice".into(),
        created: 1,
        expires_at: 100,
        secret: Zeroizing::new(vec![0; 4]),
        max_per_user: 128,
    })
    .await
    .unwrap();
    // The store reads the window itself (the caller passes none).
    let m = |seq: u64| AcceptMessage {
        session_id: sid.clone(),
        seq,
        payload: vec![seq as u8],
        queue: None,
        quota: ROOMY,
        daily_budget: u64::MAX,
        held: 0,
        created: 2,
        sent_by: kasane_host::store::SentBy::Client,
    };
    let verdict = |o: &kasane_host::store::AcceptOutcome| match o {
        Accepted { .. } => "ok",
        Replayed => "replayed",
        Reordered => "reordered",
        other => panic!("{other:?}"),
    };
    let one = |seq| {
        let st = st.clone();
        let msg = m(seq);
        async move { verdict(&st.accept_message(&msg).await.unwrap()) }
    };
    assert_eq!(one(3).await, "ok");
    assert_eq!(one(1).await, "ok", "out of order inside the window");
    assert_eq!(one(2).await, "ok");
    assert_eq!(one(2).await, "replayed", "duplicate inside the window");
    assert_eq!(one(0).await, "reordered", "0 is never a message");
    assert_eq!(one(1_000).await, "ok", "far ahead");
    assert_eq!(one(1_000 - 64).await, "reordered", "just below the window");
    assert_eq!(one(1_000 - 63).await, "ok", "the window's lowest");
    assert_eq!(one(1_000 - 63).await, "replayed");
    // One batch, one commit: a duplicate inside the batch is refused, the rest accepted,
    // each in order as if alone.
    let batch = [m(1_001), m(1_001), m(1_003), m(1_002), m(3)];
    let got = st.accept_messages(&batch).await.unwrap();
    let got: Vec<_> = got.iter().map(verdict).collect();
    assert_eq!(got, ["ok", "replayed", "ok", "ok", "reordered"]);
    // Eight accepted in all: the chain's head is its eighth record, and every position
    // below holds one.
    let (head, _) = st.audit_head(&sid).await.unwrap().unwrap();
    assert_eq!(head, 8);
    let records = st.audit_page(None, 100).await.unwrap();
    let positions: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
}

/// Issue 15: group commit never acknowledges before durability. A trigger makes every
/// commit fail at `COMMIT` itself (a deferred foreign key that each audit insert violates,
/// checked only when the transaction commits); four users send at once: none gets an
/// acknowledgement (each `503`), and the audit log and the queue hold nothing. With the
/// trigger gone, the very same sealed messages go through: their numbers were not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_acknowledges_no_sender() {
    let th = start(|_| {}).await;
    th.add_user("bob").await;
    let mut senders = Vec::new();
    for name in ["s1", "s2", "s3", "s4"] {
        senders.push(user(&th, name).await);
    }
    let mut sealed = Vec::new();
    for u in &mut senders {
        sealed.push(u.seal(&th, "bob", b"not before it is durable").await);
    }
    let db_url = format!("sqlite://{}", th.dir.path().join("kasane.db").display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE fail_commit (x INTEGER REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER fail_commit AFTER INSERT ON audit_log
           BEGIN INSERT INTO fail_commit VALUES (-1); END;",
    )
    .execute(&db)
    .await
    .unwrap();

    let tasks: Vec<_> = senders
        .into_iter()
        .zip(sealed.clone())
        .map(|(mut u, m)| {
            tokio::spawn(async move {
                let answer = u.post(&m).await;
                (u, answer)
            })
        })
        .collect();
    let mut senders = Vec::new();
    for t in tasks {
        let (u, answer) = t.await.unwrap();
        assert_eq!(
            refusal(&answer),
            (StatusCode::SERVICE_UNAVAILABLE, RefusalReason::Unavailable)
        );
        senders.push(u);
    }
    let store = th.host.store().clone();
    assert_eq!(counts(store.as_ref(), "bob").await, (0, 0));
    let stats = th.host.commit_stats();
    assert_eq!((stats.commits(), stats.jobs()), (0, 0));
    assert!(stats.failed() >= 1);

    sqlx::raw_sql("DROP TRIGGER fail_commit; DROP TABLE fail_commit;")
        .execute(&db)
        .await
        .unwrap();
    for (u, m) in senders.iter_mut().zip(&sealed) {
        assert_eq!(u.post(m).await.0, StatusCode::OK);
    }
    assert_eq!(counts(store.as_ref(), "bob").await, (4, 4));
}

/// Issue 15: one session's messages through two replicas on one database, each holding the
/// session in its own memory. Out of order across replicas, each message is accepted once;
/// a replay on the other replica is refused although that replica's copy of the window is
/// stale; the same message on both at once is accepted by one; after a logout on one, the
/// other (its memory still holding the session) stops answering the session's inbox within
/// seconds (it reads the store's `session_ends` every second) and accepts no message for it.
async fn one_session_on_two_replicas(th: TestHost, replica_store: Arc<dyn Store>) {
    th.add_user("bob").await;
    let mut alice = user(&th, "alice").await;
    let b = th.replica(replica_store).await;
    let mut conn_b = common::connect(b.addr, &th.cert_der).await;
    let mut m = Vec::new();
    for i in 0..6u8 {
        m.push(alice.seal(&th, "bob", &[b'm', i]).await);
    }
    let token = alice.token;
    let mut on_b = async |s: &SealedMessage| {
        conn_b
            .request("POST", "/v1/messages", s.encode().unwrap(), Some(token))
            .await
    };
    assert_eq!(alice.post(&m[1]).await.0, StatusCode::OK);
    assert_eq!(on_b(&m[0]).await.0, StatusCode::OK, "out of order, on B");
    assert_eq!(on_b(&m[2]).await.0, StatusCode::OK);
    assert_eq!(
        alice.post(&m[3]).await.0,
        StatusCode::OK,
        "A's window is stale"
    );
    let replayed = (StatusCode::CONFLICT, RefusalReason::Replayed);
    assert_eq!(refusal(&alice.post(&m[2]).await), replayed);
    assert_eq!(refusal(&on_b(&m[3]).await), replayed);
    let (on_a, b_answer) = tokio::join!(alice.post(&m[4]), on_b(&m[4]));
    let oks = [&on_a, &b_answer]
        .iter()
        .filter(|a| a.0 == StatusCode::OK)
        .count();
    assert_eq!(oks, 1, "{:?} / {:?}", on_a.0, b_answer.0);

    let mut inbox_b = common::connect(b.addr, &th.cert_der).await;
    let (status, _) = inbox_b.get("/v1/inbox?wait=0", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = alice
        .conn
        .request("POST", "/v1/logout", Vec::new(), Some(token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Bounded: 10 s, against B's write-through of up to a minute.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let inbox_on_b = loop {
        let (status, _) = inbox_b.get("/v1/inbox?wait=0", Some(token)).await;
        if status != StatusCode::OK || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(inbox_on_b, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refusal(&on_b(&m[5]).await),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
    let store = th.host.store().clone();
    assert_eq!(counts(store.as_ref(), "bob").await, (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_session_on_two_replicas_sqlite() {
    let th = start(|_| {}).await;
    let url = format!(
        "sqlite://{}?mode=rwc",
        th.dir.path().join("kasane.db").display()
    );
    let second = kasane_host::store::open(&url).await.unwrap();
    one_session_on_two_replicas(th, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_session_on_two_replicas_postgres() {
    let Some(schema) = common::PgSchema::create("kasane_rep").await else {
        return;
    };
    let a = kasane_host::store::PgStore::open_with(schema.options(), 8)
        .await
        .unwrap();
    let b = kasane_host::store::PgStore::open_with(schema.options(), 8)
        .await
        .unwrap();
    let th = start_with_store(|_| {}, Some(Arc::new(a.clone()))).await;
    let outcome = tokio::spawn(one_session_on_two_replicas(th, Arc::new(b.clone()))).await;
    a.close().await;
    b.close().await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
