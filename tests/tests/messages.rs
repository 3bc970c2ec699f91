//! The client refuses what the host's refuses: a replayed, reordered, altered, re-addressed or
//! wrong-session message from the host is reported, not delivered and not acknowledged (so the
//! host delivers the genuine message again).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use kasane_client::{Client, ClientError};
use kasane_host::store::Clock as _;
use kasane_protocol::RefusalReason;
use kasane_protocol::wire::{Inbox, Message};
use kasane_tests::{proxy, responder, start_with};

const PASS: u8 = 0;
const FLIP: u8 = 1;
const REPLAY: u8 = 2;
const SWAP: u8 = 3;
const READDRESS: u8 = 4;
const WRONG_SESSION: u8 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_refuses_tampered_messages_from_the_host() {
    let th = start_with(|c| c.channel_binding = false).await;
    let alice_card = th.add_user("alice").await;
    let bob_card = th.add_user("bob").await;
    th.force("hmac-sha256");

    let mode = Arc::new(AtomicU8::new(PASS));
    let last_inbox: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let rewrite: proxy::Rewrite = {
        let (mode, last_inbox) = (mode.clone(), last_inbox.clone());
        Arc::new(move |x: &proxy::Exchange<'_>| {
            if !x.request_line.starts_with("GET /v1/inbox") {
                return None;
            }
            let mut inbox = Inbox::decode(x.response_body).ok()?;
            let m = mode.load(Ordering::SeqCst);
            if m == PASS {
                if !inbox.messages.is_empty() {
                    *last_inbox.lock().unwrap() = Some(x.response_body.to_vec());
                }
                return None;
            }
            if m == REPLAY {
                return last_inbox.lock().unwrap().clone();
            }
            match m {
                FLIP => inbox.messages[0].ciphertext[0] ^= 0x80,
                SWAP => inbox.messages.swap(0, 1),
                READDRESS => inbox.messages[0].recipient = "carol".into(),
                WRONG_SESSION => inbox.messages[0].session_id[0] ^= 1,
                _ => {}
            }
            Some(inbox.encode().unwrap())
        })
    };
    let addr = proxy::start_with(&th, rewrite).await;
    let client = Client::connect(th.client_config_for(&format!("https://{addr}"), None))
        .await
        .unwrap();
    let (alice, _) = client
        .login("alice", &mut responder(&alice_card))
        .await
        .unwrap();
    let (mut bob, _) = client
        .login("bob", &mut responder(&bob_card))
        .await
        .unwrap();

    // Each tampering is refused with its reason; the genuine message then still arrives.
    let cases = [
        (FLIP, RefusalReason::Altered),
        (READDRESS, RefusalReason::Altered),
        (WRONG_SESSION, RefusalReason::WrongSession),
    ];
    for (i, (m, want)) in cases.into_iter().enumerate() {
        let body = format!("message {i}");
        alice.send("bob", body.as_bytes()).await.unwrap();
        mode.store(m, Ordering::SeqCst);
        let report = bob.inbox_report(0).await.unwrap();
        assert!(
            report.received.is_empty(),
            "case {i}: tampered message delivered"
        );
        assert!(
            matches!(report.refused.as_slice(), [ClientError::Incoming(r)] if *r == want),
            "case {i}: expected {want}, got {:?}",
            report.refused
        );
        mode.store(PASS, Ordering::SeqCst);
        let got = bob.inbox(0).await.unwrap();
        assert_eq!(got.len(), 1, "case {i}: not delivered again");
        assert_eq!(got[0].body.as_slice(), body.as_bytes());
    }

    // A replay of an inbox the client already opened.
    alice.send("bob", b"fresh").await.unwrap();
    mode.store(REPLAY, Ordering::SeqCst);
    let report = bob.inbox_report(0).await.unwrap();
    assert!(report.received.is_empty());
    assert!(
        matches!(
            report.refused.as_slice(),
            [ClientError::Incoming(
                RefusalReason::Replayed | RefusalReason::Reordered
            )]
        ),
        "{:?}",
        report.refused
    );
    mode.store(PASS, Ordering::SeqCst);
    assert_eq!(bob.inbox(0).await.unwrap()[0].body.as_slice(), b"fresh");

    // Two messages delivered out of order: the first opens, the second is refused.
    alice.send("bob", b"one").await.unwrap();
    alice.send("bob", b"two").await.unwrap();
    mode.store(SWAP, Ordering::SeqCst);
    let report = bob.inbox_report(0).await.unwrap();
    assert_eq!(report.received.len(), 1);
    assert_eq!(report.received[0].body.as_slice(), b"two");
    assert!(
        matches!(
            report.refused.as_slice(),
            [ClientError::Incoming(RefusalReason::Reordered)]
        ),
        "{:?}",
        report.refused
    );
    mode.store(PASS, Ordering::SeqCst);
    let got = bob.inbox(0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.as_slice(), b"one");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_from_an_ended_session_is_refused_by_the_host() {
    let th = kasane_tests::start().await;
    let card = th.add_user("alice").await;
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (alice, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    alice.send("alice", b"before").await.unwrap();
    // The host ends every session of the user (as an operator removing the user would).
    assert!(th.host.store().remove_user("alice").await.unwrap());
    let err = alice.send("alice", b"after").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(RefusalReason::SessionEnded)),
        "got: {err}"
    );
}

/// Issue 15: `Session::send` pipelines. 120 messages sent at once from one session (up to
/// `MAX_IN_FLIGHT` in flight, overtaking each other) are each accepted, delivered once and
/// audited once.
/// A host with alice and bob, a client of it, alice's session and bob's card.
async fn alice_and_bob() -> (
    kasane_tests::TestHost,
    Client,
    kasane_client::Session,
    kasane_host::setup::CodeCard,
) {
    let th = start_with(|_| {}).await;
    let alice_card = th.add_user("alice").await;
    let bob_card = th.add_user("bob").await;
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (alice, _) = client
        .login("alice", &mut responder(&alice_card))
        .await
        .unwrap();
    (th, client, alice, bob_card)
}

/// A failed acknowledgement loses nothing: the messages it was for are reported beside the
/// error (the host may have deleted them already), and when the host delivers them again
/// they are acknowledged without being reported twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_whose_ack_failed_are_reported_once_and_acked_later() {
    let (th, client, alice, bob_card) = alice_and_bob().await;
    alice.send("bob", b"hello bob").await.unwrap();
    let (mut bob, _) = client
        .login("bob", &mut responder(&bob_card))
        .await
        .unwrap();
    let file = th.cfg.database_url.trim_start_matches("sqlite://");
    let file = file.split('?').next().unwrap();
    let db = rusqlite::Connection::open(file).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_ack BEFORE DELETE ON relay_queue BEGIN SELECT RAISE(ABORT, 'x'); END",
    )
    .unwrap();
    let report = bob.inbox_report(0).await.unwrap();
    assert!(report.ack_error.is_some(), "{report:?}");
    let bodies: Vec<&[u8]> = report.received.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, [&b"hello bob"[..]]);
    db.execute_batch("DROP TRIGGER no_ack").unwrap();
    let again = bob.inbox_report(0).await.unwrap();
    assert!(
        again.received.is_empty() && again.ack_error.is_none(),
        "{again:?}"
    );
    let left = th.host.store().fetch_messages("bob", 0, 10).await.unwrap();
    assert!(left.is_empty(), "acknowledged on the second read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_session_pipelines_and_each_message_is_delivered_once() {
    const N: usize = 120;
    let (th, client, alice, bob_card) = alice_and_bob().await;
    let alice = Arc::new(alice);
    let sends: Vec<_> = (0..N)
        .map(|i| {
            let alice = alice.clone();
            tokio::spawn(async move { alice.send("bob", format!("m{i}").as_bytes()).await })
        })
        .collect();
    let mut seqs = std::collections::BTreeSet::new();
    for s in sends {
        let accepted = s.await.unwrap().unwrap();
        assert!(seqs.insert(accepted.seq), "seq {} twice", accepted.seq);
    }
    assert_eq!(seqs.len(), N);

    let (mut bob, _) = client
        .login("bob", &mut responder(&bob_card))
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < N {
        let got = bob.inbox(0).await.unwrap();
        assert!(!got.is_empty(), "only {} of {N} delivered", bodies.len());
        bodies.extend(
            got.into_iter()
                .map(|r| String::from_utf8(r.body.to_vec()).unwrap()),
        );
    }
    bodies.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "each message delivered exactly once");
    assert!(bob.inbox(0).await.unwrap().is_empty());
    let records = th.host.store().audit_page(None, 1_000).await.unwrap();
    let from_alice = records
        .iter()
        .filter(|r| r.session_id == alice.session_id())
        .count();
    assert_eq!(from_alice, N, "each accepted message audited once");
    // Every message went through the group commit (how many shared a commit depends on the
    // disk: the batcher's own tests show that they do).
    let stats = th.host.commit_stats();
    assert_eq!(stats.jobs(), N as u64);
    assert!(stats.commits() <= N as u64);
    // The host ran the message transform on warm instances, which went back to the pool.
    let reg = th.host.registry();
    let warm: usize = reg
        .active(kasane_host::store::SystemClock.now())
        .unwrap()
        .iter()
        .map(|e| reg.transform(e).unwrap().warm_instances())
        .sum();
    assert!(warm >= 1, "no warm instance kept");
}
