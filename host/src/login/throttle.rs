//! Locks after failed logins, per user and per source address (the store keeps them, so
//! every replica sees the same locks). A start counts as a failure until its finish proves
//! the password; a wrong card response counts again.

use std::net::IpAddr;

use super::{Failure, LoginError};
use crate::HostError;
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{Counted, Forgiven, ThrottleKey, ThrottleState, UnixSeconds};

/// What a start counted: per key (user, source), the lock end after and before its failure.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct StartCount {
    pub(super) locks: [(UnixSeconds, UnixSeconds); 2],
}

impl Host {
    /// The user's and the source's throttle states (one query).
    async fn throttle_states(
        &self,
        user: &str,
        source: IpAddr,
    ) -> Result<[ThrottleState; 2], LoginError> {
        let states = self
            .store
            .throttle_states(&[
                ThrottleKey::User(user),
                self.config.throttle.source_key(source),
            ])
            .await
            .map_err(HostError::from)?;
        <[ThrottleState; 2]>::try_from(states).map_err(|_| {
            HostError::from(crate::store::StoreError::OutOfRange {
                what: "throttle states",
            })
            .into()
        })
    }

    /// Refuses the step if the user or the source is locked (counted as throttled).
    pub(super) async fn refuse_if_locked(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<(), LoginError> {
        let states = self.throttle_states(user, source).await?;
        if states.iter().any(|s| s.is_locked(now)) {
            self.metrics.login(Outcome::Throttled);
            return Err(Failure::Throttled.into());
        }
        Ok(())
    }

    /// Counts a start as a failure of the user and the source (with KE2 alone a client can
    /// test one password guess). `None` if either is locked (then nothing is counted and the
    /// start answers from the fake record).
    pub(super) async fn count_start(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<Option<StartCount>, LoginError> {
        let keys = [
            ThrottleKey::User(user),
            self.config.throttle.source_key(source),
        ];
        // The check and the count are one step: concurrent starts cannot all pass the check
        // before any has counted (issue 14, item 3).
        let counted = self
            .store
            .count_unless_locked(&keys, now, &self.config.throttle.backoff())
            .await
            .map_err(HostError::from)?;
        let Some(Counted { before, after }) = counted else {
            self.metrics.login(Outcome::Throttled);
            return Ok(None);
        };
        let mut locks = [(0, 0); 2];
        for (i, st) in after.iter().enumerate().take(2) {
            if st.is_locked(now) {
                self.metrics.lock_engaged();
            }
            locks[i] = (st.locked_until, before.get(i).map_or(0, |b| b.locked_until));
        }
        Ok(Some(StartCount { locks }))
    }

    /// Takes back what [`Host::count_start`] counted, once the finish proved the password.
    pub(super) async fn forgive_start(&self, user: &str, source: IpAddr, count: &StartCount) {
        let [(user_engaged, user_before), (source_engaged, source_before)] = count.locks;
        let forgiven = [
            Forgiven {
                key: ThrottleKey::User(user),
                engaged: user_engaged,
                before: user_before,
            },
            Forgiven {
                key: self.config.throttle.source_key(source),
                engaged: source_engaged,
                before: source_before,
            },
        ];
        if let Err(e) = self.store.forgive_failures(&forgiven).await {
            tracing::error!(error = %e, "forgiving a start");
        }
    }

    /// Counts a failed login against the user and the source address.
    pub(super) async fn record_failure(&self, user: &str, source: IpAddr) {
        let now = self.now();
        let keys = [
            ThrottleKey::User(user),
            self.config.throttle.source_key(source),
        ];
        let backoff = self.config.throttle.backoff();
        match self.store.record_failures(&keys, now, &backoff).await {
            Ok(states) => {
                for _ in states.iter().filter(|st| st.is_locked(now)) {
                    self.metrics.lock_engaged();
                }
            }
            Err(e) => tracing::error!(error = %e, "recording a failure"),
        }
    }
}
