//! A test host over real TLS on 127.0.0.1:0 and a test client built on kasane-protocol.
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a test failure"
)]

pub(crate) mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use kasane_host::config::Config;
use kasane_host::host::Host;
use kasane_host::server::{self, Options, Running};
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::{Clock, Store, SystemClock};
use kasane_os::ManualClock;
use kasane_protocol::wire::{ChallengeBundle, Message, Profile, ResponseAccept};
use kasane_protocol::{
    ClientAwaitAccept, ClientAwaitBundle, ClientChallenge, ClientStart, Session,
};
use kasane_sandbox::{Allocator, Limits, Sandbox, SandboxConfig, Transform};
use rand_core::OsRng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// A card of four pairs.
pub(crate) const CARD: &str = "A1 KM4Q\nB1 TX7W\nC1 HH3R\nD1 PV9C\n";
pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) fn card_map() -> HashMap<String, String> {
    CARD.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

pub(crate) struct TestHost {
    pub(crate) addr: SocketAddr,
    pub(crate) host: Arc<Host>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) cfg: Config,
    pub(crate) dir: tempfile::TempDir,
    /// Dropped with the test host: the server shuts down.
    _running: Running,
    modules: Mutex<HashMap<[u8; 32], Transform>>,
    sandbox: Sandbox,
}

/// How the test hosts are served: housekeeping runs before `spawn` returns and then only
/// once an hour, so no pass takes what a test that calls `Host::housekeeping` or
/// `checkpoint_audit` itself asserts on (host/tests/server.rs checks the timer).
pub(crate) fn options() -> Options {
    Options {
        housekeeping_every: std::time::Duration::from_secs(3600),
        ..Options::default()
    }
}

/// The configuration `init` wrote into `dir`, resolved against it, without the process
/// environment (a developer's `KASANE_*` variables must not reach a test host), listening on
/// `127.0.0.1:0`.
pub(crate) fn file_config(dir: &Path) -> Config {
    let mut cfg = Config::load_file(dir).unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg
}

/// Starts a host on a fresh data directory (made by `init`), with a manual clock.
pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> TestHost {
    start_with_store(tweak, None).await
}

pub(crate) async fn start_with_store(
    tweak: impl FnOnce(&mut Config),
    store: Option<Arc<dyn Store>>,
) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now();
    setup::init(dir.path(), None, now).await.unwrap();
    let mut cfg = file_config(dir.path());
    // Tests make many failures from 127.0.0.1: throttling gets its own test.
    cfg.throttle.free_failures = 1000;
    tweak(&mut cfg);
    let clock = Arc::new(ManualClock::new(now));
    let host = match store {
        Some(st) => setup::load_host_with_store(cfg.clone(), st, clock.clone())
            .await
            .unwrap(),
        None => setup::load_host(cfg.clone(), clock.clone()).await.unwrap(),
    };
    serve_host(host, clock, cfg, dir).await
}

/// Serves `host` (loaded from `cfg`, whose data directory `dir` it keeps) as a [`TestHost`].
pub(crate) async fn serve_host(
    host: Arc<Host>,
    clock: Arc<ManualClock>,
    cfg: Config,
    dir: tempfile::TempDir,
) -> TestHost {
    let running = server::spawn_with(host.clone(), options()).await.unwrap();
    let cert_der = CertificateDer::from_pem_file(&cfg.tls_cert)
        .unwrap()
        .to_vec();
    let sandbox = client_sandbox();
    TestHost {
        addr: running.addr(),
        host,
        clock,
        cert_der,
        cfg,
        dir,
        _running: running,
        modules: Mutex::new(HashMap::new()),
        sandbox,
    }
}

/// Another host replica: the same data directory (host key, registry), its own `Host` (no
/// state shared in process) over its own store handle on the same database, on its own port.
pub(crate) struct Replica {
    pub(crate) addr: SocketAddr,
    pub(crate) host: Arc<Host>,
    _running: Running,
}

impl TestHost {
    /// Starts a second replica of this host over `store` (a separate handle on its database).
    pub(crate) async fn replica(&self, store: Arc<dyn Store>) -> Replica {
        let host = setup::load_host_with_store(self.cfg.clone(), store, self.clock.clone())
            .await
            .unwrap();
        let running = server::spawn_with(host.clone(), options()).await.unwrap();
        Replica {
            addr: running.addr(),
            host,
            _running: running,
        }
    }

    pub(crate) async fn add_user(&self, name: &str) {
        add_card_user(&self.host, name, self.clock.now()).await;
    }

    pub(crate) fn host_key(&self) -> VerifyingKey {
        VerifyingKey::from_bytes(&self.host.host_public_key()).unwrap()
    }

    pub(crate) async fn connect(&self) -> Conn {
        connect(self.addr, &self.cert_der).await
    }

    /// The module a bundle names, fetched from the host over HTTP and checked, loaded once.
    pub(crate) async fn transform(&self, conn: &mut Conn, bundle: &ChallengeBundle) -> Transform {
        if let Some(t) = self.modules.lock().unwrap().get(&bundle.module.sha256) {
            return t.clone();
        }
        let t = fetch_transform(&self.sandbox, conn, bundle).await;
        self.modules
            .lock()
            .unwrap()
            .insert(bundle.module.sha256, t.clone());
        t
    }
}

/// Adds user `name` with [`PASSWORD`] and the card [`CARD`].
pub(crate) async fn add_card_user(host: &Host, name: &str, now: u64) {
    let card = CodeCard::parse(name, CARD).unwrap();
    let store = host.store().as_ref();
    setup::add_user(store, host.opaque_keys(), &card, PASSWORD.as_bytes(), now)
        .await
        .unwrap();
}

/// The sandbox the test client runs transforms in.
pub(crate) fn client_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator: Allocator::OnDemand,
        max_limits: Limits {
            fuel: 2_000_000_000,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// The module a bundle names, fetched from the host over HTTP, checked and loaded.
pub(crate) async fn fetch_transform(
    sandbox: &Sandbox,
    conn: &mut Conn,
    bundle: &ChallengeBundle,
) -> Transform {
    let (status, bytes) = conn
        .get(
            &format!("/v1/modules/{}.wasm", hex::encode(bundle.module.sha256)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, bundle.module.length);
    load_checked(sandbox, &bytes, bundle)
}

/// Loads module `bytes` for `bundle` after checking their SHA-256 against it, with the
/// bundle's profile and limits.
pub(crate) fn load_checked(sandbox: &Sandbox, bytes: &[u8], bundle: &ChallengeBundle) -> Transform {
    use sha2::Digest;
    assert_eq!(
        <[u8; 32]>::from(sha2::Sha256::digest(bytes)),
        bundle.module.sha256
    );
    let profile = bundle.module.profile;
    sandbox
        .load(
            bytes,
            profile,
            Limits {
                fuel: bundle.module.fuel,
                memory_bytes: bundle.module.memory,
                ..Limits::default()
            },
        )
        .unwrap()
}

/// The `kasane-host` binary with none of the test process's `KASANE_*` variables (a
/// developer's `KASANE_LISTEN` or `KASANE_DATABASE_URL` must not reach the host under test),
/// logging warnings only.
pub(crate) fn host_bin() -> std::process::Command {
    without_kasane_env(std::process::Command::new(env!(
        "CARGO_BIN_EXE_kasane-host"
    )))
}

/// [`host_bin`] under umask 000, where any file created without an explicit private mode
/// would be readable (and writable) by everyone.
pub(crate) fn host_bin_umask_000() -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.args([
        "-c",
        "umask 000 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_kasane-host"),
    ]);
    without_kasane_env(sh)
}

fn without_kasane_env(mut c: std::process::Command) -> std::process::Command {
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("KASANE_")) {
            c.env_remove(k);
        }
    }
    c.env("KASANE_LOG", "warn");
    c
}

/// `kasane-host --data <data> user add <name> --pairs <pairs>` with [`PASSWORD`] on standard
/// input, required to succeed; its output (the printed card on stdout).
pub(crate) fn user_add_bin(data: &str, name: &str, pairs: &Path) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = host_bin()
        .args(["--data", data, "user", "add", name, "--pairs"])
        .arg(pairs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process killed on every exit path (by its own handle).
pub(crate) struct Child(pub(crate) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kasane-host --data <data> serve` and returns it with the address it reports
/// (the configuration says port 0: the host binds and tells).
pub(crate) fn serve_bin(data: &str) -> (Child, SocketAddr) {
    serve_with(host_bin(), data)
}

/// Like [`serve_bin`], with the command `cmd` (e.g. [`host_bin_umask_000`]).
pub(crate) fn serve_with(mut cmd: std::process::Command, data: &str) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = Child(
        cmd.args(["--data", data, "serve"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// Accepts exactly one certificate (pinned), with real TLS 1.3 signature checks.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate not pinned".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub(crate) fn client_config(
    cert_der: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            der: cert_der.to_vec(),
            provider,
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// One HTTP/1.1 connection over TLS 1.3, and its RFC 9266 exporter value.
pub(crate) struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub(crate) exporter: [u8; 32],
}

pub(crate) async fn connect(addr: SocketAddr, cert_der: &[u8]) -> Conn {
    connect_over(TcpStream::connect(addr).await.unwrap(), cert_der).await
}

/// [`connect`] from the local address `local` (e.g. 127.0.0.2: on Linux all of 127/8 is
/// loopback, so a test can be two client addresses to the host).
pub(crate) async fn connect_from(addr: SocketAddr, cert_der: &[u8], local: IpAddr) -> Conn {
    let socket = match local {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    connect_over(socket.connect(addr).await.unwrap(), cert_der).await
}

/// TLS 1.3 and HTTP/1.1 over a connected `tcp`.
async fn connect_over(tcp: TcpStream, cert_der: &[u8]) -> Conn {
    let cfg = client_config(cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut exporter = [0u8; 32];
    tls.get_ref()
        .1
        .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Conn { send, exporter }
}

impl Conn {
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<[u8; 32]>,
    ) -> (StatusCode, Vec<u8>) {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {}", hex::encode(t)));
        }
        let req = b.body(Full::new(Bytes::from(body))).unwrap();
        self.send.ready().await.unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    /// `GET path` with one header `name: value`: the status and the answer's headers.
    pub(crate) async fn head_request(
        &mut self,
        path: &str,
        name: &str,
        value: &str,
    ) -> (StatusCode, hyper::HeaderMap) {
        let req = hyper::Request::builder()
            .uri(path)
            .header("host", "localhost")
            .header(name, value)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send.ready().await.unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        body.collect().await.unwrap();
        (parts.status, parts.headers)
    }

    pub(crate) async fn post(&mut self, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        self.request("POST", path, body, None).await
    }

    pub(crate) async fn get(
        &mut self,
        path: &str,
        bearer: Option<[u8; 32]>,
    ) -> (StatusCode, Vec<u8>) {
        self.request("GET", path, Vec::new(), bearer).await
    }
}

/// The uniform failure answer.
pub(crate) fn uniform_failure() -> (StatusCode, Vec<u8>) {
    (
        StatusCode::UNAUTHORIZED,
        kasane_protocol::LoginFailure.encode().unwrap(),
    )
}

/// The start step: the client after a verified KE2 with its finish request, or — when
/// OPAQUE refused on the client's side (wrong password, unknown user, locked) — the start
/// response it could not open.
pub(crate) async fn start_login(
    th: &TestHost,
    conn: &mut Conn,
    user: &str,
    password: &str,
    profiles: Vec<Profile>,
) -> Result<(ClientAwaitBundle, Vec<u8>), Vec<u8>> {
    start_login_to(conn, th.host_key(), user, password, profiles).await
}

/// [`start_login`] against a host known by its key alone (a served binary).
pub(crate) async fn start_login_to(
    conn: &mut Conn,
    host_key: VerifyingKey,
    user: &str,
    password: &str,
    profiles: Vec<Profile>,
) -> Result<(ClientAwaitBundle, Vec<u8>), Vec<u8>> {
    let client = ClientStart::new(&mut OsRng, user, password.as_bytes(), profiles).unwrap();
    let (status, body) = conn
        .post("/v1/login/start", client.request_bytes().to_vec())
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // The argon2id inside runs on a blocking thread, as the real client's does: on an async
    // worker (slow in a debug build) it would starve the host's tasks on the same runtime.
    let (exporter, response) = (conn.exporter, body.clone());
    let received = tokio::task::spawn_blocking(move || {
        client.receive(&mut OsRng, &response, &[host_key], Some(&exporter))
    })
    .await
    .unwrap();
    match received {
        Ok(next) => Ok(next),
        Err(kasane_protocol::ProtocolError::Opaque) => Err(body),
        Err(e) => panic!("start response refused: {e}"),
    }
}

/// start and finish: the challenge bundle, or the host's answer to the finish (a client whose
/// OPAQUE step failed sends a decoy KE3, as the real client does).
pub(crate) async fn to_bundle(
    th: &TestHost,
    conn: &mut Conn,
    user: &str,
    password: &str,
    profiles: Vec<Profile>,
) -> Result<ClientChallenge, (StatusCode, Vec<u8>)> {
    let (awaiting, bytes) = match start_login(th, conn, user, password, profiles).await {
        Ok(next) => next,
        Err(start) => {
            let decoy = kasane_protocol::decoy_finish(&mut OsRng, &start).unwrap();
            return Err(conn.post("/v1/login/finish", decoy).await);
        }
    };
    let (status, body) = conn.post("/v1/login/finish", bytes).await;
    if status != StatusCode::OK {
        return Err((status, body));
    }
    Ok(awaiting.receive(&body).unwrap())
}

/// The verifiers for a bundle's challenges from `answers` (prompt → response; a prompt
/// without an answer gets a wrong one).
pub(crate) fn verifiers(
    ch: &ClientChallenge,
    answers: &HashMap<String, String>,
) -> Vec<Zeroizing<Vec<u8>>> {
    let responses: Vec<&str> = ch
        .bundle()
        .challenges
        .iter()
        .map(|c| answers.get(&c.prompt).map_or("ZZZZ", String::as_str))
        .collect();
    ch.verifiers(&responses).unwrap()
}

/// Runs the transform and builds the response request.
pub(crate) async fn respond(
    th: &TestHost,
    conn: &mut Conn,
    ch: ClientChallenge,
    answers: &HashMap<String, String>,
) -> (ClientAwaitAccept, Vec<u8>) {
    let transform = th.transform(conn, ch.bundle()).await;
    let input = ch.auth_input(&verifiers(&ch, answers)).unwrap();
    // A wasi transform blocks on its own runtime: never on an async worker.
    let t = tokio::task::spawn_blocking(move || {
        kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    ch.respond(t.key.as_bytes()).unwrap()
}

/// A whole good login: the client's session and the session token.
pub(crate) async fn login(
    th: &TestHost,
    conn: &mut Conn,
    user: &str,
) -> (Session, [u8; 32], ChallengeBundle) {
    let ch = to_bundle(th, conn, user, PASSWORD, vec![Profile::Pure, Profile::Wasi])
        .await
        .expect("bundle");
    let bundle = ch.bundle().clone();
    let (awaiting, bytes) = respond(th, conn, ch, &card_map()).await;
    let (status, body) = conn.post("/v1/login/response", bytes).await;
    assert_eq!(status, StatusCode::OK, "login of {user} failed");
    let token = ResponseAccept::decode(&body).unwrap().session_token;
    (awaiting.receive(&body).unwrap(), token, bundle)
}

/// The test PostgreSQL's URL (`KASANE_TEST_DATABASE_URL`), or `None` (after saying so) when
/// the PostgreSQL tests are to be skipped; under `CI=true` a missing URL fails the test.
pub(crate) fn pg_url() -> Option<String> {
    match std::env::var("KASANE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "KASANE_TEST_DATABASE_URL must be set when CI=true: the PostgreSQL suite may not be skipped in CI"
            );
            println!("skipped: KASANE_TEST_DATABASE_URL not set");
            None
        }
    }
}

/// A fresh schema on the test PostgreSQL for one test, so tests run in parallel on one
/// database; [`PgSchema::drop`] removes it.
pub(crate) struct PgSchema {
    admin: sqlx::PgPool,
    url: String,
    /// The schema's name.
    pub(crate) name: String,
}

impl PgSchema {
    /// Creates `<prefix>_<random>`, or `None` when the PostgreSQL tests are skipped.
    pub(crate) async fn create(prefix: &str) -> Option<Self> {
        let url = pg_url()?;
        let name = format!("{prefix}_{:016x}", rand::random::<u64>());
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .unwrap();
        Some(Self { admin, url, name })
    }

    /// A connection pool on the database itself (not bound to the schema).
    pub(crate) fn admin(&self) -> &sqlx::PgPool {
        &self.admin
    }

    /// Connect options with the schema as the search path.
    pub(crate) fn options(&self) -> sqlx::postgres::PgConnectOptions {
        use std::str::FromStr as _;
        sqlx::postgres::PgConnectOptions::from_str(&self.url)
            .unwrap()
            .options([("search_path", self.name.as_str())])
    }

    /// A URL with the schema as the search path (for `store::open` and the binary).
    pub(crate) fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    /// Drops the schema and everything in it.
    pub(crate) async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
        self.admin.close().await;
    }
}

/// A self-signed certificate for `localhost` valid until `not_after` (unix seconds), PEM, with
/// its key; and the certificate's DER.
pub(crate) fn expiring_certificate(not_after: u64) -> (String, String, Vec<u8>) {
    let at = i64::try_from(not_after).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(at - 86_400).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(at).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}
