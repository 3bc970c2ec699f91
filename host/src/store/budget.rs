//! The daily byte budget of each user (`messages.max_user_bytes_per_day`), as a group commit's
//! plan ([`super::accept`]) keeps it: what each user's sessions added to the audit log in a
//! UTC day (`user_usage`), read with the batch, checked and counted message by message, and
//! written back as one addition per user and day.
//!
//! The store counts records only. Room for answers not yet written (gateway responses) is
//! held by the host process in memory while their requests are in flight, and comes with
//! each client message as [`AcceptMessage::held`]: a message passes only if its record and
//! that room fit, so responses (never refused: their requests were served) cannot take a
//! user past the budget through one process however many requests it has in flight, and room
//! held by a request that never gets its response back (a client gone, a session ended, a
//! failure) is given back when the request's handling ends, not at midnight.

use std::collections::{BTreeSet, HashMap};

use super::{AcceptMessage, UnixSeconds};

/// One user's UTC day: the key of a daily count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct SenderDay {
    /// The user's id.
    pub(super) user_id: i64,
    /// Days since the epoch ([`day_of`]).
    pub(super) day: u64,
}

impl SenderDay {
    /// The day of `m` for the user of its session, if `owners` (session id → user id) has it.
    fn of(m: &AcceptMessage, owners: &HashMap<Vec<u8>, i64>) -> Option<Self> {
        let user_id = *owners.get(m.session_id.as_slice())?;
        Some(Self {
            user_id,
            day: day_of(m.created),
        })
    }
}

/// The UTC day of `t` (seconds since the epoch).
pub(super) fn day_of(t: UnixSeconds) -> u64 {
    t / 86_400
}

/// The counts `batch` needs that `counts` does not have (with `owners`: its sessions read),
/// sorted.
pub(super) fn missing(
    batch: &[AcceptMessage],
    owners: &HashMap<Vec<u8>, i64>,
    counts: &HashMap<SenderDay, u64>,
) -> Vec<SenderDay> {
    let set: BTreeSet<SenderDay> = batch
        .iter()
        .filter_map(|m| SenderDay::of(m, owners))
        .filter(|key| !counts.contains_key(key))
        .collect();
    set.into_iter().collect()
}

/// What one batch did to the counts: each touched count's value before the batch.
#[derive(Debug, Default)]
pub(super) struct Spending {
    before: HashMap<SenderDay, u64>,
}

impl Spending {
    /// Whether client message `m`'s record, with the room its user holds
    /// ([`AcceptMessage::held`]), would take its user past `m.daily_budget` (a session with
    /// no user: no).
    pub(super) fn over(
        m: &AcceptMessage,
        owners: &HashMap<Vec<u8>, i64>,
        counts: &HashMap<SenderDay, u64>,
    ) -> bool {
        let Some(key) = SenderDay::of(m, owners) else {
            return false;
        };
        let spent = counts.get(&key).copied().unwrap_or_default();
        spent.saturating_add(record_len(m)).saturating_add(m.held) > m.daily_budget
    }

    /// Counts accepted message `m`'s record in `counts`.
    pub(super) fn spend(
        &mut self,
        m: &AcceptMessage,
        owners: &HashMap<Vec<u8>, i64>,
        counts: &mut HashMap<SenderDay, u64>,
    ) {
        let Some(key) = SenderDay::of(m, owners) else {
            return;
        };
        let count = counts.entry(key).or_default();
        self.before.entry(key).or_insert(*count);
        *count = count.saturating_add(record_len(m));
    }

    /// The additions to write, by key, each once, in key order (the order their rows are
    /// locked in).
    pub(super) fn additions(self, counts: &HashMap<SenderDay, u64>) -> Vec<(SenderDay, u64)> {
        let mut added: Vec<(SenderDay, u64)> = self
            .before
            .into_iter()
            .map(|(key, before)| {
                let after = counts.get(&key).copied().unwrap_or_default();
                (key, after.saturating_sub(before))
            })
            .collect();
        added.sort_unstable();
        added
    }
}

/// What `m`'s audit record counts: its payload's length.
fn record_len(m: &AcceptMessage) -> u64 {
    m.payload.len() as u64
}
