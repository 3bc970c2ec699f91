//! The sealed gateway end to end with real programs: `kasane-host serve` with `[gateway]
//! upstream` set, Python's `http.server` behind it (gateway_upstream.py, which checks every
//! assertion with `cryptography` against the host's JWKS), `kasane proxy` in front, and
//! `curl` as the local program.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{PASSWORD, Sim};

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python service: its process, port, served directory and files.
struct Upstream {
    _child: Killed,
    port: u16,
    dir: tempfile::TempDir,
}

impl Upstream {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn jwks(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    /// The requests it logged, one JSON object each.
    fn log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }
}

/// The interpreter with `cryptography` (CI's venv), or `None` (and why) outside CI.
fn python() -> Option<String> {
    let python = std::env::var("KASANE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{python} cannot import cryptography (set KASANE_TEST_PYTHON)"
    );
    eprintln!("skipping: {python} cannot import cryptography (set KASANE_TEST_PYTHON)");
    None
}

/// Deterministic filler bytes (no RNG crate needed for a test file).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn start_upstream(python: &str) -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway_upstream.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(&files)
        .arg(dir.path().join("jwks.json"))
        .arg(dir.path().join("requests.log"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    Upstream {
        _child: Killed(child),
        port,
        dir,
    }
}

/// `kasane proxy` as alice: the process and the address it serves; its standard error goes
/// to `stderr`.
fn start_proxy(sim: &Sim, stderr: &Path) -> (Killed, String) {
    let mut child = sim
        .kasane_as_alice(&["proxy", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    drop(stdin);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "proxy exited: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        if let Some(rest) = line.trim().strip_prefix("serving http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // Keep draining its standard output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (Killed(child), addr)
}

/// `curl` with `args` against `url`: status and body bytes.
fn curl(url: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "%{http_code}", "--max-time", "60"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let (body, code) = out.stdout.split_at(out.stdout.len() - 3);
    (
        std::str::from_utf8(code).unwrap().parse().unwrap(),
        body.to_vec(),
    )
}

/// Fetches the host's JWKS (for the upstream's checks).
fn fetch_jwks(sim: &Sim, to: &Path) {
    let (code, body) = sim.get("/.well-known/jwks.json");
    assert_eq!(code, 200);
    std::fs::write(to, body).unwrap();
}

#[test]
fn curl_through_kasane_proxy_gets_the_upstreams_exact_bytes() {
    let Some(python) = python() else { return };
    let up = start_upstream(&python);
    let sizes = [0usize, 4096, 4 << 20];
    for (i, n) in sizes.iter().enumerate() {
        std::fs::write(up.files().join(format!("f{n}")), bytes(*n, i as u64)).unwrap();
    }
    let sim = Sim::start_with_env(false, &[("KASANE_GATEWAY_UPSTREAM", &up.url())]);
    fetch_jwks(&sim, &up.jwks());
    let (_proxy, addr) = start_proxy(&sim, &sim.dir.path().join("proxy.err"));
    for (i, n) in sizes.iter().enumerate() {
        let want = bytes(*n, i as u64);
        let (code, got) = curl(&format!("http://{addr}/f{n}"), &[]);
        assert_eq!((code, got.len()), (200, want.len()), "GET f{n}");
        assert!(got == want, "GET f{n}: other bytes");
        let body = sim.dir.path().join(format!("post{n}"));
        std::fs::write(&body, bytes(*n, 100 + i as u64)).unwrap();
        let data = format!("@{}", body.display());
        let (code, got) = curl(&format!("http://{addr}/echo"), &["--data-binary", &data]);
        assert_eq!(code, 200, "POST {n}");
        assert!(got == bytes(*n, 100 + i as u64), "POST {n}: other bytes");
    }
    // A HEAD answer keeps the length the service stated for the body it did not send.
    let head = Command::new("curl")
        .args(["-sSI", "--max-time", "60", &format!("http://{addr}/f4096")])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.contains("content-length: 4096\r\n"), "{head}");
    // A forged identity from the local side never reaches the service.
    let forged = [
        "-H",
        "X-Kasane-User: mallory",
        "-H",
        "X-Kasane-Assertion: x.y.z",
        "-H",
        "Connection: x-secret",
        "-H",
        "X-Secret: 1",
    ];
    let (code, _) = curl(&format!("http://{addr}/f0"), &forged);
    assert_eq!(code, 200);
    let (code, _) = curl(&format!("http://{addr}/missing"), &[]);
    assert_eq!(code, 404, "the service's own status passes through");
    // What a web page of another site could send through the user's browser is refused
    // (a rebound name, a cross-site form or fetch); a page the proxy serves itself is not.
    let url = format!("http://{addr}/f0");
    let port = addr.rsplit(':').next().unwrap();
    let rebound = format!("Host: evil.example:{port}");
    for refused in [
        vec!["-H", rebound.as_str()],
        vec!["-H", "Origin: https://evil.example", "--data-binary", "x"],
        vec!["-H", "Origin: null"],
        vec!["-H", "Sec-Fetch-Site: cross-site"],
        vec!["-H", "Sec-Fetch-Site: same-site"],
    ] {
        let (code, body) = curl(&url, &refused);
        assert_eq!(code, 403, "{refused:?}: {}", String::from_utf8_lossy(&body));
    }
    let own = format!("Origin: http://{addr}");
    let same = ["-H", &own, "-H", "Sec-Fetch-Site: same-origin"];
    assert_eq!(curl(&url, &same).0, 200);
    let log = up.log();
    assert_eq!(log.len(), 2 * sizes.len() + 4, "{log:?}");
    for entry in &log {
        assert_eq!(entry["users"], serde_json::json!(["alice"]), "{entry}");
        assert_eq!(entry["assertion"], "ok", "{entry}");
        assert_eq!(entry["secret"], serde_json::Value::Null, "{entry}");
    }
}

#[test]
fn the_proxy_logs_in_again_after_the_idle_timeout_and_says_why_it_cannot_forward() {
    let Some(python) = python() else { return };
    let up = start_upstream(&python);
    std::fs::write(up.files().join("page"), b"hello").unwrap();
    let sim = Sim::start_with_env(
        false,
        &[
            ("KASANE_GATEWAY_UPSTREAM", &up.url()),
            ("KASANE_IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    fetch_jwks(&sim, &up.jwks());
    let stderr = sim.dir.path().join("proxy.err");
    let (_proxy, addr) = start_proxy(&sim, &stderr);
    let url = format!("http://{addr}/page");
    assert_eq!(curl(&url, &[]), (200, b"hello".to_vec()));
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        curl(&url, &[]),
        (200, b"hello".to_vec()),
        "after the idle time-out"
    );
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert!(err.contains("logging in again"), "{err}");
    // Alice enrolled again (a new password and card): the proxy's next login is refused,
    // and it does not try again on every request (each try would count against alice).
    let data = sim.data();
    common::kasane_host_at(&data, &["user", "remove", "alice"], "");
    common::kasane_host_at(&data, &["user", "add", "alice"], "another password\n");
    std::thread::sleep(Duration::from_millis(4500));
    for _ in 0..3 {
        let (code, body) = curl(&url, &[]);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, 502, "{text}");
        assert!(text.contains("not trying again"), "{text}");
    }
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(err.matches("logging in again").count(), 2, "{err}");
    // Bodies over the proxy's limit are refused here, before anything is sent.
    let big = sim.dir.path().join("big");
    std::fs::write(&big, vec![1u8; 9 << 20]).unwrap();
    let (code, body) = curl(
        &format!("http://{addr}/echo"),
        &["--data-binary", &format!("@{}", big.display())],
    );
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));
    let before = up.log().len();
    // The host gone: a one-line 502, not a hang.
    drop(sim);
    let (code, body) = curl(&url, &[]);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(code, 502, "{text}");
    assert!(
        text.starts_with("kasane proxy: ") && text.lines().count() == 1,
        "{text}"
    );
    assert_eq!(up.log().len(), before);
}

#[test]
fn kasane_token_gives_a_bearer_the_forward_auth_check_accepts() {
    let sim = Sim::start(false);
    let out = sim.run_as_alice(&["token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    let check = |header: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D", "-", "-H", header, "--cacert"])
            .arg(sim.data().join("tls/cert.pem"))
            .arg(format!("https://{}/v1/auth/check", sim.addr))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().to_ascii_lowercase()
    };
    let ok = check(&format!("Authorization: Bearer {token}"));
    assert!(
        ok.starts_with("http/1.1 200") || ok.starts_with("http/2 200"),
        "{ok}"
    );
    assert!(ok.contains("x-kasane-user: alice"), "{ok}");
    let cookie = check(&format!("Cookie: kasane_session={token}"));
    assert!(cookie.contains(" 200"), "{cookie}");
    let bad = check(&format!("Authorization: Bearer {}", "0".repeat(64)));
    assert!(bad.contains(" 401"), "{bad}");
}
