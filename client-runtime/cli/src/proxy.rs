//! `kasane proxy --listen 127.0.0.1:PORT`: plain HTTP on loopback for local programs, each
//! request sent to the service behind the host as a sealed gateway exchange of one session
//! (docs/GATEWAY.md). It logs in again when the host ends the session (idle or absolute
//! time-out) and answers what it cannot forward with a one-line 4xx/5xx, never a hang.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kasane_client::{Client, ClientError, Session};
use kasane_os::report::Chain;
use kasane_protocol::gateway::{GatewayRequest, GatewayResponse, HOP_BY_HOP};
use kasane_protocol::{Message as _, RefusalReason};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, RwLock};

use crate::commands::{client_fail, print_report};
use crate::credentials::Credentials;
use crate::fail::{Class, Failure, OrFail};
use crate::settings::Settings;

/// The proxy's state: the session in use and how to get a new one.
struct Proxy {
    client: Client,
    credentials: Credentials,
    session: RwLock<Arc<Session>>,
    /// Held while logging in again, so concurrent requests wait for one new session.
    relogin: Mutex<()>,
    /// Why the host refused the credentials when the proxy logged in again (the password
    /// or card changed meanwhile, say): from then on it does not try again, since every
    /// try would count against the user's throttle for as long as something polls it.
    refused: std::sync::OnceLock<String>,
    max_body: usize,
}

/// `kasane proxy`.
pub(crate) async fn proxy(s: &Settings, listen: &str, max_body: usize) -> Result<(), Failure> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen}: not an address such as 127.0.0.1:8080"))
        .or_fail(Class::Config)?;
    if !addr.ip().is_loopback() {
        return Err(Failure::new(
            Class::Config,
            anyhow!(
                "--listen {addr}: the proxy serves plain HTTP, so only on loopback (127.0.0.1, ::1)"
            ),
        ));
    }
    let credentials = Credentials::read(s)?;
    let client = Client::connect(s.client_config()?)
        .await
        .map_err(|e| client_fail(e, "connecting"))?;
    let session = log_in(&client, &credentials).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
        .or_fail(Class::Config)?;
    let bound = listener
        .local_addr()
        .context("reading the bound address")
        .or_fail(Class::Other)?;
    println!("serving http://{bound}/ as {}", credentials.user());
    let proxy = Arc::new(Proxy {
        client,
        credentials,
        session: RwLock::new(Arc::new(session)),
        relogin: Mutex::new(()),
        refused: std::sync::OnceLock::new(),
        max_body,
    });
    serve(listener, proxy.clone()).await;
    let session = proxy.session.read().await.clone();
    if let Err(e) = session.logout().await {
        eprintln!("kasane proxy: logging out: {e}");
    }
    Ok(())
}

/// Logs in, printing what the login ran.
async fn log_in(client: &Client, credentials: &Credentials) -> Result<Session, Failure> {
    let user = credentials.user().to_owned();
    let mut responder = credentials.responder();
    let (session, report) = client
        .login(&user, responder.as_mut())
        .await
        .map_err(|e| client_fail(e, &format!("logging in as {user}")))?;
    print_report(&report, "");
    Ok(session)
}

/// Serves connections until Ctrl-C.
async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Why a request must be refused as one a web page made, if it must. A page of any site open
/// in a browser on this machine can send requests to a loopback address, and the proxy adds
/// the session to whatever reaches it: a cross-site form or `fetch` would act as the user,
/// and a site whose name an attacker points at 127.0.0.1 (DNS rebinding) would even read the
/// answers as its own. So the `Host` must be a loopback name, and a request that says it
/// comes from a page (`Origin`, `Sec-Fetch-Site`) must come from a page of this proxy
/// itself. Local programs (curl, scripts) send neither header.
fn from_a_web_page(headers: &hyper::HeaderMap) -> Option<&'static str> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let host = text("host");
    if host.is_some_and(|h| !is_loopback_authority(h)) {
        return Some("Host is not a loopback address or localhost (DNS rebinding?): refused");
    }
    let site = text("sec-fetch-site");
    if site.is_some_and(|s| !matches!(s, "same-origin" | "none")) {
        return Some("a request from a web page of another origin: refused");
    }
    let origin = text("origin");
    let own = host.map(|h| format!("http://{h}").to_ascii_lowercase());
    if origin.is_some_and(|o| Some(o.to_ascii_lowercase()) != own) {
        return Some("a request from a web page of another origin: refused");
    }
    None
}

/// Whether `authority` (`host[:port]`) names this machine's loopback: `localhost`, or a
/// loopback address (`127.0.0.1`, `[::1]`).
fn is_loopback_authority(authority: &str) -> bool {
    let Ok(a) = authority.parse::<hyper::http::uri::Authority>() else {
        return false;
    };
    let host = a.host();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A plain-text answer of the proxy's own.
fn own(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("kasane proxy: {why}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r
}

impl Proxy {
    /// One local request: refused here, or through the gateway.
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let request = match self.to_gateway(req).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        // What the protocol cannot carry (a method it does not know, over 128 headers or
        // 64 KiB of them) is refused here, before anything is sent.
        if let Err(e) = request.validate() {
            return own(
                StatusCode::BAD_REQUEST,
                &format!("request not forwardable: {e}"),
            );
        }
        let head = request.method == "HEAD";
        self.forward(&request, head).await
    }

    /// The gateway request for a local one, or the proxy's refusal.
    async fn to_gateway(
        &self,
        req: Request<Incoming>,
    ) -> Result<GatewayRequest, Response<Full<Bytes>>> {
        if let Some(why) = from_a_web_page(req.headers()) {
            return Err(own(StatusCode::FORBIDDEN, why));
        }
        if req.method() == hyper::Method::CONNECT || req.headers().contains_key("upgrade") {
            return Err(own(
                StatusCode::NOT_IMPLEMENTED,
                "CONNECT and upgrades (WebSocket) are not supported",
            ));
        }
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let too_large = || {
            let why = format!("request body over {} bytes", self.max_body);
            own(StatusCode::PAYLOAD_TOO_LARGE, &why)
        };
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, self.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(e) => {
                return Err(own(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the body: {e}"),
                ));
            }
        };
        // Hop-by-hop: the standard ones and those `Connection` names (RFC 9110 §7.6.1), which
        // the host would drop too if `Connection` itself reached it.
        let named: Vec<String> = parts
            .headers
            .get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        let headers = parts
            .headers
            .iter()
            .filter(|(n, _)| {
                !HOP_BY_HOP.contains(&n.as_str()) && !named.iter().any(|c| c == n.as_str())
            })
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str)
            .to_owned();
        Ok(GatewayRequest {
            method: parts.method.as_str().to_owned(),
            target,
            headers,
            body: body.to_vec(),
        })
    }

    /// Sends `request` in the current session, logging in again once if the host ended it.
    async fn forward(&self, request: &GatewayRequest, head: bool) -> Response<Full<Bytes>> {
        let session = self.session.read().await.clone();
        let answer = match session.exchange(request).await {
            Err(ClientError::Refused(RefusalReason::SessionEnded)) => {
                match self.renew(&session).await {
                    Ok(fresh) => fresh.exchange(request).await,
                    Err(f) => return own(StatusCode::BAD_GATEWAY, &f.line()),
                }
            }
            other => other,
        };
        match answer {
            Ok(response) => to_local(response, head),
            Err(ClientError::Refused(RefusalReason::TooLarge)) => own(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the host refused the body as too large",
            ),
            Err(ClientError::Refused(RefusalReason::BudgetSpent)) => own(
                StatusCode::TOO_MANY_REQUESTS,
                "the host's daily byte budget for this user is spent; it renews at midnight UTC",
            ),
            Err(ClientError::Refused(RefusalReason::Malformed)) => own(
                StatusCode::BAD_REQUEST,
                "the host refused the request (method or path not allowed by its [gateway])",
            ),
            Err(e) => own(StatusCode::BAD_GATEWAY, &Chain(&e).to_string()),
        }
    }

    /// A new session in place of `ended` (or the one another request already made).
    async fn renew(&self, ended: &Arc<Session>) -> Result<Arc<Session>, Failure> {
        let _one = self.relogin.lock().await;
        let current = self.session.read().await.clone();
        if !Arc::ptr_eq(&current, ended) {
            return Ok(current);
        }
        if let Some(why) = self.refused.get() {
            return Err(Failure::new(Class::Login, anyhow::anyhow!("{why}")));
        }
        eprintln!("kasane proxy: the host ended the session; logging in again");
        let fresh = match log_in(&self.client, &self.credentials).await {
            Ok(s) => Arc::new(s),
            Err(f) if f.is_login_refusal() => {
                let why = format!(
                    "{}; not trying again: restart kasane proxy with the current password and card",
                    f.line()
                );
                eprintln!("kasane proxy: {why}");
                let _ = self.refused.set(why.clone());
                return Err(Failure::new(Class::Login, anyhow::anyhow!("{why}")));
            }
            Err(f) => return Err(f),
        };
        *self.session.write().await = fresh.clone();
        Ok(fresh)
    }
}

/// The service's answer as a local response (hop-by-hop headers dropped). The body sets the
/// length, except in an answer that has none of its own (to a `HEAD`, or a `304`): there the
/// service's `Content-Length` is the length a `GET` would have had (RFC 9110 §8.6).
fn to_local(response: GatewayResponse, head: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let bodiless = response.body.is_empty() && (head || status == StatusCode::NOT_MODIFIED);
    let mut r = Response::new(Full::new(Bytes::from(response.body)));
    *r.status_mut() = status;
    for (name, value) in response.headers {
        if HOP_BY_HOP.contains(&name.as_str()) || (name == "content-length" && !bodiless) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_bytes(&value),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}
