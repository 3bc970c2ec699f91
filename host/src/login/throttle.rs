//! Locks after failed logins, per user and per source address (the store keeps them, so
//! every replica sees the same locks).

use std::net::IpAddr;

use super::{Failure, LoginError};
use crate::HostError;
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{ThrottleKey, UnixSeconds};

impl Host {
    /// Refuses the step (counted as throttled) if the user or the source is locked.
    pub(super) async fn refuse_if_locked(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<(), LoginError> {
        let u = self
            .store
            .throttle_state(ThrottleKey::User(user))
            .await
            .map_err(HostError::from)?;
        let s = self
            .store
            .throttle_state(ThrottleKey::Source(source))
            .await
            .map_err(HostError::from)?;
        if u.is_locked(now) || s.is_locked(now) {
            self.metrics.login(Outcome::Throttled);
            return Err(Failure::Throttled.into());
        }
        Ok(())
    }

    /// Counts a failed login against the user and the source address.
    pub(super) async fn record_failure(&self, user: &str, source: IpAddr) {
        let now = self.now();
        let backoff = self.config.throttle.backoff();
        for key in [ThrottleKey::User(user), ThrottleKey::Source(source)] {
            match self.store.record_failure(key, now, &backoff).await {
                Ok(st) if st.is_locked(now) => self.metrics.lock_engaged(),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "recording a failure"),
            }
        }
    }
}
