//! The PROXY protocol, version 2 (HAProxy's binary header), from TCP-level load balancers.
//!
//! A load balancer that passes TLS through (so the host still terminates TLS and channel
//! binding holds) can only tell the host the client's address in a header before the TLS
//! bytes. With `[http] proxy_protocol = true`, a connection from one of `http.trusted_proxies`
//! must begin with that header; its source address becomes the connection's peer (what
//! throttling and logins in flight are keyed by). Connections from anyone else are read as
//! plain TLS, never parsed for a header, so a client cannot name its own address. The header
//! is parsed with the `ppp` crate; this module only reads its bytes off the socket, bounded.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Command, Header, PROTOCOL_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The fixed part of a v2 header: the 12-byte signature, version and command, family and
/// protocol, and the 2-byte length of the rest.
const FIXED_LEN: usize = 16;
/// Most bytes after the fixed part: addresses (at most 216, for two Unix paths) and TLVs a
/// load balancer adds (AWS and GCP add a few dozen bytes).
pub const MAX_REST_LEN: usize = 1024;

/// Why a trusted proxy's connection was dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection failed or ended inside the header.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The connection does not start with the v2 signature.
    #[error("no PROXY protocol v2 signature")]
    NoSignature,
    /// The header announces more than [`MAX_REST_LEN`] bytes.
    #[error("PROXY header of {0} bytes, more than {MAX_REST_LEN}")]
    TooLong(usize),
    /// `ppp` refused the header.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
}

/// Reads one v2 header from `io` (nothing after it) and returns the client's address it
/// names, or `None` for a `LOCAL` header or one without an IP address (the proxy's own
/// connection, e.g. a health check: the peer stays the proxy).
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut fixed = [0u8; FIXED_LEN];
    io.read_exact(&mut fixed).await?;
    if !fixed.starts_with(PROTOCOL_PREFIX) {
        return Err(ProxyHeaderError::NoSignature);
    }
    let rest_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if rest_len > MAX_REST_LEN {
        return Err(ProxyHeaderError::TooLong(rest_len));
    }
    let mut whole = Vec::with_capacity(FIXED_LEN + rest_len);
    whole.extend_from_slice(&fixed);
    whole.resize(FIXED_LEN + rest_len, 0);
    io.read_exact(&mut whole[FIXED_LEN..]).await?;
    let header = Header::try_from(whole.as_slice())
        .map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, IPv4, IPv6, Protocol, Version};

    fn header(command: Command, addresses: Addresses) -> Vec<u8> {
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
            .build()
            .expect("header")
    }

    #[tokio::test]
    async fn source_addresses_local_and_refusals() {
        let v4 = header(
            Command::Proxy,
            IPv4::new([203, 0, 113, 7], [10, 0, 0, 1], 4242, 443).into(),
        );
        let mut input = v4.clone();
        input.extend_from_slice(b"\x16\x03\x01 TLS follows");
        let mut r = input.as_slice();
        assert_eq!(
            read_header(&mut r).await.unwrap(),
            Some("203.0.113.7:4242".parse().unwrap())
        );
        assert_eq!(
            r, b"\x16\x03\x01 TLS follows",
            "exactly the header is consumed"
        );
        let v6 = header(
            Command::Proxy,
            IPv6::new(
                [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1],
                [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2],
                1,
                443,
            )
            .into(),
        );
        assert_eq!(
            read_header(&mut v6.as_slice()).await.unwrap(),
            Some("[2001:db8::1]:1".parse().unwrap())
        );
        let local = header(Command::Local, Addresses::Unspecified);
        assert_eq!(read_header(&mut local.as_slice()).await.unwrap(), None);
        let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 no header here";
        assert!(matches!(
            read_header(&mut tls.as_slice()).await,
            Err(ProxyHeaderError::NoSignature)
        ));
        let mut long = v4[..14].to_vec();
        long.extend_from_slice(&2000u16.to_be_bytes());
        assert!(matches!(
            read_header(&mut long.as_slice()).await,
            Err(ProxyHeaderError::TooLong(2000))
        ));
        assert!(matches!(
            read_header(&mut &v4[..20]).await,
            Err(ProxyHeaderError::Io(_))
        ));
    }
}
