//! `GET /healthz` over TLS 1.3, trusting only the given certificate, for `kasane status`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Splits `https://host:port[/path]` into host and port (443 by default).
pub(crate) fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("the server URL {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        bail!("the server URL {url:?} has no host");
    }
    // [v6]:port, host:port or host.
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("the server URL {url:?} has a bad IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().with_context(|| format!("bad port in {url:?}"))?,
            None => 443,
        };
        return Ok((h.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_owned(),
            p.parse().with_context(|| format!("bad port in {url:?}"))?,
        )),
        None => Ok((authority.to_owned(), 443)),
    }
}

/// Fetches `/healthz`; the body on a 200 answer.
pub(crate) async fn check(
    url: &str,
    server_name: Option<&str>,
    ca_pem: &[u8],
    timeout: Duration,
) -> anyhow::Result<String> {
    let (host, port) = host_port(url)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.context("reading the CA file")?;
        roots.add(cert).context("adding the CA certificate")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.unwrap_or(&host).to_owned())
        .with_context(|| format!("bad server name {host:?}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let req =
            format!("GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.context("sending")?;
        let mut buf = Vec::new();
        tls.take(64 * 1024)
            .read_to_end(&mut buf)
            .await
            .context("reading the answer")?;
        let text = String::from_utf8_lossy(&buf);
        let status = text.lines().next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 200") {
            bail!("answered {status:?}");
        }
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        Ok(body.trim().to_owned())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| anyhow!("no answer within {} s", timeout.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(
            host_port("https://127.0.0.1:7443").ok(),
            Some(("127.0.0.1".to_owned(), 7443))
        );
        assert_eq!(
            host_port("https://example.org/x").ok(),
            Some(("example.org".to_owned(), 443))
        );
        assert_eq!(
            host_port("https://[::1]:8443/").ok(),
            Some(("::1".to_owned(), 8443))
        );
        assert!(host_port("http://example.org").is_err());
        assert!(host_port("https://h:notaport").is_err());
    }
}
