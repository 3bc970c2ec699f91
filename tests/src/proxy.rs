//! A TLS-terminating proxy in front of a test host that can rewrite answers: it presents the
//! host's own certificate (an attacker who terminates TLS, or a compromised host), forwards
//! every request to the host, and lets a test replace any answer's body. [`start`] flips one
//! byte of every `GET /v1/modules/…` answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub struct SwapProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// How many module answers it altered.
    pub swapped: Arc<AtomicU64>,
}

/// One request and its answer, as the proxy saw them.
pub struct Exchange<'a> {
    /// The request line, e.g. `POST /v1/login/password HTTP/1.1`.
    pub request_line: &'a str,
    /// The request body.
    pub request_body: &'a [u8],
    /// The answer's status line.
    pub status_line: &'a str,
    /// The answer's body.
    pub response_body: &'a [u8],
}

/// Decides a replacement body for an answer (`None`: pass it on unchanged).
pub type Rewrite = Arc<dyn Fn(&Exchange<'_>) -> Option<Vec<u8>> + Send + Sync>;

/// Starts a proxy for `host` that flips a byte in the middle of every module download.
pub async fn start(host: &crate::TestHost) -> SwapProxy {
    let swapped = Arc::new(AtomicU64::new(0));
    let count = swapped.clone();
    let rewrite: Rewrite = Arc::new(move |x: &Exchange<'_>| {
        if !(x.request_line.starts_with("GET /v1/modules/")
            && x.status_line.starts_with("HTTP/1.1 200")
            && !x.response_body.is_empty())
        {
            return None;
        }
        let mut body = x.response_body.to_vec();
        let mid = body.len() / 2;
        body[mid] ^= 0x01;
        count.fetch_add(1, Ordering::SeqCst);
        Some(body)
    });
    let addr = start_with(host, rewrite).await;
    SwapProxy { addr, swapped }
}

/// Starts a proxy for `host` (whose TLS key it uses) applying `rewrite` to every answer.
pub async fn start_with(host: &crate::TestHost, rewrite: Rewrite) -> SocketAddr {
    let server = kasane_host::server::tls_config(&host.cfg.tls_cert, &host.cfg.tls_key).unwrap();
    // It speaks HTTP/1.1 only: a browser must not pick h2.
    let mut server = (*server).clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let ca = std::fs::read(&host.cfg.tls_cert).unwrap();
    let upstream_cfg = crate::client_tls(&ca, &[b"http/1.1"]);
    let upstream = host.addr;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let cfg = upstream_cfg.clone();
            let rewrite = rewrite.clone();
            tokio::spawn(async move {
                let Ok(mut down) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(up_tcp) = TcpStream::connect(upstream).await else {
                    return;
                };
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let Ok(mut up) = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, up_tcp)
                    .await
                else {
                    return;
                };
                // One HTTP/1.1 request at a time: forward it, read the whole answer, maybe
                // alter it, send it back.
                loop {
                    let Some(req) = read_message(&mut down, true).await else {
                        return;
                    };
                    if up.write_all(&req.bytes).await.is_err() {
                        return;
                    }
                    let Some(mut resp) = read_message(&mut up, false).await else {
                        return;
                    };
                    let head_len = resp.bytes.len() - resp.body_len;
                    let request_line = req.head.lines().next().unwrap_or("").to_owned();
                    let status_line = resp.head.lines().next().unwrap_or("").to_owned();
                    let replaced = rewrite(&Exchange {
                        request_line: &request_line,
                        request_body: &req.bytes[req.bytes.len() - req.body_len..],
                        status_line: &status_line,
                        response_body: &resp.bytes[head_len..],
                    });
                    if let Some(body) = replaced {
                        resp.bytes = with_body(&resp.head, &body);
                    }
                    if down.write_all(&resp.bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The message with `head` (its content-length replaced) and `body`.
fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let is_length = line
            .split_once(':')
            .is_some_and(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !is_length {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

struct HttpMessage {
    head: String,
    bytes: Vec<u8>,
    body_len: usize,
}

/// Reads one HTTP/1.1 message with a `content-length` body (or none), up to 8 MiB.
async fn read_message<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    request: bool,
) -> Option<HttpMessage> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body_len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    assert!(
        request
            || !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
        "the proxy handles content-length bodies only"
    );
    if body_len > 8 << 20 {
        return None;
    }
    while buf.len() < head_end + body_len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.truncate(head_end + body_len);
    Some(HttpMessage {
        head,
        bytes: buf,
        body_len,
    })
}

/// One exchange as [`record`] keeps it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request line.
    pub request_line: String,
    /// The request body: what the host received.
    pub request_body: Vec<u8>,
    /// The answer's status line.
    pub status_line: String,
    /// The answer's body.
    pub response_body: Vec<u8>,
}

/// Exchanges a [`record`]ing proxy has seen, in order.
pub type Log = Arc<std::sync::Mutex<Vec<Recorded>>>;

/// Starts a proxy for `host` that changes nothing and records every exchange.
pub async fn record(host: &crate::TestHost) -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let keep = log.clone();
    let rewrite: Rewrite = Arc::new(move |x: &Exchange<'_>| {
        keep.lock().unwrap().push(Recorded {
            request_line: x.request_line.to_owned(),
            request_body: x.request_body.to_vec(),
            status_line: x.status_line.to_owned(),
            response_body: x.response_body.to_vec(),
        });
        None
    });
    (start_with(host, rewrite).await, log)
}
