//! A host left alone for 400 days (issue 13): the real `kasane-host` binary serves under a
//! clock moved forward day by day (libfaketime, one offset file shared with every process),
//! and the real `kasane` client logs in on every simulated day.
//!
//! Nobody restarts the host. It re-signs timestamp and snapshot itself; an operator re-signs
//! each offline role (`kasane-registry refresh`) a few days before it expires — except once,
//! when targets is forgotten: logins then fail, `/readyz` says `registry: targets expired
//! at …`, the log names the role and when, and the late `refresh --role targets` brings
//! logins back with the host still running.
//!
//! The three binaries are found beside this package's `kasane` (`cargo test --workspace`
//! builds them all). About 400 logins: ~75 s on a 2-core machine. Needs libfaketime and curl
//! (skipped with a printed reason locally, a failure under `CI`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const PASSWORD: &str = "correct horse battery staple";
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const DAYS: u64 = 400;
/// From this day the operator forgets to re-sign targets (once: until it has expired).
const FORGET_TARGETS_FROM: u64 = 200;
/// An operator re-signs a role this many days before it expires.
const RENEW_AHEAD: u64 = 3;

/// A binary built beside `kasane`.
fn sibling(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_kasane")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo test --workspace` (or build -p kasane-host -p kasane-registry)",
        p.display()
    );
    p
}

/// The simulation: data directory, the shared clock offset and the serving host.
struct Sim {
    dir: tempfile::TempDir,
    host: Child,
    addr: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

impl Sim {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// Moves every process's clock to `day` days after the start.
    fn set_day(&self, day: u64) {
        std::fs::write(self.dir.path().join("offset"), format!("+{day}d\n")).unwrap();
    }

    /// `cmd` under the shared fake clock, with no `KASANE_*` variable of the test process.
    fn faked(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("KASANE_")) {
                c.env_remove(k);
            }
        }
        c.env("LD_PRELOAD", FAKETIME_LIB)
            .env("FAKETIME_TIMESTAMP_FILE", self.dir.path().join("offset"))
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        c
    }

    /// `kasane login` as alice; the output.
    fn login(&self) -> Output {
        let d = self.data();
        let state = self.dir.path().join("client");
        let mut child = self
            .faked(&sibling("kasane"))
            .args(["--server", &format!("https://{}", self.addr), "--ca"])
            .arg(d.join("tls/cert.pem"))
            .arg("--root")
            .arg(d.join("registry/metadata/1.root.json"))
            .arg("--card")
            .arg(d.join("cards/alice.card"))
            .args(["--password-stdin", "login"])
            .env("HOME", &state)
            .env("XDG_CONFIG_HOME", state.join("config"))
            .env("XDG_CACHE_HOME", state.join("cache"))
            .env_remove("KASANE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// `kasane-registry refresh --role ROLE` on the host's registry, at the fake time.
    fn refresh(&self, role: &str) {
        let d = self.data();
        let out = self
            .faked(&sibling("kasane-registry"))
            .arg("refresh")
            .arg("--repo")
            .arg(d.join("registry"))
            .arg("--keys")
            .arg(d.join("keys"))
            .args(["--role", role])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "refresh {role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `GET path` with curl (trusting the host's certificate): status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.data().join("tls/cert.pem"))
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }

    fn snapshot_version(&self) -> u64 {
        let (_, metrics) = self.get("/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(r#"kasane_registry_version{role="snapshot"} "#))
            .expect("snapshot version metric")
            .parse()
            .unwrap()
    }
}

/// `init`, `user add alice` (real binary, real clock = day 0), then `serve` under the fake
/// clock with its log in `host.log`.
fn start() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = sibling("kasane-host");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(&host)
            .arg("--data")
            .arg(&data)
            .args(args)
            .env("KASANE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut i = child.stdin.take().unwrap();
        i.write_all(stdin.as_bytes()).unwrap();
        drop(i);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    run(&["init", "--listen", "127.0.0.1:0"], "");
    run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    std::fs::write(dir.path().join("offset"), "+0d\n").unwrap();
    let log = std::fs::File::create(dir.path().join("host.log")).unwrap();
    let mut sim = Sim {
        host: Command::new("true").spawn().unwrap(),
        addr: String::new(),
        dir,
    };
    let mut child = sim
        .faked(&host)
        .arg("--data")
        .arg(&data)
        .arg("serve")
        .env("KASANE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    sim.addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let _ = sim.host.wait();
    sim.host = child;
    sim
}

/// Each offline role's lifetime in days (`kasane-registry`'s defaults).
fn lifetimes() -> BTreeMap<&'static str, u64> {
    [
        ("revocations", 30),
        ("targets", 90),
        ("authors", 90),
        ("root", 365),
    ]
    .into()
}

#[test]
fn a_host_left_alone_for_400_days_keeps_serving_logins() {
    if !Path::new(FAKETIME_LIB).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI: libfaketime missing");
        eprintln!("SKIPPED: {FAKETIME_LIB} missing (apt install libfaketime)");
        return;
    }
    let sim = start();
    let life = lifetimes();
    let mut expires: BTreeMap<&str, u64> = life.clone();
    let mut versions = vec![sim.snapshot_version()];
    // Set when the operator forgets targets, cleared once the late refresh brought it back.
    let (mut forgetting, mut forgotten) = (false, false);
    for day in 0..=DAYS {
        sim.set_day(day);
        for (role, at) in &mut expires {
            if *at > day + RENEW_AHEAD {
                continue;
            }
            if *role == "targets" && (forgetting || (!forgotten && day >= FORGET_TARGETS_FROM)) {
                forgetting = true;
                continue;
            }
            sim.refresh(role);
            *at = day + life[role];
        }
        let out = sim.login();
        if expires["targets"] <= day {
            expired_targets_day(&sim, day, &out);
            sim.refresh("targets");
            expires.insert("targets", day + life["targets"]);
            (forgetting, forgotten) = (false, true);
            let again = sim.login();
            assert!(
                again.status.success(),
                "day {day}, after refresh: {again:?}"
            );
        } else {
            assert!(out.status.success(), "day {day}: {out:?}\n{}", sim.log());
        }
        if day % 10 == 0 {
            versions.push(sim.snapshot_version());
        }
    }
    assert!(forgotten);
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "snapshot versions went backwards: {versions:?}"
    );
    // 7-day online roles re-signed at half-life: about every 3.5 days over 400.
    let last = *versions.last().unwrap();
    assert!(last > versions[0] + 100, "snapshot versions {versions:?}");
}

/// The day targets has expired: the login fails, `/readyz` is 503 naming targets, and the
/// log says which role and since when.
fn expired_targets_day(sim: &Sim, day: u64, login: &Output) {
    assert!(
        !login.status.success(),
        "day {day}: a login on expired targets"
    );
    let (status, body) = sim.get("/readyz");
    assert_eq!(status, 503, "day {day}: {body}");
    assert!(body.starts_with("registry: targets expired at "), "{body}");
    let log = sim.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("targets") && l.contains("expired")),
        "{log}"
    );
}
