//! The sealed gateway (DESIGN §5; docs/GATEWAY.md): one HTTP request to the service behind
//! the host and its response, each sealed under a per-transmission key of the session.
//!
//! ```text
//! request  (client → host, seq n from the client's sequence, shared with messages):
//!   K ‖ nonce = HKDF-SHA256(salt = T(c→h, n), ikm = session_secret,
//!                           info = "kasane/v2/gateway" ‖ 0 ‖ u64_be(n), 44 bytes)
//! response (host → client, for request n):
//!   K ‖ nonce = HKDF-SHA256(salt = T(h→c, n), ikm = session_secret,
//!                           info = "kasane/v2/gateway" ‖ 1 ‖ u64_be(n), 44 bytes)
//! AAD = session_id ‖ d ‖ u64_be(n) ‖ u32_be(8) ‖ "@gateway"   (as a message's, recipient "@gateway")
//! ```
//! `T(d, n)` is the transform's output for purpose = message, direction `d`, number `n`.
//!
//! A request takes its number from the same client-to-host sequence as messages, so the
//! host's replay window accepts each number once across both; its own HKDF label keeps a
//! request from ever opening as a message (or the reverse). The response is bound to its
//! request's number instead of a host-to-client number of its own: the client opens it
//! only as the answer to the request it sent, so it cannot be replayed or swapped, and the
//! host needs no store write to number it.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::limits::ID_LEN;
use crate::schedule::{AeadKey, SessionSecret};
use crate::seal::message_aad;
use crate::wire::Message;
use kasane_abi::Direction;

/// HKDF info prefix of a gateway request's or response's key.
pub const INFO_GATEWAY: &[u8] = b"kasane/v2/gateway";

/// The recipient a gateway exchange's AAD names (no user name starts with `@`).
pub const GATEWAY_RECIPIENT: &str = "@gateway";

/// Largest body of a gateway request or response (a host may configure less; default
/// 8 MiB).
pub const MAX_GATEWAY_BODY: usize = 64 * 1024 * 1024;

/// Most header fields of a gateway request or response.
pub const MAX_GATEWAY_HEADERS: usize = 128;

/// Most bytes of a request's target, or of all header names and values together.
pub const MAX_GATEWAY_HEAD: usize = 64 * 1024;

/// Longest encoded request or response: a body of [`MAX_GATEWAY_BODY`] and a head.
const MAX_EXCHANGE_LEN: usize = MAX_GATEWAY_BODY + 2 * MAX_GATEWAY_HEAD + 1024;

/// Header fields that belong to one connection (RFC 9110 §7.6.1): never carried across the
/// gateway, in either direction, by the proxy or the host.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One header field: a lower-case name and its value's bytes.
pub type HeaderField = (String, Vec<u8>);

/// An HTTP request to the service behind the host (the plaintext of a sealed request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRequest {
    /// The method (`GET`, `POST`, …: an HTTP token, at most 16 bytes).
    pub method: String,
    /// Path and query (origin form: starts with `/`).
    pub target: String,
    /// Header fields (hop-by-hop ones are dropped by the host).
    pub headers: Vec<HeaderField>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// The service's answer (the plaintext of a sealed response).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayResponse {
    /// The HTTP status (100 to 599).
    pub status: u16,
    /// Header fields (hop-by-hop ones dropped).
    pub headers: Vec<HeaderField>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A sealed gateway request (client → host) or response (host → client): the body of
/// `POST /v1/gateway` and of its `200` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedExchange {
    /// The session.
    pub session_id: [u8; ID_LEN],
    /// The request's number (client-to-host sequence), also the response's.
    pub seq: u64,
    /// AES-256-GCM ciphertext and tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

fn check(ok: bool, field: &'static str) -> Result<(), ProtocolError> {
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::FieldRange { field })
    }
}

/// A header list's limits: count, total size, names lower-case HTTP tokens.
fn check_headers(headers: &[HeaderField]) -> Result<(), ProtocolError> {
    check(headers.len() <= MAX_GATEWAY_HEADERS, "headers")?;
    let size: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    check(size <= MAX_GATEWAY_HEAD, "headers")?;
    let token = |n: &str| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            })
    };
    check(headers.iter().all(|(n, _)| token(n)), "header name")
}

impl Message for GatewayRequest {
    const KIND: u8 = 18;
    const MAX_LEN: usize = MAX_EXCHANGE_LEN;
    const LABEL: &'static [u8] = b"gateway-request";

    fn validate(&self) -> Result<(), ProtocolError> {
        let method_ok = (1..=16).contains(&self.method.len())
            && self.method.bytes().all(|b| b.is_ascii_uppercase());
        check(method_ok, "method")?;
        check(
            self.target.starts_with('/') && self.target.len() <= MAX_GATEWAY_HEAD,
            "target",
        )?;
        check_headers(&self.headers)?;
        check(self.body.len() <= MAX_GATEWAY_BODY, "body")
    }
}

impl Message for GatewayResponse {
    const KIND: u8 = 19;
    const MAX_LEN: usize = MAX_EXCHANGE_LEN;
    const LABEL: &'static [u8] = b"gateway-response";

    fn validate(&self) -> Result<(), ProtocolError> {
        check((100..=599).contains(&self.status), "status")?;
        check_headers(&self.headers)?;
        check(self.body.len() <= MAX_GATEWAY_BODY, "body")
    }
}

impl Message for SealedExchange {
    const KIND: u8 = 20;
    const MAX_LEN: usize = MAX_EXCHANGE_LEN + 16 + 64;
    const LABEL: &'static [u8] = b"sealed-exchange";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.seq >= 1, "seq")?;
        check(
            (16..=MAX_EXCHANGE_LEN + 16).contains(&self.ciphertext.len()),
            "ciphertext",
        )
    }
}

/// The key and nonce of exchange `seq` in `direction` (see the module doc).
fn exchange_key(
    secret: &SessionSecret,
    t_msg: &[u8],
    direction: Direction,
    seq: u64,
) -> Result<AeadKey, ProtocolError> {
    crate::seal::transmission_key(INFO_GATEWAY, secret, t_msg, (direction, seq))
}

/// Seals an encoded request or response as exchange `seq` in `direction`.
pub(crate) fn seal_exchange(
    secret: &SessionSecret,
    session_id: &[u8; ID_LEN],
    t_msg: &[u8],
    (direction, seq): (Direction, u64),
    plaintext: &[u8],
) -> Result<SealedExchange, ProtocolError> {
    check(seq >= 1, "seq")?;
    let key = exchange_key(secret, t_msg, direction, seq)?;
    let aad = message_aad(session_id, direction, seq, GATEWAY_RECIPIENT);
    Ok(SealedExchange {
        session_id: *session_id,
        seq,
        ciphertext: key.seal(&aad, plaintext)?,
    })
}

/// Opens exchange `sealed` as sent in `direction` (checks the session id only; the caller
/// checks the number).
pub(crate) fn open_exchange(
    secret: &SessionSecret,
    session_id: &[u8; ID_LEN],
    t_msg: &[u8],
    direction: Direction,
    sealed: &SealedExchange,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    if &sealed.session_id != session_id {
        return Err(ProtocolError::WrongSession);
    }
    let key = exchange_key(secret, t_msg, direction, sealed.seq)?;
    let aad = message_aad(session_id, direction, sealed.seq, GATEWAY_RECIPIENT);
    key.open(&aad, &sealed.ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> GatewayRequest {
        GatewayRequest {
            method: "POST".into(),
            target: "/a?b=c".into(),
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: vec![7; 4096],
        }
    }

    #[test]
    fn requests_and_responses_round_trip_and_refuse_what_is_out_of_range() {
        let r = request();
        assert_eq!(GatewayRequest::decode(&r.encode().unwrap()).unwrap(), r);
        for bad in [
            GatewayRequest {
                method: "get".into(),
                ..request()
            },
            GatewayRequest {
                method: String::new(),
                ..request()
            },
            GatewayRequest {
                target: "http://x/".into(),
                ..request()
            },
            GatewayRequest {
                headers: vec![("Host".into(), vec![])],
                ..request()
            },
            GatewayRequest {
                headers: vec![("a b".into(), vec![])],
                ..request()
            },
        ] {
            assert!(bad.encode().is_err(), "{bad:?}");
        }
        let resp = GatewayResponse {
            status: 99,
            headers: vec![],
            body: vec![],
        };
        assert!(resp.encode().is_err());
    }

    #[test]
    fn byte_fields_encode_as_a_sequence_of_u8_would() {
        #[derive(Serialize)]
        struct Plain {
            session_id: [u8; ID_LEN],
            seq: u64,
            ciphertext: Vec<u8>,
        }
        let ciphertext: Vec<u8> = (0..=255).collect();
        let with_bytes = SealedExchange {
            session_id: [3; ID_LEN],
            seq: 300,
            ciphertext: ciphertext.clone(),
        };
        let plain = Plain {
            session_id: [3; ID_LEN],
            seq: 300,
            ciphertext,
        };
        assert_eq!(
            postcard::to_allocvec(&with_bytes).unwrap(),
            postcard::to_allocvec(&plain).unwrap()
        );
    }

    #[test]
    fn an_exchange_opens_only_in_its_direction_with_its_number_and_key() {
        let secret = SessionSecret::from_bytes([5; 32]);
        let sid = [9u8; ID_LEN];
        let t = [3u8; 32];
        let sealed =
            seal_exchange(&secret, &sid, &t, (Direction::HostToClient, 4), b"hello").unwrap();
        let open = |d, s: &SealedExchange| open_exchange(&secret, &sid, &t, d, s);
        assert_eq!(
            &open(Direction::HostToClient, &sealed).unwrap()[..],
            b"hello"
        );
        assert!(open(Direction::ClientToHost, &sealed).is_err());
        let moved = SealedExchange {
            seq: 5,
            ..sealed.clone()
        };
        assert!(open(Direction::HostToClient, &moved).is_err());
        let other = SealedExchange {
            session_id: [1; ID_LEN],
            ..sealed.clone()
        };
        assert!(matches!(
            open(Direction::HostToClient, &other),
            Err(ProtocolError::WrongSession)
        ));
        // A message's key for the same number and direction does not open it.
        let msg_key = crate::seal::message_key(&secret, &t, Direction::HostToClient, 4).unwrap();
        let aad = message_aad(&sid, Direction::HostToClient, 4, GATEWAY_RECIPIENT);
        assert!(msg_key.open(&aad, &sealed.ciphertext).is_err());
    }
}
