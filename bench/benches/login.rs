//! Login latency over loopback: the weighted layer beside a baseline, in the same run.
//!
//! - **baseline**: a fresh TLS 1.3 connection to the same host plus one argon2id password check
//!   (the host's own parameters) — what a plain password login over TLS costs.
//! - **cold**: a Kasane login with an empty client state directory: registry update, module
//!   download, admission, compile, then the login (argon2id for the password and each
//!   challenge's verifier, the transform on both sides).
//! - **warm**: the same client state directory again: the module comes from the compile cache.
//!
//! Run: `cargo bench -p kasane-bench --bench login` (`KASANE_BENCH_N` samples, default 40).
//! Prints p50 and p99 per row and the ratios to the baseline; BENCHMARKS.md records them.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::time::{Duration, Instant};

use kasane_bench::{percentile, row};
use kasane_client::Client;
use kasane_tests::{PASSWORD, responder, start};

fn main() {
    let n: usize = std::env::var("KASANE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let th = start().await;
    let card = th.add_user("alice").await;
    th.force("sha256-chain");
    let hash = kasane_host::crypto::hash_password(PASSWORD.as_bytes()).unwrap();
    let tls = kasane_tests::client_tls(&std::fs::read(&th.cfg.tls_cert).unwrap(), &[]);

    let mut baseline = Vec::with_capacity(n);
    let mut cold = Vec::with_capacity(n);
    let mut warm = Vec::with_capacity(n);
    let warm_state = tempfile::tempdir().unwrap();
    {
        // Fill the warm cache once.
        let c = Client::connect(th.client_config(Some(warm_state.path().to_owned())))
            .await
            .unwrap();
        let (s, _) = c.login("alice", &mut responder(&card)).await.unwrap();
        s.close().await.unwrap();
    }
    // Interleaved, so drift on a shared machine hits every row alike.
    for _ in 0..n {
        let t = Instant::now();
        let tcp = tokio::net::TcpStream::connect(th.addr).await.unwrap();
        let conn = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let h = hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            kasane_host::crypto::verify_password(&h, PASSWORD.as_bytes())
        })
        .await
        .unwrap();
        assert!(ok);
        drop(conn);
        baseline.push(t.elapsed());

        let state = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let c = Client::connect(th.client_config(Some(state.path().to_owned())))
            .await
            .unwrap();
        let (s, report) = c.login("alice", &mut responder(&card)).await.unwrap();
        cold.push(t.elapsed());
        assert!(!report.from_cache);
        s.close().await.unwrap();

        let t = Instant::now();
        let c = Client::connect(th.client_config(Some(warm_state.path().to_owned())))
            .await
            .unwrap();
        let (s, report) = c.login("alice", &mut responder(&card)).await.unwrap();
        warm.push(t.elapsed());
        assert!(report.from_cache);
        s.close().await.unwrap();
    }
    let ratio = |a: &mut [Duration], b: &mut [Duration], p: f64| {
        percentile(a, p).as_secs_f64() / percentile(b, p).as_secs_f64()
    };
    println!("login latency over loopback, transform sha256-chain, {n} samples each");
    println!(
        "{}",
        row(
            "baseline: TLS 1.3 connect + 1 argon2id check",
            &mut baseline
        )
    );
    println!("{}", row("kasane cold (download + compile)", &mut cold));
    println!("{}", row("kasane warm (compile cache)", &mut warm));
    println!(
        "ratio to baseline: cold p50 {:.2}x p99 {:.2}x, warm p50 {:.2}x p99 {:.2}x",
        ratio(&mut cold, &mut baseline, 50.0),
        ratio(&mut cold, &mut baseline, 99.0),
        ratio(&mut warm, &mut baseline, 50.0),
        ratio(&mut warm, &mut baseline, 99.0),
    );
}
