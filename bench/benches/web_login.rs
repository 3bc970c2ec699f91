//! Browser login beside the native client, same host, same run.
//!
//! - **native cold / warm**: `kasane_client` logins (as in the `login` bench): cold with an
//!   empty state directory each time, warm with one kept (compile cache).
//! - **browser cold**: Debian's Chromium loads `/web/` (client module, Worker, registry root)
//!   and logs in once: registry update, module download and admission, the Worker's compile.
//! - **browser warm**: further logins on the same page (trust store current, the module
//!   fetched and compiled again: the page keeps nothing between logins).
//!
//! A browser login is timed from the Enter on the password to "logged in as", by
//! `web/e2e/drive.mjs`; it includes playwright typing each challenge answer (a few ms each).
//! Needs `/usr/bin/chromium` and `npm ci` in `web/e2e`.
//!
//! Run: `cargo bench -p kasane-bench --bench web_login` (`KASANE_BENCH_N`, default 10).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kasane_client::Client;
use kasane_tests::{PASSWORD, card_json, responder, start};

fn p50(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("KASANE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let th = rt.block_on(async {
        let th = start().await;
        th.force("sha256-chain");
        th
    });
    let card = rt.block_on(th.add_user("alice"));
    let native = |state: Option<&Path>| -> f64 {
        let t = Instant::now();
        rt.block_on(async {
            let client = Client::connect(th.client_config(state.map(Path::to_owned)))
                .await
                .unwrap();
            let (s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
            s.close().await.unwrap();
        });
        t.elapsed().as_secs_f64() * 1000.0
    };
    let mut cold: Vec<f64> = (0..n)
        .map(|_| native(Some(tempfile::tempdir().unwrap().path())))
        .collect();
    let warm_dir = tempfile::tempdir().unwrap();
    native(Some(warm_dir.path()));
    let mut warm: Vec<f64> = (0..n).map(|_| native(Some(warm_dir.path()))).collect();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("node")
        .arg(repo.join("web/e2e/drive.mjs"))
        .env("KASANE_URL", format!("{}/web/", th.url()))
        .env("KASANE_USER", "alice")
        .env("KASANE_PASSWORD", PASSWORD)
        .env("KASANE_CARD", card_json(&card))
        .env("KASANE_SCENARIO", "bench")
        .env("KASANE_BENCH_N", (n + 1).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("browser driver failed:\n{stdout}"));
    println!(
        "native login (ms, p50 of {n}): cold {:.1}, warm {:.1}",
        p50(&mut cold),
        p50(&mut warm)
    );
    println!("browser (ms; first login is cold, the rest warm): {result}");
    std::thread::sleep(Duration::from_millis(10));
}
