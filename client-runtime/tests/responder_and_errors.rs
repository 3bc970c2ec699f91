//! CardResponder, the configuration defaults, error messages, and offline failures
//! (no host needed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a failure is a test failure"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kasane_client::{
    CardResponder, Client, ClientConfig, ClientError, InputError, ModuleRefused, Responder,
};
use kasane_protocol::RefusalReason;
use kasane_protocol::card::CodeCard;
use kasane_registry::RegistryError;
use kasane_registry::simulator::RepositorySimulator;
use kasane_registry::trust::STATE_FILE;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

#[test]
fn card_responder_answers_from_the_card() {
    let card = CodeCard::parse("alice", "A1 KM4Q\nB2 TX7W\n").unwrap();
    let mut r = CardResponder::new(Zeroizing::new("pw".into()), card);
    assert_eq!(r.password("alice").unwrap().as_str(), "pw");
    assert_eq!(r.answer("B2").unwrap().as_str(), "TX7W");
    assert!(matches!(
        r.answer("Z9"),
        Err(ClientError::Input(InputError::NoCell { .. }))
    ));
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
            ClientError::BadCertificate(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            "certificate",
        ),
        (ClientError::TimedOut, "timed out"),
        (ClientError::HostKey, "host key"),
        (ClientError::PasswordRefused, "wrong password, unknown user"),
        (ClientError::LoginRefused, "wrong answers"),
        (ClientError::Confirm, "confirm"),
        (
            ClientError::Revoked(RegistryError::Revoked { sha256: "x".into() }),
            "revoked",
        ),
        (
            ClientError::UntrustedModule(ModuleRefused::BundleMismatch { name: "x".into() }),
            "untrusted",
        ),
        (ClientError::Refused(RefusalReason::Replayed), "replayed"),
        (ClientError::Incoming(RefusalReason::Altered), "altered"),
    ];
    for (e, needle) in cases {
        let s = e.to_string();
        assert!(s.contains(needle), "{s:?} lacks {needle:?}");
        assert!(!s.contains('\n'));
    }
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

/// A TLS host (self-signed for `localhost`, data/test-host.*.pem) that answers every
/// request with 503: a client connects, makes its trust store, and then its update fails.
async fn unavailable_host() -> SocketAddr {
    let certs = CertificateDer::pem_slice_iter(include_bytes!("data/test-host.cert.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("data/test-host.key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = tls.write_all(reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn config_for(addr: SocketAddr, state_dir: Option<&Path>) -> ClientConfig {
    let mut config = ClientConfig::new(
        format!("https://{addr}"),
        include_bytes!("data/test-host.cert.pem").to_vec(),
        RepositorySimulator::new().root1(),
    );
    config.server_name = Some("localhost".into());
    config.state_dir = state_dir.map(Path::to_owned);
    config.timeout = Duration::from_secs(30);
    config
}

fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_connect_that_fails_after_making_its_trust_store() {
    let addr = unavailable_host().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // Cache mode: the trust store is written to the state dir before the update fails.
    let config = config_for(addr, Some(&state));
    let trust = kasane_client::trust_dir(&state, &config.root_json);
    let err = Client::connect(config).await.unwrap_err();
    assert!(matches!(err, ClientError::Registry(_)), "{err}");
    assert!(trust.join(STATE_FILE).is_file());
    assert_eq!(entries(dir.path()), vec![std::ffi::OsString::from("state")]);

    // No-cache mode: the trust store lives in memory; the same failure, nothing written.
    let err = Client::connect(config_for(addr, None)).await.unwrap_err();
    assert!(matches!(err, ClientError::Registry(_)), "{err}");
    assert_eq!(entries(dir.path()), vec![std::ffi::OsString::from("state")]);
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
