//! The gateway through a real host over TLS: sealed exchanges to a real upstream (an axum
//! app that counts what reaches it and checks every assertion with `jsonwebtoken` against
//! the host's JWKS), every refusal that must never reach it, the audit records of both
//! sides, forward-auth (also behind Debian's nginx with `auth_request`), and the start-up
//! probe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use common::{Conn, TestHost, login, start};
use hyper::StatusCode;
use kasane_abi::Direction;
use kasane_protocol::gateway::{GatewayRequest, GatewayResponse, SealedExchange};
use kasane_protocol::wire::{ChallengeBundle, Message, MessageRefused, RefusalReason};
use kasane_protocol::{Expect, Session};

/// What reached the upstream: method, target, the `X-Kasane-User` values, the assertion.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    users: Vec<String>,
    assertion: Option<String>,
    body_len: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The upstream: echoes bodies, answers `GET /page` with a fixed page; records each request.
async fn upstream() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let keep = log.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                if method != Method::HEAD || uri.path() != "/" {
                    keep.lock().unwrap().push(Seen {
                        target: uri.to_string(),
                        users: headers
                            .get_all("x-kasane-user")
                            .iter()
                            .map(|v| v.to_str().unwrap().to_owned())
                            .collect(),
                        assertion: headers
                            .get("x-kasane-assertion")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body_len: body.len(),
                    });
                }
                if method == Method::POST {
                    (StatusCode::CREATED, [("x-upstream", "yes")], body.to_vec())
                } else {
                    (StatusCode::OK, [("x-upstream", "yes")], b"page".to_vec())
                }
            }
        },
    );
    let app = app.layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

/// A protocol-level client of one session: it seals exchanges itself, so a test can replay,
/// hold back or alter them.
struct Alice {
    conn: Conn,
    session: Session,
    token: [u8; 32],
    bundle: ChallengeBundle,
}

async fn alice(th: &TestHost) -> Alice {
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    let (session, token, bundle) = login(th, &mut conn, "alice").await;
    Alice {
        conn,
        session,
        token,
        bundle,
    }
}

fn get(target: &str, headers: &[(&str, &str)]) -> GatewayRequest {
    GatewayRequest {
        method: "GET".into(),
        target: target.into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: Vec::new(),
    }
}

impl Alice {
    async fn derive(&mut self, th: &TestHost, input: kasane_abi::DeriveInputBuf) -> Vec<u8> {
        let transform = th.transform(&mut self.conn, &self.bundle).await;
        // A wasi transform blocks on its own runtime: never on an async worker.
        tokio::task::spawn_blocking(move || {
            let out = kasane_protocol::with_derive_input(&input, |v| transform.derive(v));
            out.unwrap().unwrap().key.as_bytes().to_vec()
        })
        .await
        .unwrap()
    }

    async fn seal(&mut self, th: &TestHost, r: &GatewayRequest) -> SealedExchange {
        let (seq, input) = self.session.prepare_seal().unwrap();
        let t = self.derive(th, input).await;
        let plain = r.encode().unwrap();
        self.session.seal_exchange(seq, &t, &plain).unwrap()
    }

    async fn post(&mut self, sealed: &SealedExchange) -> (StatusCode, Vec<u8>) {
        let body = sealed.encode().unwrap();
        self.conn
            .request("POST", "/v1/gateway", body, Some(self.token))
            .await
    }

    /// Posts `sealed` and opens the answer as its response.
    async fn answer(&mut self, th: &TestHost, sealed: &SealedExchange) -> GatewayResponse {
        let (status, body) = self.post(sealed).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{:?}",
            MessageRefused::decode(&body)
        );
        let answer = SealedExchange::decode(&body).unwrap();
        let input = self
            .session
            .exchange_input(Direction::HostToClient, sealed.seq);
        let t = self.derive(th, input).await;
        let plain = self
            .session
            .open_exchange(&answer, &t, Expect::Answer(sealed.seq))
            .unwrap();
        GatewayResponse::decode(&plain).unwrap()
    }
}

fn refusal(answer: &(StatusCode, Vec<u8>)) -> (StatusCode, RefusalReason) {
    (answer.0, MessageRefused::decode(&answer.1).unwrap().reason)
}

/// Verifies `jwt` with `jsonwebtoken` against the host's JWKS (`GET /.well-known/jwks.json`).
async fn verify(conn: &mut Conn, jwt: &str, audience: &str) -> serde_json::Value {
    let (status, jwks) = conn.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks).unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&[audience]);
    v.set_issuer(&["kasane-host"]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
        .unwrap()
        .claims
}

async fn gateway_host(up: SocketAddr) -> TestHost {
    start(|c| c.gateway.upstream = format!("http://{up}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchanges_reach_the_upstream_as_alice_with_a_verifiable_assertion() {
    let (up, log) = upstream().await;
    let th = gateway_host(up).await;
    let mut a = alice(&th).await;
    let forged = [
        ("x-kasane-user", "mallory"),
        ("x-kasane-assertion", "a.b.c"),
    ];
    let sealed = a.seal(&th, &get("/page?x=1", &forged)).await;
    let r = a.answer(&th, &sealed).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"page"[..]));
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "x-upstream" && v == b"yes")
    );
    for n in [0usize, 4096, 4 << 20] {
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let post = GatewayRequest {
            method: "POST".into(),
            target: "/echo".into(),
            headers: vec![],
            body: body.clone(),
        };
        let sealed = a.seal(&th, &post).await;
        let r = a.answer(&th, &sealed).await;
        assert_eq!(r.status, 201);
        assert!(r.body == body, "POST {n}: other bytes");
    }
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].target, "/page?x=1");
    assert_eq!(seen[3].body_len, 4 << 20);
    for s in &seen {
        assert_eq!(
            s.users,
            ["alice"],
            "a forged X-Kasane-User reached the upstream"
        );
    }
    let claims = verify(
        &mut a.conn,
        seen[0].assertion.as_ref().unwrap(),
        &format!("http://{up}"),
    )
    .await;
    assert_eq!(claims["sub"], "alice");
    let want = kasane_host::gateway::request_hash("GET", "/page?x=1", b"");
    assert_eq!(claims["kasane_request_sha256"], want);
    // Request and response are both in the audit log, and the chain verifies.
    let report = kasane_host::audit::verify(th.host.store().as_ref(), &th.host_key())
        .await
        .unwrap();
    assert_eq!(report.records, 8, "{report:?}");
    // Counted by the upstream's status, timed.
    let metrics = th.host.metrics().render();
    assert!(
        metrics.contains("kasane_gateway_requests_total{status=\"200\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kasane_gateway_requests_total{status=\"201\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kasane_gateway_upstream_seconds_count 4\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_exchanges_never_reach_the_upstream() {
    let (up, log) = upstream().await;
    let th = gateway_host(up).await;
    let mut a = alice(&th).await;
    let good = a.seal(&th, &get("/one", &[])).await;
    a.answer(&th, &good).await;
    assert_eq!(log.lock().unwrap().len(), 1);
    // Replayed.
    assert_eq!(
        refusal(&a.post(&good).await),
        (StatusCode::CONFLICT, RefusalReason::Replayed)
    );
    // Re-ordered beyond the window: a number the window has passed.
    let old = a.seal(&th, &get("/old", &[])).await;
    let mut ahead = None;
    for _ in 0..kasane_protocol::window::WINDOW {
        ahead = Some(a.seal(&th, &get("/ahead", &[])).await);
    }
    a.answer(&th, &ahead.unwrap()).await;
    assert_eq!(
        refusal(&a.post(&old).await),
        (StatusCode::CONFLICT, RefusalReason::Reordered)
    );
    // Altered on the way (a TLS-terminating proxy): ciphertext, number, session.
    let fresh = a.seal(&th, &get("/fresh", &[])).await;
    let mut c = fresh.clone();
    c.ciphertext[5] ^= 1;
    let mut s = fresh.clone();
    s.seq += 1 << 8;
    for bad in [c, s] {
        assert_eq!(
            refusal(&a.post(&bad).await),
            (StatusCode::UNPROCESSABLE_ENTITY, RefusalReason::Altered)
        );
    }
    let mut w = fresh.clone();
    w.session_id[0] ^= 1;
    assert_eq!(refusal(&a.post(&w).await).1, RefusalReason::WrongSession);
    // Outside [gateway] methods or path prefix.
    let mut put = get("/x", &[]);
    put.method = "TRACE".into();
    let sealed = a.seal(&th, &put).await;
    assert_eq!(refusal(&a.post(&sealed).await).1, RefusalReason::Malformed);
    let dots = a.seal(&th, &get("/a/../b", &[])).await;
    assert_eq!(refusal(&a.post(&dots).await).1, RefusalReason::Malformed);
    // Without a session, and after logout.
    let (status, _) = a
        .conn
        .request("POST", "/v1/gateway", fresh.encode().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = a
        .conn
        .request("POST", "/v1/logout", vec![], Some(a.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        refusal(&a.post(&fresh).await),
        (StatusCode::UNAUTHORIZED, RefusalReason::SessionEnded)
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "only /one and the last /ahead: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_auth_answers_the_user_and_an_assertion_for_a_live_token_only() {
    let th = start(|c| c.gateway.audience = "https://app.example".into()).await;
    let mut a = alice(&th).await;
    let bearer = format!("Bearer {}", hex::encode(a.token));
    let cookie = format!("theme=dark; kasane_session={}", hex::encode(a.token));
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("cookie", cookie.as_str()),
    ] {
        let (status, headers) = a.conn.head_request("/v1/auth/check", name, value).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers.get("x-kasane-user").unwrap(), "alice");
        let jwt = headers
            .get("x-kasane-assertion")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let claims = verify(&mut a.conn, &jwt, "https://app.example").await;
        assert!(claims.get("kasane_request_sha256").is_none());
    }
    let wrong = format!("Bearer {}", hex::encode([7u8; 32]));
    for (name, value) in [("authorization", wrong.as_str()), ("x-none", "1")] {
        let (status, _) = a.conn.head_request("/v1/auth/check", name, value).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
    }
    let (status, _) = a
        .conn
        .request("POST", "/v1/logout", vec![], Some(a.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = a
        .conn
        .head_request("/v1/auth/check", "authorization", &bearer)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an ended session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_to_start_with_an_upstream_that_does_not_answer_http() {
    // Nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap();
    drop(free);
    // Something that answers, but not HTTP.
    let junk = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let junk_addr = junk.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = junk.accept().await {
            use tokio::io::AsyncWriteExt as _;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        }
    });
    for addr in [closed, junk_addr] {
        let err = kasane_host::gateway::probe(&format!("http://{addr}"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, kasane_host::HostError::GatewayUpstream { .. }),
            "{err}"
        );
    }
    let mut cfg = kasane_host::config::Config::default();
    cfg.gateway.upstream = "https://example.org".into();
    assert!(
        cfg.check().is_err(),
        "https upstreams are refused by the configuration check"
    );
}

/// Debian's nginx (`/usr/sbin/nginx`), or `None` (and why) outside CI.
fn nginx() -> Option<&'static str> {
    let path = "/usr/sbin/nginx";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{path} is missing (apt-get install nginx-light)"
    );
    eprintln!("skipping: {path} is missing (apt-get install nginx-light)");
    None
}

/// An nginx configuration: a page under `auth_request` to the host's `/v1/auth/check` over
/// TLS (verifying the host's certificate), the user passed on to the page's headers.
fn nginx_conf(dir: &std::path::Path, port: u16, th: &TestHost) -> String {
    let d = dir.display();
    let cert = th.cfg.tls_cert.display();
    let host = th.addr;
    format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_kasane;
      auth_request_set $kasane_user $upstream_http_x_kasane_user;
      add_header X-User $kasane_user;
      root {d}/www;
    }}
    location = /_kasane {{
      internal;
      proxy_pass https://{host}/v1/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {cert};
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
    }}
  }}
}}
"
    )
}

/// `curl` of `url` with extra `args`: the status and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_auth_request_serves_the_page_only_for_a_live_session() {
    let Some(nginx) = nginx() else { return };
    let th = start(|_| {}).await;
    let mut a = alice(&th).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "the page\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port, &th)).unwrap();
    let mut child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let bearer = format!("Authorization: Bearer {}", hex::encode(a.token));
    let cookie = format!("Cookie: kasane_session={}", hex::encode(a.token));
    let wrong = format!("Authorization: Bearer {}", hex::encode([9u8; 32]));
    let results = tokio::task::spawn_blocking(move || {
        [
            curl(&url, &["-H", &bearer, "-D", "-"]),
            curl(&url, &["-H", &cookie]),
            curl(&url, &[]),
            curl(&url, &["-H", &wrong]),
        ]
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(results[0].0, 200, "{log}");
    assert!(results[0].1.contains("the page"), "{}", results[0].1);
    assert!(
        results[0].1.to_ascii_lowercase().contains("x-user: alice"),
        "{}",
        results[0].1
    );
    assert_eq!((results[1].0, results[1].1.as_str()), (200, "the page\n"));
    assert_eq!(results[2].0, 401);
    assert_eq!(results[3].0, 401);
    let (status, _) = a
        .conn
        .request("POST", "/v1/logout", vec![], Some(a.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_forward_auth_checks_lock_their_source_only() {
    let th = start(|c| {
        c.throttle.free_failures = 2;
        c.throttle.ipv4_prefix = 32;
    })
    .await;
    let mut a = alice(&th).await;
    let bearer = format!("Bearer {}", hex::encode(a.token));
    let guesser = "127.0.0.2".parse().unwrap();
    let mut g = common::connect_from(th.addr, &th.cert_der, guesser).await;
    for k in 0..4u8 {
        let wrong = format!("Bearer {}", hex::encode([k; 32]));
        let (status, _) = g
            .head_request("/v1/auth/check", "authorization", &wrong)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The guessing address is locked: even a live token is refused from there …
    let (status, _) = g
        .head_request("/v1/auth/check", "authorization", &bearer)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // … and nowhere else.
    let (status, headers) = a
        .conn
        .head_request("/v1/auth/check", "authorization", &bearer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("x-kasane-user").unwrap(), "alice");
}
