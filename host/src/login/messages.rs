//! Sealed messages on the host: accepting a client's message (`POST /v1/messages`), the relay
//! queue sealed at rest, the inbox (`GET /v1/inbox`) and its acknowledgement
//! (`POST /v1/inbox/ack`), and signed audit checkpoints.
//!
//! A session's whole protocol state ([`StoredSession`]: secret, transcript hash, transform
//! context, module) is kept in the store's `sessions.secret`, so any replica opens and seals
//! for any session; sequence numbers come from the store's columns, atomically.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use kasane_abi::Direction;
use kasane_protocol::wire::{
    Delivery, ID_LEN, Inbox, InboxAck, MAX_INBOX_LEN, MAX_INBOX_MESSAGES, Message, MessageAccepted,
    ModuleRef, RefusalReason, SealedMessage,
};
use kasane_protocol::{
    DeriveContext, Padding, ProtocolError, Session, SessionParts, SessionSecret,
};
use kasane_sandbox::Transform;
use rand::RngCore;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Host, token_hash};
use crate::HostError;
use crate::audit::{AuditPayload, sign_checkpoint};
use crate::store::{AcceptMessage, AcceptOutcome, StoreError};

/// File name of the queue key in the keys directory.
pub const QUEUE_KEY_FILE: &str = "queue.key";

/// Longest inbox long-poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Reads `keys_dir/queue.key` (32 bytes), creating it with 32 random bytes (mode 0600) if
/// it is missing.
pub fn load_queue_key(keys_dir: &Path) -> Result<Zeroizing<[u8; 32]>, HostError> {
    let path = keys_dir.join(QUEUE_KEY_FILE);
    let mut key = Zeroizing::new([0u8; 32]);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            if bytes.len() != 32 {
                return Err(HostError::Config(format!(
                    "{}: not a 32-byte key",
                    path.display()
                )));
            }
            key.copy_from_slice(&bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OsRng.fill_bytes(&mut *key);
            std::fs::create_dir_all(keys_dir).map_err(|e| HostError::io(keys_dir, e))?;
            std::fs::write(&path, &key[..]).map_err(|e| HostError::io(&path, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| HostError::io(&path, e))?;
            }
        }
        Err(e) => return Err(HostError::io(&path, e)),
    }
    Ok(key)
}

/// A session's protocol state as the store keeps it (postcard, in `sessions.secret`).
/// Secret: zeroized on drop; `Debug` prints only the module.
#[derive(Serialize, Deserialize)]
pub struct StoredSession {
    version: u8,
    secret: [u8; 32],
    transcript_hash: [u8; 32],
    challenges: Vec<Vec<u8>>,
    counter: u64,
    timestamp: u64,
    server_nonce: [u8; 32],
    client_nonce: [u8; 32],
    params: Vec<u8>,
    module_sha256: [u8; 32],
    module_name: String,
}

impl Drop for StoredSession {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("module", &self.module_name)
            .finish_non_exhaustive()
    }
}

impl StoredSession {
    /// The state of a session just established with the transform `module`.
    #[must_use]
    pub fn new(parts: SessionParts, module: &ModuleRef) -> Self {
        let ctx = parts.context;
        Self {
            version: 1,
            secret: *parts.secret.expose_secret(),
            transcript_hash: parts.transcript_hash,
            challenges: ctx.challenges,
            counter: ctx.counter,
            timestamp: ctx.timestamp,
            server_nonce: ctx.server_nonce,
            client_nonce: ctx.client_nonce,
            params: ctx.params,
            module_sha256: module.sha256,
            module_name: module.name.clone(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, postcard::Error> {
        postcard::to_allocvec(self).map(Zeroizing::new)
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let s: Self = postcard::from_bytes(bytes)?;
        if s.version != 1 {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(s)
    }

    /// The session secret (for agreement checks).
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// SHA-256 of the session's transform module.
    #[must_use]
    pub fn module_sha256(&self) -> [u8; 32] {
        self.module_sha256
    }

    /// The host's protocol session (sending host to client) with these sequence numbers.
    fn restore(&self, session_id: &[u8], last_sent: u64, last_received: u64) -> Option<Session> {
        let session_id: [u8; ID_LEN] = session_id.try_into().ok()?;
        Some(Session::from_parts(SessionParts {
            session_id,
            secret: SessionSecret::from_bytes(self.secret),
            transcript_hash: self.transcript_hash,
            context: DeriveContext {
                challenges: self.challenges.clone(),
                counter: self.counter,
                timestamp: self.timestamp,
                server_nonce: self.server_nonce,
                client_nonce: self.client_nonce,
                params: self.params.clone(),
            },
            outgoing: Direction::HostToClient,
            last_sent,
            last_received,
        }))
    }
}

/// A queued message before it is sealed at rest.
#[derive(Serialize, Deserialize)]
struct QueuedBody {
    from: String,
    sent_at: u64,
    body: Vec<u8>,
}

impl Drop for QueuedBody {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

const QUEUE_AAD_LABEL: &[u8] = b"kasane/v1/queue";

fn queue_aad(recipient: &str) -> Vec<u8> {
    [QUEUE_AAD_LABEL, recipient.as_bytes()].concat()
}

/// nonce (12) ‖ AES-256-GCM(key, nonce, postcard(body), AAD = label ‖ recipient).
fn seal_at_rest(key: &[u8; 32], recipient: &str, body: &QueuedBody) -> Option<Vec<u8>> {
    let plain = Zeroizing::new(postcard::to_allocvec(body).ok()?);
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key.into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &queue_aad(recipient),
            },
        )
        .ok()?;
    Some([&nonce[..], &ct].concat())
}

fn open_at_rest(key: &[u8; 32], recipient: &str, sealed: &[u8]) -> Option<QueuedBody> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    let cipher = Aes256Gcm::new(key.into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &queue_aad(recipient),
                },
            )
            .ok()?,
    );
    postcard::from_bytes(&plain).ok()
}

fn unavailable(e: impl std::fmt::Display) -> RefusalReason {
    tracing::error!(error = %e, "message handling");
    RefusalReason::Unavailable
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
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let sealed = SealedMessage::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let now = self.now();
        let session = self
            .store
            .touch_session(
                &token_hash(token),
                now,
                self.config.session.idle_timeout_secs,
            )
            .await
            .map_err(unavailable)?
            .ok_or(RefusalReason::SessionEnded)?;
        // Cheap checks before the transform runs.
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
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let transform = self.session_transform(&stored)?;
        let mut ps = stored
            .restore(
                &session.session_id,
                session.last_seq_to_client,
                session.last_seq_from_client,
            )
            .ok_or(RefusalReason::Unavailable)?;
        let input = ps.prepare_open(&sealed).map_err(|e| match e {
            ProtocolError::WrongSession => RefusalReason::WrongSession,
            ProtocolError::WrongDirection => RefusalReason::WrongDirection,
            ProtocolError::Replayed { .. } => RefusalReason::Replayed,
            ProtocolError::Reordered { .. } => RefusalReason::Reordered,
            _ => RefusalReason::Malformed,
        })?;
        let t_msg = self.derive(transform, input).await?;
        let plaintext = ps
            .open(&sealed, &t_msg)
            .map_err(|_| RefusalReason::Altered)?;
        drop(t_msg);
        if plaintext.len() > self.config.messages.max_body_bytes {
            return Err(RefusalReason::TooLarge);
        }
        let session_id: &[u8; ID_LEN] = sealed
            .session_id
            .as_slice()
            .try_into()
            .map_err(|_| RefusalReason::Malformed)?;
        let payload = AuditPayload {
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
            module_sha256: stored.module_sha256(),
            sender: session.user.clone(),
            received_at: now,
        }
        .encode()
        .map_err(unavailable)?;
        // Sealed at rest whether or not the recipient exists: the same work either way.
        let queue = if sealed.recipient.is_empty() {
            None
        } else {
            let body = QueuedBody {
                from: session.user.clone(),
                sent_at: now,
                body: plaintext.to_vec(),
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
        }
    }

    /// `GET /v1/inbox?wait=N`: up to [`MAX_INBOX_MESSAGES`] queued messages for the
    /// session's user, oldest first, each re-sealed host to client for this session. With
    /// `wait` > 0, waits until something is queued or `wait` seconds (at most
    /// [`MAX_WAIT_SECS`]) pass, re-checking the store at least every second.
    pub async fn inbox(&self, token: Option<&[u8; 32]>, wait: u64) -> Result<Inbox, RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let session = self
            .store
            .touch_session(
                &token_hash(token),
                self.now(),
                self.config.session.idle_timeout_secs,
            )
            .await
            .map_err(unavailable)?
            .ok_or(RefusalReason::SessionEnded)?;
        let deadline = Instant::now() + Duration::from_secs(wait.min(MAX_WAIT_SECS));
        let limit = u32::try_from(MAX_INBOX_MESSAGES + 1).unwrap_or(u32::MAX);
        let queued = loop {
            let waiter = self.waiter(&session.user);
            let notified = waiter.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queued = self
                .store
                .fetch_messages(&session.user, 0, limit)
                .await
                .map_err(unavailable)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !queued.is_empty() || left.is_zero() {
                break queued;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), notified).await;
        };
        if queued.is_empty() {
            return Ok(Inbox {
                messages: Vec::new(),
                more: false,
            });
        }
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let transform = self.session_transform(&stored)?;
        let padding = if self.config.messages.pad {
            Padding::Buckets
        } else {
            Padding::None
        };
        let mut more = queued.len() > MAX_INBOX_MESSAGES;
        let mut total = 16usize;
        let mut messages = Vec::new();
        for q in queued.iter().take(MAX_INBOX_MESSAGES) {
            let Some(body) = open_at_rest(&self.queue_key, &session.user, &q.body) else {
                tracing::error!(id = q.id, "queued message does not open (queue key?)");
                continue;
            };
            let delivery = Delivery {
                id: q.id,
                from: body.from.clone(),
                sent_at: body.sent_at,
                body: body.body.clone(),
            };
            let plain = Zeroizing::new(delivery.encode().map_err(unavailable)?);
            let estimate = kasane_protocol::seal::padded_len(plain.len(), padding)
                + 16
                + session.user.len()
                + 64;
            if total + estimate > MAX_INBOX_LEN {
                more = true;
                break;
            }
            let seq = self
                .store
                .next_seq(&session.session_id, crate::store::Direction::HostToClient)
                .await
                .map_err(unavailable)?;
            let mut ps = stored
                .restore(&session.session_id, seq - 1, session.last_seq_from_client)
                .ok_or(RefusalReason::Unavailable)?;
            ps.set_padding(padding);
            let (s, input) = ps.prepare_seal().map_err(unavailable)?;
            let t_msg = self.derive(transform.clone(), input).await?;
            let sealed = ps
                .seal(s, &t_msg, &session.user, &plain)
                .map_err(unavailable)?;
            total += sealed.ciphertext.len() + session.user.len() + 64;
            messages.push(sealed);
        }
        Ok(Inbox { messages, more })
    }

    /// `POST /v1/inbox/ack`: deletes these queue ids of the session's user (others' ids
    /// are ignored).
    pub async fn ack_inbox(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<(), RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let ack = InboxAck::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let session = self
            .store
            .touch_session(
                &token_hash(token),
                self.now(),
                self.config.session.idle_timeout_secs,
            )
            .await
            .map_err(unavailable)?
            .ok_or(RefusalReason::SessionEnded)?;
        for id in ack.ids {
            self.store
                .ack_message(&session.user, id)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Signs a checkpoint of every audit chain whose head has none yet. Returns how many.
    pub async fn checkpoint_audit(&self) -> Result<u64, HostError> {
        let now = self.now();
        let mut n = 0;
        loop {
            let heads = self.store.unchecked_audit_heads(256).await?;
            let mut progressed = false;
            for (sid, seq, hash) in &heads {
                let c = sign_checkpoint(&self.host_key, sid, *seq, hash, now);
                match self.store.put_audit_checkpoint(&c).await {
                    Ok(()) => {
                        n += 1;
                        progressed = true;
                    }
                    // Another replica signed it first, or the chain moved on meanwhile.
                    Err(StoreError::Duplicate | StoreError::AuditChainMismatch) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if heads.len() < 256 || !progressed {
                return Ok(n);
            }
        }
    }

    /// The in-process wake-up of `user`'s inbox long-polls.
    fn waiter(&self, user: &str) -> Arc<tokio::sync::Notify> {
        let mut map = self
            .inbox_waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            // Only waiters in use matter; drop the idle ones.
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
        map.entry(user.to_owned()).or_default().clone()
    }

    /// The loaded transform of a session (by module hash and name, among the active ones).
    fn session_transform(&self, stored: &StoredSession) -> Result<Transform, RefusalReason> {
        let entry = self
            .registry
            .active()
            .map_err(unavailable)?
            .into_iter()
            .find(|e| e.sha256.0 == stored.module_sha256 && e.name == stored.module_name)
            .ok_or_else(|| {
                tracing::warn!(module = %stored.module_name, "session's transform is no longer active");
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
