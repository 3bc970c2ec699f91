//! Housekeeping: what a serving host does on a timer, whoever embeds it — expired
//! logins in flight and sessions purged from the store, a signed checkpoint for every audit
//! chain that advanced, the audit log pruned once a day if configured
//! ([`Host::housekeeping`]). [`server::run`](crate::server::run) and
//! [`server::spawn`](crate::server::spawn) run a [`pass`] before they serve (what expired
//! while the host was down goes first) and then [`every`] beside the router.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::host::Host;

/// Time between passes by default.
pub const PERIOD: Duration = Duration::from_secs(60);

/// The shortest period [`every`] accepts (a zero period would spin).
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Runs a [`pass`] every `period` (at least 1 ms), the first one `period` from now, until
/// `stop` completes; a pass in progress is finished first. A slow pass delays the next one
/// rather than bunching them.
pub async fn every(host: Arc<Host>, period: Duration, stop: impl Future<Output = ()>) {
    let period = period.max(MIN_PERIOD);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = ticks.tick() => pass(&host).await,
        }
    }
}

/// One pass: [`Host::housekeeping`], counted in the metrics and logged (a failure is a
/// warning: the next pass tries again).
pub async fn pass(host: &Host) {
    match host.housekeeping().await {
        Ok(p) => {
            host.metrics().housekeeping_done(&p);
            tracing::debug!(
                pending_logins = p.pending_logins,
                sessions = p.sessions,
                throttle = p.throttle,
                "purged"
            );
        }
        Err(e) => {
            host.metrics().housekeeping_failed();
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "housekeeping");
        }
    }
}
