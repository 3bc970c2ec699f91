//! The one [`Clock`] of Kasane: unix seconds, injectable so that tests (and the trust store's
//! expiry checks) can move time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds.
pub type UnixSeconds = u64;

/// A source of the current unix time.
pub trait Clock: Send + Sync {
    /// Now, unix seconds.
    fn now(&self) -> UnixSeconds;
}

/// The system clock. A clock before 1970 reads as 0 (every expiry then lies in the future,
/// which is why freshness in Kasane rests on nonces and versions, never on the clock alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> UnixSeconds {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> UnixSeconds {
        (**self).now()
    }
}

/// A clock that only moves when told to, for tests. Clones share one time, so a test can keep
/// a handle while the code under test owns another.
#[cfg(feature = "test-util")]
#[derive(Debug, Default, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

#[cfg(feature = "test-util")]
impl ManualClock {
    /// A clock reading `now`.
    #[must_use]
    pub fn new(now: UnixSeconds) -> Self {
        Self(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: UnixSeconds) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "test-util")]
impl Clock for ManualClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::new(10);
        let other = c.clone();
        assert_eq!(c.now(), 10);
        c.advance(5);
        assert_eq!(other.now(), 15);
        other.set(3);
        assert_eq!(c.now(), 3);
        assert!(SystemClock.now() > 1_600_000_000);
    }
}
