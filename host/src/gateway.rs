//! The gateway (DESIGN §5; docs/GATEWAY.md): the service behind the host.
//!
//! - this module: [`Host::gateway_exchange`] (`POST /v1/gateway`: a sealed HTTP request of
//!   the session, opened, audited, forwarded, its answer sealed back and audited) and
//!   [`Host::auth_check`] (`GET /v1/auth/check`, forward-auth: gates, does not seal).
//! - [`crate::assertion`]: `X-Kasane-Assertion` (an EdDSA JWT) and the JWKS.
//! - [`crate::upstream`]: the HTTP/1.1 client, header filtering and the start-up probe.
//!
//! A request reaches the service only after its number was committed into the session's
//! replay window with its audit record: a replayed, re-ordered, altered or unauthenticated
//! request never does.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kasane_abi::Direction;
use kasane_protocol::gateway::{
    GATEWAY_RECIPIENT, GatewayRequest, GatewayResponse, SealedExchange,
};
use kasane_protocol::wire::{Message, RefusalReason};
use kasane_protocol::{Expect, ProtocolError};
use rand::RngCore as _;

pub use crate::assertion::{AssertionKey, Claims, GATEWAY_KEY_FILE, ISSUER, request_hash};
pub use crate::upstream::{Upstream, UpstreamError, upstream_authority};

use crate::audit::AuditPayload;
use crate::host::Host;
use crate::login::StoredSession;
use crate::messages::{MessageSession, check_window, unavailable, window_refusal};
use crate::store::{AcceptMessage, AcceptOutcome, QueueQuota, SentBy, Session};

/// The format version of a gateway exchange's audit record ([`AuditPayload::version`]; 1 is
/// a message).
pub const AUDIT_VERSION: u8 = 2;

/// Checks `[gateway] upstream` answers HTTP (the host refuses to start otherwise).
pub async fn probe(upstream: &str) -> Result<(), crate::HostError> {
    let refused = |why: String| crate::HostError::GatewayUpstream {
        upstream: upstream.to_owned(),
        why,
    };
    let client = Upstream::new(upstream).ok_or_else(|| refused("not http://HOST:PORT".into()))?;
    client.probe().await.map_err(refused)
}

/// One session's open request, with what the audit and the assertion need.
struct Opened {
    request: GatewayRequest,
    protocol: kasane_protocol::Session,
    stored: StoredSession,
    /// The session's transform, looked up once for both directions.
    transform: kasane_sandbox::Transform,
}

impl Host {
    /// `POST /v1/gateway`: opens a sealed request of `live`'s session, commits its number
    /// and audit record (group commit), forwards it with `X-Kasane-User` and
    /// `X-Kasane-Assertion`, and answers the service's response sealed back for the same
    /// number, once that is audited too. Failures of the service come back sealed as a 502
    /// or 504 with a one-line reason; refusals before the service (no gateway, a bad
    /// request, replayed or re-ordered numbers) as [`RefusalReason`]s.
    pub async fn gateway_exchange(
        &self,
        live: MessageSession,
        body: &[u8],
        client: IpAddr,
    ) -> Result<Vec<u8>, RefusalReason> {
        let upstream = self.upstream.as_ref().ok_or(RefusalReason::Unavailable)?;
        let sealed = SealedExchange::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let Opened {
            request,
            protocol,
            stored,
            transform,
        } = self.open_request(&sealed, &live.session).await?;
        self.check_request(&request)?;
        // Room for the response's record, held until this handling ends however it ends
        // (`crate::budget_holds`).
        let reserve = self.config.gateway.response_reserve();
        let (_room, held) = self.budget_holds.hold(&live.session.user, reserve);
        let request_side = (Direction::ClientToHost, held);
        self.commit_exchange(&live, &sealed, &stored, request_side)
            .await?;
        let response = self
            .call_upstream(upstream, request, (&live.session, &stored), client)
            .await;
        let plain = match response.encode() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "gateway: the upstream's answer does not fit a response");
                failed(&UpstreamError::Unrepresentable)
                    .encode()
                    .map_err(unavailable)?
            }
        };
        let input = protocol.exchange_input(Direction::HostToClient, sealed.seq);
        let t_msg = self.derive(transform, input).await?;
        let answer = protocol
            .seal_exchange(sealed.seq, &t_msg, &plain)
            .map_err(unavailable)?;
        self.commit_exchange(&live, &answer, &stored, (Direction::HostToClient, 0))
            .await?;
        answer.encode().map_err(unavailable)
    }

    /// Checks the exchange's session and number, runs the transform and opens the request.
    async fn open_request(
        &self,
        sealed: &SealedExchange,
        session: &Session,
    ) -> Result<Opened, RefusalReason> {
        if sealed.session_id[..] != session.session_id[..] {
            return Err(RefusalReason::WrongSession);
        }
        let window = &session.from_client;
        check_window(window, sealed.seq)?;
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let transform = self.session_transform(&stored)?;
        let protocol = stored
            .restore(
                &session.session_id,
                session.last_seq_to_client,
                window.top(),
            )
            .ok_or(RefusalReason::Unavailable)?;
        let input = protocol.exchange_input(Direction::ClientToHost, sealed.seq);
        let t_msg = self.derive(transform.clone(), input).await?;
        let plain = protocol
            .open_exchange(sealed, &t_msg, Expect::InWindow(window))
            .map_err(|e| match e {
                ProtocolError::Replayed { .. } | ProtocolError::Reordered { .. } => {
                    window_refusal(e)
                }
                _ => RefusalReason::Altered,
            })?;
        let request = GatewayRequest::decode(&plain).map_err(|_| RefusalReason::Malformed)?;
        Ok(Opened {
            request,
            protocol,
            stored,
            transform,
        })
    }

    /// `[gateway]`'s method list, path prefix and body limit.
    fn check_request(&self, r: &GatewayRequest) -> Result<(), RefusalReason> {
        let g = &self.config.gateway;
        if r.body.len() > g.max_body_bytes {
            return Err(RefusalReason::TooLarge);
        }
        let allowed = g.methods.iter().any(|m| m == &r.method)
            && under_prefix(&r.target, &g.path_prefix)
            && !may_leave_prefix(&r.target, g.path_prefix == "/");
        if allowed {
            Ok(())
        } else {
            tracing::info!(method = %r.method, "gateway request outside [gateway] methods or path_prefix");
            Err(RefusalReason::Malformed)
        }
    }

    /// Audits one side of an exchange as sent (ciphertext), through the message path's
    /// group commit; the request's number enters the replay window in the same commit.
    /// `held`: the room the user holds against its daily budget ([`AcceptMessage::held`]).
    async fn commit_exchange(
        &self,
        live: &MessageSession,
        sealed: &SealedExchange,
        stored: &StoredSession,
        (direction, held): (Direction, u64),
    ) -> Result<(), RefusalReason> {
        let session = &live.session;
        let now = self.now();
        let payload = AuditPayload {
            version: AUDIT_VERSION,
            direction: direction.as_u8(),
            seq: sealed.seq,
            recipient: GATEWAY_RECIPIENT.to_owned(),
            ciphertext: sealed.ciphertext.clone(),
            aad: kasane_protocol::seal::message_aad(
                &sealed.session_id,
                direction,
                sealed.seq,
                GATEWAY_RECIPIENT,
            ),
            module_sha256: stored.module_sha256(),
            sender: session.user.clone(),
            received_at: now,
        }
        .encode()
        .map_err(unavailable)?;
        let accept = AcceptMessage {
            session_id: session.session_id.clone(),
            seq: sealed.seq,
            payload,
            queue: None,
            quota: QueueQuota {
                max_messages: 0,
                max_bytes: 0,
            },
            daily_budget: self.config.messages.max_user_bytes_per_day,
            held,
            created: now,
            sent_by: match direction {
                Direction::ClientToHost => SentBy::Client,
                Direction::HostToClient => SentBy::Host,
            },
        };
        let outcome = self
            .message_commits()
            .submit(accept)
            .await
            .map_err(unavailable)?;
        match (direction, outcome) {
            (Direction::HostToClient, AcceptOutcome::Accepted { .. }) => Ok(()),
            (Direction::HostToClient, _) => Err(RefusalReason::Unavailable),
            (Direction::ClientToHost, o) => self
                .accepted(live, (sealed.seq, GATEWAY_RECIPIENT), o, now)
                .map(|_| ()),
        }
    }

    /// Forwards the opened request (its body moved, not copied); the service's answer, or a
    /// 502/504 saying why not.
    async fn call_upstream(
        &self,
        upstream: &Upstream,
        r: GatewayRequest,
        (session, stored): (&Session, &StoredSession),
        client: IpAddr,
    ) -> GatewayResponse {
        let g = &self.config.gateway;
        let hash = request_hash(&r.method, &r.target, &r.body);
        let started = Instant::now();
        let forwarded = match self.assertion(session, stored, Some(hash)) {
            Ok(jwt) => {
                // The forwarding headers the host writes itself: the client's own are dropped
                // (`upstream::passes`), so the service can believe these.
                let added = [
                    ("x-kasane-user", session.user.clone()),
                    ("x-kasane-assertion", jwt),
                    ("x-forwarded-for", client.to_string()),
                    ("x-forwarded-proto", "https".to_owned()),
                ];
                let timeout = Duration::from_secs(g.timeout_secs);
                upstream.forward(r, added, timeout, g.max_body_bytes).await
            }
            Err(_) => Err(UpstreamError::Request("assertion")),
        };
        let response = forwarded.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "gateway: upstream failed");
            failed(&e)
        });
        self.metrics.gateway(response.status, started.elapsed());
        response
    }

    /// A signed assertion for `session` (for `request`, if there is one).
    fn assertion(
        &self,
        session: &Session,
        stored: &StoredSession,
        request: Option<String>,
    ) -> Result<String, serde_json::Error> {
        let now = self.now();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            iss: ISSUER,
            sub: &session.user,
            aud: self.config.gateway.audience(),
            iat: now,
            exp: now.saturating_add(self.config.gateway.assertion_ttl_secs),
            jti: hex::encode(jti),
            sid: hex::encode(&session.session_id),
            kasane_transform: stored.module_name(),
            kasane_transform_sha256: hex::encode(stored.module_sha256()),
            kasane_request_sha256: request,
        };
        self.assertion_key.sign(&claims)
    }

    /// `GET /v1/auth/check` (forward-auth): the user and a fresh assertion for a live
    /// session token (its idle time-out applies and is extended, as for any request), or
    /// `SessionEnded`. A check without a live session counts as a failure of `source`'s
    /// network (`[throttle]`, as failed logins); while it is locked every check from there
    /// is refused before the session is looked up.
    pub async fn auth_check(
        &self,
        token: Option<&[u8; 32]>,
        source: std::net::IpAddr,
    ) -> Result<(String, String), RefusalReason> {
        if self.source_locked(source, self.now()).await {
            return Err(RefusalReason::SessionEnded);
        }
        let live = match token {
            Some(t) => self.live_session(t, self.now()).await,
            None => Err(RefusalReason::SessionEnded),
        };
        let session = match live {
            Ok(s) => s,
            Err(r) => {
                if r == RefusalReason::SessionEnded {
                    self.record_source_failure(source).await;
                }
                return Err(r);
            }
        };
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let jwt = self
            .assertion(&session, &stored, None)
            .map_err(unavailable)?;
        Ok((session.user, jwt))
    }

    /// `GET /.well-known/jwks.json`.
    #[must_use]
    pub fn jwks(&self) -> String {
        self.assertion_key.jwks()
    }
}

/// How many rounds of percent-decoding [`may_leave_prefix`] looks through: a service that
/// decodes a path more often than this is not one to put behind a gateway.
const DECODE_ROUNDS: usize = 4;

/// Whether `target` could reach outside `[gateway] path_prefix` once a service normalizes
/// it, so it is refused: a fragment (never part of a request); a path that, as sent or
/// after any of [`DECODE_ROUNDS`] rounds of percent-decoding, has a `.` or `..` segment (also
/// `..;x`: Tomcat and Spring drop a segment's `;` parameters before normalizing); and, under
/// a prefix other than `/` (`root` false), a backslash or a NUL (a separator or a terminator
/// to some servers) or a slash that decoding made (`%2F`: nginx decodes it, then collapses the
/// `..` it completes). Under `/` nothing can leave the prefix, and services whose paths carry
/// encoded slashes (GitLab's project paths) work. A path still changing after the last round
/// is refused too.
fn may_leave_prefix(target: &str, root: bool) -> bool {
    if target.contains('#') {
        return true;
    }
    let mut path = target.split('?').next().unwrap_or("").to_owned();
    for _ in 0..DECODE_ROUNDS {
        let separators = !root && path.contains(['\\', '\0']);
        if separators || path.split('/').any(is_dot_segment) {
            return true;
        }
        let decoded = percent_encoding::percent_decode_str(&path)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == path {
            return false;
        }
        if !root && decoded.matches('/').count() != path.matches('/').count() {
            return true;
        }
        path = decoded;
    }
    true
}

/// `.` or `..`, with any `;` parameters after it.
fn is_dot_segment(segment: &str) -> bool {
    let name = segment.split(';').next().unwrap_or("");
    name == "." || name == ".."
}

/// The host's own answer when the upstream gave none it can pass on: 502 or 504 with a
/// one-line reason.
fn failed(e: &UpstreamError) -> GatewayResponse {
    GatewayResponse {
        status: e.status(),
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: format!("kasane gateway: {e}\n").into_bytes(),
    }
}

/// Whether `target` is under `prefix` at a path-segment boundary (`/api` admits `/api`,
/// `/api/x` and `/api?q`, not `/apix`).
fn under_prefix(target: &str, prefix: &str) -> bool {
    match target.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_a_service_could_normalize_out_of_the_prefix_are_refused() {
        for t in [
            "/a/../b",
            "/..",
            "/a/%2e%2e/b",
            "/a/.%2E/b",
            "/%2E%2e",
            "/a/./b",
            "/a/%2e/b",
            "/api/x%2F..%2F..%2Fadmin",
            "/api/x%2f..%2f..%2fadmin",
            "/api/..;/admin",
            "/api/..%3b/admin",
            "/api/..\\admin",
            "/api/x%5c..%5cadmin",
            "/api/%252e%252e/admin",
            "/api/%25252f",
            "/api/x%00.html",
            "/api/x#frag",
            "/api/%2525252e",
        ] {
            assert!(may_leave_prefix(t, false), "{t}");
        }
        // Under `/` nothing can leave the prefix: encoded slashes pass (GitLab's project
        // paths), dot segments still do not.
        for t in ["/api/v4/projects/group%2Fproject", "/a\\b"] {
            assert!(may_leave_prefix(t, false), "{t}");
            assert!(!may_leave_prefix(t, true), "{t}");
        }
        for t in ["/a/../b", "/a/%2e%2e/b", "/api/..;/admin", "/x#f"] {
            assert!(may_leave_prefix(t, true), "{t}");
        }
        for t in [
            "/a/b",
            "/a/..b",
            "/a?x=/../",
            "/a/.../b",
            "/a/.hidden",
            "/a/b;v=1",
            "/a/caf%C3%A9",
            "/a/100%25",
            "/a/%zz",
            "/a/x?q=%2f..%5c",
            "/",
        ] {
            assert!(!may_leave_prefix(t, false), "{t}");
        }
    }

    #[test]
    fn prefixes_end_at_a_segment() {
        for (t, p) in [
            ("/api", "/api"),
            ("/api/x", "/api"),
            ("/api?q", "/api"),
            ("/x", "/"),
        ] {
            assert!(under_prefix(t, p), "{t} under {p}");
        }
        for (t, p) in [("/apix", "/api"), ("/ap", "/api"), ("/other", "/api/")] {
            assert!(!under_prefix(t, p), "{t} not under {p}");
        }
    }
}
