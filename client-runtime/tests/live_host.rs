//! Against a running host (ignored by default; nothing here links the host crate):
//!
//! ```text
//! kasane-host --data DIR init; echo PW | kasane-host --data DIR user add alice   (and bob)
//! kasane-host --data DIR serve &
//! KASANE_LIVE_DATA=DIR KASANE_LIVE_URL=https://127.0.0.1:8443 \
//!   KASANE_LIVE_PASSWORDS="alice=PW,bob=PW" cargo test -p kasane-client --test live_host -- --ignored
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a failure is a test failure"
)]

use std::path::PathBuf;

use kasane_client::{CardResponder, Client, ClientConfig, ClientError};
use kasane_protocol::card::CodeCard;
use zeroize::Zeroizing;

struct Live {
    data: PathBuf,
    url: String,
}

fn live() -> Option<Live> {
    Some(Live {
        data: std::env::var_os("KASANE_LIVE_DATA")?.into(),
        url: std::env::var("KASANE_LIVE_URL").ok()?,
    })
}

fn password(user: &str) -> String {
    std::env::var("KASANE_LIVE_PASSWORDS")
        .unwrap_or_default()
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{user}=")).map(str::to_owned))
        .expect("password in KASANE_LIVE_PASSWORDS")
}

impl Live {
    fn config(&self, state: Option<PathBuf>) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.url.clone(),
            std::fs::read(self.data.join("tls/cert.pem")).unwrap(),
            std::fs::read(self.data.join("registry/1.root.json")).unwrap(),
        );
        c.state_dir = state;
        c
    }

    fn responder(&self, user: &str) -> CardResponder {
        let text = std::fs::read_to_string(self.data.join(format!("cards/{user}.card"))).unwrap();
        CardResponder::new(
            Zeroizing::new(password(user)),
            CodeCard::from_text(&text).unwrap(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running host: see the file's doc"]
async fn live_login_and_compile_cache() {
    let Some(live) = live() else { return };
    let state = tempfile::tempdir().unwrap();
    let client = Client::connect(live.config(Some(state.path().to_owned())))
        .await
        .unwrap();
    // The host draws a transform per login: log in until one repeats, which must come from
    // the compile cache (and every first sighting must not).
    let mut seen = std::collections::HashSet::new();
    let mut hit = false;
    for _ in 0..12 {
        let (mut session, report) = client
            .login("alice", &mut live.responder("alice"))
            .await
            .unwrap();
        println!("{report:?}");
        // The bearer token works: an empty inbox (nothing was sent to alice).
        assert!(session.inbox(0).await.unwrap().is_empty());
        assert!(report.fuel_used > 0);
        assert!(!report.prompts.is_empty());
        assert_eq!(report.from_cache, !seen.insert(report.sha256), "{report:?}");
        session.close().await.unwrap();
        if report.from_cache {
            hit = true;
            break;
        }
    }
    assert!(hit, "no transform repeated in 12 logins");

    // Wrong answers → LoginRefused (with the built-in transforms, which all use the responses).
    let mut wrong = CardResponder::new(
        Zeroizing::new(password("alice")),
        CodeCard::parse("alice", &wrong_card()).unwrap(),
    );
    let err = client.login("alice", &mut wrong).await.unwrap_err();
    assert!(matches!(err, ClientError::LoginRefused), "{err}");
}

/// Every prompt of a code card (A..E × 1..8), answered wrongly.
fn wrong_card() -> String {
    let mut s = String::new();
    for col in ["A", "B", "C", "D", "E"] {
        for row in 1..=8 {
            s.push_str(&format!("{col}{row} ZZZZ\n"));
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running host: see the file's doc"]
async fn live_send_and_inbox() {
    let Some(live) = live() else { return };
    let client = Client::connect(live.config(None)).await.unwrap();
    let (mut alice, _) = client
        .login("alice", &mut live.responder("alice"))
        .await
        .unwrap();
    let (mut bob, _) = client
        .login("bob", &mut live.responder("bob"))
        .await
        .unwrap();
    let accepted = alice.send("bob", b"hello bob").await.unwrap();
    assert!(accepted.seq >= 1);
    let got = bob.inbox(5).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].from, "alice");
    assert_eq!(got[0].body.as_slice(), b"hello bob");
    // Acked: nothing more.
    assert!(bob.inbox(0).await.unwrap().is_empty());
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running host: see the file's doc"]
async fn live_no_cache_mode_writes_nothing() {
    let Some(live) = live() else { return };
    let before = count_tmp();
    let client = Client::connect(live.config(None)).await.unwrap();
    let (session, report) = client
        .login("alice", &mut live.responder("alice"))
        .await
        .unwrap();
    assert!(!report.from_cache);
    session.close().await.unwrap();
    assert_eq!(
        count_tmp(),
        before,
        "no-cache mode left files in the temp dir"
    );
}

fn count_tmp() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running host: see the file's doc"]
async fn live_wrong_ca_is_bad_certificate() {
    let Some(live) = live() else { return };
    let mut config = live.config(None);
    // Any other self-signed certificate: the host's does not chain to it.
    config.ca_pem = OTHER_CA.as_bytes().to_vec();
    let err = Client::connect(config).await.unwrap_err();
    assert!(matches!(err, ClientError::BadCertificate(_)), "{err}");
}

const OTHER_CA: &str = include_str!("data/other-ca.pem");
