//! CardResponder, the configuration defaults, error messages, and offline failures
//! (no host needed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a failure is a test failure"
)]

use std::time::Duration;

use kasane_client::{CardResponder, Client, ClientConfig, ClientError, Responder};
use kasane_protocol::RefusalReason;
use kasane_protocol::card::CodeCard;
use zeroize::Zeroizing;

#[test]
fn card_responder_answers_from_the_card() {
    let card = CodeCard::parse("alice", "A1 KM4Q\nB2 TX7W\n").unwrap();
    let mut r = CardResponder::new(Zeroizing::new("pw".into()), card);
    assert_eq!(r.password("alice").unwrap().as_str(), "pw");
    assert_eq!(r.answer("B2").unwrap().as_str(), "TX7W");
    assert!(matches!(r.answer("Z9"), Err(ClientError::Input(_))));
    // Debug shows no secret.
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("pw") && !dbg.contains("KM4Q"), "{dbg}");
}

#[test]
fn config_defaults() {
    let c = ClientConfig::new("https://127.0.0.1:7443", Vec::new(), Vec::new());
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert!(c.state_dir.is_none());
    assert!(c.server_name.is_none());
}

#[test]
fn each_error_names_its_cause() {
    let cases: Vec<(ClientError, &str)> = vec![
        (
            ClientError::BadCertificate("UnknownIssuer".into()),
            "certificate",
        ),
        (ClientError::TimedOut, "timed out"),
        (ClientError::HostKey, "host key"),
        (ClientError::Throttled, "throttled"),
        (ClientError::LoginRefused, "wrong password"),
        (ClientError::Confirm, "confirm"),
        (ClientError::Revoked("x".into()), "revoked"),
        (ClientError::UntrustedModule("x".into()), "untrusted"),
        (ClientError::Refused(RefusalReason::Replayed), "replayed"),
        (ClientError::Incoming(RefusalReason::Altered), "altered"),
    ];
    for (e, needle) in cases {
        let s = e.to_string();
        assert!(s.contains(needle), "{s:?} lacks {needle:?}");
        assert!(!s.contains('\n'));
    }
}

fn tmp_entries() -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn plain_http_and_bad_pem_are_config_errors() {
    let err = Client::connect(ClientConfig::new(
        "http://127.0.0.1:1",
        b"x".to_vec(),
        Vec::new(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Config(_)), "{err}");
    let err = Client::connect(ClientConfig::new(
        "https://127.0.0.1:1",
        b"not a pem".to_vec(),
        Vec::new(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Config(_)), "{err}");
}

#[tokio::test]
async fn no_cache_connect_failure_writes_nothing() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = tmp_entries();
    let mut config = ClientConfig::new(
        format!("https://127.0.0.1:{port}"),
        include_bytes!("data/other-ca.pem").to_vec(),
        b"{}".to_vec(),
    );
    config.timeout = Duration::from_secs(5);
    let err = Client::connect(config).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Connect(_) | ClientError::TimedOut),
        "{err}"
    );
    assert_eq!(tmp_entries(), before);
}

/// The CLI may spawn logins and sessions on a multi-threaded runtime.
#[allow(dead_code, reason = "compile-time check only")]
fn futures_are_send(client: &Client, session: &mut kasane_client::Session, r: &mut CardResponder) {
    fn send<T: Send>(_: &T) {}
    send(&Client::connect(ClientConfig::new(
        "https://x",
        Vec::new(),
        Vec::new(),
    )));
    send(&client.login("alice", r));
    send(&session.send("bob", b"x"));
    send(&session.inbox(1));
}
