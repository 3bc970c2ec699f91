//! Work of one session in progress on this host process, counted per kind (inbox reads,
//! message bodies being read) against a configured limit while it lives.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use kasane_protocol::wire::RefusalReason;

/// Counts per session id: how many of one kind of work each session has in progress.
pub(crate) type InProgress = Mutex<HashMap<Vec<u8>, usize>>;

/// One piece of a session's work in progress, counted in its [`InProgress`] for as long as
/// it lives (also when its request is dropped halfway).
#[must_use = "the work is counted only while this lives"]
pub struct PerSession<'a> {
    counts: &'a InProgress,
    session_id: Vec<u8>,
}

impl<'a> PerSession<'a> {
    /// Counts one more for `session_id`, or refuses it (`Unavailable`: retry later) when the
    /// session already has `max` in progress.
    pub(crate) fn start(
        counts: &'a InProgress,
        session_id: &[u8],
        max: usize,
    ) -> Result<Self, RefusalReason> {
        let mut all = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = all.entry(session_id.to_vec()).or_default();
        if *n >= max {
            return Err(RefusalReason::Unavailable);
        }
        *n += 1;
        Ok(Self {
            counts,
            session_id: session_id.to_vec(),
        })
    }
}

impl Drop for PerSession<'_> {
    fn drop(&mut self) {
        let mut all = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = all.get_mut(&self.session_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                all.remove(&self.session_id);
            }
        }
    }
}

impl std::fmt::Debug for PerSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerSession").finish_non_exhaustive()
    }
}
