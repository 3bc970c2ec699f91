//! Login cost over loopback: the layered login beside a baseline, in the same run.
//!
//! - **baseline**: a fresh TLS 1.3 connection to the same host plus one argon2id password check
//!   (OWASP parameters) — what a plain password login over TLS costs. Its client resumes TLS
//!   sessions across samples, as a browser does; a second row makes a new client each time
//!   (a full handshake, as every Kasane sample has).
//! - **cold**: a Kasane login with an empty client state directory: registry update, module
//!   download, admission, compile, then the login (OPAQUE: one argon2id on the client, none on
//!   the host; keyed verifiers; the transform on both sides).
//! - **warm**: the same client state directory again: the module comes from the compile cache.
//! - **host CPU per login**: the CPU time of the host's threads (its tokio runtime, named
//!   `kasane-host`, and sqlx's SQLite workers) over `n` warm logins, from
//!   `/proc/self/task/*/stat`, divided by `n`. The client runs on other threads.
//! - **logins/s, 64 clients**: 64 concurrent clients logging in (warm) and out for
//!   `KASANE_BENCH_SECS` seconds; every login is a real one with the client's argon2id, which
//!   on a small machine shares the cores with the host.
//!
//! Run: `cargo bench -p kasane-bench --bench login` (`KASANE_BENCH_N` samples, default 40;
//! `KASANE_BENCH_SECS`, default 10; `KASANE_BENCH_PHASES`, default `latency,cpu,load`). BENCHMARKS.md records the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use kasane_bench::{percentile, row};
use kasane_client::Client;
use kasane_host::setup::CodeCard;
use kasane_tests::{PASSWORD, TestHost, responder, start};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_or("KASANE_BENCH_N", 40) as usize;
    let secs = env_or("KASANE_BENCH_SECS", 10);
    // The host on its own runtime, its threads named so their CPU time can be read.
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kasane-host")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let th = host_rt.block_on(async {
        let th = start().await;
        th.force("sha256-chain");
        th
    });
    let card = host_rt.block_on(th.add_user("alice"));
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();
    // `KASANE_BENCH_PHASES` (e.g. `cpu` to profile one phase alone): latency,cpu,load.
    let phases = std::env::var("KASANE_BENCH_PHASES").unwrap_or("latency,cpu,load".into());
    let runs = |p: &str| phases.split(',').any(|x| x.trim() == p);
    if runs("latency") {
        client_rt.block_on(latency(&th, &card, n));
    }
    if runs("cpu") {
        client_rt.block_on(host_cpu(&th, &card, n));
    }
    if runs("load") {
        client_rt.block_on(throughput(&th, &card, secs));
    }
    drop(host_rt);
}

/// One argon2id check (OWASP parameters), as a plain password login does.
fn argon2_check(phc: &str) -> bool {
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    argon2::Argon2::default()
        .verify_password(PASSWORD.as_bytes(), &parsed)
        .is_ok()
}

async fn baseline_once(th: &TestHost, tls: &Arc<rustls::ClientConfig>, phc: &str) -> Duration {
    let t = Instant::now();
    let tcp = tokio::net::TcpStream::connect(th.addr).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let h = phc.to_owned();
    assert!(
        tokio::task::spawn_blocking(move || argon2_check(&h))
            .await
            .unwrap()
    );
    drop(conn);
    t.elapsed()
}

/// One connect, login and logout with the client state in `state`: the time to the session
/// (connect included), the part `connect` took, and the cache flag.
async fn login_once(
    th: &TestHost,
    card: &CodeCard,
    state: &std::path::Path,
) -> (Duration, Duration, bool) {
    let t = Instant::now();
    let c = Client::connect(th.client_config(Some(state.to_owned())))
        .await
        .unwrap();
    let connected = t.elapsed();
    let (s, report) = c.login("alice", &mut responder(card)).await.unwrap();
    let took = t.elapsed();
    s.close().await.unwrap();
    (took, connected, report.from_cache)
}

async fn latency(th: &TestHost, card: &CodeCard, n: usize) {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    let phc = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let ca = std::fs::read(&th.cfg.tls_cert).unwrap();
    // One client configuration for every baseline sample: its TLS sessions are resumed, as
    // a browser's would be. The "fresh" baseline makes a new one each time, as each
    // `kasane login` process (and this bench's every Kasane sample) does.
    let tls = kasane_tests::client_tls(&ca, &[]);
    let (mut baseline, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fresh, mut fresh_pairs) = (Vec::new(), Vec::new());
    let mut warm_connect = Vec::new();
    let mut pairs = Vec::new();
    let warm_state = tempfile::tempdir().unwrap();
    login_once(th, card, warm_state.path()).await;
    // Interleaved, so drift on a shared machine hits every row alike.
    for _ in 0..n {
        baseline.push(baseline_once(th, &tls, &phc).await);
        fresh.push(baseline_once(th, &kasane_tests::client_tls(&ca, &[]), &phc).await);
        let state = tempfile::tempdir().unwrap();
        let (t, _, cached) = login_once(th, card, state.path()).await;
        assert!(!cached);
        cold.push(t);
        let (t, connect, cached) = login_once(th, card, warm_state.path()).await;
        assert!(cached);
        pairs.push((*baseline.last().unwrap(), t));
        fresh_pairs.push((*fresh.last().unwrap(), t));
        warm.push(t);
        warm_connect.push(connect);
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
    println!(
        "{}",
        row("  the same, a fresh TLS session each time", &mut fresh)
    );
    println!("{}", row("kasane cold (download + compile)", &mut cold));
    println!("{}", row("kasane warm (compile cache)", &mut warm));
    println!(
        "{}",
        row(
            "  of which connect (trust, TLS, registry)",
            &mut warm_connect
        )
    );
    println!(
        "ratio to baseline: cold p50 {:.2}x p99 {:.2}x, warm p50 {:.2}x p99 {:.2}x",
        ratio(&mut cold, &mut baseline, 50.0),
        ratio(&mut cold, &mut baseline, 99.0),
        ratio(&mut warm, &mut baseline, 50.0),
        ratio(&mut warm, &mut baseline, 99.0),
    );
    println!("{}", paired(&pairs));
    println!(
        "against the fresh-session baseline: {}",
        paired(&fresh_pairs)
    );
}

/// The warm login beside the baseline sample taken just before it (same iteration, so a
/// drift of the machine's speed, which moves the argon2id both pay, cancels): the median
/// of the differences and of the ratios.
fn paired(pairs: &[(Duration, Duration)]) -> String {
    let mut extra: Vec<f64> = pairs
        .iter()
        .map(|(b, w)| (w.as_secs_f64() - b.as_secs_f64()) * 1e3)
        .collect();
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|(b, w)| w.as_secs_f64() / b.as_secs_f64())
        .collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    format!(
        "paired with the baseline of the same iteration: warm - baseline median {:.2} ms, \
         warm / baseline median {:.2}x",
        median(&mut extra),
        median(&mut ratios)
    )
}

/// CPU time (user + system) of this process's threads whose name starts with one of
/// `prefixes`, from `/proc/self/task/*/stat` (clock ticks of 10 ms).
fn threads_cpu(prefixes: &[&str]) -> Duration {
    let tick = 1.0 / 100.0;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        // Fields after the name: state is field 3, utime 14, stime 15.
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        ticks += rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    }
    Duration::from_secs_f64(ticks as f64 * tick)
}

const HOST_THREADS: [&str; 2] = ["kasane-host", "sqlx-sqlite"];

async fn host_cpu(th: &TestHost, card: &CodeCard, n: usize) {
    let state = tempfile::tempdir().unwrap();
    login_once(th, card, state.path()).await;
    let rounds = n.max(100);
    let before = threads_cpu(&HOST_THREADS);
    let client_before = threads_cpu(&["client"]);
    let t = Instant::now();
    for _ in 0..rounds {
        login_once(th, card, state.path()).await;
    }
    let wall = t.elapsed();
    let host = threads_cpu(&HOST_THREADS) - before;
    let client = threads_cpu(&["client"]) - client_before;
    println!(
        "host CPU per login (warm, TLS handshake and logout included): {:.2} ms over {rounds} logins \
         ({:.2} s host CPU, {:.2} s client CPU, {:.2} s wall)",
        host.as_secs_f64() * 1e3 / rounds as f64,
        host.as_secs_f64(),
        client.as_secs_f64(),
        wall.as_secs_f64()
    );
    // The floor inside that figure: the host's side of a bare TLS 1.3 handshake.
    let tls = kasane_tests::client_tls(&std::fs::read(&th.cfg.tls_cert).unwrap(), &[]);
    let before = threads_cpu(&HOST_THREADS);
    for _ in 0..rounds {
        let tcp = tokio::net::TcpStream::connect(th.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let conn = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        drop(conn);
    }
    let handshake = threads_cpu(&HOST_THREADS) - before;
    println!(
        "host CPU per bare TLS 1.3 handshake (same host): {:.2} ms over {rounds}",
        handshake.as_secs_f64() * 1e3 / rounds as f64
    );
}

async fn throughput(th: &TestHost, card: &CodeCard, secs: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let host_before = threads_cpu(&HOST_THREADS);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let state = tempfile::tempdir().unwrap();
        let (done, cfg) = (
            done.clone(),
            th.client_config(Some(state.path().to_owned())),
        );
        let text = card.to_text();
        tasks.push(tokio::spawn(async move {
            let _state = state;
            let card = CodeCard::from_text(&text).unwrap();
            let client = Client::connect(cfg).await.unwrap();
            while Instant::now() < deadline {
                let (s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
                s.close().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    let host = threads_cpu(&HOST_THREADS) - host_before;
    println!(
        "64 concurrent clients, {secs} s: {n} logins, {:.1} logins/s; host CPU {:.2} ms per login",
        n as f64 / secs as f64,
        host.as_secs_f64() * 1e3 / n.max(1) as f64
    );
}
