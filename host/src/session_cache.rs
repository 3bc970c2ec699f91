//! [`SessionCache`]: live sessions held in memory in front of the store, so that the message
//! path reads a session without a write (issue 15).
//!
//! The store stays the truth; the cache only saves round trips, within these bounds:
//!
//! - **Last activity** is written through at most every [`touch_interval`] per session (a
//!   cached entry older than that is looked up in the store again, which writes `last_seen`
//!   and finds a session that has ended). The stored `last_seen` therefore lags by less than
//!   that interval, which is a quarter of the idle timeout: a session in use never reaches it.
//! - **The replay window** is never trusted from memory: the store reads it locked and
//!   decides each message ([`Store::accept_messages`](crate::store::Store::accept_messages));
//!   the copy here only refuses early what the stored one refuses too (a window only moves
//!   forward), so two replicas on one PostgreSQL accept each sequence number at most once
//!   between them.
//! - **Ending** (logout, idle or absolute timeout): a logout on this process forgets the
//!   entry at once, and the absolute expiry is checked from memory. A session ended by
//!   *another* process is forgotten when [`crate::session_ends`] reads it (about a second),
//!   at the latest at the next write-through (within [`touch_interval`]); until then this
//!   replica may still serve the session's inbox, but no message is accepted for it (its row
//!   is gone, so the commit finds no session). docs/SECURITY.md.
//!
//! Bounded: at most [`CAPACITY`] entries; when full, entries due for a write-through are
//! dropped first, and if none is, the new session is simply not cached.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{ReplayWindow, Session, UnixSeconds};

/// Most sessions held in memory by one host process.
pub const CAPACITY: usize = 65_536;

/// How often a session in use has its `last_seen` written (and its existence re-checked):
/// a quarter of the idle timeout, at most a minute, at least a second.
pub fn touch_interval(idle_timeout_secs: u64) -> u64 {
    (idle_timeout_secs / 4).clamp(1, 60)
}

struct Cached {
    session: Session,
    /// When `last_seen` was last written for it.
    touched: UnixSeconds,
}

/// Live sessions by token hash (see the module docs).
#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Vec<u8>, Cached>>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").finish_non_exhaustive()
    }
}

impl SessionCache {
    /// The cached session of `token_hash` if it needs no write-through at `now` and has not
    /// reached its absolute expiry.
    pub fn fresh(&self, token_hash: &[u8], now: UnixSeconds, interval: u64) -> Option<Session> {
        let entries = self.lock();
        let c = entries.get(token_hash)?;
        let due = now.saturating_sub(c.touched) >= interval || now < c.touched;
        (!due && now < c.session.expires_at).then(|| c.session.clone())
    }

    /// Holds `session`, just touched in the store at `now`.
    pub fn put(&self, token_hash: Vec<u8>, session: Session, now: UnixSeconds, interval: u64) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&token_hash) {
            entries.retain(|_, c| now.saturating_sub(c.touched) < interval);
            if entries.len() >= CAPACITY {
                return;
            }
        }
        entries.insert(
            token_hash,
            Cached {
                session,
                touched: now,
            },
        );
    }

    /// Moves the cached replay window of `token_hash` forward to `window` (never back: a
    /// window only grows, and commits may answer out of order).
    pub fn note_window(&self, token_hash: &[u8], window: ReplayWindow) {
        if let Some(c) = self.lock().get_mut(token_hash) {
            let old = c.session.from_client;
            if window.top() > old.top()
                || (window.top() == old.top() && window.seen() != old.seen())
            {
                let seen = if window.top() == old.top() {
                    window.seen() | old.seen()
                } else {
                    window.seen()
                };
                c.session.from_client = ReplayWindow::from_parts(window.top(), seen);
            }
        }
    }

    /// Forgets `token_hash` (logout, or the store found the session ended); whether it was
    /// held.
    pub fn forget(&self, token_hash: &[u8]) -> bool {
        self.lock().remove(token_hash).is_some()
    }

    /// Forgets every entry (SIGHUP: each session is read from the store again at its next
    /// use, so one ended elsewhere is refused at once); how many there were.
    pub fn clear(&self) -> usize {
        let mut entries = self.lock();
        let n = entries.len();
        entries.clear();
        n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Cached>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
