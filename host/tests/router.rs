//! The axum router without a socket: `server::app(host)` called as a service
//! (`tower::ServiceExt::oneshot`), each request carrying the `ConnInfo` a TLS connection
//! would give it. Status mapping of each error class, body limits, bearer parsing, the
//! long-poll parameter. (TLS, ALPN and the exporter are tested over sockets elsewhere.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{PASSWORD, add_card_user, card_map, file_config, load_checked, verifiers};
use ed25519_dalek::VerifyingKey;
use kasane_host::config::Config;
use kasane_host::host::Host;
use kasane_host::server::{self, ConnInfo};
use kasane_host::setup;
use kasane_host::store::{Clock, SqliteStore, SystemClock};
use kasane_os::ManualClock;
use kasane_protocol::wire::{
    ChallengeBundle, FinishRequest, Inbox, InboxAck, Message, MessageAccepted, MessageRefused,
    PasswdStart, Profile, RefusalReason, ResponseAccept, ResponseRequest, SealedMessage,
    StartRequest,
};
use kasane_protocol::{ClientStart, LoginFailure, Session};
use kasane_sandbox::{Allocator, Limits, Sandbox, SandboxConfig};
use rand_core::OsRng;
use tower::ServiceExt;

/// The exporter value every request's pretend connection has.
const EXPORTER: [u8; 32] = [7; 32];

/// A host and its router, no listener.
struct Bare {
    host: Arc<Host>,
    clock: Arc<ManualClock>,
    app: Router,
    cfg: Config,
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
}

/// An answer: status, `Content-Type` and body.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn refusal(&self) -> RefusalReason {
        MessageRefused::decode(&self.body)
            .unwrap_or_else(|e| panic!("{} {:?}: {e}", self.status, self.body))
            .reason
    }
}

/// A user logged in through the router.
struct User {
    session: Session,
    token: [u8; 32],
    bundle: ChallengeBundle,
}

async fn bare(tweak: impl FnOnce(&mut Config)) -> Bare {
    bare_prepared(tweak, |_| {}).await
}

/// [`bare`], with `prepare` run on the data directory's files before the host loads them.
async fn bare_prepared(tweak: impl FnOnce(&mut Config), prepare: impl FnOnce(&Config)) -> Bare {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now();
    setup::init(dir.path(), None, now).await.unwrap();
    let mut cfg = file_config(dir.path());
    tweak(&mut cfg);
    prepare(&cfg);
    let clock = Arc::new(ManualClock::new(now));
    let host = setup::load_host(cfg.clone(), clock.clone()).await.unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        allocator: Allocator::OnDemand,
        max_limits: Limits {
            fuel: 2_000_000_000,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();
    Bare {
        app: server::app(host.clone()),
        host,
        clock,
        cfg,
        sandbox,
        _dir: dir,
    }
}

fn bearer(token: &[u8; 32]) -> String {
    format!("Bearer {}", hex::encode(token))
}

impl Bare {
    /// One request as if over a TLS connection from 127.0.0.1 (`conn: false`: with no
    /// connection information at all).
    async fn call_with(
        &self,
        conn: bool,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        if conn {
            req.extensions_mut().insert(ConnInfo {
                peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
                channel_binding: Some(EXPORTER),
            });
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn call(&self, method: &str, uri: &str, auth: Option<&str>, body: Vec<u8>) -> Answer {
        self.call_with(true, method, uri, auth, body).await
    }

    async fn post(&self, uri: &str, body: Vec<u8>) -> Answer {
        self.call("POST", uri, None, body).await
    }

    async fn add_user(&self, name: &str) {
        add_card_user(&self.host, name, self.clock.now()).await;
    }

    /// The transform's output on `input`, with the module fetched through the router.
    async fn derive(&self, bundle: &ChallengeBundle, input: kasane_abi::DeriveInputBuf) -> Vec<u8> {
        let path = format!("/v1/modules/{}.wasm", hex::encode(bundle.module.sha256));
        let module = self.call("GET", &path, None, Vec::new()).await;
        assert_eq!(module.status, StatusCode::OK);
        assert_eq!(module.content_type, "application/wasm");
        let transform = load_checked(&self.sandbox, &module.body, bundle);
        tokio::task::spawn_blocking(move || {
            kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
                .unwrap()
                .unwrap()
                .key
                .as_bytes()
                .to_vec()
        })
        .await
        .unwrap()
    }

    /// A whole login through the router, answering from `answers`: the user, or the
    /// failed answer of the response step.
    async fn login_answering(
        &self,
        name: &str,
        answers: &std::collections::HashMap<String, String>,
    ) -> Result<User, Answer> {
        let key = VerifyingKey::from_bytes(&self.host.host_public_key()).unwrap();
        let start =
            ClientStart::new(&mut OsRng, name, PASSWORD.as_bytes(), vec![Profile::Pure]).unwrap();
        let a = self
            .post("/v1/login/start", start.request_bytes().to_vec())
            .await;
        assert_eq!(a.status, StatusCode::OK);
        let (awaiting, request) = start
            .receive(&mut OsRng, &a.body, &[key], Some(&EXPORTER))
            .unwrap();
        let a = self.post("/v1/login/finish", request).await;
        assert_eq!(a.status, StatusCode::OK);
        let ch = awaiting.receive(&a.body).unwrap();
        let bundle = ch.bundle().clone();
        let input = ch.auth_input(&verifiers(&ch, answers)).unwrap();
        let t = self.derive(&bundle, input).await;
        let (awaiting, request) = ch.respond(&t).unwrap();
        let a = self.post("/v1/login/response", request).await;
        if a.status != StatusCode::OK {
            return Err(a);
        }
        let token = ResponseAccept::decode(&a.body).unwrap().session_token;
        Ok(User {
            session: awaiting.receive(&a.body).unwrap(),
            token,
            bundle,
        })
    }

    async fn login(&self, name: &str) -> User {
        match self.login_answering(name, &card_map()).await {
            Ok(u) => u,
            Err(a) => panic!("login of {name}: {}", a.status),
        }
    }

    async fn seal(&self, user: &mut User, to: &str, body: &[u8]) -> SealedMessage {
        let (seq, input) = user.session.prepare_seal().unwrap();
        let t = self.derive(&user.bundle, input).await;
        user.session.seal(seq, &t, to, body).unwrap()
    }

    async fn send_raw(&self, user: &User, bytes: Vec<u8>) -> Answer {
        let auth = bearer(&user.token);
        self.call("POST", "/v1/messages", Some(&auth), bytes).await
    }

    /// How many expired logins in flight a housekeeping pass finds after `secs` more.
    async fn pending_after(&self, secs: u64) -> u64 {
        self.clock.advance(secs);
        self.host.housekeeping().await.unwrap().pending_logins
    }
}

/// `GET /readyz` on `app`: status and body.
async fn readyz(app: &Router) -> (StatusCode, String) {
    let req = Request::builder()
        .uri("/readyz")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The line of `/metrics` for `name` (exact, with labels), parsed.
async fn metric(b: &Bare, name: &str) -> Option<i64> {
    let req = Request::builder()
        .uri("/metrics")
        .header(header::AUTHORIZATION, bearer(b.host.metrics_token()))
        .body(Body::empty())
        .unwrap();
    let app = &b.app;
    let resp = app.clone().oneshot(req).await.unwrap();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_re_signs_online_roles_and_readyz_names_an_expired_offline_role() {
    let b = bare(|_| {}).await;
    let start = b.clock.now();
    assert_eq!(readyz(&b.app).await, (StatusCode::OK, "ready\n".into()));
    let snap = r#"kasane_registry_version{role="snapshot"}"#;
    let first = metric(&b, snap).await.expect("snapshot version metric");
    // Timestamp and snapshot live 7 days; the host re-signs them with keys/online.pem once
    // less than half is left, so a week on (and again later) the registry is still ready.
    for day in [4, 7, 15, 29] {
        b.clock.set(start + day * 86_400);
        assert_eq!(
            readyz(&b.app).await,
            (StatusCode::OK, "ready\n".into()),
            "day {day}"
        );
    }
    let later = metric(&b, snap).await.expect("snapshot version metric");
    assert!(later > first, "snapshot version {first} -> {later}");
    let revocations = r#"kasane_registry_expiry_seconds{role="revocations"}"#;
    let left = metric(&b, revocations).await.expect("expiry metric");
    assert!(left > 0 && left <= 86_400, "{left}");
    // Revocations (30 days) is signed offline: the host cannot renew it.
    b.clock.set(start + 31 * 86_400);
    let (status, body) = readyz(&b.app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with("registry: revocations expired at "),
        "{body}"
    );
    let left = metric(&b, revocations).await.expect("expiry metric");
    assert!(left < 0, "{left}");
    // The offline ceremony re-signs it (what `kasane-registry refresh --role revocations`
    // does); the running host takes it in at once.
    refresh_role(&b.cfg, "revocations", start + 31 * 86_400);
    assert_eq!(readyz(&b.app).await, (StatusCode::OK, "ready\n".into()));
}

/// An online key the root does not list (rotated out while the host ran, or the wrong file
/// put in place): the due re-signing is refused and counted as an error, and the valid
/// timestamp stays, instead of being replaced by one no client would accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_key_the_root_does_not_list_never_re_signs() {
    let b = bare_prepared(
        |_| {},
        |cfg| {
            let online = cfg.keys_dir.join("online.pem");
            std::fs::remove_file(&online).unwrap();
            use kasane_registry::signing::{KeyFileSigner, KeyKind};
            KeyFileSigner::generate(KeyKind::Ed25519, &online, None).unwrap();
        },
    )
    .await;
    let timestamp = b.cfg.registry_dir.join("metadata/timestamp.json");
    let before = std::fs::read(&timestamp).unwrap();
    b.clock.set(b.clock.now() + 4 * 86_400);
    assert_eq!(readyz(&b.app).await, (StatusCode::OK, "ready\n".into()));
    assert_eq!(
        std::fs::read(&timestamp).unwrap(),
        before,
        "timestamp rewritten"
    );
    let failed = r#"kasane_registry_resigned_total{outcome="error"}"#;
    let errors = metric(&b, failed).await;
    assert!(errors.is_some_and(|n| n >= 1), "{errors:?}");
    let done = r#"kasane_registry_resigned_total{outcome="ok"}"#;
    assert_eq!(metric(&b, done).await, Some(0));
}

/// Re-signs `role` in the data directory's registry with its development key, then snapshot
/// and timestamp with the online key, under the repository lock.
fn refresh_role(cfg: &Config, role: &str, now: u64) {
    use kasane_registry::repo::{Lifetimes, RepoLock, Repository};
    use kasane_registry::signing::{KeyFileSigner, TufSigner};
    let _lock = RepoLock::acquire(&cfg.registry_dir).unwrap();
    let mut repo = Repository::load(&cfg.registry_dir).unwrap();
    let key = KeyFileSigner::open(&cfg.keys_dir.join(format!("{role}.pem")), None).unwrap();
    let online = KeyFileSigner::open(&cfg.keys_dir.join("online.pem"), None).unwrap();
    let life = Lifetimes::default();
    repo.refresh_role(role, &[&TufSigner(&key)], now, &life)
        .unwrap();
    repo.snapshot(&[&TufSigner(&online)], now, &life).unwrap();
    repo.save(&cfg.registry_dir).unwrap();
}

/// A data directory `init` made now, its configuration and its SQLite store, and the time.
async fn initialized() -> (tempfile::TempDir, Config, Arc<SqliteStore>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now();
    setup::init(dir.path(), None, now).await.unwrap();
    let cfg = file_config(dir.path());
    let store = Arc::new(SqliteStore::open(&cfg.database_url).await.unwrap());
    (dir, cfg, store, now)
}

/// A host stopped for longer than the timestamp lives (7 days) starts again: it re-signs
/// timestamp and snapshot with `keys/online.pem` before it first loads the registry,
/// instead of refusing to start with "timestamp expired" until someone re-signs by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopped_past_its_timestamp_re_signs_and_starts() {
    let (_dir, cfg, store, now) = initialized().await;
    let later = now + 8 * 86_400;
    let clock = Arc::new(ManualClock::new(later));
    let host = setup::load_host_with_store(cfg.clone(), store, clock)
        .await
        .expect("a host with its online key starts past the timestamp's expiry");
    let app = server::app(host);
    assert_eq!(readyz(&app).await, (StatusCode::OK, "ready\n".into()));
    let repo = kasane_registry::repo::Repository::load(&cfg.registry_dir).unwrap();
    let timestamp = repo.expiries().into_iter().find(|(r, _)| r == "timestamp");
    assert!(
        timestamp
            .as_ref()
            .is_some_and(|(_, expires)| *expires > later),
        "timestamp re-signed: {timestamp:?}"
    );
}

/// A host started while an offline role has expired starts unready, `/readyz` naming the
/// role, instead of exiting (a restart during the expiry would otherwise be a crash loop with
/// no health answer): as when the role expires while the host runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_started_past_an_offline_role_s_expiry_starts_unready() {
    let (_dir, cfg, store, _) = initialized().await;
    let repo = kasane_registry::repo::Repository::load(&cfg.registry_dir).unwrap();
    let targets = repo.expiries().into_iter().find(|(r, _)| r == "targets");
    let clock = Arc::new(ManualClock::new(targets.unwrap().1 + 60));
    let host = setup::load_host_with_store(cfg.clone(), store, clock)
        .await
        .expect("starts, unready");
    let (status, body) = readyz(&server::app(host)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_store_does_not_answer() {
    let (_dir, cfg, store, now) = initialized().await;
    let clock = Arc::new(ManualClock::new(now));
    let host = setup::load_host_with_store(cfg.clone(), store.clone(), clock.clone())
        .await
        .unwrap();
    let app = server::app(host.clone());
    assert_eq!(readyz(&app).await, (StatusCode::OK, "ready\n".into()));
    store.close().await;
    // Housekeeping fails on the store, but re-signs the registry first: a store that keeps
    // failing does not also let the timestamp expire.
    let timestamp = cfg.registry_dir.join("metadata/timestamp.json");
    let before = std::fs::read(&timestamp).unwrap();
    clock.set(now + 4 * 86_400);
    assert!(host.housekeeping().await.is_err());
    assert_ne!(std::fs::read(&timestamp).unwrap(), before, "not re-signed");
    assert_eq!(
        readyz(&app).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable\n".into()
        )
    );
}

fn uniform_failure() -> Vec<u8> {
    LoginFailure.encode().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_routes_and_not_found() {
    let b = bare(|_| {}).await;
    let a = b.call("GET", "/healthz", None, Vec::new()).await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (StatusCode::OK, &b"ok\n"[..])
    );
    // Metrics only with the metrics token: absent, wrong, then right.
    let a = b.call("GET", "/metrics", None, Vec::new()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&a.body).contains("kasane_logins_total"));
    let wrong = bearer(&[7u8; 32]);
    let a = b.call("GET", "/metrics", Some(&wrong), Vec::new()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let token = bearer(b.host.metrics_token());
    let a = b.call("GET", "/metrics", Some(&token), Vec::new()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type, "text/plain; version=0.0.4");
    assert!(
        String::from_utf8(a.body)
            .unwrap()
            .contains("kasane_logins_total")
    );
    let a = b
        .call("GET", "/v1/registry/metadata/1.root.json", None, Vec::new())
        .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(
        a.body,
        std::fs::read(b.cfg.registry_dir.join("metadata/1.root.json")).unwrap()
    );
    for path in [
        "/v1/registry/metadata/2.root.json",
        "/v1/registry/1.root.json",
        "/v1/registry/metadata/..%2F..%2Fkeys%2Fhost.key",
        "/v1/registry/keys/host.key",
        "/v1/registry/metadata/",
        "/v1/modules/00.wasm",
        &format!("/v1/modules/{}.wasm", "ab".repeat(32)),
        &format!("/v1/modules/{}", "ab".repeat(32)),
        "/v1/nothing",
    ] {
        let a = b.call("GET", path, None, Vec::new()).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
    let a = b.call("GET", "/v1/login/start", None, Vec::new()).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Login steps: a body that is no message of its kind is 400; any failed step (wrong
/// answers, an unknown login, no TLS exporter value when channel binding is on) is the
/// uniform 401 and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_are_400_or_the_uniform_401() {
    let b = bare(|_| {}).await;
    b.add_user("alice").await;
    for step in ["start", "finish", "response"] {
        let a = b.post(&format!("/v1/login/{step}"), vec![0xff; 40]).await;
        assert_eq!(
            (a.status, a.body.as_slice()),
            (StatusCode::BAD_REQUEST, &b"malformed request\n"[..]),
            "{step}"
        );
    }
    // A good start from a request without connection information: no exporter value.
    let hello = ClientStart::new(
        &mut OsRng,
        "alice",
        PASSWORD.as_bytes(),
        vec![Profile::Pure],
    )
    .unwrap();
    let a = b
        .call_with(
            false,
            "POST",
            "/v1/login/start",
            None,
            hello.request_bytes().to_vec(),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (StatusCode::UNAUTHORIZED, uniform_failure())
    );
    assert_eq!(a.content_type, "application/octet-stream");
    // Wrong answers.
    let Err(a) = b.login_answering("alice", &Default::default()).await else {
        panic!("a login with wrong answers succeeded");
    };
    assert_eq!(
        (a.status, a.body),
        (StatusCode::UNAUTHORIZED, uniform_failure())
    );
    let token = bearer(b.host.metrics_token());
    let metrics = String::from_utf8(
        b.call("GET", "/metrics", Some(&token), Vec::new())
            .await
            .body,
    )
    .unwrap();
    assert!(
        metrics.contains("kasane_logins_total{outcome=\"failure\"} 2"),
        "{metrics}"
    );
    // The right ones.
    b.login("alice").await;
}

/// `Authorization: Bearer <64 hex>`: missing, malformed and unknown tokens all get the
/// uniform failure (session, logout) or `SessionEnded` (messages, inbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_missing_malformed_unknown_and_good() {
    let b = bare(|_| {}).await;
    b.add_user("alice").await;
    b.add_user("bob").await;
    let mut user = b.login("alice").await;
    let good = bearer(&user.token);
    // A well-formed message: only the token can be wrong.
    let message = b.seal(&mut user, "bob", b"hi").await.encode().unwrap();
    let hex = hex::encode(user.token);
    let unknown = bearer(&[0x42; 32]);
    let bad: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some(hex.clone()),
        Some(format!("Basic {hex}")),
        Some(format!("Bearer {}", &hex[..63])),
        Some(format!("Bearer {hex}00")),
        Some(format!("Bearer {}zz", &hex[..62])),
        Some("Bearer".into()),
        Some(unknown),
    ];
    for auth in &bad {
        let a = b
            .call("GET", "/v1/session", auth.as_deref(), Vec::new())
            .await;
        assert_eq!(
            (a.status, a.body),
            (StatusCode::UNAUTHORIZED, uniform_failure()),
            "{auth:?}"
        );
        let a = b
            .call("POST", "/v1/logout", auth.as_deref(), Vec::new())
            .await;
        assert_eq!(
            (a.status, a.body),
            (StatusCode::UNAUTHORIZED, uniform_failure()),
            "{auth:?}"
        );
        let a = b
            .call("GET", "/v1/inbox", auth.as_deref(), Vec::new())
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(a.refusal(), RefusalReason::SessionEnded);
        let a = b
            .call("POST", "/v1/messages", auth.as_deref(), message.clone())
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(a.refusal(), RefusalReason::SessionEnded);
    }
    let a = b.call("GET", "/v1/session", Some(&good), Vec::new()).await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (StatusCode::OK, &b"alice"[..])
    );
    let a = b.call("GET", "/v1/inbox", Some(&good), Vec::new()).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = b.call("POST", "/v1/messages", Some(&good), message).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = b.call("POST", "/v1/logout", Some(&good), Vec::new()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // Logged out: the same token is now unknown.
    let a = b.call("GET", "/v1/session", Some(&good), Vec::new()).await;
    assert_eq!(
        (a.status, a.body),
        (StatusCode::UNAUTHORIZED, uniform_failure())
    );
}

/// `GET /v1/inbox?wait=N`: N in 0..=30 (absent: 0); anything else is `Malformed` (400),
/// checked before the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wait_must_be_a_number_up_to_30() {
    let b = bare(|_| {}).await;
    b.add_user("alice").await;
    let user = b.login("alice").await;
    let auth = bearer(&user.token);
    for query in [
        "wait=31",
        "wait=abc",
        "wait=-1",
        "wait=",
        "wait=1.5",
        "wait=18446744073709551616",
        "wait=0&wait=31",
    ] {
        for token in [Some(auth.as_str()), None] {
            let a = b
                .call("GET", &format!("/v1/inbox?{query}"), token, Vec::new())
                .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(a.refusal(), RefusalReason::Malformed, "{query}");
        }
    }
    for uri in ["/v1/inbox", "/v1/inbox?wait=0", "/v1/inbox?other=1&wait=0"] {
        let a = b.call("GET", uri, Some(&auth), Vec::new()).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        let inbox = Inbox::decode(&a.body).unwrap();
        assert!(inbox.messages.is_empty() && !inbox.more);
    }
    let a = b.call("GET", "/v1/inbox?wait=30", None, Vec::new()).await;
    assert_eq!(a.refusal(), RefusalReason::SessionEnded);
}

/// Bodies over the configured limit are 413 before any handler runs (nothing is stored); a
/// route that takes one short message (a login step, a password change, an acknowledgement)
/// has that message's longest encoding as its limit; `/v1/messages` has the sealed message's
/// own, larger limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_are_413_before_anything_is_stored() {
    let b = bare(|c| c.max_body_bytes = 1024).await;
    b.add_user("alice").await;
    b.add_user("bob").await;
    let ttl = b.cfg.login.hello_ttl_secs + 1;
    // A good start is stored as a login in flight (the check below can see one) …
    let hello = ClientStart::new(
        &mut OsRng,
        "alice",
        PASSWORD.as_bytes(),
        vec![Profile::Pure],
    )
    .unwrap();
    let good = hello.request_bytes().to_vec();
    assert_eq!(
        b.post("/v1/login/start", good.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(b.pending_after(ttl).await, 1);
    // … one over the limit is not.
    let mut over = good;
    over.resize(1025, 0);
    for step in ["start", "finish", "response"] {
        let a = b.post(&format!("/v1/login/{step}"), over.clone()).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{step}");
    }
    assert_eq!(b.pending_after(ttl).await, 0);
    // Each short message's own limit, below the general one: one byte over is 413, at it
    // the body is read (and refused as malformed).
    for (path, max) in [
        ("/v1/login/start", StartRequest::MAX_LEN),
        ("/v1/login/finish", FinishRequest::MAX_LEN),
        ("/v1/login/response", ResponseRequest::MAX_LEN),
        ("/v1/passwd/start", PasswdStart::MAX_LEN),
        ("/v1/inbox/ack", InboxAck::MAX_LEN),
    ] {
        let over = b.post(path, vec![0xff; max + 1]).await;
        assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let at = b.post(path, vec![0xff; max]).await;
        assert_ne!(at.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    let a = b
        .post("/v1/login/start", vec![0xff; StartRequest::MAX_LEN])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    let mut alice = b.login("alice").await;
    let a = b
        .send_raw(&alice, vec![0xff; SealedMessage::MAX_LEN + 1])
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let a = b.send_raw(&alice, vec![0xff; 4096]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.refusal(), RefusalReason::Malformed);
    let store = b.host.store();
    assert!(store.audit_page(None, 10).await.unwrap().is_empty());
    // A real message over the general limit is accepted, as the first of the session.
    let sealed = b.seal(&mut alice, "bob", &[0x5a; 4096]).await;
    let bytes = sealed.encode().unwrap();
    assert!(bytes.len() > 1024);
    let a = b.send_raw(&alice, bytes).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{:?}",
        MessageRefused::decode(&a.body)
    );
    assert_eq!(MessageAccepted::decode(&a.body).unwrap().seq, 1);
    assert_eq!(store.audit_page(None, 10).await.unwrap().len(), 1);
}

/// Message refusals: each reason class has its status, the body is always the encoded
/// `MessageRefused`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_refusals_map_to_statuses() {
    let b = bare(|_| {}).await;
    b.add_user("alice").await;
    b.add_user("bob").await;
    let mut alice = b.login("alice").await;
    let first = b.seal(&mut alice, "bob", b"one").await.encode().unwrap();
    assert_eq!(
        b.send_raw(&alice, first.clone()).await.status,
        StatusCode::OK
    );
    let a = b.send_raw(&alice, first).await;
    assert_eq!(
        (a.status, a.refusal()),
        (StatusCode::CONFLICT, RefusalReason::Replayed)
    );
    assert_eq!(a.content_type, "application/octet-stream");
    let mut altered = b.seal(&mut alice, "bob", b"two").await;
    let last = altered.ciphertext.len() - 1;
    altered.ciphertext[last] ^= 1;
    let a = b.send_raw(&alice, altered.encode().unwrap()).await;
    assert_eq!(
        (a.status, a.refusal()),
        (StatusCode::UNPROCESSABLE_ENTITY, RefusalReason::Altered)
    );
    let a = b.send_raw(&alice, vec![1, 2, 3]).await;
    assert_eq!(
        (a.status, a.refusal()),
        (StatusCode::BAD_REQUEST, RefusalReason::Malformed)
    );
    let a = b
        .call(
            "POST",
            "/v1/logout",
            Some(&bearer(&alice.token)),
            Vec::new(),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let third = b.seal(&mut alice, "bob", b"three").await.encode().unwrap();
    let a = b.send_raw(&alice, third).await;
    assert_eq!(
        (a.status, a.refusal()),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
}
