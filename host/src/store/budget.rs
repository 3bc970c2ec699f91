//! The daily byte budget of each user (`messages.max_user_bytes_per_day`), as a group commit's
//! plan ([`super::accept`]) keeps it: what each user's sessions added to the audit log in a
//! UTC day (`user_usage`), read with the batch, checked and counted message by message, and
//! written back as one change per user and day.
//!
//! A gateway request holds back, with its own record, room for its response's
//! ([`AcceptMessage::reserve`]); the response gives that back as it counts its own record. So
//! a request is refused while the largest response could still pass the budget, and
//! responses (never refused: their requests were served) cannot take a user far past it,
//! however many requests it has in flight.

use std::collections::{BTreeSet, HashMap};

use super::{AcceptMessage, SentBy, UnixSeconds};

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
    /// Whether client message `m` (its record and what it holds back) would take its user
    /// past `m.daily_budget` (a session with no user: no).
    pub(super) fn over(
        m: &AcceptMessage,
        owners: &HashMap<Vec<u8>, i64>,
        counts: &HashMap<SenderDay, u64>,
    ) -> bool {
        let Some(key) = SenderDay::of(m, owners) else {
            return false;
        };
        let spent = counts.get(&key).copied().unwrap_or_default();
        spent
            .saturating_add(record_len(m))
            .saturating_add(m.reserve)
            > m.daily_budget
    }

    /// Counts accepted message `m` in `counts`: a client message's record and what it holds
    /// back; a host message's record, less what its request held back.
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
        let with_record = count.saturating_add(record_len(m));
        *count = match m.sent_by {
            SentBy::Client => with_record.saturating_add(m.reserve),
            SentBy::Host => with_record.saturating_sub(m.reserve),
        };
    }

    /// The changes to write, by key, each once, in key order (the order their rows are
    /// locked in); none for a count that came back to where it was.
    pub(super) fn changes(self, counts: &HashMap<SenderDay, u64>) -> Vec<(SenderDay, i64)> {
        let mut changes: Vec<(SenderDay, i64)> = self
            .before
            .into_iter()
            .filter_map(|(key, before)| {
                let after = counts.get(&key).copied().unwrap_or_default();
                let change = i128::from(after) - i128::from(before);
                let change =
                    i64::try_from(change).unwrap_or(if change < 0 { i64::MIN } else { i64::MAX });
                (change != 0).then_some((key, change))
            })
            .collect();
        changes.sort_unstable();
        changes
    }
}

/// What `m`'s audit record counts: its payload's length.
fn record_len(m: &AcceptMessage) -> u64 {
    m.payload.len() as u64
}
