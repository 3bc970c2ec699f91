//! Room held against users' daily byte budgets, in this process, by gateway requests in
//! flight (the store counts only records written: `store::budget`).
//!
//! A request holds the largest response record it may get (`GatewayConfig::response_reserve`)
//! from before its own record is committed until its handling ends: answered, failed, or
//! dropped because the client went away. Every client message of the user (gateway request or
//! relayed message) passes only if its record and the room the user holds here fit the
//! budget, so responses, which are never refused, cannot take the user past it through this
//! process. Other replicas hold their own room: with several, the bound is per replica.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Bytes held per user (entries only while something is held: as many as users with gateway
/// requests in flight).
#[derive(Debug, Default)]
pub struct BudgetHolds {
    by_user: Mutex<HashMap<String, u64>>,
}

/// Room held for one request; given back when dropped.
#[derive(Debug)]
pub struct Held<'a> {
    holds: &'a BudgetHolds,
    user: String,
    bytes: u64,
}

impl BudgetHolds {
    /// Holds `bytes` for `user`: the guard, and what the user holds now, these included.
    pub fn hold(&self, user: &str, bytes: u64) -> (Held<'_>, u64) {
        let mut by_user = self.lock();
        let held = by_user.entry(user.to_owned()).or_default();
        *held = held.saturating_add(bytes);
        let now = *held;
        let guard = Held {
            holds: self,
            user: user.to_owned(),
            bytes,
        };
        (guard, now)
    }

    /// What `user` holds now.
    pub fn held(&self, user: &str) -> u64 {
        self.lock().get(user).copied().unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.by_user.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut by_user = self.holds.lock();
        if let Some(held) = by_user.get_mut(&self.user) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_held_per_user_until_each_guard_drops() {
        let holds = BudgetHolds::default();
        let (a, now) = holds.hold("alice", 10);
        assert_eq!(now, 10);
        let (b, now) = holds.hold("alice", 5);
        assert_eq!((now, holds.held("bob")), (15, 0));
        drop(a);
        assert_eq!(holds.held("alice"), 5);
        drop(b);
        assert_eq!(holds.held("alice"), 0);
        assert!(holds.lock().is_empty(), "no entry left behind");
    }
}
