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
use kasane_protocol::schedule::AeadKey;
use kasane_protocol::wire::{ID_LEN, Message, MessageAccepted, RefusalReason, SealedMessage};
use kasane_protocol::{ProtocolError, ReplayWindow};
use kasane_sandbox::Transform;
use zeroize::Zeroizing;

pub use crate::per_session::PerSession;
pub use at_rest::{QUEUE_KEY_FACT, QUEUE_KEY_FILE, load_queue_key, queue_key_id};
pub use inbox::MAX_WAIT_SECS;

use crate::audit::AuditPayload;
use crate::group_commit::{BatchLimits, GroupCommit};
use crate::host::Host;
use crate::login::{StoredSession, token_hash};
use crate::store::{
    AcceptMessage, AcceptOutcome, QueueEntry, QueueQuota, SentBy, Session, UnixSeconds,
};
use at_rest::{QueuedKey, seal_key_at_rest};

/// Logs a host fault behind a message route; the client learns only `Unavailable`.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> RefusalReason {
    tracing::error!(error = %e, "message handling");
    RefusalReason::Unavailable
}

/// The live session a message is sent in ([`Host::message_session`]), with its token's hash
/// (the session cache's key).
#[derive(Debug)]
pub struct MessageSession {
    pub(crate) token_hash: Vec<u8>,
    /// The session as the host last saw it.
    pub session: Session,
}

/// A client's message opened by its session's transform.
struct Opened {
    plaintext: Zeroizing<Vec<u8>>,
    module_sha256: [u8; 32],
    /// The key it was sealed with (kept, sealed at rest, by its queue entry).
    key: AeadKey,
}

impl Host {
    /// `POST /v1/messages`: checks, opens (through the session's transform) and accepts a
    /// client's sealed message, appending it to the session's audit chain and, for a known
    /// recipient, queueing it sealed at rest, in one store transaction shared with the other
    /// messages accepted at the same moment (group commit). Answered only once that commit
    /// is durable; nothing is stored for a refused message.
    pub async fn accept_message(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<MessageAccepted, RefusalReason> {
        let session = self.message_session(token).await?;
        let _sending = self.start_send(&session)?;
        self.accept_in_session(session, body).await
    }

    /// The live session a message is sent in, from its bearer token: what the server checks
    /// before it reads a message body.
    pub async fn message_session(
        &self,
        token: Option<&[u8; 32]>,
    ) -> Result<MessageSession, RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let session = self.live_session(token, self.now()).await?;
        Ok(MessageSession {
            token_hash: token_hash(token),
            session,
        })
    }

    /// Counts a message body of `session` being read, until the returned guard drops, or
    /// refuses it (`Unavailable`) when the session already has
    /// `messages.max_sends_per_session` being read on this host process: what bounds the
    /// memory one logged-in client can hold with stalled bodies (issue 14).
    pub fn start_send(&self, session: &MessageSession) -> Result<PerSession<'_>, RefusalReason> {
        let max = self.config.messages.max_sends_per_session;
        PerSession::start(&self.sends, &session.session.session_id, max)
    }

    /// [`Host::accept_message`] in a session already looked up ([`Host::message_session`]).
    pub async fn accept_in_session(
        &self,
        live: MessageSession,
        body: &[u8],
    ) -> Result<MessageAccepted, RefusalReason> {
        let session = &live.session;
        let sealed = SealedMessage::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let now = self.now();
        // Cheap checks before the transform runs.
        precheck(&sealed, session)?;
        let opened = self.open_message(&sealed, session).await?;
        if opened.plaintext.len() > self.config.messages.max_body_bytes {
            return Err(RefusalReason::TooLarge);
        }
        let accept = self.to_accept(&sealed, session, &opened, now)?;
        let outcome = self
            .message_commits()
            .submit(accept)
            .await
            .map_err(unavailable)?;
        self.accepted(&live, (sealed.seq, &sealed.recipient), outcome, now)
    }

    /// What the store is to commit for an opened message: its audit record and, for a
    /// recipient, its queue entry: the message's key sealed at rest, which opens the audit
    /// record's ciphertext (the body is written once; made whether or not the recipient
    /// exists: the same work either way).
    fn to_accept(
        &self,
        sealed: &SealedMessage,
        session: &Session,
        opened: &Opened,
        now: UnixSeconds,
    ) -> Result<AcceptMessage, RefusalReason> {
        let payload = audit_payload(sealed, session, opened.module_sha256, now)?;
        let queue = if sealed.recipient.is_empty() {
            None
        } else {
            let queued = QueuedKey {
                from: session.user.clone(),
                sent_at: now,
                seq: sealed.seq,
                key: *opened.key.expose_key(),
                nonce: *opened.key.nonce(),
                len: opened.plaintext.len() as u64,
            };
            let at_rest = seal_key_at_rest(&self.queue_key, &sealed.recipient, &queued)
                .ok_or(RefusalReason::Unavailable)?;
            Some(QueueEntry {
                recipient: sealed.recipient.clone(),
                sealed: at_rest,
                bytes: sealed.ciphertext.len() as u64,
            })
        };
        Ok(AcceptMessage {
            session_id: session.session_id.clone(),
            seq: sealed.seq,
            payload,
            queue,
            quota: self.queue_quota(),
            daily_budget: self.config.messages.max_user_bytes_per_day,
            held: self.budget_holds.held(&session.user),
            created: now,
            sent_by: SentBy::Client,
        })
    }

    /// The answer to committed message `seq` for `recipient` (or its refusal), noting the
    /// session's new replay window and waking the recipient's long-polls.
    pub(crate) fn accepted(
        &self,
        live: &MessageSession,
        (seq, recipient): (u64, &str),
        outcome: AcceptOutcome,
        now: UnixSeconds,
    ) -> Result<MessageAccepted, RefusalReason> {
        let user = &live.session.user;
        match outcome {
            AcceptOutcome::Accepted { queued, window, .. } => {
                self.sessions.note_window(&live.token_hash, window);
                if queued {
                    self.waiter(recipient).notify_waiters();
                }
                tracing::debug!(%user, seq, "message accepted");
                Ok(MessageAccepted {
                    seq,
                    received_at: now,
                })
            }
            AcceptOutcome::Replayed => Err(RefusalReason::Replayed),
            AcceptOutcome::Reordered => Err(RefusalReason::Reordered),
            AcceptOutcome::NoSession => {
                self.sessions.forget(&live.token_hash);
                Err(RefusalReason::SessionEnded)
            }
            AcceptOutcome::QueueFull => {
                tracing::info!(%user, "recipient's queue full");
                Err(RefusalReason::QueueFull)
            }
            AcceptOutcome::BudgetSpent => {
                tracing::info!(%user, "the user's daily byte budget is spent");
                Err(RefusalReason::BudgetSpent)
            }
        }
    }

    /// The group commit of accepted messages, started on first use with `[messages]`'s
    /// limits: on a SQLite file, on a thread of its own running the store's
    /// [`SqliteCommitter`](crate::store::SqliteCommitter) (one hand-off per batch rather
    /// than one per statement); else a task on the runtime serving the host, in front of
    /// [`Store::accept_messages`].
    pub(crate) fn message_commits(&self) -> &GroupCommit<AcceptMessage, AcceptOutcome> {
        self.message_commits.get_or_init(|| {
            let limits = self.config.messages.commit_limits();
            self.committer_thread(limits).unwrap_or_else(|| {
                let store = self.store.clone();
                GroupCommit::spawn(limits, move |batch| {
                    let store = store.clone();
                    async move {
                        store
                            .accept_messages(&batch)
                            .await
                            .map_err(|e| e.to_string())
                    }
                })
            })
        })
    }

    /// The group commit on the store's own committer's thread, if it has one. A committer
    /// that cannot be opened, or a thread that cannot be started, is logged and leaves the
    /// task in front of [`Store::accept_messages`], which commits the same way.
    fn committer_thread(
        &self,
        limits: BatchLimits,
    ) -> Option<GroupCommit<AcceptMessage, AcceptOutcome>> {
        let mut committer = match self.store.message_committer() {
            Ok(c) => c?,
            Err(e) => {
                tracing::warn!(error = %e, "message committer: using the store's pool");
                return None;
            }
        };
        let commit =
            move |batch: Vec<AcceptMessage>| committer.accept(&batch).map_err(|e| e.to_string());
        GroupCommit::spawn_thread(limits, "kasane-commit", commit)
            .inspect_err(|e| tracing::warn!(error = %e, "message committer thread not started"))
            .ok()
    }

    /// What the message path's group commit has done (nothing before the first message).
    pub fn commit_stats(&self) -> &crate::group_commit::CommitStats {
        self.message_commits().stats()
    }

    /// `[messages]`'s quota on one recipient's queue.
    fn queue_quota(&self) -> QueueQuota {
        QueueQuota {
            max_messages: self.config.messages.max_queue_messages,
            max_bytes: self.config.messages.max_queue_bytes,
        }
    }

    /// The live session of a bearer token, from memory when it was touched in the store
    /// within the write-through interval ([`crate::session_cache`]), else touched in the
    /// store (writing its last use), or `SessionEnded`.
    pub(crate) async fn live_session(
        &self,
        token: &[u8; 32],
        now: UnixSeconds,
    ) -> Result<Session, RefusalReason> {
        let hash = token_hash(token);
        let idle = self.config.session.idle_timeout_secs;
        let interval = crate::session_cache::touch_interval(idle);
        if let Some(s) = self.sessions.fresh(&hash, now, interval) {
            return Ok(s);
        }
        let touched = self
            .store
            .touch_session(&hash, now, idle)
            .await
            .map_err(unavailable)?;
        match touched {
            Some(s) => {
                self.sessions.put(hash, s.clone(), now, interval);
                Ok(s)
            }
            None => {
                self.sessions.forget(&hash);
                Err(RefusalReason::SessionEnded)
            }
        }
    }

    /// Opens a client's message with the session's protocol state and transform.
    async fn open_message(
        &self,
        sealed: &SealedMessage,
        session: &Session,
    ) -> Result<Opened, RefusalReason> {
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let transform = self.session_transform(&stored)?;
        let ps = stored
            .restore(
                &session.session_id,
                session.last_seq_to_client,
                session.from_client.top(),
            )
            .ok_or(RefusalReason::Unavailable)?;
        let window = &session.from_client;
        let input = ps.prepare_open_in(sealed, window).map_err(|e| match e {
            ProtocolError::WrongSession => RefusalReason::WrongSession,
            ProtocolError::WrongDirection => RefusalReason::WrongDirection,
            ProtocolError::Replayed { .. } => RefusalReason::Replayed,
            ProtocolError::Reordered { .. } => RefusalReason::Reordered,
            _ => RefusalReason::Malformed,
        })?;
        let t_msg = self.derive(transform, input).await?;
        let (plaintext, key) = ps
            .open_in(sealed, &t_msg, window)
            .map_err(|_| RefusalReason::Altered)?;
        Ok(Opened {
            plaintext,
            module_sha256: stored.module_sha256(),
            key,
        })
    }

    /// The loaded transform of a session (by module hash and name, among the active ones).
    pub(crate) fn session_transform(
        &self,
        stored: &StoredSession,
    ) -> Result<Transform, RefusalReason> {
        self.registry
            .session_transform(&stored.module_sha256(), stored.module_name(), self.now())
            .map_err(unavailable)?
            .ok_or_else(|| {
                tracing::warn!(module = %stored.module_name(), "session's transform is no longer active");
                RefusalReason::Unavailable
            })
    }

    /// Runs the transform (purpose: message) on one of the module's warm instances
    /// (`Transform::derive_warm`: the same limits and output as a fresh instance, memory and
    /// globals restored after every call, so nothing of one message reaches the next;
    /// docs/SECURITY.md): in place when the module's last call was quick (under
    /// `kasane_sandbox::QUICK_FUEL`, cheaper than any hand-off) and only up to that much
    /// fuel, else as blocking work (`kasane_os::blocking`).
    pub(crate) async fn derive(
        &self,
        transform: Transform,
        input: kasane_abi::DeriveInputBuf,
    ) -> Result<Zeroizing<Vec<u8>>, RefusalReason> {
        let started = Instant::now();
        // In place, a call burns at most `QUICK_FUEL` (`derive_quick`): one that needs more
        // runs again as blocking work, so a module quick for some inputs and slow for others
        // cannot hold the async workers with its slow ones.
        let in_place = if transform.is_quick() {
            kasane_protocol::with_derive_input(&input, |view| transform.derive_quick(view))
                .map_err(unavailable)?
                .transpose()
        } else {
            None
        };
        let derived = match in_place {
            Some(done) => done,
            None => {
                let run = move || {
                    kasane_protocol::with_derive_input(&input, |view| transform.derive_warm(view))
                };
                kasane_os::blocking::run(run)
                    .await
                    .map_err(unavailable)?
                    .map_err(unavailable)?
            }
        };
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

/// The checks that need no transform: the session, the direction and the sequence number
/// (against the replay window as last seen; the store's commit decides).
fn precheck(sealed: &SealedMessage, session: &Session) -> Result<(), RefusalReason> {
    if sealed.session_id[..] != session.session_id[..] {
        return Err(RefusalReason::WrongSession);
    }
    if sealed.direction != Direction::ClientToHost {
        return Err(RefusalReason::WrongDirection);
    }
    check_window(&session.from_client, sealed.seq)
}

/// The replay window's check of a client's number, which must also be one the store can
/// hold: both backends keep it as a signed 64-bit integer, and a larger one (a client can
/// seal any) would fail the shared commit of every message batched with it. Messages and
/// gateway exchanges.
pub(crate) fn check_window(window: &ReplayWindow, seq: u64) -> Result<(), RefusalReason> {
    if i64::try_from(seq).is_err() {
        return Err(RefusalReason::Malformed);
    }
    window.check(seq).map_err(window_refusal)
}

/// The refusal of a number the session's replay window does not take (messages and
/// gateway exchanges).
pub(crate) fn window_refusal(e: ProtocolError) -> RefusalReason {
    match e {
        ProtocolError::Replayed { .. } => RefusalReason::Replayed,
        _ => RefusalReason::Reordered,
    }
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
