//! The host serving itself: [`spawn`] (or [`run`] on a bound listener) serves a [`Host`]
//! over TLS 1.3 with housekeeping beside it, [`Running::reload`] of the certificate and the
//! registry (`SIGHUP`) and graceful shutdown; [`app`] is the router,
//! [`serve_tls`] the transport under both.
//!
//! | method, path | body in → out |
//! |---|---|
//! | `POST /v1/login/start` | `StartRequest` → `StartResponse` (OPAQUE KE1 → KE2) |
//! | `POST /v1/login/finish` | `FinishRequest` → `SealedBundle` (OPAQUE KE3 → challenges) |
//! | `POST /v1/login/response` | `ResponseRequest` → `ResponseAccept` |
//! | `GET /v1/session` | bearer token → `200` (user name) or the uniform failure |
//! | `POST /v1/logout` | bearer token → `204` or the uniform failure |
//! | `POST /v1/messages` | bearer token, `SealedMessage` → `MessageAccepted` or `MessageRefused` |
//! | `GET /v1/inbox?wait=N` | bearer token → `Inbox` (long-poll up to `N` ≤ 30 seconds) |
//! | `POST /v1/inbox/ack` | bearer token, `InboxAck` → `204` |
//! | `POST /v1/gateway` | bearer token, `SealedExchange` (a sealed HTTP request) → `SealedExchange` (its sealed response) or `MessageRefused` |
//! | `GET /v1/auth/check` | bearer token or `kasane_session` cookie → `200` with `X-Kasane-User`, `X-Kasane-Assertion`, else `401` |
//! | `GET /.well-known/jwks.json` | the JWK set that verifies `X-Kasane-Assertion` |
//! | `POST /v1/passwd/start` | bearer token, `PasswdStart` → `PasswdChallenge` or `MessageRefused` |
//! | `POST /v1/passwd/finish` | bearer token, `PasswdFinish` (MAC by the session) → `204` or `MessageRefused` |
//! | `GET /v1/registry/{path}` | a repository file (`root.json`, `snapshot.json`, …) |
//! | `GET /v1/modules/{sha256}.wasm` | a module's bytes |
//! | `GET /web/`, `GET /web/{file}` | the browser client (`[web] enabled`; docs/WEB.md) |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | bearer: the metrics token (`keys/metrics.token`) → Prometheus text, else `401` |
//! | `GET /readyz` | `200 ready`, or `503` and why in one line (`store unreachable`, `registry: targets expired at <time>`, …) |
//!
//! Every failed login step is `401` with the two-byte `LoginFailure` body; a body that is
//! not a message of the expected kind is `400 malformed request`; one over the configured
//! size is `413`. [`serve_tls`] accepts TLS 1.3 only (ALPN `h2` and `http/1.1`) and hands every
//! request its connection's [`ConnInfo`]: the peer address (throttling) and the RFC 9266
//! `EXPORTER-Channel-Binding` value (32 bytes) that enters the transcript.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kasane_protocol::wire::{
    FinishRequest, Inbox, InboxAck, LoginFailure, Message, MessageRefused, PasswdFinish,
    PasswdStart, RefusalReason, ResponseRequest, SealedMessage, StartRequest,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::HostError;
use crate::host::Host;
use crate::login::LoginError;
use crate::messages::{MessageSession, PerSession};
use crate::tls::CertResolver;

pub use crate::transport::{ConnInfo, EXPORTER_LABEL, serve_tls};

type Conn = Option<Extension<ConnInfo>>;

/// The client's address: the peer's, or — when the peer is one of `http.trusted_proxies` —
/// the one its `X-Forwarded-For` names ([`forwarded_client`]).
fn source(host: &Host, conn: &Conn, headers: &HeaderMap) -> IpAddr {
    let peer = conn
        .as_ref()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.peer.ip());
    let is_trusted = |ip: &IpAddr| host.trusted_proxies.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    forwarded_client(headers, is_trusted).unwrap_or(peer)
}

/// The client a trusted proxy names in `X-Forwarded-For` (all its lines, in order, as one
/// list). Each proxy appends the address it was connected from, so the list is read from
/// the right: an entry is believed while every entry right of it is a trusted proxy, and the
/// first that is not one is the client (the leftmost, if all are). What lies left of it is the
/// client's own text and is never read: junk a client sent there (which nginx's
/// `$proxy_add_x_forwarded_for` passes on, its address appended) cannot make its failures
/// count against the proxy's address. An IPv4-mapped entry is taken as IPv4
/// ([`crate::transport::canonical`]). `None` when an entry a trusted proxy wrote is not an
/// address, or there is none.
fn forwarded_client(headers: &HeaderMap, is_trusted: impl Fn(&IpAddr) -> bool) -> Option<IpAddr> {
    let lines = headers.get_all("x-forwarded-for").iter().rev();
    let hops = lines.flat_map(|l| l.as_bytes().rsplit(|b| *b == b','));
    let mut believed = None;
    for hop in hops.map(<[u8]>::trim_ascii).filter(|h| !h.is_empty()) {
        let ip = std::str::from_utf8(hop).ok()?.parse::<IpAddr>().ok()?;
        let ip = ip.to_canonical();
        if !is_trusted(&ip) {
            return Some(ip);
        }
        believed = Some(ip);
    }
    believed
}

fn octets(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// The uniform failure answer: `401` and the encoded `LoginFailure`.
#[must_use]
pub fn failure() -> Response {
    let body = LoginFailure
        .encode()
        .unwrap_or_else(|_| vec![kasane_protocol::wire::PROTOCOL_VERSION, 7]);
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response()
}

fn answer(host: &Host, step: &str, r: Result<Vec<u8>, LoginError>) -> Response {
    match r {
        Ok(b) => octets(b),
        Err(LoginError::Malformed(e)) => {
            tracing::debug!(step, error = %e, "malformed request");
            (StatusCode::BAD_REQUEST, "malformed request\n").into_response()
        }
        Err(LoginError::Failed(why)) => {
            tracing::info!(step, why = %why, "login step failed");
            host.count_failure();
            failure()
        }
        Err(LoginError::Internal(e)) => {
            tracing::error!(step, error = %e, cause = ?std::error::Error::source(&e), "host error during login");
            host.count_failure();
            failure()
        }
    }
}

async fn start(
    State(host): State<Arc<Host>>,
    conn: Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cb = conn.as_ref().and_then(|c| c.0.channel_binding);
    let r = host
        .start(&body, source(&host, &conn, &headers), cb.as_ref())
        .await;
    answer(&host, "start", r)
}

async fn finish(
    State(host): State<Arc<Host>>,
    conn: Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = host.finish(&body, source(&host, &conn, &headers)).await;
    answer(&host, "finish", r)
}

async fn response(
    State(host): State<Arc<Host>>,
    conn: Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = host.response(&body, source(&host, &conn, &headers)).await;
    answer(&host, "response", r)
}

/// The bearer token of `Authorization: Bearer <64 hex>`.
fn bearer(headers: &HeaderMap) -> Option<[u8; 32]> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let hex_token = v.strip_prefix("Bearer ")?.trim();
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_token, &mut out).ok()?;
    Some(out)
}

async fn session(State(host): State<Arc<Host>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return failure();
    };
    match host.session(&token).await {
        Ok(Some(s)) => (StatusCode::OK, s.user).into_response(),
        Ok(None) => failure(),
        Err(e) => {
            tracing::error!(error = %e, "session lookup");
            failure()
        }
    }
}

async fn logout(State(host): State<Arc<Host>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return failure();
    };
    match host.logout(&token).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => failure(),
        Err(e) => {
            tracing::error!(error = %e, "logout");
            failure()
        }
    }
}

/// The HTTP status of a refusal (the body is always the encoded `MessageRefused`).
#[must_use]
pub fn refusal_status(reason: RefusalReason) -> StatusCode {
    match reason {
        RefusalReason::Malformed => StatusCode::BAD_REQUEST,
        RefusalReason::SessionEnded => StatusCode::UNAUTHORIZED,
        RefusalReason::Replayed | RefusalReason::Reordered => StatusCode::CONFLICT,
        RefusalReason::WrongSession | RefusalReason::WrongDirection | RefusalReason::Altered => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RefusalReason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RefusalReason::QueueFull => StatusCode::INSUFFICIENT_STORAGE,
        RefusalReason::BudgetSpent => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn refused(reason: RefusalReason) -> Response {
    let body = MessageRefused { reason }
        .encode()
        .unwrap_or_else(|_| vec![kasane_protocol::wire::PROTOCOL_VERSION, 10, 8]);
    (
        refusal_status(reason),
        [(header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response()
}

/// `POST /v1/messages`: the bearer token's session first, the body only then (at most
/// [`SealedMessage::MAX_LEN`]): a client without a live session never makes the host buffer a
/// body.
async fn messages(State(host): State<Arc<Host>>, headers: HeaderMap, body: Body) -> Response {
    let (session, _sending, body) =
        match session_then_body(&host, &headers, body, SealedMessage::MAX_LEN).await {
            Ok(x) => x,
            Err(r) => return refused(r),
        };
    match host.accept_in_session(session, &body).await {
        Ok(a) => match a.encode() {
            Ok(b) => octets(b),
            Err(_) => refused(RefusalReason::Unavailable),
        },
        Err(r) => {
            tracing::debug!(reason = %r, "message refused");
            refused(r)
        }
    }
}

/// The bearer's live session, its count of bodies being read (taken before the body is
/// read: a session's bodies in flight are bounded), and the body (at most `limit` bytes).
async fn session_then_body<'h>(
    host: &'h Host,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(MessageSession, PerSession<'h>, Bytes), RefusalReason> {
    let session = host.message_session(bearer(headers).as_ref()).await?;
    let sending = host.start_send(&session)?;
    let body = read_body(body, limit).await?;
    Ok((session, sending, body))
}

/// Reads a request body of at most `limit` bytes; `TooLarge` beyond it, `Malformed` when it
/// breaks off.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, RefusalReason> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        tracing::debug!(error = %e, "body not read");
        if too_large {
            RefusalReason::TooLarge
        } else {
            RefusalReason::Malformed
        }
    })
}

/// `POST /v1/gateway`: like `/v1/messages`, the session before the body, which may be as
/// large as `[gateway] max_body_bytes` and a request head.
async fn gateway(
    State(host): State<Arc<Host>>,
    conn: Conn,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let client = source(&host, &conn, &headers);
    let limit = host.config().gateway.max_body_bytes
        + 2 * kasane_protocol::gateway::MAX_GATEWAY_HEAD
        + 2048;
    let (session, _sending, body) = match session_then_body(&host, &headers, body, limit).await {
        Ok(x) => x,
        Err(r) => return refused(r),
    };
    match host.gateway_exchange(session, &body, client).await {
        Ok(b) => octets(b),
        Err(r) => {
            tracing::debug!(reason = %r, "gateway request refused");
            refused(r)
        }
    }
}

/// The session token of a forward-auth request: the bearer, else the `kasane_session`
/// cookie (64 hex digits).
fn token_of(headers: &HeaderMap) -> Option<[u8; 32]> {
    bearer(headers).or_else(|| {
        let cookies = headers.get_all(header::COOKIE);
        cookies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("kasane_session="))
            .and_then(|hex_token| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hex_token.trim(), &mut out).ok()?;
                Some(out)
            })
    })
}

/// `GET /v1/auth/check` (forward-auth for nginx `auth_request`, Caddy `forward_auth`,
/// Traefik ForwardAuth, Envoy ext_authz): `200` with `X-Kasane-User` and
/// `X-Kasane-Assertion` for a live session token (bearer or `kasane_session` cookie), else
/// `401`. Gates; seals nothing.
async fn auth_check(State(host): State<Arc<Host>>, conn: Conn, headers: HeaderMap) -> Response {
    let denied = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "",
        )
            .into_response()
    };
    let token = token_of(&headers);
    match host
        .auth_check(token.as_ref(), source(&host, &conn, &headers))
        .await
    {
        Ok((user, jwt)) => match (HeaderValue::from_str(&user), HeaderValue::from_str(&jwt)) {
            (Ok(u), Ok(a)) => (
                StatusCode::OK,
                [("x-kasane-user", u), ("x-kasane-assertion", a)],
                "",
            )
                .into_response(),
            _ => denied(),
        },
        Err(RefusalReason::SessionEnded) => denied(),
        Err(r) => refused(r),
    }
}

/// `GET /.well-known/jwks.json`: the key that verifies `X-Kasane-Assertion`.
async fn jwks(State(host): State<Arc<Host>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], host.jwks()).into_response()
}

/// `wait=N` of the query string (0 if absent); `None` if malformed or above 30.
fn wait_param(query: Option<&str>) -> Option<u64> {
    let mut wait = 0;
    for pair in query.unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("wait=") {
            wait = v.parse::<u64>().ok()?;
        }
    }
    (wait <= crate::messages::MAX_WAIT_SECS).then_some(wait)
}

async fn inbox(
    State(host): State<Arc<Host>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let token = bearer(&headers);
    let Some(wait) = wait_param(uri.query()) else {
        return refused(RefusalReason::Malformed);
    };
    match host.inbox(token.as_ref(), wait).await {
        Ok(inbox) => match Inbox::encode(&inbox) {
            Ok(b) => octets(b),
            Err(e) => {
                tracing::error!(error = %e, "inbox encoding");
                refused(RefusalReason::Unavailable)
            }
        },
        Err(r) => refused(r),
    }
}

async fn passwd_start(State(host): State<Arc<Host>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = bearer(&headers);
    match host.passwd_start(token.as_ref(), &body).await {
        Ok(b) => octets(b),
        Err(r) => refused(r),
    }
}

async fn passwd_finish(State(host): State<Arc<Host>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = bearer(&headers);
    match host.passwd_finish(token.as_ref(), &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn inbox_ack(State(host): State<Arc<Host>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = bearer(&headers);
    match host.ack_inbox(token.as_ref(), &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn registry_file(State(host): State<Arc<Host>>, UrlPath(path): UrlPath<String>) -> Response {
    host.registry().sync(host.now()).await;
    match host.registry().file(&path) {
        Some(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /web/`: the browser client's page, pinned to the registry's first root.
async fn web_page(State(host): State<Arc<Host>>) -> Response {
    if !host.config().web.enabled {
        return crate::web::file("");
    }
    host.registry().sync(host.now()).await;
    crate::web::page(host.registry().file("metadata/1.root.json").as_deref())
}

/// `GET /web/<file>`: one of the page's embedded files.
async fn web_file(State(host): State<Arc<Host>>, UrlPath(file): UrlPath<String>) -> Response {
    if !host.config().web.enabled {
        return crate::web::file("");
    }
    crate::web::file(&file)
}

async fn module_file(State(host): State<Arc<Host>>, UrlPath(file): UrlPath<String>) -> Response {
    let hash = file
        .strip_suffix(".wasm")
        .and_then(|h| kasane_registry::Sha256Hash::from_hex(h).ok());
    host.registry().sync(host.now()).await;
    match hash.map(|h| host.registry().module_bytes(&h, host.now())) {
        Some(Ok(b)) => ([(header::CONTENT_TYPE, "application/wasm")], b).into_response(),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /metrics`, for whoever holds the metrics token (`keys/metrics.token`): counts of
/// failures and locks say too much about guessing in progress to be public.
async fn metrics(State(host): State<Arc<Host>>, headers: HeaderMap) -> Response {
    use subtle::ConstantTimeEq as _;
    let allowed = bearer(&headers).is_some_and(|t| bool::from(t.ct_eq(host.metrics_token())));
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the metrics token (keys/metrics.token) is needed\n",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        host.metrics().render()
            + &host.registry().upkeep().render(host.now())
            + &host.commit_stats().render()
            + &host.certificate_metrics(),
    )
        .into_response()
}

/// `GET /readyz`: `200 ready` when the store answers and the registry is loaded, has an
/// active transform and unexpired metadata; else `503` and the reason in one line.
async fn readyz(State(host): State<Arc<Host>>) -> Response {
    match host.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// The body limit of a route that takes one message of type `M`: the longest encoding of it
/// (a login step is a few hundred bytes), not the host's general limit, so that a request
/// held before any authentication costs the host no more than it must.
fn takes<M: Message>() -> DefaultBodyLimit {
    DefaultBodyLimit::max(M::MAX_LEN)
}

/// The router: login, session, logout, messages, inbox, registry files, modules, `/healthz`,
/// `/readyz`, `/metrics`,
/// with the configured body size limit (smaller where a route takes one short message).
pub fn app(host: Arc<Host>) -> Router {
    let limit = host.config().max_body_bytes;
    Router::new()
        .route(
            "/v1/login/start",
            post(start).layer(takes::<StartRequest>()),
        )
        .route(
            "/v1/login/finish",
            post(finish).layer(takes::<FinishRequest>()),
        )
        .route(
            "/v1/login/response",
            post(response).layer(takes::<ResponseRequest>()),
        )
        .route(
            "/v1/passwd/start",
            post(passwd_start).layer(takes::<PasswdStart>()),
        )
        .route(
            "/v1/passwd/finish",
            post(passwd_finish).layer(takes::<PasswdFinish>()),
        )
        .route("/v1/session", get(session))
        .route("/v1/logout", post(logout))
        // Reads its body itself, after the session (up to the sealed message's own limit).
        .route("/v1/messages", post(messages))
        .route("/v1/gateway", post(gateway))
        .route("/v1/auth/check", get(auth_check))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/inbox", get(inbox))
        .route("/v1/inbox/ack", post(inbox_ack).layer(takes::<InboxAck>()))
        .route("/v1/registry/{*path}", get(registry_file))
        .route("/v1/modules/{file}", get(module_file))
        .route(
            "/web",
            get(|| async { axum::response::Redirect::permanent("/web/") }),
        )
        .route("/web/", get(web_page))
        .route("/web/{file}", get(web_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(host)
}

/// A rustls server configuration: TLS 1.3 only, ring, ALPN `h2` and `http/1.1`, with the
/// PEM certificate chain and key at these paths.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, HostError> {
    reloadable_tls_config(Arc::new(CertResolver::load(cert, key)?))
}

/// [`tls_config`] whose handshakes present what `certs` holds at the time, so that
/// [`CertResolver::reload`] changes the certificate of new connections only.
pub fn reloadable_tls_config(
    certs: Arc<CertResolver>,
) -> Result<Arc<rustls::ServerConfig>, HostError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(certs.provider().clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// How long open connections may take to finish after the shutdown signal, by default.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How a host is served; `Options::default()` is what `kasane-host serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long open connections may take to finish after the shutdown signal.
    pub grace: Duration,
    /// Time between housekeeping passes (one more runs before serving starts).
    pub housekeeping_every: Duration,
    /// Time between reads of the sessions ended by other processes
    /// ([`crate::session_ends`]).
    pub session_ends_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grace: SHUTDOWN_GRACE,
            housekeeping_every: crate::housekeeping::PERIOD,
            session_ends_every: crate::session_ends::PERIOD,
        }
    }
}

/// A host being served by [`spawn`]: where it listens, how to reload its certificate and
/// registry, and how to stop it.
///
/// Dropping it starts the same graceful shutdown as [`Running::shutdown`] (the server task
/// finishes in the background); `shutdown` also waits for the server to end.
#[derive(Debug)]
#[must_use = "dropping a `Running` stops the server"]
pub struct Running {
    addr: SocketAddr,
    host: Arc<Host>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), HostError>>,
}

/// What [`Running::reload`] did, part by part (the host logs it as `reloaded`).
#[derive(Debug)]
#[non_exhaustive]
pub struct Reloaded {
    /// `Ok` when new handshakes present the certificate now in the files (`true` if it is not
    /// the one presented before); else why the one in use stays.
    pub certificate: Result<bool, HostError>,
    /// The number of active transforms of the registry read again; else why the registry
    /// in use stays.
    pub registry: Result<usize, HostError>,
    /// The signing keys read again (after the registry, which they are checked against).
    pub keys: crate::rekey::KeysReloaded,
    /// How many sessions held in memory were forgotten: each is read from the store again
    /// at its next use, so sessions ended by another process (`kasane-host user logout`,
    /// a logout on another replica) are refused at once.
    pub sessions_forgotten: usize,
}

impl Running {
    /// The bound address (the real port when the configuration says port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads the TLS certificate and key, the registry and the signing keys again, and
    /// forgets the sessions held in memory (`SIGHUP`). Each part that loads (and, for a key,
    /// that the registry lists) replaces the one in use; one that does not leaves it. Open
    /// connections keep their certificate, and logins in flight (in the store) go on. A registry in the database is read from
    /// it first.
    pub async fn reload(&self) -> Reloaded {
        self.host.registry().sync(self.host.now()).await;
        // The host's own, read when `spawn` started serving.
        let certificate = self.host.certificates().and_then(|c| c.reload());
        let registry = self.reload_registry();
        Reloaded {
            certificate,
            registry,
            keys: self.host.reload_keys(),
            sessions_forgotten: self.host.sessions.clear(),
        }
    }

    fn reload_registry(&self) -> Result<usize, HostError> {
        let registry = self.host.registry();
        // A repository that no longer loads must not replace the one in use.
        registry.source().load()?;
        registry.invalidate();
        Ok(registry.active(self.host.now())?.len())
    }

    /// Stops accepting connections, lets open ones finish (within the grace period) and
    /// housekeeping end its pass, and returns when the server has stopped.
    pub async fn shutdown(self) -> Result<(), HostError> {
        let Self { stop, task, .. } = self;
        let _ = stop.send(());
        joined(task.await, Ok(()))
    }
}

/// The value of a joined task: its panic goes on unwinding here; a task cancelled by the
/// runtime's own shutdown gives `cancelled`.
fn joined<T>(r: Result<T, tokio::task::JoinError>, cancelled: T) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => cancelled,
        },
    }
}

/// Serves `host` on the address its configuration names (`listen`; port 0 picks a free
/// one, see [`Running::addr`]) in a task of the current runtime, with [`Options::default`].
///
/// The one way to run a host: TLS from the configured certificate, the router of [`app`],
/// housekeeping ([`crate::housekeeping`]: one pass before `spawn` returns, then every
/// minute) and graceful shutdown.
pub async fn spawn(host: Arc<Host>) -> Result<Running, HostError> {
    spawn_with(host, Options::default()).await
}

/// [`spawn`] with these options.
pub async fn spawn_with(host: Arc<Host>, options: Options) -> Result<Running, HostError> {
    let tls = reloadable_tls_config(host.certificates()?)?;
    let listen = host.config().listen.clone();
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| HostError::listen(&listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HostError::listen(&listen, e))?;
    crate::housekeeping::pass(&host).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        // Sent, or the `Running` was dropped.
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve_host(listener, tls, host.clone(), options, shutdown));
    tracing::info!(%addr, "listening (TLS 1.3)");
    Ok(Running {
        addr,
        host,
        stop,
        task,
    })
}

/// Serves `host` on `listener` until `shutdown` completes, then shuts down gracefully
/// (see [`serve_tls`]), with [`Options::default`]. Like [`spawn`], in the caller's task.
pub async fn run(
    listener: TcpListener,
    host: Arc<Host>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HostError> {
    run_with(listener, host, Options::default(), shutdown).await
}

/// [`run`] with these options.
pub async fn run_with(
    listener: TcpListener,
    host: Arc<Host>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HostError> {
    let tls = host_tls(&host)?;
    crate::housekeeping::pass(&host).await;
    serve_host(listener, tls, host, options, shutdown).await
}

fn host_tls(host: &Host) -> Result<Arc<rustls::ServerConfig>, HostError> {
    reloadable_tls_config(host.certificates()?)
}

/// The router of `host` over TLS, with periodic housekeeping and the reader of sessions
/// ended elsewhere beside it until the server has stopped (a pass in progress is finished).
async fn serve_host(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    host: Arc<Host>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HostError> {
    let (stop_keeping, keep_until) = tokio::sync::watch::channel(());
    let until_stopped = move || {
        let mut stopped = keep_until.clone();
        async move {
            let _ = stopped.changed().await;
        }
    };
    let keeper = tokio::spawn(crate::housekeeping::every(
        host.clone(),
        options.housekeeping_every,
        until_stopped(),
    ));
    let watcher = tokio::spawn(crate::session_ends::every(
        host.clone(),
        options.session_ends_every,
        until_stopped(),
    ));
    let http = host.config().http.clone();
    let served = serve_tls(listener, tls, app(host), shutdown, options.grace, http).await;
    drop(stop_keeping);
    joined(keeper.await, ());
    joined(watcher.await, ());
    served
}
