//! Publishing to a running host (issue 13): `kasane-registry add` on the host's registry
//! while the real `kasane` client logs in in a loop against the real `kasane-host`. Every
//! login succeeds (no snapshot mismatch, no missing module: consistent snapshots, and the
//! timestamp is replaced last), and the first login that starts after `add` returned runs
//! the new module (published with an overwhelming rollout weight).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Sim, sibling};

/// What one login of the loop saw: when it started, whether it succeeded, its output.
struct Seen {
    started: Instant,
    ok: bool,
    out: String,
}

fn module(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-transforms/dist")
        .join(format!("{name}.wasm"))
}

#[test]
fn publishing_while_a_client_logs_in_loses_no_login_and_takes_effect_at_once() {
    let sim = Arc::new(Sim::start(false));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let looper = {
        let (sim, stop, seen) = (sim.clone(), stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let o = sim.login();
                let out = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                let ok = o.status.success();
                seen.lock().unwrap().push(Seen { started, ok, out });
            }
        })
    };
    let wait_for = |n: usize| {
        let t = Instant::now();
        while seen.lock().unwrap().len() < n {
            assert!(t.elapsed().as_secs() < 120, "logins stalled");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(3);
    let data = sim.data();
    let published = sim
        .faked(&sibling("kasane-registry"))
        .arg("add")
        .arg("--repo")
        .arg(data.join("registry"))
        .arg("--keys")
        .arg(data.join("keys"))
        .arg(module("hmac-sha256"))
        .args(["--name", "hmac-sha256-next", "--weight", "4000000000"])
        .output()
        .unwrap();
    let after = Instant::now();
    assert!(published.status.success(), "{published:?}");
    let n = seen.lock().unwrap().len();
    wait_for(n + 4);
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();

    let seen = seen.lock().unwrap();
    for s in seen.iter() {
        assert!(s.ok, "a login failed around the publish: {}", s.out);
    }
    let first_after = seen
        .iter()
        .find(|s| s.started >= after)
        .expect("a login after the publish");
    assert!(
        first_after.out.contains("transform: hmac-sha256-next "),
        "{}",
        first_after.out
    );
    assert!(seen.len() >= 7, "{} logins", seen.len());
}
