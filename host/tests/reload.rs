//! SIGHUP to `kasane-host serve` (the real binary, real TLS): new handshakes present the
//! certificate now in the files while open connections and logins in flight go on; files
//! that do not load leave the certificate in use, and the log names why.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CARD, Child, PASSWORD, client_config, connect, host_bin, serve_with};
use hyper::StatusCode;
use kasane_protocol::ClientStart;
use kasane_protocol::wire::Profile;
use rand_core::OsRng;
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

/// How long anything the test waits for may take (a slow CI machine included).
const PATIENCE: Duration = Duration::from_secs(30);

/// A data directory made by `kasane-host init`, listening on `127.0.0.1:0`.
struct Data {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Data {
    fn init() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let out = host_bin()
            .args(["--data", path.to_str().unwrap()])
            .args(["init", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { _dir: dir, path }
    }

    fn s(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn cert(&self) -> PathBuf {
        self.path.join("tls/cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.path.join("tls/key.pem")
    }

    /// The DER of the first certificate in `tls/cert.pem`.
    fn cert_der(&self) -> Vec<u8> {
        let pem = std::fs::read(self.cert()).unwrap();
        rustls_pki_types::CertificateDer::from_pem_slice(&pem)
            .unwrap()
            .to_vec()
    }

    /// Writes a new self-signed certificate and its key over the configured files; returns
    /// the certificate's DER.
    fn new_certificate(&self) -> Vec<u8> {
        let (cert, key, der) = kasane_host::setup::self_signed_cert().unwrap();
        std::fs::write(self.key(), key.as_bytes()).unwrap();
        std::fs::write(self.cert(), cert).unwrap();
        der
    }

    /// `user add alice` with the card [`CARD`] and [`PASSWORD`].
    fn add_alice(&self) {
        let pairs = self.path.join("pairs.txt");
        std::fs::write(&pairs, CARD).unwrap();
        common::user_add_bin(self.s(), "alice", &pairs);
    }
}

/// `kasane-host serve` logging at `info`, its standard error collected as it comes.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(data: &Data) -> Self {
        let mut cmd = host_bin();
        cmd.env("KASANE_LOG", "info").stderr(Stdio::piped());
        let (mut child, addr) = serve_with(cmd, data.s());
        let stderr = child.0.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// How many log lines contain `what`.
    fn count(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.contains(what)).count()
    }

    /// Sends SIGHUP and waits until the host has logged `reloaded` once more.
    async fn hangup(&mut self) {
        let before = self.count("reloaded");
        let pid = self.child.0.id().to_string();
        let status = std::process::Command::new("sh")
            .args(["-c", "kill -HUP \"$0\"", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        while self.count("reloaded") == before {
            assert!(
                started.elapsed() < PATIENCE,
                "no reload logged:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.child.0.try_wait().unwrap(), None, "{}", self.log());
    }

    /// The certificate a new handshake trusting only `pinned` is shown, if it succeeds.
    async fn presented(&self, pinned: &[u8]) -> Option<Vec<u8>> {
        let cfg = client_config(pinned, &[&rustls::version::TLS13], &[b"http/1.1"]);
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .ok()?;
        let certs = tls.get_ref().1.peer_certificates()?;
        Some(certs.first()?.to_vec())
    }
}

fn contains_path(line: &str, path: &Path) -> bool {
    line.contains(path.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_for_new_connections_and_keeps_open_ones_and_logins() {
    let data = Data::init();
    data.add_alice();
    let old = data.cert_der();
    let mut host = Served::start(&data);
    let mut conn = connect(host.addr, &old).await;
    assert_eq!(conn.get("/healthz", None).await.0, StatusCode::OK);
    // A login in flight across the reload: its first step before, its second after.
    let host_key = kasane_host::setup::read_signing_key(&data.path.join("keys/host.key"))
        .unwrap()
        .verifying_key();
    let client = ClientStart::new(
        &mut OsRng,
        "alice",
        PASSWORD.as_bytes(),
        vec![Profile::Pure],
    )
    .unwrap();
    let (status, start) = conn
        .post("/v1/login/start", client.request_bytes().to_vec())
        .await;
    assert_eq!(status, StatusCode::OK);
    let registry_loads = host.count("registry loaded");

    let new = data.new_certificate();
    assert_ne!(new, old);
    host.hangup().await;

    assert_eq!(host.presented(&new).await.as_deref(), Some(&new[..]));
    assert_eq!(
        host.presented(&old).await,
        None,
        "the old certificate is still shown"
    );
    let log = host.log();
    let reloaded = log.lines().rfind(|l| l.contains("reloaded")).unwrap();
    assert!(
        reloaded.contains("new") && reloaded.contains("active transforms"),
        "{log}"
    );
    // The signing keys were read again too, and are the ones in use.
    assert!(
        reloaded.contains("host_key=\"same\"") && reloaded.contains("ticket_key=\"same\""),
        "{log}"
    );
    assert!(
        host.count("registry loaded") > registry_loads,
        "registry not re-read:\n{log}"
    );
    // The connection opened before the reload goes on, and so does the login.
    assert_eq!(conn.get("/healthz", None).await.0, StatusCode::OK);
    let (client, finish) = client
        .receive(&mut OsRng, &start, &[host_key], Some(&conn.exporter))
        .unwrap();
    let (status, bundle) = conn.post("/v1/login/finish", finish).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.receive(&bundle).unwrap().bundle().counter, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_certificate_keeps_the_one_in_use_and_logs_why() {
    let data = Data::init();
    let old = data.cert_der();
    let old_key = std::fs::read(data.key()).unwrap();
    let mut host = Served::start(&data);
    let mut conn = connect(host.addr, &old).await;

    // Not PEM at all.
    std::fs::write(data.cert(), "not a certificate\n").unwrap();
    host.hangup().await;
    let log = host.log();
    let failed = |l: &&str| l.contains("keeping the TLS certificate in use");
    let why = log.lines().rfind(failed).expect(&log);
    assert!(contains_path(why, &data.cert()), "{why}");
    assert_eq!(host.presented(&old).await.as_deref(), Some(&old[..]));
    assert_eq!(conn.get("/healthz", None).await.0, StatusCode::OK);

    // A good certificate with a key that is not its own.
    let other = data.new_certificate();
    std::fs::write(data.key(), &old_key).unwrap();
    host.hangup().await;
    let log = host.log();
    let why = log.lines().rfind(failed).expect(&log);
    assert!(why.contains("do not match"), "{why}");
    assert!(contains_path(why, &data.key()), "{why}");
    assert_eq!(host.presented(&old).await.as_deref(), Some(&old[..]));
    assert_eq!(host.presented(&other).await, None);
    assert_eq!(conn.get("/healthz", None).await.0, StatusCode::OK);

    // Files that load again are taken at the next SIGHUP.
    let fixed = data.new_certificate();
    host.hangup().await;
    assert_eq!(host.presented(&fixed).await.as_deref(), Some(&fixed[..]));
}

/// A host whose `host.key` the registry does not list (a rotation half done) still serves,
/// but says so at start; a SIGHUP keeps that key (nothing listed to take instead) and says
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_host_key_is_named_at_start_and_at_each_reload() {
    let data = Data::init();
    let host_key = data.path.join("keys/host.key");
    std::fs::remove_file(&host_key).unwrap();
    let made = host_bin()
        .args(["--data", data.s(), "new-identity-key"])
        .arg(&host_key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let mut host = Served::start(&data);
    let at_start = "a signing key is not listed in the registry";
    let deadline = Instant::now() + PATIENCE;
    while host.count(at_start) == 0 {
        assert!(Instant::now() < deadline, "not said:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(contains_path(&host.log(), &host_key), "{}", host.log());
    host.hangup().await;
    let log = host.log();
    let kept = log
        .lines()
        .rfind(|l| l.contains("keeping the host.key in use"))
        .expect(&log);
    assert!(
        kept.contains("does not list this key for the identity role"),
        "{kept}"
    );
    let reloaded = log.lines().rfind(|l| l.contains("reloaded")).unwrap();
    assert!(reloaded.contains("host_key=\"kept\""), "{reloaded}");
}

/// Renews the host's certificate as an ACME client does (each file written beside and
/// renamed over), to one valid until `not_after`; returns its DER.
fn renew(th: &common::TestHost, not_after: u64) -> Vec<u8> {
    let (cert, key, der) = common::expiring_certificate(not_after);
    for (path, text) in [(&th.cfg.tls_key, key), (&th.cfg.tls_cert, cert)] {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }
    der
}

/// Without a signal: housekeeping takes up renewed certificate files (new handshakes present
/// them), `/metrics` says when the certificate expires, and `/readyz` fails once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_takes_up_a_renewed_certificate_and_watches_its_expiry() {
    use kasane_host::store::Clock as _;
    let th = common::start(|_| {}).await;
    let now = th.clock.now();
    let token = Some(*th.host.metrics_token());

    let renewed = renew(&th, now + 10 * 86_400);
    th.host.housekeeping().await.unwrap();
    let mut conn = connect(th.addr, &renewed).await;
    let (status, body) = conn.request("GET", "/metrics", vec![], token).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(body).unwrap();
    let line = format!("\nkasane_tls_certificate_expiry_seconds {}\n", 10 * 86_400);
    assert!(metrics.contains(&line), "{metrics}");
    assert_eq!(conn.get("/readyz", None).await.0, StatusCode::OK);

    let lapsed = renew(&th, now - 60);
    th.host.housekeeping().await.unwrap();
    let mut conn = connect(th.addr, &lapsed).await;
    let (status, body) = conn.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let since = kasane_host::upkeep::rfc3339(now - 60);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("TLS certificate expired at {since}\n")
    );
}
