//! [`Session`]: sending and receiving sealed messages after a login.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::StatusCode;
use kasane_protocol::card::CodeCard;
use kasane_protocol::opaque;
use kasane_protocol::verifier::{ResponseKey, SALT_LEN};
use kasane_protocol::wire::Message;
use kasane_protocol::wire::{EnrolledPair, PasswdChallenge, PasswdStart};
use kasane_protocol::{
    Delivery, Inbox, InboxAck, MessageAccepted, MessageRefused, ProtocolError, RefusalReason,
    SealedMessage,
};
use kasane_sandbox::Transform;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::ClientError;
use crate::client::{Inner, decode, derive_message};
use crate::net::Conn;

/// Most distinct delivery ids remembered for de-duplication.
const SEEN_CAP: usize = 65_536;

/// Most messages one session has in flight at once ([`Session::send`] from several tasks):
/// well inside the host's replay window (64), so messages overtaking each other are all
/// accepted. Each needs a connection of its own (HTTP/1.1), kept for the next.
pub const MAX_IN_FLIGHT: usize = 16;

/// How often [`Session::send`] seals a message again after the host refused it as
/// `reordered`.
pub const REORDERED_RETRIES: usize = 3;

/// A logged-in session: send and receive sealed messages.
///
/// [`send`](Session::send) takes `&self` and pipelines: tasks sharing one session (e.g.
/// through an `Arc`) have up to [`MAX_IN_FLIGHT`] messages in flight, each sealed under its
/// own sequence number (reserved in call order) and posted on a connection of the session's
/// own small pool; the host accepts them in any order inside its replay window, each once.
/// Receiving ([`inbox`](Session::inbox)) takes `&mut self`.
pub struct Session {
    user: String,
    session_id: [u8; 16],
    token: Zeroizing<[u8; 32]>,
    /// Held only between awaits (never across one).
    proto: Mutex<kasane_protocol::Session>,
    pub(crate) transform: Transform,
    client: Arc<Inner>,
    /// Idle connections, at most [`MAX_IN_FLIGHT`].
    conns: Mutex<Vec<Conn>>,
    in_flight: tokio::sync::Semaphore,
    seen: HashSet<u64>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One opened message from the inbox. `Debug` shows the body's length, not its bytes.
pub struct Received {
    /// The host's delivery id.
    pub id: u64,
    /// The sender's user name.
    pub from: String,
    /// When the host accepted it (Unix seconds).
    pub sent_at: u64,
    /// The plaintext.
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("id", &self.id)
            .field("from", &self.from)
            .field("sent_at", &self.sent_at)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One inbox fetch: the messages opened (and acked) and those refused (not acked).
#[derive(Debug, Default)]
pub struct InboxReport {
    /// Opened, new messages (acked).
    pub received: Vec<Received>,
    /// Messages that did not open, each as [`ClientError::Incoming`] (not acked).
    pub refused: Vec<ClientError>,
    /// The host has more messages waiting.
    pub more: bool,
    /// The acknowledgement of `received` failed (the host busy, the connection lost): they
    /// are reported all the same — the host may have deleted them already — and, should the
    /// host deliver them again, this session acknowledges them without reporting them twice.
    pub ack_error: Option<ClientError>,
}

/// The refusal a received message earns for a protocol error.
fn incoming_reason(e: &ProtocolError) -> RefusalReason {
    match e {
        ProtocolError::Replayed { .. } => RefusalReason::Replayed,
        ProtocolError::Reordered { .. } => RefusalReason::Reordered,
        ProtocolError::WrongSession => RefusalReason::WrongSession,
        ProtocolError::WrongDirection => RefusalReason::WrongDirection,
        ProtocolError::Decrypt | ProtocolError::Padding => RefusalReason::Altered,
        _ => RefusalReason::Malformed,
    }
}

impl Session {
    /// The session a login opened on `conn`.
    pub(crate) fn new(
        user: &str,
        token: Zeroizing<[u8; 32]>,
        proto: kasane_protocol::Session,
        transform: Transform,
        client: Arc<Inner>,
        conn: Conn,
    ) -> Self {
        Session {
            user: user.to_owned(),
            session_id: *proto.session_id(),
            token,
            proto: Mutex::new(proto),
            transform,
            client,
            conns: Mutex::new(vec![conn]),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            seen: HashSet::new(),
        }
    }

    /// The logged-in user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session token in hex (64 digits): the bearer a reverse proxy's forward-auth
    /// check (`GET /v1/auth/check`, docs/GATEWAY.md) accepts as `Authorization: Bearer …`
    /// or as the `kasane_session` cookie. Whoever holds it acts as this session until the
    /// host's idle or absolute time-out, or a logout: keep it like a password.
    pub fn bearer_token(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.token.as_slice()))
    }

    /// The session id.
    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }

    /// The session's protocol state (a panic elsewhere cannot leave it half-changed: every
    /// change is one call under the lock).
    pub(crate) fn proto(&self) -> MutexGuard<'_, kasane_protocol::Session> {
        self.proto.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One authenticated request on an idle connection of the session's (a new one if none
    /// is open), which goes back to the pool once the answer is read.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        extra_wait: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let conn = self.take_conn().await?;
        self.request_on(conn, method, path, body, extra_wait).await
    }

    /// An idle connection of the session's, or a new one.
    pub(crate) async fn take_conn(&self) -> Result<Conn, ClientError> {
        match self.idle_conn() {
            Some(c) => Ok(c),
            None => self.client.conn().await,
        }
    }

    /// [`Session::request`] on `conn`, which goes back to the pool if it still works.
    async fn request_on(
        &self,
        conn: Conn,
        method: &str,
        path: &str,
        body: Vec<u8>,
        extra_wait: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        self.post_up_to(
            conn,
            (method, path),
            body,
            extra_wait,
            crate::net::MAX_RESPONSE,
        )
        .await
    }

    /// [`Session::request_on`] reading at most `max` bytes of the answer.
    pub(crate) async fn post_up_to(
        &self,
        mut conn: Conn,
        (method, path): (&str, &str),
        body: Vec<u8>,
        extra_wait: Duration,
        max: usize,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let result = conn
            .request_up_to(method, path, (body, Some(&self.token)), extra_wait, max)
            .await;
        if result.is_ok() {
            let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            if conns.len() < MAX_IN_FLIGHT {
                conns.push(conn);
            }
        }
        result
    }

    /// An open idle connection from the pool (closed ones are dropped).
    fn idle_conn(&self) -> Option<Conn> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(c) = conns.pop() {
            if c.is_open() {
                return Some(c);
            }
        }
        None
    }

    /// A refusal body (`MessageRefused`) or an unexpected status.
    pub(crate) fn refusal(step: &'static str, status: StatusCode, body: &[u8]) -> ClientError {
        match MessageRefused::decode(body) {
            Ok(r) => ClientError::Refused(r.reason),
            Err(_) if status == StatusCode::UNAUTHORIZED => {
                ClientError::Refused(RefusalReason::SessionEnded)
            }
            Err(_) => ClientError::unexpected(step, status),
        }
    }

    /// Seals `body` for `to` and posts it; answered once the host has committed it durably.
    /// Several calls may run at once on one session (see [`Session`]); beyond
    /// [`MAX_IN_FLIGHT`] a call waits for one in flight to finish. A message the host refuses
    /// as `reordered` (it waited so long that the session's later messages pushed the host's
    /// replay window past its number; nothing of it was kept) is sealed again under a new
    /// number and sent again, up to [`REORDERED_RETRIES`] times.
    pub async fn send(&self, to: &str, body: &[u8]) -> Result<MessageAccepted, ClientError> {
        self.pipelined(|| self.send_once(to, body)).await
    }

    /// Runs `attempt` holding one of the session's [`MAX_IN_FLIGHT`] slots, again (up to
    /// [`REORDERED_RETRIES`] times) while the host refuses it as `reordered`: each attempt
    /// seals under a new number, and a refused one left nothing at the host.
    pub(crate) async fn pipelined<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ClientError::Refused(RefusalReason::SessionEnded))?;
        let mut retries = 0;
        loop {
            match attempt().await {
                Err(ClientError::Refused(RefusalReason::Reordered))
                    if retries < REORDERED_RETRIES =>
                {
                    retries += 1;
                }
                other => return other,
            }
        }
    }

    /// One try of [`Session::send`].
    async fn send_once(&self, to: &str, body: &[u8]) -> Result<MessageAccepted, ClientError> {
        // The connection first, the sequence number only then: a number is reserved only
        // for a message about to go out, so one waiting for a connection (the host at its
        // connection limit) does not fall behind the host's replay window.
        let conn = self.take_conn().await?;
        let (seq, input) = self.proto().prepare_seal()?;
        let t_msg = derive_message(&self.transform, input).await?;
        let sealed = self.proto().seal(seq, &t_msg, to, body)?;
        drop(t_msg);
        let bytes = sealed.encode()?;
        let (status, resp) = self
            .request_on(conn, "POST", "/v1/messages", bytes, Duration::ZERO)
            .await?;
        if status == StatusCode::OK {
            decode::<MessageAccepted>(&resp)
        } else {
            Err(Self::refusal("send", status, &resp))
        }
    }

    /// Opens one received message.
    async fn open(&mut self, sealed: &SealedMessage) -> Result<Delivery, ClientError> {
        if sealed.recipient != self.user {
            return Err(ClientError::Incoming(RefusalReason::Altered));
        }
        let input = self
            .proto()
            .prepare_open(sealed)
            .map_err(|e| ClientError::Incoming(incoming_reason(&e)))?;
        let t_msg = derive_message(&self.transform, input).await?;
        let plaintext = self
            .proto()
            .open(sealed, &t_msg)
            .map_err(|e| ClientError::Incoming(incoming_reason(&e)))?;
        Delivery::decode(&plaintext).map_err(|_| ClientError::Incoming(RefusalReason::Malformed))
    }

    /// Fetches the inbox (waiting up to `wait_secs`), opens each message and acks the
    /// opened ones; reports the refused ones separately (they are not acked), and a failed
    /// acknowledgement beside the messages it was for (`ack_error`), never instead of them.
    pub async fn inbox_report(&mut self, wait_secs: u32) -> Result<InboxReport, ClientError> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/v1/inbox?wait={wait_secs}"),
                Vec::new(),
                Duration::from_secs(u64::from(wait_secs)),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(Self::refusal("inbox", status, &body));
        }
        let inbox = decode::<Inbox>(&body)?;
        let mut report = InboxReport {
            more: inbox.more,
            ..InboxReport::default()
        };
        let mut ack = Vec::new();
        for sealed in &inbox.messages {
            match self.open(sealed).await {
                Ok(d) => {
                    ack.push(d.id);
                    if self.seen.len() >= SEEN_CAP {
                        self.seen.clear();
                    }
                    if self.seen.insert(d.id) {
                        report.received.push(Received {
                            id: d.id,
                            from: d.from.clone(),
                            sent_at: d.sent_at,
                            body: Zeroizing::new(d.body.clone()),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(seq = sealed.seq, "received message refused: {e}");
                    report.refused.push(e);
                }
            }
        }
        for ids in ack.chunks(1024) {
            if let Err(e) = self.ack(ids).await {
                report.ack_error = Some(e);
                break;
            }
        }
        Ok(report)
    }

    /// `POST /v1/inbox/ack` for `ids`.
    async fn ack(&self, ids: &[u64]) -> Result<(), ClientError> {
        let bytes = InboxAck { ids: ids.to_vec() }.encode()?;
        let (status, body) = self
            .request("POST", "/v1/inbox/ack", bytes, Duration::ZERO)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refusal("ack", status, &body))
        }
    }

    /// Fetches the inbox (waiting up to `wait_secs`), opens each message and acks the opened
    /// ones. A message that does not open is not acked; when nothing opened, the first
    /// refusal is the error (see [`Session::inbox_report`] for both at once). A failed
    /// acknowledgement is logged, and the messages returned all the same.
    pub async fn inbox(&mut self, wait_secs: u32) -> Result<Vec<Received>, ClientError> {
        let mut report = self.inbox_report(wait_secs).await?;
        if report.received.is_empty() && !report.refused.is_empty() {
            return Err(report.refused.swap_remove(0));
        }
        if let Some(e) = &report.ack_error {
            tracing::warn!("acknowledging received messages: {e}");
        }
        Ok(report.received)
    }

    /// Replaces this user's password and card (`kasane passwd`): runs OPAQUE registration for
    /// `new_password` (one argon2id, off the async workers), computes the keyed verifier of
    /// each of `card`'s responses under the new export key, and sends the record and the
    /// verifiers authenticated by this session. Neither the password nor a response leaves
    /// this process. The session stays open; the next login needs the new password and card.
    pub async fn change_credentials(
        &mut self,
        new_password: Zeroizing<String>,
        card: &CodeCard,
    ) -> Result<(), ClientError> {
        let (state, request) = opaque::start_registration(&mut OsRng, new_password.as_bytes())?;
        let body = PasswdStart {
            registration_request: request,
        }
        .encode()?;
        let (status, answer) = self
            .request("POST", "/v1/passwd/start", body, Duration::ZERO)
            .await?;
        if status != StatusCode::OK {
            return Err(Self::refusal("passwd", status, &answer));
        }
        let challenge = decode::<PasswdChallenge>(&answer)?;
        let (response, replaces) = (challenge.registration_response, challenge.replaces);
        let user = self.user.clone();
        let responses = card.pairs.clone();
        let (upload, pairs) = tokio::task::spawn_blocking(move || {
            enroll_locally(state, &new_password, &response, &user, &responses)
        })
        .await??;
        let body = self.proto().seal_passwd(upload, pairs, replaces)?;
        let (status, answer) = self
            .request("POST", "/v1/passwd/finish", body, Duration::ZERO)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refusal("passwd", status, &answer))
        }
    }

    /// Logs out.
    pub async fn close(self) -> Result<(), ClientError> {
        self.logout().await
    }

    /// Logs out, for a holder of a shared session (`kasane proxy` at Ctrl-C); the session
    /// is unusable afterwards (the host refuses it as ended).
    pub async fn logout(&self) -> Result<(), ClientError> {
        let (status, body) = self
            .request("POST", "/v1/logout", Vec::new(), Duration::ZERO)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refusal("logout", status, &body))
        }
    }
}

/// The client's half of a re-enrollment: the OPAQUE upload and the keyed verifiers of the
/// new card (fresh 16-byte salts).
fn enroll_locally(
    state: opaque::ClientRegistrationState,
    password: &str,
    response: &[u8],
    user: &str,
    responses: &[(String, Zeroizing<String>)],
) -> Result<(Vec<u8>, Vec<EnrolledPair>), ProtocolError> {
    let context = opaque::context(None);
    let binding = opaque::Binding::for_user(user, &context);
    let (upload, export_key) =
        opaque::registration_finish(state, &mut OsRng, password.as_bytes(), response, &binding)?;
    let key = ResponseKey::derive(&export_key);
    let mut pairs = Vec::with_capacity(responses.len());
    for (prompt, answer) in responses {
        let mut salt = vec![0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let verifier = key.verifier(answer, &salt)?;
        pairs.push(EnrolledPair {
            prompt: prompt.clone(),
            salt,
            verifier: verifier.to_vec(),
        });
    }
    Ok((upload, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_protocol_errors_map_to_their_refusal() {
        let cases = [
            (ProtocolError::Replayed { seq: 3 }, RefusalReason::Replayed),
            (
                ProtocolError::Reordered { seq: 2, last: 3 },
                RefusalReason::Reordered,
            ),
            (ProtocolError::WrongSession, RefusalReason::WrongSession),
            (ProtocolError::WrongDirection, RefusalReason::WrongDirection),
            (ProtocolError::Decrypt, RefusalReason::Altered),
            (ProtocolError::Padding, RefusalReason::Altered),
            (ProtocolError::Truncated, RefusalReason::Malformed),
        ];
        for (e, want) in cases {
            assert_eq!(incoming_reason(&e), want, "{e}");
        }
    }

    #[test]
    fn a_refusal_body_is_its_reason_and_a_bare_401_ends_the_session() {
        let body = MessageRefused {
            reason: RefusalReason::TooLarge,
        }
        .encode()
        .unwrap_or_default();
        assert!(matches!(
            Session::refusal("send", StatusCode::PAYLOAD_TOO_LARGE, &body),
            ClientError::Refused(RefusalReason::TooLarge)
        ));
        assert!(matches!(
            Session::refusal("send", StatusCode::UNAUTHORIZED, b"\x01\x07"),
            ClientError::Refused(RefusalReason::SessionEnded)
        ));
        assert!(matches!(
            Session::refusal("send", StatusCode::INTERNAL_SERVER_ERROR, b""),
            ClientError::Protocol(_)
        ));
    }
}
