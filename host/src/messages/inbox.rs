//! The inbox: `GET /v1/inbox?wait=N` (long-poll; each message re-sealed host to client for
//! the asking session) and `POST /v1/inbox/ack`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kasane_protocol::Padding;
use kasane_protocol::wire::{
    Delivery, Inbox, InboxAck, MAX_INBOX_LEN, MAX_INBOX_MESSAGES, Message, RefusalReason,
};
use zeroize::Zeroizing;

use super::at_rest::{open_at_rest, open_from_audit, open_key_at_rest};
use super::{PerSession, unavailable};
use crate::host::Host;
use crate::login::StoredSession;
use crate::store::{QueuedMessage, Session};

/// Queue entries one inbox read fetches at a time (each body is at most 1 MiB).
const SCAN_PAGE: u32 = 8;

/// Most pages one inbox read goes through (twice what one inbox holds).
const MAX_SCAN_PAGES: usize = 2 * MAX_INBOX_MESSAGES / SCAN_PAGE as usize;

/// Longest inbox long-poll, in seconds.
pub const MAX_WAIT_SECS: u64 = crate::config::MAX_INBOX_WAIT_SECS;

/// Counts one parked long-poll for as long as it lives (also when its request is dropped).
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Host {
    /// `GET /v1/inbox?wait=N`: up to [`MAX_INBOX_MESSAGES`] queued messages for the
    /// session's user, oldest first, each re-sealed host to client for this session. With
    /// `wait` > 0, waits until something is queued or `wait` seconds (at most
    /// [`MAX_WAIT_SECS`]) pass, re-reading the store every `messages.inbox_recheck_secs`
    /// (for messages accepted by another replica).
    pub async fn inbox(&self, token: Option<&[u8; 32]>, wait: u64) -> Result<Inbox, RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let session = self.live_session(token, self.now()).await?;
        let max = self.config.messages.max_inbox_reads_per_session;
        let _reading = PerSession::start(&self.inbox_reads, &session.session_id, max)?;
        let queued = self.wait_for_deliverable(&session.user, wait).await?;
        if queued.is_empty() {
            return Ok(Inbox {
                messages: Vec::new(),
                more: false,
            });
        }
        self.reseal(&session, &queued).await
    }

    /// How many inbox long-polls of this process are parked right now, waiting for a
    /// message to be queued (a gauge for operators; tests wait on it before they send).
    #[must_use]
    pub fn inbox_waiting(&self) -> usize {
        self.inbox_parked.load(Ordering::SeqCst)
    }

    /// The deliveries of `user` (one more than an inbox holds, to tell `more`), after waiting
    /// up to `wait` seconds for the first one.
    async fn wait_for_deliverable(
        &self,
        user: &str,
        wait: u64,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, RefusalReason> {
        let deadline = Instant::now() + Duration::from_secs(wait.min(MAX_WAIT_SECS));
        let recheck = Duration::from_secs(self.config.messages.inbox_recheck_secs);
        loop {
            let waiter = self.waiter(user);
            let notified = waiter.notified();
            tokio::pin!(notified);
            // Registered before the store is read: a message queued after the read wakes us.
            notified.as_mut().enable();
            let queued = self.deliverable(user).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !queued.is_empty() || left.is_zero() {
                return Ok(queued);
            }
            let _parked = Parked::new(&self.inbox_parked);
            let _ = tokio::time::timeout(left.min(recheck), notified).await;
        }
    }

    /// The encoded deliveries of `user` that open, oldest first, read [`SCAN_PAGE`] queue
    /// entries at a time (at most [`MAX_SCAN_PAGES`] pages): until one more than an inbox
    /// holds, or until they pass what one inbox carries ([`MAX_INBOX_LEN`]) — either tells
    /// `more`. So a read holds at most one inbox and one page of bodies, whatever is queued.
    /// A message that does not open under the queue key is moved to the dead letters
    /// (logged and counted), so it cannot hold back the messages queued after it.
    async fn deliverable(&self, user: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, RefusalReason> {
        let want = MAX_INBOX_MESSAGES + 1;
        let mut out = Vec::new();
        let (mut after, mut bytes) = (0, 0usize);
        for _ in 0..MAX_SCAN_PAGES {
            let page = self
                .store
                .fetch_messages(user, after, SCAN_PAGE)
                .await
                .map_err(unavailable)?;
            for q in &page {
                after = q.id;
                match self.delivery(user, q)? {
                    Some(plain) => {
                        bytes = bytes.saturating_add(plain.len());
                        out.push(plain);
                    }
                    None => self.dead_letter(user, q).await?,
                }
                if out.len() == want || bytes > MAX_INBOX_LEN {
                    return Ok(out);
                }
            }
            if page.len() < SCAN_PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Moves a queued message that does not open out of the queue (kept for the operator in
    /// `relay_dead_letters`).
    async fn dead_letter(&self, user: &str, q: &QueuedMessage) -> Result<(), RefusalReason> {
        tracing::error!(
            id = q.id,
            "queued message does not open under keys/queue.key: moved to relay_dead_letters"
        );
        self.metrics.dead_letter();
        self.store
            .dead_letter_message(user, q.id, self.now())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Re-seals deliveries host to client for `session`, oldest first, as many as fit one
    /// inbox.
    async fn reseal(
        &self,
        session: &Session,
        queued: &[Zeroizing<Vec<u8>>],
    ) -> Result<Inbox, RefusalReason> {
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
        for plain in queued.iter().take(MAX_INBOX_MESSAGES) {
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
                .restore(&session.session_id, seq - 1, session.from_client.top())
                .ok_or(RefusalReason::Unavailable)?;
            ps.set_padding(padding);
            let (s, input) = ps.prepare_seal().map_err(unavailable)?;
            let t_msg = self.derive(transform.clone(), input).await?;
            let sealed = ps
                .seal(s, &t_msg, &session.user, plain)
                .map_err(unavailable)?;
            total += sealed.ciphertext.len() + session.user.len() + 64;
            messages.push(sealed);
        }
        Ok(Inbox { messages, more })
    }

    /// The encoded delivery of a queued message, or `None` if it does not open.
    fn delivery(
        &self,
        user: &str,
        q: &QueuedMessage,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, RefusalReason> {
        let Some(delivery) = self.open_queued(user, q) else {
            return Ok(None);
        };
        Ok(Some(Zeroizing::new(
            delivery.encode().map_err(unavailable)?,
        )))
    }

    /// A queued message opened: from its audit record with the key its entry holds, or (an
    /// entry queued before migration 0013/0014) from the body its entry holds.
    fn open_queued(&self, user: &str, q: &QueuedMessage) -> Option<Delivery> {
        let (from, sent_at, body) = match &q.audit {
            Some(payload) => {
                let key = open_key_at_rest(&self.queue_key, user, &q.body)?;
                let body = open_from_audit(&key, payload)?;
                (key.from.clone(), key.sent_at, body.to_vec())
            }
            None => {
                let held = open_at_rest(&self.queue_key, user, &q.body)?;
                (held.from.clone(), held.sent_at, held.body.clone())
            }
        };
        Some(Delivery {
            id: q.id,
            from,
            sent_at,
            body,
        })
    }

    /// `POST /v1/inbox/ack`: deletes these queue ids of the session's user (others' ids
    /// are ignored, and so are ids past 2^63 - 1, which no queue entry has: the store could
    /// not even compare them).
    pub async fn ack_inbox(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<(), RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let ack = InboxAck::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let session = self.live_session(token, self.now()).await?;
        let ids: Vec<u64> = ack
            .ids
            .into_iter()
            .filter(|id| i64::try_from(*id).is_ok())
            .collect();
        if !ids.is_empty() {
            self.store
                .ack_messages(&session.user, &ids)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// The in-process wake-up of `user`'s inbox long-polls.
    pub(super) fn waiter(&self, user: &str) -> Arc<tokio::sync::Notify> {
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
}
