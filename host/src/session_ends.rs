//! Sessions ended by other processes, forgotten here within about a second.
//!
//! A host holds the sessions it serves in memory ([`crate::session_cache`]). A session that
//! ends in *this* process is forgotten at once; one ended elsewhere — a logout on another
//! replica, `kasane-host user logout`, a password change, a user's removal — used to be
//! served from memory until its next write-through, up to a minute. The store notes every
//! session that leaves `sessions` (a trigger, `session_ends`, by the database's clock);
//! [`every`] reads the new ends every [`PERIOD`] and forgets them.
//!
//! Transactions may commit in another order than they deleted (PostgreSQL), so each read
//! goes [`OVERLAP_SECS`] back from the newest end seen. A reader that cannot read for
//! [`STALE`] (the store keeps two minutes of ends), or finds more than [`LIMIT`] at once,
//! forgets every session instead: each is then read from the store at its next use.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::host::Host;
use crate::store::{StoreError, UnixSeconds};

/// Time between reads by default.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How far back from the newest end seen each read starts.
pub const OVERLAP_SECS: u64 = 5;

/// Most ends one read takes; a read that finds this many forgets every session.
pub const LIMIT: u32 = 4096;

/// A reader that has not read for this long forgets every session.
pub const STALE: Duration = Duration::from_secs(60);

/// Where a reader is.
#[derive(Debug, Default)]
pub struct Watch {
    /// Ends at or after this time are read next.
    since: UnixSeconds,
    /// When the last read succeeded (`None`: never).
    read_at: Option<Instant>,
}

impl Watch {
    /// Reads the ends since the last read and forgets those sessions (or all of them, see
    /// the module); how many entries were forgotten.
    pub async fn read(&mut self, host: &Host) -> Result<usize, StoreError> {
        let ends = host.store().session_ends_since(self.since, LIMIT).await?;
        let stale = self.read_at.is_some_and(|t| t.elapsed() > STALE);
        self.read_at = Some(Instant::now());
        if let Some(newest) = ends.last().map(|(_, at)| *at) {
            self.since = self.since.max(newest.saturating_sub(OVERLAP_SECS));
        }
        if stale || ends.len() >= LIMIT as usize {
            return Ok(host.sessions.clear());
        }
        Ok(ends
            .iter()
            .filter(|(token_hash, _)| host.sessions.forget(token_hash))
            .count())
    }
}

/// Runs [`Watch::read`] every `period` (at least 1 ms) until `stop` completes. A failed
/// read is logged at `debug` (housekeeping reports a store that does not answer) and tried
/// again at the next tick.
pub async fn every(host: Arc<Host>, period: Duration, stop: impl Future<Output = ()>) {
    let period = period.max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch = Watch::default();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = ticks.tick() => match watch.read(&host).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(forgotten = n, "sessions ended elsewhere"),
                Err(e) => tracing::debug!(error = %e, "reading the sessions ended elsewhere"),
            },
        }
    }
}
