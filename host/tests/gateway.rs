//! The gateway through a real host over TLS: sealed exchanges to a real upstream (an axum
//! app that counts what reaches it and checks every assertion with `jsonwebtoken` against
//! the host's JWKS), every refusal that must never reach it, the audit records of both
//! sides, forward-auth (behind real proxies: `proxies.rs`), and the start-up probe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::net::SocketAddr;

use common::upstream::{upstream, verify};
use common::{Conn, TestHost, login, start};
use hyper::StatusCode;
use kasane_abi::Direction;
use kasane_protocol::gateway::{GatewayRequest, GatewayResponse, SealedExchange};
use kasane_protocol::wire::{ChallengeBundle, Message, MessageRefused, RefusalReason};
use kasane_protocol::{Expect, Session};

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
    /// Seals a `GET` of each of `targets` and checks the host refuses it as malformed.
    async fn refused_as_malformed(&mut self, th: &TestHost, targets: &[&str]) {
        for target in targets {
            let sealed = self.seal(th, &get(target, &[])).await;
            assert_eq!(
                refusal(&self.post(&sealed).await).1,
                RefusalReason::Malformed,
                "{target}"
            );
        }
    }

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

/// A gateway host with bodies up to 16 KiB and a daily budget of the largest request with
/// its room, plus `slack` bytes.
async fn budgeted_gateway(up: SocketAddr, slack: u64) -> TestHost {
    start(|c| {
        c.gateway.upstream = format!("http://{up}");
        c.gateway.max_body_bytes = 16 * 1024;
        c.messages.max_user_bytes_per_day = c.gateway.request_and_room() + slack;
    })
    .await
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
        ("x-forwarded-for", "10.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=10.6.6.6"),
        ("x-real-ip", "10.6.6.6"),
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
    // The client's forwarding headers are dropped; the host's own name the client.
    assert_eq!(
        seen[0].forwarding,
        ["x-forwarded-for: 127.0.0.1", "x-forwarded-proto: https"]
    );
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
    // An answer with more header fields than hyper's client reads by default (100).
    let sealed = a.seal(&th, &get("/many", &[])).await;
    let r = a.answer(&th, &sealed).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"many"[..]));
    let many = r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-h"))
        .count();
    assert_eq!(many, 110);
}

/// Under a prefix other than `/`, also what some service would read as a separator (a
/// backslash, a decoded `%2F`) is refused; what lies under the prefix is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paths_that_could_leave_a_prefix_are_refused() {
    let (up, log) = upstream().await;
    let th = start(|c| {
        c.gateway.upstream = format!("http://{up}");
        c.gateway.path_prefix = "/api/".into();
    })
    .await;
    let mut a = alice(&th).await;
    let escapes = [
        "/api/..\\admin",
        "/api/x%2F..%2F..%2Fadmin",
        "/api/x%5C..",
        "/other",
    ];
    a.refused_as_malformed(&th, &escapes).await;
    let ok = a.seal(&th, &get("/api/page", &[])).await;
    assert_eq!(a.answer(&th, &ok).await.status, 200);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
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
    // Dot segments, also once a service decodes the path (nginx decodes `%2F`, Tomcat drops
    // `;` parameters): refused before they are forwarded, even under the prefix `/`.
    let escapes = [
        "/a/../b",
        "/a/x%2F..%2F..%2Fadmin",
        "/a/..;/admin",
        "/a/..%3b/admin",
        "/a/%252e%252e/admin",
    ];
    a.refused_as_malformed(&th, &escapes).await;
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

/// `messages.max_user_bytes_per_day` counts gateway exchanges: both records count, each
/// request passes only with room held for the largest response (`[gateway] max_body_bytes`
/// and a head), and the first request that would pass the budget is refused `429
/// budget-spent` and never reaches the service. The test predicts which one from the first
/// exchange's two records: without the responses counted, or without the room held, a later
/// one would be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_past_the_user_s_daily_budget_never_reaches_the_upstream() {
    let (up, log) = upstream().await;
    let th = budgeted_gateway(up, 100_000).await;
    let mut a = alice(&th).await;
    let mut echo = get("/echo", &[]);
    echo.method = "POST".into();
    echo.body = vec![b'e'; 16_000];
    let first = a.seal(&th, &echo).await;
    assert_eq!(a.answer(&th, &first).await.body.len(), 16_000);
    let pool = sqlx::SqlitePool::connect(&th.cfg.database_url)
        .await
        .unwrap();
    let lengths: Vec<i64> =
        sqlx::query_scalar("SELECT LENGTH(payload) FROM audit_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let (request, exchange) = (lengths[0] as u64, (lengths[0] + lengths[1]) as u64);
    let (room, budget) = (
        th.cfg.gateway.response_reserve(),
        th.cfg.messages.max_user_bytes_per_day,
    );
    let mut expected = 0;
    while expected * exchange + request + room <= budget {
        expected += 1;
    }
    let mut answered = 1;
    let refused = loop {
        let sealed = a.seal(&th, &echo).await;
        let (status, body) = a.post(&sealed).await;
        if status != StatusCode::OK {
            break refusal(&(status, body));
        }
        answered += 1;
        assert!(
            answered <= expected,
            "exchange {answered} passed the budget"
        );
    };
    assert_eq!(
        refused,
        (StatusCode::TOO_MANY_REQUESTS, RefusalReason::BudgetSpent)
    );
    assert_eq!(
        (answered, log.lock().unwrap().len()),
        (expected, expected as usize)
    );
    // The count is what the audit log holds: no room is left counted.
    let audited: i64 = sqlx::query_scalar("SELECT SUM(LENGTH(payload)) FROM audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    let counted: i64 = sqlx::query_scalar("SELECT bytes FROM user_usage")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, audited);
}

/// Room held for a response is given back when its request's handling ends without one: a
/// client that hangs up while the service works leaves the user's budget as the records
/// written say, not a response's room short (for the rest of the day, had the store held it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_held_for_an_abandoned_request_is_given_back() {
    let (up, _log) = upstream().await;
    // Room for two requests in flight, not three: with both rooms never given back, the
    // request after them is refused for good.
    let th = budgeted_gateway(up, 20_000).await;
    let mut a = alice(&th).await;
    for i in 0..2 {
        // Sent to a service that takes a minute; the client gives up and hangs up.
        let sealed = a.seal(&th, &get(&format!("/slow/{i}"), &[])).await;
        let body = sealed.encode().unwrap();
        let mut conn = th.connect().await;
        let wait = std::time::Duration::from_millis(500);
        let gave_up = tokio::time::timeout(
            wait,
            conn.request("POST", "/v1/gateway", body, Some(a.token)),
        );
        assert!(gave_up.await.is_err(), "the slow service answered");
        drop(conn);
    }
    // Each abandoned request's room comes back once the host notices the hang-up (not when
    // the service answers, a minute later); then one more request fits.
    let mut tries = 0;
    loop {
        let sealed = a.seal(&th, &get("/after", &[])).await;
        let (status, body) = a.post(&sealed).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(refusal(&(status, body)).1, RefusalReason::BudgetSpent);
        tries += 1;
        assert!(tries < 50, "the room was never given back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
