//! Message throughput over loopback: sealed relay messages beside a plain HTTPS POST, in the
//! same run, on the same axum + rustls stack (the host's own transport, `server::serve_tls`, TLS 1.3).
//!
//! - **kasane**: `Session::send` to another user — per message the client runs the transform
//!   (purpose = message) and seals; the host checks the sequence number, runs the transform,
//!   opens, and in one store transaction advances the sequence, appends the audit record and
//!   queues the message encrypted at rest (SQLite, WAL), then acknowledges.
//! - **baseline**: `POST /echo` with the same body to a handler that reads it and answers 204,
//!   over one persistent HTTP/1.1 connection per worker.
//!
//! Bodies of 256 B, 4 KiB and 64 KiB, over 1 and 16 concurrent sessions/connections, each
//! for `KASANE_BENCH_SECS` seconds (default 3). Run:
//! `cargo bench -p kasane-bench --bench messages`. BENCHMARKS.md records the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use kasane_client::Client;
use kasane_tests::{responder, start_with};

const SIZES: [usize; 3] = [256, 4096, 65536];
const CONCURRENCY: [usize; 2] = [1, 16];

fn main() {
    let secs: u64 = std::env::var("KASANE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(Duration::from_secs(secs)));
}

async fn run(window: Duration) {
    // bob never reads: the per-recipient queue quota (1,000 by default) would refuse the
    // senders long before a window ends. Throughput is measured, not the quota.
    let th = start_with(|c| {
        c.messages.max_queue_messages = u64::MAX;
        c.messages.max_queue_bytes = u64::MAX;
    })
    .await;
    let alice = th.add_user("alice").await;
    th.add_user("bob").await;
    th.force("sha256-chain");

    // The baseline server: the host's TLS config and transport, another router.
    let tls = kasane_host::server::tls_config(&th.cfg.tls_cert, &th.cfg.tls_key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/echo",
            post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                StatusCode::NO_CONTENT
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(2 << 20));
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kasane_host::server::serve_tls(
        listener,
        tls,
        app,
        async move {
            let _ = stopped.await;
        },
        kasane_host::server::SHUTDOWN_GRACE,
        kasane_host::config::HttpConfig::default(),
    ));
    let ca = std::fs::read(&th.cfg.tls_cert).unwrap();

    let state = tempfile::tempdir().unwrap();
    let client = Arc::new(
        Client::connect(th.client_config(Some(state.path().to_owned())))
            .await
            .unwrap(),
    );
    println!(
        "message throughput over loopback, transform sha256-chain, {} s per cell",
        window.as_secs()
    );
    println!(
        "{:<8} {:>5} {:>12} {:>10} {:>12} {:>10} {:>7}",
        "body", "conc", "kasane msg/s", "MB/s", "base req/s", "MB/s", "ratio"
    );
    for size in SIZES {
        for conc in CONCURRENCY {
            let body = vec![0x5a; size];
            // kasane: `conc` sessions of alice, each sending to bob.
            let mut sessions = Vec::new();
            for _ in 0..conc {
                let (s, _) = client.login("alice", &mut responder(&alice)).await.unwrap();
                sessions.push(s);
            }
            let count = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for s in sessions {
                let (count, stop, body) = (count.clone(), stop.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        s.send("bob", &body).await.unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    s.close().await.unwrap();
                }));
            }
            let t = Instant::now();
            tokio::time::sleep(window).await;
            stop.store(true, Ordering::Relaxed);
            let kasane_n = count.load(Ordering::Relaxed);
            let kasane_secs = t.elapsed().as_secs_f64();
            for t in tasks {
                t.await.unwrap();
            }

            // baseline: `conc` connections posting the same body.
            let count = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let mut send = connect(base_addr, &ca).await;
                let (count, stop, body) = (count.clone(), stop.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let req = hyper::Request::builder()
                            .method("POST")
                            .uri("/echo")
                            .header("host", "localhost")
                            .body(Full::new(Bytes::from(body.clone())))
                            .unwrap();
                        send.ready().await.unwrap();
                        let resp = send.send_request(req).await.unwrap();
                        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
                        resp.into_body().collect().await.unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            let t = Instant::now();
            tokio::time::sleep(window).await;
            stop.store(true, Ordering::Relaxed);
            let base_n = count.load(Ordering::Relaxed);
            let base_secs = t.elapsed().as_secs_f64();
            for t in tasks {
                t.await.unwrap();
            }

            let k_rate = kasane_n as f64 / kasane_secs;
            let b_rate = base_n as f64 / base_secs;
            let mb = |rate: f64| rate * size as f64 / 1e6;
            println!(
                "{:<8} {:>5} {:>12.0} {:>10.2} {:>12.0} {:>10.2} {:>6.1}%",
                format!("{size} B"),
                conc,
                k_rate,
                mb(k_rate),
                b_rate,
                mb(b_rate),
                100.0 * k_rate / b_rate
            );
        }
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    ca_pem: &[u8],
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let cfg = kasane_tests::client_tls(ca_pem, &[b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}
