//! Sealed messages on the host: accepting a client's message (`POST /v1/messages`), the relay
//! queue sealed at rest, the inbox (`GET /v1/inbox`) and its acknowledgement
//! (`POST /v1/inbox/ack`), all as methods of [`Host`].
//!
//! - this module: [`Host::accept_message`] and what every message route shares (the bearer's
//!   session, the session's transform, running it).
//! - `at_rest`: `keys/queue.key` ([`load_queue_key`]) and the AES-256-GCM envelope of a
//!   queued message.
//! - `inbox`: [`Host::inbox`] (long-poll, re-sealed host to client) and [`Host::ack_inbox`].
//! - `passwd`: [`Host::passwd_start`] and [`Host::passwd_finish`] (`kasane passwd`).
//! - [`PerSession`] (`crate::per_session`): a session's inbox reads and message bodies in progress,
//!   each kind bounded per session.
//!
//! A session's whole protocol state ([`StoredSession`]: secret, transcript hash, transform
//! context, module) is kept in the store's `sessions.secret`, so any replica opens and seals
//! for any session; sequence numbers come from the store's columns, atomically.

mod at_rest;
mod inbox;
mod passwd;

use std::time::Instant;

use kasane_abi::Direction;
use kasane_protocol::ProtocolError;
use kasane_protocol::wire::{ID_LEN, Message, MessageAccepted, RefusalReason, SealedMessage};
use kasane_sandbox::Transform;
use zeroize::Zeroizing;

pub use crate::per_session::PerSession;
pub use at_rest::{QUEUE_KEY_FACT, QUEUE_KEY_FILE, load_queue_key, queue_key_id};
pub use inbox::MAX_WAIT_SECS;

use crate::audit::AuditPayload;
use crate::host::Host;
use crate::login::{StoredSession, token_hash};
use crate::store::{AcceptMessage, AcceptOutcome, QueueQuota, Session, UnixSeconds};
use at_rest::{QueuedBody, seal_at_rest};

/// Logs a host fault behind a message route; the client learns only `Unavailable`.
fn unavailable(e: impl std::fmt::Display) -> RefusalReason {
    tracing::error!(error = %e, "message handling");
    RefusalReason::Unavailable
}

/// A client's message opened by its session's transform.
struct Opened {
    plaintext: Zeroizing<Vec<u8>>,
    module_sha256: [u8; 32],
}

impl Host {
    /// `POST /v1/messages`: checks, opens (through the session's transform) and accepts a
    /// client's sealed message, appending it to the session's audit chain and, for a known
    /// recipient, queueing it sealed at rest, in one store transaction. Nothing is stored
    /// for a refused message.
    pub async fn accept_message(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<MessageAccepted, RefusalReason> {
        let session = self.message_session(token).await?;
        let _sending = self.start_send(&session)?;
        self.accept_in_session(session, body).await
    }

    /// The live session a message is sent in, from its bearer token (touching it): what the
    /// server checks before it reads a message body.
    pub async fn message_session(
        &self,
        token: Option<&[u8; 32]>,
    ) -> Result<Session, RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        self.live_session(token, self.now()).await
    }

    /// Counts a message body of `session` being read, until the returned guard drops, or
    /// refuses it (`Unavailable`) when the session already has
    /// `messages.max_sends_per_session` being read on this host process: what bounds the
    /// memory one logged-in client can hold with stalled bodies (issue 14).
    pub fn start_send(&self, session: &Session) -> Result<PerSession<'_>, RefusalReason> {
        let max = self.config.messages.max_sends_per_session;
        PerSession::start(&self.sends, &session.session_id, max)
    }

    /// [`Host::accept_message`] in a session already looked up ([`Host::message_session`]).
    pub async fn accept_in_session(
        &self,
        session: Session,
        body: &[u8],
    ) -> Result<MessageAccepted, RefusalReason> {
        let sealed = SealedMessage::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let now = self.now();
        // Cheap checks before the transform runs.
        precheck(&sealed, &session)?;
        let opened = self.open_message(&sealed, &session).await?;
        if opened.plaintext.len() > self.config.messages.max_body_bytes {
            return Err(RefusalReason::TooLarge);
        }
        let payload = audit_payload(&sealed, &session, opened.module_sha256, now)?;
        // Sealed at rest whether or not the recipient exists: the same work either way.
        let queue = if sealed.recipient.is_empty() {
            None
        } else {
            let body = QueuedBody {
                from: session.user.clone(),
                sent_at: now,
                body: opened.plaintext.to_vec(),
            };
            let at_rest = seal_at_rest(&self.queue_key, &sealed.recipient, &body)
                .ok_or(RefusalReason::Unavailable)?;
            Some((sealed.recipient.clone(), at_rest))
        };
        let outcome = self
            .store
            .accept_message(&AcceptMessage {
                session_id: session.session_id.clone(),
                seq: sealed.seq,
                payload,
                queue,
                quota: self.queue_quota(),
                created: now,
            })
            .await
            .map_err(unavailable)?;
        match outcome {
            AcceptOutcome::Accepted { queued, .. } => {
                if queued.is_some() {
                    self.waiter(&sealed.recipient).notify_waiters();
                }
                tracing::debug!(user = %session.user, seq = sealed.seq, "message accepted");
                Ok(MessageAccepted {
                    seq: sealed.seq,
                    received_at: now,
                })
            }
            AcceptOutcome::Replayed => Err(RefusalReason::Replayed),
            AcceptOutcome::Reordered => Err(RefusalReason::Reordered),
            AcceptOutcome::NoSession => Err(RefusalReason::SessionEnded),
            AcceptOutcome::QueueFull => {
                tracing::info!(user = %session.user, "recipient's queue full");
                Err(RefusalReason::QueueFull)
            }
        }
    }

    /// `[messages]`'s quota on one recipient's queue.
    fn queue_quota(&self) -> QueueQuota {
        QueueQuota {
            max_messages: self.config.messages.max_queue_messages,
            max_bytes: self.config.messages.max_queue_bytes,
        }
    }

    /// The live session of a bearer token (touching it), or `SessionEnded`.
    pub(crate) async fn live_session(
        &self,
        token: &[u8; 32],
        now: UnixSeconds,
    ) -> Result<Session, RefusalReason> {
        self.store
            .touch_session(
                &token_hash(token),
                now,
                self.config.session.idle_timeout_secs,
            )
            .await
            .map_err(unavailable)?
            .ok_or(RefusalReason::SessionEnded)
    }

    /// Opens a client's message with the session's protocol state and transform.
    async fn open_message(
        &self,
        sealed: &SealedMessage,
        session: &Session,
    ) -> Result<Opened, RefusalReason> {
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let transform = self.session_transform(&stored)?;
        let mut ps = stored
            .restore(
                &session.session_id,
                session.last_seq_to_client,
                session.last_seq_from_client,
            )
            .ok_or(RefusalReason::Unavailable)?;
        let input = ps.prepare_open(sealed).map_err(|e| match e {
            ProtocolError::WrongSession => RefusalReason::WrongSession,
            ProtocolError::WrongDirection => RefusalReason::WrongDirection,
            ProtocolError::Replayed { .. } => RefusalReason::Replayed,
            ProtocolError::Reordered { .. } => RefusalReason::Reordered,
            _ => RefusalReason::Malformed,
        })?;
        let t_msg = self.derive(transform, input).await?;
        let plaintext = ps
            .open(sealed, &t_msg)
            .map_err(|_| RefusalReason::Altered)?;
        Ok(Opened {
            plaintext,
            module_sha256: stored.module_sha256(),
        })
    }

    /// The loaded transform of a session (by module hash and name, among the active ones).
    fn session_transform(&self, stored: &StoredSession) -> Result<Transform, RefusalReason> {
        let entry = self
            .registry
            .active(self.now())
            .map_err(unavailable)?
            .into_iter()
            .find(|e| e.sha256.0 == stored.module_sha256() && e.name == stored.module_name())
            .ok_or_else(|| {
                tracing::warn!(module = %stored.module_name(), "session's transform is no longer active");
                RefusalReason::Unavailable
            })?;
        self.registry.transform(&entry).map_err(unavailable)
    }

    /// Runs the transform (purpose: message) off the async workers.
    async fn derive(
        &self,
        transform: Transform,
        input: kasane_abi::DeriveInputBuf,
    ) -> Result<Zeroizing<Vec<u8>>, RefusalReason> {
        let started = Instant::now();
        let derived = tokio::task::spawn_blocking(move || {
            kasane_protocol::with_derive_input(&input, |view| transform.derive(view))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        self.metrics.derive_latency(started.elapsed());
        match derived {
            Ok(d) => Ok(Zeroizing::new(d.key.as_bytes().to_vec())),
            Err(e) => {
                self.metrics.sandbox_error(&e);
                Err(unavailable(e))
            }
        }
    }
}

/// The checks that need no transform: the session, the direction and the sequence number.
fn precheck(sealed: &SealedMessage, session: &Session) -> Result<(), RefusalReason> {
    if sealed.session_id[..] != session.session_id[..] {
        return Err(RefusalReason::WrongSession);
    }
    if sealed.direction != Direction::ClientToHost {
        return Err(RefusalReason::WrongDirection);
    }
    if sealed.seq == session.last_seq_from_client {
        return Err(RefusalReason::Replayed);
    }
    if sealed.seq < session.last_seq_from_client {
        return Err(RefusalReason::Reordered);
    }
    Ok(())
}

/// The audit record's payload of an accepted message (the ciphertext, not the plaintext).
fn audit_payload(
    sealed: &SealedMessage,
    session: &Session,
    module_sha256: [u8; 32],
    now: UnixSeconds,
) -> Result<Vec<u8>, RefusalReason> {
    let session_id: &[u8; ID_LEN] = sealed
        .session_id
        .as_slice()
        .try_into()
        .map_err(|_| RefusalReason::Malformed)?;
    AuditPayload {
        version: 1,
        direction: sealed.direction.as_u8(),
        seq: sealed.seq,
        recipient: sealed.recipient.clone(),
        ciphertext: sealed.ciphertext.clone(),
        aad: kasane_protocol::seal::message_aad(
            session_id,
            sealed.direction,
            sealed.seq,
            &sealed.recipient,
        ),
        module_sha256,
        sender: session.user.clone(),
        received_at: now,
    }
    .encode()
    .map_err(unavailable)
}
