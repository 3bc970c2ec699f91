//! TLS 1.3 connections to the host (rustls, ring, the configured CA as the only trust anchor)
//! and one HTTP/1.1 connection per [`Conn`], with a timeout on every request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use crate::ClientError;

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
    pub(crate) fn parse(url: &str, server_name: Option<&str>) -> Result<Self, ClientError> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Config(format!("{url:?}: only https:// URLs")))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(ClientError::Config(format!(
                "{url:?}: expected https://host[:port]"
            )));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| ClientError::Config(format!("{url:?}: unclosed [")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p,
                None if after.is_empty() => "443",
                None => return Err(ClientError::Config(format!("{url:?}: bad port"))),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, "443"),
            }
        };
        let port: u16 = port
            .parse()
            .map_err(|_| ClientError::Config(format!("{url:?}: bad port")))?;
        let name = server_name.unwrap_or(host).to_owned();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| ClientError::Config(format!("{name:?} is not a valid TLS server name")))?;
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

/// A rustls client configuration: TLS 1.3 only, ring, `ca_pem`'s certificates as the only
/// trust anchors (webpki verification), ALPN `http/1.1`.
pub(crate) fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert =
            cert.map_err(|e| ClientError::Config(format!("CA certificate PEM unreadable: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("CA certificate refused: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(ClientError::Config("no certificate in the CA PEM".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(format!("TLS configuration: {e}")))?
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

fn map_io(e: std::io::Error) -> ClientError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::InvalidCertificate(c) => ClientError::BadCertificate(format!("{c:?}")),
            other => ClientError::Connect(format!("TLS: {other}")),
        };
    }
    ClientError::Connect(e.to_string())
}

impl Conn {
    /// Dials, handshakes TLS (verifying the certificate) and HTTP/1.1.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let fut = async {
            let tcp = TcpStream::connect(&endpoint.dial)
                .await
                .map_err(|e| ClientError::Connect(format!("{}: {e}", endpoint.dial)))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(endpoint.server_name.clone(), tcp)
                .await
                .map_err(map_io)?;
            let mut exporter = [0u8; 32];
            stream
                .get_ref()
                .1
                .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
                .map_err(|e| ClientError::Connect(format!("TLS exporter: {e}")))?;
            let (send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| ClientError::Connect(format!("HTTP handshake: {e}")))?;
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
            .map_err(|e| ClientError::Protocol(format!("request: {e}")))?;
        let send = &mut self.send;
        let fut = async move {
            send.ready()
                .await
                .map_err(|e| ClientError::Connect(format!("connection: {e}")))?;
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| ClientError::Connect(format!("request: {e}")))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("response body: {e}")))?
                .to_bytes()
                .to_vec();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout.saturating_add(extra_wait), fut)
            .await
            .map_err(|_| ClientError::TimedOut)?
    }
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
            Err(ClientError::Config(_))
        ));
        assert!(Endpoint::parse("https://h:notaport", None).is_err());
    }
}
