//! A TLS-terminating proxy in front of a test host that can rewrite module downloads: it
//! presents the host's own certificate (an attacker who terminates TLS), forwards every
//! request to the host, and flips one byte of every `GET /v1/modules/…` answer.

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

/// Starts a proxy for `host` (whose TLS key it uses).
pub async fn start(host: &crate::TestHost) -> SwapProxy {
    let server = kasane_host::server::tls_config(&host.cfg.tls_cert, &host.cfg.tls_key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let ca = std::fs::read(&host.cfg.tls_cert).unwrap();
    let upstream_cfg = upstream_config(&ca);
    let upstream = host.addr;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let swapped = Arc::new(AtomicU64::new(0));
    let count = swapped.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let cfg = upstream_cfg.clone();
            let count = count.clone();
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
                    let is_module = req.head.starts_with("GET /v1/modules/");
                    if up.write_all(&req.bytes).await.is_err() {
                        return;
                    }
                    let Some(mut resp) = read_message(&mut up, false).await else {
                        return;
                    };
                    if is_module && resp.head.starts_with("HTTP/1.1 200") {
                        let body_start = resp.bytes.len() - resp.body_len;
                        if resp.body_len > 0 {
                            // A byte in the middle of the module: still valid-looking length.
                            resp.bytes[body_start + resp.body_len / 2] ^= 0x01;
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if down.write_all(&resp.bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    SwapProxy { addr, swapped }
}

fn upstream_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
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
