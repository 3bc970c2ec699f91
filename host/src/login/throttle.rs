//! Locks after failed logins, per user and per source address (the store keeps them, so
//! every replica sees the same locks). A start counts as a failure until its finish proves
//! the password; a wrong card response counts again.

use std::net::IpAddr;

use super::{Failure, LoginError};
use crate::HostError;
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{ThrottleKey, UnixSeconds};

impl Host {
    /// Whether the user or the source is locked now (counted as throttled if so).
    pub(super) async fn is_locked(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<bool, LoginError> {
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
        let locked = u.is_locked(now) || s.is_locked(now);
        if locked {
            self.metrics.login(Outcome::Throttled);
        }
        Ok(locked)
    }

    /// Refuses the step if the user or the source is locked.
    pub(super) async fn refuse_if_locked(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<(), LoginError> {
        if self.is_locked(user, source, now).await? {
            return Err(Failure::Throttled.into());
        }
        Ok(())
    }

    /// Takes back the failure a start counted, once its finish proved the password.
    pub(super) async fn forgive_start(&self, user: &str, source: IpAddr) {
        for key in [ThrottleKey::User(user), ThrottleKey::Source(source)] {
            if let Err(e) = self.store.forgive_failure(key).await {
                tracing::error!(error = %e, "forgiving a start");
            }
        }
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
