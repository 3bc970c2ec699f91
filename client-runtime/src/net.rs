//! TLS 1.3 connections to the host (rustls, ring, the configured CA as the only trust anchor)
//! and one HTTP/1.1 connection per [`Conn`], with a timeout on every request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use crate::ClientError;
use crate::error::{ConfigError, ConnectError, ProtocolFailure};

/// The host's address, split from an `https://` URL.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// `host:port` to dial.
    pub(crate) dial: String,
    /// The `Host` header (the URL's authority).
    pub(crate) authority: String,
    /// The TLS name checked in the certificate.
    pub(crate) server_name: ServerName<'static>,
}

impl Endpoint {
    /// Parses `https://host[:port][/]`; `server_name` overrides the name checked.
    pub(crate) fn parse(url: &str, server_name: Option<&str>) -> Result<Self, ConfigError> {
        let bad = |problem| ConfigError::BadUrl {
            url: url.to_owned(),
            problem,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// URLs"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected https://host[:port]"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port: u16 = port.parse().map_err(|source| ConfigError::BadPort {
            url: url.to_owned(),
            source,
        })?;
        let name = server_name.unwrap_or(host).to_owned();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|source| ConfigError::BadServerName { name, source })?;
        let dial = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            dial,
            authority: authority.to_owned(),
            server_name,
        })
    }
}

/// `host` and `port` of an authority (`[v6]:port`, `host:port`, or either without a port:
/// 443); `None` for an unclosed `[` or junk after `]`.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "443",
            None => return None,
        };
        return Some((h, port));
    }
    Some(authority.rsplit_once(':').unwrap_or((authority, "443")))
}

/// A rustls client configuration: TLS 1.3 only, ring, `ca_pem`'s certificates as the only
/// trust anchors (webpki verification), ALPN `http/1.1`.
pub(crate) fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(ConfigError::CaPem)?)
            .map_err(ConfigError::CaCertificate)?;
        count += 1;
    }
    if count == 0 {
        return Err(ConfigError::NoCaCertificate);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ConfigError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Largest response body read from the host (an inbox is at most 8 MiB, a module 1 MiB).
pub(crate) const MAX_RESPONSE: usize = 9 << 20;

/// One HTTP/1.1 connection over TLS, with the connection's RFC 9266 exporter value.
pub(crate) struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub(crate) exporter: [u8; 32],
    authority: String,
    timeout: Duration,
}

/// A failed TLS handshake: a refused certificate apart from every other failure.
fn handshake_error(e: std::io::Error) -> ClientError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => {
            ClientError::BadCertificate(tls.clone())
        }
        Some(tls) => ConnectError::Tls(tls.clone()).into(),
        None => ConnectError::TlsIo(e).into(),
    }
}

impl Conn {
    /// Dials, handshakes TLS (verifying the certificate) and HTTP/1.1.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let fut = async {
            let tcp =
                TcpStream::connect(&endpoint.dial)
                    .await
                    .map_err(|source| ConnectError::Tcp {
                        addr: endpoint.dial.clone(),
                        source,
                    })?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(endpoint.server_name.clone(), tcp)
                .await
                .map_err(handshake_error)?;
            let mut exporter = [0u8; 32];
            stream
                .get_ref()
                .1
                .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
                .map_err(ConnectError::Exporter)?;
            let (send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(ConnectError::Handshake)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("host connection ended: {e}");
                }
            });
            Ok(Conn {
                send,
                exporter,
                authority: endpoint.authority.clone(),
                timeout,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::TimedOut)?
    }

    /// Whether the connection can still carry requests.
    pub(crate) fn is_open(&self) -> bool {
        !self.send.is_closed()
    }

    /// One request; the status and the whole body (at most [`MAX_RESPONSE`] bytes).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<&[u8; 32]>,
        extra_wait: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        self.request_up_to(method, path, (body, bearer), extra_wait, MAX_RESPONSE)
            .await
    }

    /// [`Conn::request`] reading at most `max` bytes of the answer (a gateway response can
    /// be larger than anything else the host sends).
    pub(crate) async fn request_up_to(
        &mut self,
        method: &str,
        path: &str,
        (body, bearer): (Vec<u8>, Option<&[u8; 32]>),
        extra_wait: Duration,
        max: usize,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "application/octet-stream");
        if let Some(token) = bearer {
            b = b.header(
                "authorization",
                zeroize::Zeroizing::new(format!("Bearer {}", hex::encode(token))).as_str(),
            );
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(ProtocolFailure::Request)?;
        let send = &mut self.send;
        let fut = async move {
            send.ready().await.map_err(ConnectError::Request)?;
            let resp = send
                .send_request(req)
                .await
                .map_err(ConnectError::Request)?;
            let status = resp.status();
            Ok((status, read_body(resp.into_body(), max).await?))
        };
        tokio::time::timeout(self.timeout.saturating_add(extra_wait), fut)
            .await
            .map_err(|_| ClientError::TimedOut)?
    }
}

/// The whole body, at most `max` bytes.
async fn read_body(
    mut body: hyper::body::Incoming,
    max: usize,
) -> Result<Vec<u8>, ProtocolFailure> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ProtocolFailure::Body)?;
        if let Ok(data) = frame.into_data() {
            if out.len().saturating_add(data.len()) > max {
                return Err(ProtocolFailure::BodyTooLarge { max });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parses_host_port_and_refuses_http() {
        let e = Endpoint::parse("https://127.0.0.1:7443/", None).ok();
        assert_eq!(e.as_ref().map(|e| e.dial.as_str()), Some("127.0.0.1:7443"));
        let e = Endpoint::parse("https://[::1]:8443", Some("localhost")).ok();
        assert_eq!(e.as_ref().map(|e| e.dial.as_str()), Some("[::1]:8443"));
        let e = Endpoint::parse("https://example.org", None).ok();
        assert_eq!(e.as_ref().map(|e| e.dial.as_str()), Some("example.org:443"));
        assert!(matches!(
            Endpoint::parse("http://127.0.0.1:80", None),
            Err(ConfigError::BadUrl { .. })
        ));
        assert!(Endpoint::parse("https://h:notaport", None).is_err());
    }
}
