//! Locks after failed logins, per user and per source address (the store keeps them, so
//! every replica sees the same locks). A start counts as a failure until its finish proves
//! the password; a wrong card response counts again.
//!
//! The user's key depends on where the login comes from: from a network the user logged in
//! from within [`KNOWN_NETWORK_SECS`] it is that user's key for that network
//! ([`ThrottleKey::UserFrom`]), from anywhere else the user's global key. A flood naming a
//! user from many networks locks only the global key, so the user still gets in from its
//! own networks; guesses from those networks are still bounded by their own user key and by
//! the source network's key (issue 14, item 1).

use std::net::IpAddr;

use super::LoginError;
use crate::HostError;
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{Counted, Forgiven, KNOWN_NETWORK_SECS, LoginRecord, ThrottleKey, UnixSeconds};

/// What a start counted: per key (user, source), the lock end after and before its failure.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct StartCount {
    pub(super) locks: [(UnixSeconds, UnixSeconds); 2],
    /// Whether the start came from a network the user is known to log in from (then the
    /// user's key is [`ThrottleKey::UserFrom`] for this login's every step).
    pub(super) known_network: bool,
    /// Whether that network's last success is recent enough not to be written again.
    pub(super) noted_recently: bool,
}

/// What a start read before it counts ([`Host::look_up_start`]).
#[derive(Debug)]
pub(super) struct StartFacts {
    /// Whether the start comes from a network the user is known to log in from.
    pub(super) known_network: bool,
    /// Whether that network's last success is recent enough not to be written again.
    pub(super) noted_recently: bool,
    /// The user's OPAQUE record, if it can log in (a record and pairs).
    pub(super) record: Option<Vec<u8>>,
    /// Whether the user's key for this login or the source's is locked.
    pub(super) locked: bool,
}

/// A known network's last success is written again only once it is this old: a user's
/// repeated logins from one network cost no write each.
const NOTE_AGAIN_AFTER: u64 = 86_400;

impl Host {
    /// The keys a login of `user` from `source` counts against: the user's (global, or for
    /// this network if it is a known one) and the source network's.
    pub(super) fn throttle_keys<'a>(
        &self,
        user: &'a str,
        source: IpAddr,
        known_network: bool,
    ) -> [ThrottleKey<'a>; 2] {
        let net = self.config.throttle.source_key(source);
        let user_key = match (known_network, net) {
            (true, ThrottleKey::Network(n, p)) => ThrottleKey::UserFrom(user, n, p),
            (true, ThrottleKey::Source(a)) => ThrottleKey::UserFrom(user, a, 128),
            _ => ThrottleKey::User(user),
        };
        [user_key, net]
    }

    /// What a start reads before it counts, in one store call: whether `user` logged in from
    /// `source`'s network within [`KNOWN_NETWORK_SECS`] (and within [`NOTE_AGAIN_AFTER`]),
    /// its OPAQUE record, and whether the key this login counts against is locked (the
    /// user's for this network or its global one, by the first answer; or the source's).
    pub(super) async fn look_up_start(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<StartFacts, LoginError> {
        let [global, net] = self.throttle_keys(user, source, false);
        let [local, _] = self.throttle_keys(user, source, true);
        let found = self
            .store
            .start_lookup(user, &net.to_key(), [global, local, net])
            .await
            .map_err(HostError::from)?;
        let within = |secs: u64| {
            found
                .last_success
                .is_some_and(|t| t >= now.saturating_sub(secs))
        };
        let known_network = within(KNOWN_NETWORK_SECS);
        let [global_lock, local_lock, net_lock] = found.locked_until;
        let user_lock = if known_network {
            local_lock
        } else {
            global_lock
        };
        Ok(StartFacts {
            known_network,
            noted_recently: within(NOTE_AGAIN_AFTER),
            record: found.opaque_record,
            locked: now < user_lock || now < net_lock,
        })
    }

    /// After a successful login: `source`'s network becomes (or stays) known for `user`
    /// (the user's key that throttled the login is cleared with the session's creation,
    /// [`Store::open_session`](crate::store::Store::open_session)).
    pub(super) async fn note_network(
        &self,
        user: &str,
        source: IpAddr,
        count: StartCount,
        now: UnixSeconds,
    ) {
        if count.noted_recently {
            return;
        }
        let [_, net] = self.throttle_keys(user, source, count.known_network);
        let noted = self
            .store
            .note_known_network(user, &net.to_key(), now)
            .await;
        if let Err(e) = noted {
            tracing::error!(error = %e, "recording a known network");
        }
    }

    /// Counts a start as a failure of the user and the source (with KE2 alone a client can
    /// test one password guess), and draws the user's next access counter with its record.
    /// `None` if either is locked (then nothing is counted and the start answers from the
    /// fake record).
    pub(super) async fn count_start(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
        facts: &StartFacts,
    ) -> Result<Option<(StartCount, Option<LoginRecord>)>, LoginError> {
        let keys = self.throttle_keys(user, source, facts.known_network);
        // The check and the count are one step: concurrent starts cannot all pass the check
        // before any has counted (issue 14, item 3).
        let counted = self
            .store
            .count_start(&keys, Some(user), now, &self.config.throttle.backoff())
            .await
            .map_err(HostError::from)?;
        let Some(counted) = counted else {
            self.metrics.login(Outcome::Throttled);
            return Ok(None);
        };
        let count = StartCount {
            locks: self.locks(&counted, now),
            known_network: facts.known_network,
            noted_recently: facts.noted_recently,
        };
        Ok(Some((count, counted.login)))
    }

    /// The response step's count: as a start's, one atomic check-and-count of the keys the
    /// start counted against (no counter drawn), so that wrong answers sent at once are no
    /// more than one after another would be; taken back ([`Host::forgiven`]) when the
    /// response proves the card. `None`: a key is locked (nothing counted).
    pub(super) async fn count_response(
        &self,
        user: &str,
        source: IpAddr,
        start: StartCount,
        now: UnixSeconds,
    ) -> Result<Option<StartCount>, LoginError> {
        let keys = self.throttle_keys(user, source, start.known_network);
        let counted = self
            .store
            .count_start(&keys, None, now, &self.config.throttle.backoff())
            .await
            .map_err(HostError::from)?;
        let Some(counted) = counted else {
            self.metrics.login(Outcome::Throttled);
            return Ok(None);
        };
        let locks = self.locks(&counted, now);
        Ok(Some(StartCount { locks, ..start }))
    }

    /// Per key (user, source), the lock end after and before a count (and the locks it
    /// engaged, counted in the metrics).
    fn locks(&self, counted: &Counted, now: UnixSeconds) -> [(UnixSeconds, UnixSeconds); 2] {
        let mut locks = [(0, 0); 2];
        for (i, st) in counted.after.iter().enumerate().take(2) {
            if st.is_locked(now) {
                self.metrics.lock_engaged();
            }
            let before = counted.before.get(i).map_or(0, |b| b.locked_until);
            locks[i] = (st.locked_until, before);
        }
        locks
    }

    /// What takes back what [`Host::count_start`] counted, once the finish proved the
    /// password ([`Store::challenge_pairs_forgiving`](crate::store::Store::challenge_pairs_forgiving)).
    pub(super) fn forgiven<'a>(
        &self,
        user: &'a str,
        source: IpAddr,
        count: &StartCount,
    ) -> [Forgiven<'a>; 2] {
        let [(user_engaged, user_before), (source_engaged, source_before)] = count.locks;
        let [user_key, net] = self.throttle_keys(user, source, count.known_network);
        [
            Forgiven {
                key: user_key,
                engaged: user_engaged,
                before: user_before,
            },
            Forgiven {
                key: net,
                engaged: source_engaged,
                before: source_before,
            },
        ]
    }

    /// Whether `source`'s network is locked (forward-auth: a locked source is refused
    /// without a session lookup; a store error counts as not locked).
    pub(crate) async fn source_locked(&self, source: IpAddr, now: UnixSeconds) -> bool {
        let key = [self.config.throttle.source_key(source)];
        match self.store.throttle_states(&key).await {
            Ok(states) => states.iter().any(|s| s.is_locked(now)),
            Err(e) => {
                tracing::error!(error = %e, "reading a source's throttle state");
                false
            }
        }
    }

    /// Counts a forward-auth check with no live session against `source`'s network (the
    /// same decaying counter failed logins use).
    pub(crate) async fn record_source_failure(&self, source: IpAddr) {
        let now = self.now();
        let key = [self.config.throttle.source_key(source)];
        let backoff = self.config.throttle.backoff();
        if let Err(e) = self.store.record_failures(&key, now, &backoff).await {
            tracing::error!(error = %e, "recording a failure");
        }
    }
}
