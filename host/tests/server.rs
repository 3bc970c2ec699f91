//! The host serving itself over a socket: graceful shutdown (of the transport and of
//! `spawn`'s `Running`) and the housekeeping timer every embedding gets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use common::*;
use kasane_host::server::{self, Options};
use kasane_protocol::ClientStart;
use kasane_protocol::wire::Profile;
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Long enough for anything a test waits on: only a broken host takes it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until nothing accepts connections on `addr` (each probe connection is dropped at
/// once); panics after [`PATIENCE`].
async fn until_refused(addr: std::net::SocketAddr) {
    tokio::time::timeout(PATIENCE, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listener still accepts after the shutdown signal");
}

/// Graceful shutdown: after the signal the listener is closed, a request in progress is still
/// answered, and the server returns once its connection has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_waits_for_the_request_in_progress() {
    let th = start(|_| {}).await;
    let tls = server::tls_config(&th.cfg.tls_cert, &th.cfg.tls_key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The host's router, telling the test when a request has reached it.
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let app =
        server::app(th.host.clone()).layer(middleware::from_fn(move |req: Request, next: Next| {
            let _ = entered_tx.send(());
            next.run(req)
        }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve_tls(
        listener,
        tls,
        app,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(60),
        th.cfg.http.clone(),
    ));
    // A request whose body is only half sent when the shutdown starts.
    let cfg = client_config(&th.cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let body = ClientStart::new(
        &mut OsRng,
        "alice",
        b"pw",
        vec![Profile::Pure, Profile::Wasi],
    )
    .unwrap()
    .request_bytes()
    .to_vec();
    let head = format!(
        "POST /v1/login/start HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.flush().await.unwrap();
    // The host has the request, not yet its whole body: now stop it.
    tokio::time::timeout(PATIENCE, entered.recv())
        .await
        .expect("the request never reached the router");
    stop.send(()).unwrap();
    until_refused(addr).await;
    assert!(
        !serving.is_finished(),
        "the server returned with a request in progress"
    );
    stream.write_all(&body[body.len() / 2..]).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(PATIENCE, serving)
        .await
        .expect("the server did not return once its connection ended")
        .unwrap()
        .unwrap();
}

/// `spawn` runs a housekeeping pass, serves on the configured `127.0.0.1:0` and reports the
/// real port; `shutdown` closes the listener and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_reports_its_port_and_shuts_down() {
    const PASSES: &str = "kasane_housekeeping_passes_total{outcome=\"ok\"}";
    let th = start(|_| {}).await;
    let passes = sample(&th.host.metrics().render(), PASSES);
    let running = server::spawn(th.host.clone()).await.unwrap();
    // Housekeeping ran once before `spawn` returned.
    assert_eq!(sample(&th.host.metrics().render(), PASSES), passes + 1);
    let addr = running.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_ne!(addr, th.addr);
    let mut conn = connect(addr, &th.cert_der).await;
    assert_eq!(conn.get("/healthz", None).await.0, hyper::StatusCode::OK);
    drop(conn);
    tokio::time::timeout(PATIENCE, running.shutdown())
        .await
        .expect("shutdown did not return")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

/// The value of the sample `name` (labels included) in the Prometheus text.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

/// A served host runs housekeeping on its own: a session past its idle timeout is purged
/// without anyone calling `Host::housekeeping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_served_host_purges_expired_sessions_by_itself() {
    const PURGED: &str = "kasane_housekeeping_purged_total{kind=\"sessions\"}";
    let th = start(|c| c.session.idle_timeout_secs = 60).await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    login(&th, &mut conn, "alice").await;
    // The same host served again, with a quick timer.
    let running = server::spawn_with(
        th.host.clone(),
        Options {
            housekeeping_every: Duration::from_millis(20),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    // Only now does the session expire: the pass `spawn_with` ran found nothing.
    assert_eq!(sample(&th.host.metrics().render(), PURGED), 0);
    th.clock.advance(61);
    tokio::time::timeout(PATIENCE, async {
        while sample(&th.host.metrics().render(), PURGED) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no housekeeping pass purged the expired session");
    running.shutdown().await.unwrap();
    // Nothing left for a pass by hand.
    assert_eq!(th.host.housekeeping().await.unwrap().sessions, 0);
}
