//! Shared by the tests that run the real binaries: a host served by `kasane-host` from a
//! data directory it made, the `kasane` client and `kasane-registry` against it, optionally
//! all under one fake clock (libfaketime reading an offset file).
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// A binary built beside `kasane`.
pub(crate) fn sibling(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_kasane")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo test --workspace` (or build -p kasane-host -p kasane-registry)",
        p.display()
    );
    p
}

/// `program` with none of the test process's `KASANE_*` variables (CI's
/// `KASANE_TEST_DATABASE_URL`, a developer's `KASANE_LISTEN`: the host refuses a variable it
/// does not know, and none may reach the binaries under test).
pub(crate) fn without_kasane_env(program: &Path) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("KASANE_")) {
            c.env_remove(k);
        }
    }
    c
}

/// Runs `cmd` with `stdin` written to its standard input; its output.
pub(crate) fn with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = child.stdin.take().unwrap();
    i.write_all(stdin.as_bytes()).unwrap();
    drop(i);
    child.wait_with_output().unwrap()
}

/// `kasane-host --data DATA ARGS` (quiet log) with `stdin` written to it; asserts success and
/// returns the output.
pub(crate) fn kasane_host_at(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = without_kasane_env(&sibling("kasane-host"));
    cmd.arg("--data")
        .arg(data)
        .args(args)
        .env("KASANE_LOG", "warn");
    let out = with_stdin(cmd, stdin);
    assert!(out.status.success(), "{args:?}: {out:?}");
    out
}

/// The simulation: data directory, the shared clock offset and the serving host.
pub(crate) struct Sim {
    pub(crate) dir: tempfile::TempDir,
    host: Child,
    pub(crate) addr: String,
    fake_clock: bool,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

impl Sim {
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// Moves every process's clock to `day` days after the start.
    pub(crate) fn set_day(&self, day: u64) {
        std::fs::write(self.dir.path().join("offset"), format!("+{day}d\n")).unwrap();
    }

    /// `program` (under the shared fake clock if this simulation has one), with no `KASANE_*` variable of the test process.
    pub(crate) fn faked(&self, program: &Path) -> Command {
        let mut c = without_kasane_env(program);
        if self.fake_clock {
            c.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME_TIMESTAMP_FILE", self.dir.path().join("offset"))
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        c
    }

    /// `kasane` as alice (card, password on standard input) with `args` after the
    /// connection flags, its state under the simulation's directory.
    pub(crate) fn kasane_as_alice(&self, args: &[&str]) -> Command {
        let d = self.data();
        let state = self.dir.path().join("client");
        let mut c = self.faked(&sibling("kasane"));
        c.args(["--server", &format!("https://{}", self.addr), "--ca"])
            .arg(d.join("tls/cert.pem"))
            .arg("--root")
            .arg(d.join("registry/metadata/1.root.json"))
            .arg("--card")
            .arg(d.join("cards/alice.card"))
            .arg("--password-stdin")
            .args(args)
            .env("HOME", &state)
            .env("XDG_CONFIG_HOME", state.join("config"))
            .env("XDG_CACHE_HOME", state.join("cache"))
            .env_remove("KASANE_CONFIG");
        c
    }

    /// `kasane login` as alice; the output.
    pub(crate) fn login(&self) -> Output {
        self.run_as_alice(&["login"])
    }

    /// `kasane ARGS` as alice, the password on standard input; the output.
    pub(crate) fn run_as_alice(&self, args: &[&str]) -> Output {
        with_stdin(self.kasane_as_alice(args), &format!("{PASSWORD}\n"))
    }

    /// `kasane-registry refresh --role ROLE` on the host's registry, at the fake time.
    pub(crate) fn refresh(&self, role: &str) {
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

    /// `GET path` with curl (trusting the host's certificate, with the metrics token): status
    /// and body.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let token = std::fs::read_to_string(self.data().join("keys/metrics.token")).unwrap();
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg("--cacert")
            .arg(self.data().join("tls/cert.pem"))
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }

    pub(crate) fn snapshot_version(&self) -> u64 {
        let (_, metrics) = self.get("/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(r#"kasane_registry_version{role="snapshot"} "#))
            .expect("snapshot version metric")
            .parse()
            .unwrap()
    }
}

impl Sim {
    /// `init`, `user add alice` (real binary, real clock = day 0), then `serve` (under the
    /// fake clock if `fake_clock`) with its log in `host.log`.
    pub(crate) fn start(fake_clock: bool) -> Sim {
        Self::start_with_env(fake_clock, &[])
    }

    /// [`Sim::start`] with `env` set for `serve` (e.g. `KASANE_GATEWAY_UPSTREAM`).
    pub(crate) fn start_with_env(fake_clock: bool, env: &[(&str, &str)]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let host = sibling("kasane-host");
        kasane_host_at(&data, &["init", "--listen", "127.0.0.1:0"], "");
        kasane_host_at(&data, &["user", "add", "alice"], &format!("{PASSWORD}\n"));
        std::fs::write(dir.path().join("offset"), "+0d\n").unwrap();
        let log = std::fs::File::create(dir.path().join("host.log")).unwrap();
        let mut sim = Sim {
            host: Command::new("true").spawn().unwrap(),
            addr: String::new(),
            dir,
            fake_clock,
        };
        let mut child = sim
            .faked(&host)
            .arg("--data")
            .arg(&data)
            .arg("serve")
            .env("KASANE_LOG", "info")
            .envs(env.iter().copied())
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
}
