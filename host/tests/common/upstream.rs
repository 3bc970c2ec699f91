//! A service behind the host's gateway or behind a forward-auth proxy (an axum app that
//! records what reaches it), and a check of the host's assertions that shares no code with
//! the host: `jsonwebtoken` against the host's JWKS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse as _;
use hyper::StatusCode;

use super::Conn;

/// What reached the upstream: the target, the `X-Kasane-User` values, the assertion, whether
/// an `Authorization` header came along, the body's length.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) target: String,
    pub(crate) users: Vec<String>,
    pub(crate) assertion: Option<String>,
    pub(crate) authorization: bool,
    pub(crate) body_len: usize,
    /// Every `X-Forwarded-*`, `Forwarded` and `X-Real-IP` field, as `name: value`.
    pub(crate) forwarding: Vec<String>,
}

pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// The upstream: echoes bodies, answers `GET /page` with a fixed page, answers paths under
/// `/slow` after a minute; records each request (but a `HEAD /`, the host's start-up probe).
pub(crate) async fn upstream() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let keep = log.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                if method != Method::HEAD || uri.path() != "/" {
                    keep.lock().unwrap().push(seen(&uri, &headers, body.len()));
                }
                if uri.path().starts_with("/slow") {
                    // Longer than any test waits: the client gives up first.
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
                if uri.path() == "/many" {
                    // More header fields than hyper's client reads by default (100).
                    let mut r = axum::response::Response::new(axum::body::Body::from("many"));
                    for i in 0..110 {
                        let name = axum::http::HeaderName::try_from(format!("x-h{i}")).unwrap();
                        r.headers_mut()
                            .insert(name, axum::http::HeaderValue::from_static("v"));
                    }
                    return r;
                }
                if method == Method::POST {
                    (StatusCode::CREATED, [("x-upstream", "yes")], body.to_vec()).into_response()
                } else {
                    (StatusCode::OK, [("x-upstream", "yes")], b"page".to_vec()).into_response()
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

fn seen(uri: &Uri, headers: &HeaderMap, body_len: usize) -> Seen {
    Seen {
        target: uri.to_string(),
        users: headers
            .get_all("x-kasane-user")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        assertion: headers
            .get("x-kasane-assertion")
            .map(|v| v.to_str().unwrap().to_owned()),
        authorization: headers.contains_key("authorization"),
        body_len,
        forwarding: headers
            .iter()
            .filter(|(n, _)| {
                let n = n.as_str();
                n.starts_with("x-forwarded-") || n == "forwarded" || n == "x-real-ip"
            })
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect(),
    }
}

/// Verifies `jwt` with `jsonwebtoken` against the host's JWKS (`GET /.well-known/jwks.json`).
pub(crate) async fn verify(conn: &mut Conn, jwt: &str, audience: &str) -> serde_json::Value {
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
