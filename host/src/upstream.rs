//! The service behind the host: forwarding one buffered request over HTTP/1.1 (hyper's
//! pooled client) and reading its buffered answer, with hop-by-hop and `X-Kasane-*` headers
//! removed; and the start-up probe.

use std::time::Duration;

pub use crate::config::upstream_authority;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kasane_os::report::Chain;
use kasane_protocol::gateway::{
    GatewayRequest, GatewayResponse, HOP_BY_HOP, HeaderField, MAX_GATEWAY_HEADERS,
};

/// How long the start-up probe waits for the upstream's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request did not get the upstream's answer (sent back sealed as a `502` or `504`).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The request could not be built (a header or method hyper refuses).
    #[error("request not forwardable: {0}")]
    Request(&'static str),
    /// Connecting or talking to the upstream failed.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream's body was larger than `[gateway] max_body_bytes`.
    #[error("upstream response larger than the gateway's limit")]
    TooLarge,
    /// The upstream's answer breaks a response's limits (more than 64 KiB of headers).
    #[error("upstream response headers over the gateway's limits")]
    Unrepresentable,
}

impl UpstreamError {
    /// The HTTP status the client sees for it.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Timeout => 504,
            _ => 502,
        }
    }
}

/// The upstream and a pooled HTTP/1.1 client for it.
#[derive(Debug, Clone)]
pub struct Upstream {
    authority: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Headers that tell a service who the client is and how it came: a client's own would be
/// believed by services that trust their reverse proxy (Rails, Django, Express behind a
/// proxy on loopback or a private network) to spoof its address in their logs and limits or
/// to poison the links they build. The host drops them both ways and writes
/// `X-Forwarded-For` and `X-Forwarded-Proto` itself.
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "client-ip",
    "x-client-ip",
    "x-original-forwarded-for",
];

/// Whether a header of a request or response passes the gateway: not hop-by-hop, not named
/// by `Connection`, not `X-Kasane-*`, not `X-Forwarded-*` or another forwarding header
/// ([`FORWARDING`]), not `Host` (the upstream's is set), not `Content-Length` (the body's
/// length is set anew).
fn passes(name: &str, connection_listed: &[String]) -> bool {
    !HOP_BY_HOP.contains(&name)
        && name != "host"
        && name != "content-length"
        && !name.starts_with("x-kasane-")
        && !name.starts_with("x-forwarded-")
        && !FORWARDING.contains(&name)
        && !connection_listed.iter().any(|c| c == name)
}

/// The header names listed in `Connection` values (lower case).
fn connection_listed<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    headers
        .filter(|(n, _)| *n == "connection")
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The forwardable fields of `headers` as a header map.
fn forwardable(headers: &[HeaderField]) -> Result<HeaderMap, UpstreamError> {
    let listed = connection_listed(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    let mut map = HeaderMap::new();
    for (n, v) in headers.iter().filter(|(n, _)| passes(n, &listed)) {
        let name = HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| UpstreamError::Request("header name"))?;
        let value =
            HeaderValue::from_bytes(v).map_err(|_| UpstreamError::Request("header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The passing fields of an upstream answer's headers. An answer without a body of its own
/// (to a `HEAD`, or a `304`) keeps its `Content-Length`: there it states the length of the
/// representation a `GET` would have had (RFC 9110 §8.6), which nothing else can carry.
fn answer_headers(headers: &HeaderMap, bodiless: bool) -> Vec<HeaderField> {
    let listed = connection_listed(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    headers
        .iter()
        .filter(|(n, _)| passes(n.as_str(), &listed) || (bodiless && *n == CONTENT_LENGTH))
        .take(MAX_GATEWAY_HEADERS)
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

impl Upstream {
    /// A client for `url` (`http://host:port`), or `None` if it is not one.
    #[must_use]
    pub fn new(url: &str) -> Option<Self> {
        let authority = upstream_authority(url)?;
        // hyper's client parses at most 100 header fields by default: a service's answer
        // with up to twice the gateway's limit is read (and cut to the limit: GATEWAY.md),
        // only a longer one is refused (502).
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http1_max_headers(2 * MAX_GATEWAY_HEADERS)
            .build_http();
        Some(Self { authority, client })
    }

    /// Forwards `req` with `added` headers (the user, the assertion and the forwarding headers), waiting at most
    /// `timeout` and reading at most `max_body` bytes of the answer.
    pub async fn forward(
        &self,
        req: GatewayRequest,
        added: [(&'static str, String); 4],
        timeout: Duration,
        max_body: usize,
    ) -> Result<GatewayResponse, UpstreamError> {
        let mut headers = forwardable(&req.headers)?;
        for (name, value) in added {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| UpstreamError::Request("added header"))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| UpstreamError::Request("method"))?;
        let head = method == Method::HEAD;
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.authority, req.target))
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|_| UpstreamError::Request("target"))?;
        *request.headers_mut() = headers;
        tokio::time::timeout(timeout, self.exchange(request, head, max_body))
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// Sends `request` and reads the whole answer.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        head: bool,
        max_body: usize,
    ) -> Result<GatewayResponse, UpstreamError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| UpstreamError::Unreachable(Chain(&e).to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    UpstreamError::TooLarge
                } else {
                    UpstreamError::Unreachable(e.to_string())
                }
            })?
            .to_bytes();
        Ok(GatewayResponse {
            status: parts.status.as_u16(),
            headers: answer_headers(
                &parts.headers,
                head || parts.status == StatusCode::NOT_MODIFIED,
            ),
            body: body.to_vec(),
        })
    }

    /// Start-up check: `HEAD /` must get an HTTP answer (any status) within 5 seconds.
    pub async fn probe(&self) -> Result<(), String> {
        let request = Request::builder()
            .method(Method::HEAD)
            .uri(format!("http://{}/", self.authority))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(PROBE_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Chain(&e).to_string()),
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_authorities() {
        assert_eq!(
            upstream_authority("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            upstream_authority("http://svc:80/").as_deref(),
            Some("svc:80")
        );
        for bad in [
            "https://a:1",
            "http://a:1/x",
            "http://",
            "a:1",
            "http://u@a:1",
            "http://a:1?q",
        ] {
            assert_eq!(upstream_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_connection_listed_kasane_and_forwarding_headers_do_not_pass() {
        let h = |n: &str, v: &str| (n.to_owned(), v.as_bytes().to_vec());
        let map = forwardable(&[
            h("connection", "x-secret, keep-alive"),
            h("x-secret", "1"),
            h("x-kasane-user", "mallory"),
            h("X-Kasane-Assertion".to_ascii_lowercase().as_str(), "forged"),
            h("transfer-encoding", "chunked"),
            h("host", "elsewhere"),
            h("content-length", "5"),
            h("x-forwarded-for", "10.6.6.6"),
            h("x-forwarded-host", "evil.example"),
            h("forwarded", "for=10.6.6.6"),
            h("x-real-ip", "10.6.6.6"),
            h("accept", "*/*"),
            h("x-other", "kept"),
        ])
        .unwrap();
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "x-other"]);
    }

    #[test]
    fn an_answer_without_a_body_keeps_its_content_length() {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_LENGTH, HeaderValue::from_static("4096"));
        map.insert("etag", HeaderValue::from_static("\"x\""));
        let names = |bodiless| -> Vec<String> {
            answer_headers(&map, bodiless)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names(true), ["content-length", "etag"]);
        assert_eq!(names(false), ["etag"]);
    }
}
