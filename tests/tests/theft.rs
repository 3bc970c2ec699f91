//! What a stolen database, and a stolen database with the host's key files, give an
//! attacker under login v2 (docs/SECURITY.md): the real host and client over TLS 1.3, the
//! database copied as `kasane-host backup` copies it, the host's side of a login recorded
//! by a TLS-terminating proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use kasane_client::{Client, ClientError};
use kasane_host::store::UserRecord;
use kasane_protocol::card::CodeCard;
use kasane_protocol::opaque::{self, Binding};
use kasane_protocol::verifier::ResponseKey;
use kasane_protocol::{ExportKey, ServerKeys};
use kasane_tests::{PASSWORD, TestHost, proxy, responder, responder_with, start_with};
use rand_core::OsRng;

/// Whether `guess` opens `record` as OPAQUE's client would, given the server keys an
/// attacker holds: the export key if it does (one argon2id per call).
fn try_guess(keys: &ServerKeys, record: &[u8], guess: &str) -> Option<ExportKey> {
    let ctx = opaque::context(None);
    let binding = Binding::for_user("alice", &ctx);
    let (state, ke1): (opaque::ClientLoginState, _) =
        opaque::login_start(&mut OsRng, guess.as_bytes()).unwrap();
    let (_, ke2) = opaque::login_respond(&mut OsRng, keys, Some(record), &ke1, &binding).unwrap();
    opaque::login_finish(state, &mut OsRng, guess.as_bytes(), &ke2, &binding)
        .ok()
        .map(|f| f.export_key)
}

/// Alice enrolled and logged in once through a recording proxy; the stolen copy of the
/// database (a `backup`), opened, and alice's row in it.
async fn steal(th: &TestHost, card: &CodeCard) -> (proxy::Log, UserRecord, Vec<u8>) {
    let (addr, log) = proxy::record(th).await;
    let client = Client::connect(th.client_config_for(&format!("https://{addr}"), None))
        .await
        .unwrap();
    let (s, _) = client.login("alice", &mut responder(card)).await.unwrap();
    s.close().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("stolen.db");
    th.host.store().backup_to(&copy).await.unwrap();
    let bytes = std::fs::read(&copy).unwrap();
    let url = format!("sqlite://{}?mode=rw", copy.display());
    let stolen = kasane_host::store::open(&url).await.unwrap();
    let alice = stolen.get_user("alice").await.unwrap().unwrap();
    (log, alice, bytes)
}

/// The attacker knows the card but not the password: the real client's login is refused.
async fn assert_no_login_without_the_password(th: &TestHost, card: &CodeCard) {
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let err = client
        .login("alice", &mut responder_with("wrong", card))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PasswordRefused), "{err}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The secrets of alice's login: the password and every card response (as typed and
/// normalized).
fn secrets(card: &CodeCard) -> Vec<Vec<u8>> {
    let mut out = vec![PASSWORD.as_bytes().to_vec()];
    for (_, r) in &card.pairs {
        out.push(r.as_bytes().to_vec());
        out.push(r.to_ascii_uppercase().into_bytes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_never_receives_the_password_and_stores_nothing_password_equivalent() {
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    let (log, _, db) = steal(&th, &card).await;
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|x| x.request_line.starts_with("POST /v1/login/finish"))
    );
    for x in &log {
        for s in secrets(&card) {
            assert!(
                !contains(&x.request_body, &s),
                "{} carries a secret",
                x.request_line
            );
        }
    }
    // A 4-character response can match SQL in the schema the file stores (`WHEN`, `DATE`,
    // …) by chance; such a hit says nothing. A leak would put every response in the file.
    let schema = migrations_text();
    let found: Vec<Vec<u8>> = secrets(&card)
        .into_iter()
        .filter(|s| contains(&db, s))
        .collect();
    for s in &found {
        assert!(contains(&schema, s), "the database holds a secret");
    }
    assert!(found.len() <= 2, "{} secrets in the database", found.len());
}

/// The text of the host's SQLite migrations: the schema the database file stores.
fn migrations_text() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/migrations/sqlite");
    let mut text = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        text.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_database_alone_allows_no_login_and_no_offline_guess() {
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    let (_, alice, _) = steal(&th, &card).await;
    let record = alice.opaque_record.clone().unwrap();
    // Without the host's OPRF key even the right password cannot be confirmed against the
    // record: the attacker's own keys open nothing.
    let attacker = ServerKeys::generate(&mut OsRng);
    for guess in [PASSWORD, "wrong"] {
        assert!(try_guess(&attacker, &record, guess).is_none(), "{guess}");
    }
    // The verifiers are keyed by the export key: the right response under its salt, keyed by
    // anything the database holds, is not the stored verifier.
    for p in &alice.pairs {
        let response = card.pairs.iter().find(|(q, _)| *q == p.prompt).unwrap();
        for guessed_key in [[0u8; 64], [0xff; 64]] {
            let key = ResponseKey::derive(&ExportKey::from_bytes(guessed_key));
            assert_ne!(key.verifier(&response.1, &p.salt).unwrap(), p.verifier);
        }
    }
    // And no login: the attacker knows everything in the database but the password.
    assert_no_login_without_the_password(&th, &card).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_database_and_key_files_allow_offline_guessing_at_one_argon2id_a_guess() {
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    let (_, alice, _) = steal(&th, &card).await;
    let record = alice.opaque_record.clone().unwrap();
    let stolen_keys = kasane_host::keyfile::load_opaque_keys(&th.cfg.keys_dir).unwrap();
    // Each guess is one OPAQUE client run (one argon2id with OWASP's parameters); a wrong one
    // fails, the right one gives the export key …
    let started = std::time::Instant::now();
    assert!(try_guess(&stolen_keys, &record, "wrong").is_none());
    let export = try_guess(&stolen_keys, &record, PASSWORD).expect("the right guess opens");
    println!("two offline guesses took {:?}", started.elapsed());
    // … and only then do the card's verifiers fall.
    let key = ResponseKey::derive(&export);
    for p in &alice.pairs {
        let response = &card.pairs.iter().find(|(q, _)| *q == p.prompt).unwrap().1;
        assert_eq!(key.verifier(response, &p.salt).unwrap(), p.verifier);
    }
    // Without the password there is still no login.
    assert_no_login_without_the_password(&th, &card).await;
}
