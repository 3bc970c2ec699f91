//! The plan of one group commit ([`Store::accept_messages`](super::Store::accept_messages)):
//! what a batch of messages does to the replay windows, the audit chains and the queues,
//! decided in memory from what the batch's reads found.
//!
//! The transaction reads once per batch (the sessions' windows, locked, and users; the
//! chains' heads; the recipients' queue usage; the senders' daily counts, [`super::budget`]),
//! [`plan`] decides every message in arrival order as if it were alone, and the transaction
//! writes once per table (multi-row statements). A batch costs
//! the same handful of statements whatever its size, where accepting one message at a time
//! cost five or six, each a round trip to the database (for SQLite: a hand-off to sqlx's
//! worker thread and back, the largest share of the message path's CPU in the profiles of
//! BENCHMARKS.md).
//!
//! Correctness rests on the reads being authoritative for the whole transaction: SQLite's
//! `BEGIN IMMEDIATE` holds the database's one write lock from the start; on PostgreSQL the
//! windows are read `FOR UPDATE` (in session order, so two replicas' batches never wait for
//! each other in a cycle), which serializes every accept of those sessions, and with them
//! their chains' appends. (Not the queue usage and the daily counts: on PostgreSQL those are
//! bounds that concurrent batches of other sessions may overshoot, docs/STORAGE.md.)

use std::collections::{BTreeSet, HashMap};

use kasane_protocol::ReplayWindow;

use super::budget::{self, SenderDay, Spending};
use super::{AcceptMessage, AcceptOutcome, QueueEntry, Result, SentBy, StoreError, UnixSeconds};
use crate::audit_chain;

/// How much a queue holds, and whose it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// The recipient user's id; `None`: no such user (the name's stand-in queue, counted only).
    pub(super) user_id: Option<i64>,
    /// Messages queued.
    pub(super) messages: u64,
    /// Bytes queued.
    pub(super) bytes: u64,
}

/// What the batch's reads found (absent keys: no such session, an empty chain, a name with
/// neither a user nor a stand-in queue).
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The replay windows of the sessions that exist.
    pub(super) windows: HashMap<Vec<u8>, ReplayWindow>,
    /// The heads (`seq`, `record_hash`) of the sessions' audit chains.
    pub(super) heads: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    /// The recipients' queues.
    pub(super) queues: HashMap<String, Usage>,
    /// The user id of each session that exists (read with its window).
    pub(super) owners: HashMap<Vec<u8>, i64>,
    /// Bytes of audit records each sender's sessions added, by user and UTC day; absent: not
    /// read.
    pub(super) spent: HashMap<SenderDay, u64>,
}

impl Found {
    /// Takes in sessions read: (session id, replay window, user id).
    pub(super) fn take_sessions(&mut self, rows: Vec<(Vec<u8>, ReplayWindow, i64)>) {
        for (sid, window, owner) in rows {
            self.owners.insert(sid.clone(), owner);
            self.windows.insert(sid, window);
        }
    }

    /// Takes in daily counts read for `asked` (a key with no row counts zero, so that it is
    /// known).
    pub(super) fn take_spent(&mut self, asked: &[SenderDay], rows: Vec<(SenderDay, u64)>) {
        for key in asked {
            self.spent.entry(*key).or_default();
        }
        self.spent.extend(rows);
    }

    /// The daily counts `batch` needs that are not here (its sessions read first), sorted.
    pub(super) fn spent_keys(&self, batch: &[AcceptMessage]) -> Vec<SenderDay> {
        budget::missing(batch, &self.owners, &self.spent)
    }
}

/// One audit record to insert.
#[derive(Debug)]
pub(super) struct AuditRow<'a> {
    pub(super) session_id: &'a [u8],
    pub(super) seq: u64,
    pub(super) prev_hash: Vec<u8>,
    pub(super) record_hash: [u8; 32],
    pub(super) payload: &'a [u8],
    pub(super) created: UnixSeconds,
}

/// One queue entry to insert.
#[derive(Debug)]
pub(super) struct QueueRow<'a> {
    pub(super) recipient_id: i64,
    /// The message key sealed at rest ([`QueueEntry::sealed`](super::QueueEntry)).
    pub(super) body: &'a [u8],
    pub(super) created: UnixSeconds,
    /// What it counts against the quota.
    pub(super) counted: u64,
    /// The audit record it names: the message's own, appended in the same batch.
    pub(super) audit: (&'a [u8], u64),
}

/// What a batch writes, and what each of its messages is answered.
#[derive(Debug, Default)]
pub(super) struct Plan<'a> {
    /// One outcome per message, in batch order.
    pub(super) outcomes: Vec<AcceptOutcome>,
    /// The windows that moved, by session (each once, its final value).
    pub(super) windows: Vec<(&'a [u8], ReplayWindow)>,
    /// Audit records, in chain order per session.
    pub(super) audit: Vec<AuditRow<'a>>,
    /// Queue entries, by recipient id, each recipient's in batch order.
    pub(super) queue: Vec<QueueRow<'a>>,
    /// Messages and bytes to count in stand-in queues, by name (each name once).
    pub(super) unknown: Vec<(&'a str, u64, u64)>,
    /// Additions to the senders' daily counts, each once, in key order.
    pub(super) spent: Vec<(SenderDay, u64)>,
}

/// The distinct session ids of `batch`, sorted (the order their rows are locked in).
pub(super) fn sessions(batch: &[AcceptMessage]) -> Vec<&[u8]> {
    let set: BTreeSet<&[u8]> = batch.iter().map(|m| m.session_id.as_slice()).collect();
    set.into_iter().collect()
}

/// The distinct recipient names of `batch`'s client messages that carry a body.
pub(super) fn recipients(batch: &[AcceptMessage]) -> Vec<&str> {
    let set: BTreeSet<&str> = batch
        .iter()
        .filter(|m| m.sent_by == SentBy::Client)
        .filter_map(|m| m.queue.as_ref().map(|q| q.recipient.as_str()))
        .collect();
    set.into_iter().collect()
}

/// The names of `names` that are no user `found` has: their stand-in queues are read next.
pub(super) fn unknown<'a>(names: Vec<&'a str>, found: &Found) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|n| !found.queues.contains_key(*n))
        .collect()
}

/// Decides every message of `batch` in order against `found`, which it updates as each
/// accepted message would (once the plan is committed, `found` is what the database holds
/// for the batch's keys): the same outcomes as accepting them one at a time.
pub(super) fn plan<'a>(batch: &'a [AcceptMessage], found: &mut Found) -> Result<Plan<'a>> {
    let mut plan = Plan::default();
    let mut moved: HashMap<&[u8], ReplayWindow> = HashMap::new();
    let mut unknown: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut spending = Spending::default();
    for m in batch {
        let outcome = match m.sent_by {
            SentBy::Host => host_message(m, found, &mut plan)?,
            SentBy::Client => client_message(m, found, &mut plan, &mut unknown)?,
        };
        if let AcceptOutcome::Accepted { window, .. } = outcome {
            if m.sent_by == SentBy::Client {
                moved.insert(&m.session_id, window);
            }
            spending.spend(m, &found.owners, &mut found.spent);
        }
        plan.outcomes.push(outcome);
    }
    // By recipient (stable: each recipient's entries keep their order): each entry's
    // trigger updates its recipient's `relay_queue_usage` row, so two replicas' batches
    // lock those rows in one order and never deadlock on PostgreSQL.
    plan.queue.sort_by_key(|r| r.recipient_id);
    plan.windows = moved.into_iter().collect();
    plan.windows.sort_unstable_by_key(|(sid, _)| *sid);
    plan.unknown = unknown.into_iter().map(|(n, (c, b))| (n, c, b)).collect();
    plan.unknown.sort_unstable();
    plan.spent = spending.additions(&found.spent);
    Ok(plan)
}

/// A gateway response: audited, nothing else; refused only if its session ended meanwhile
/// (nobody to answer, and nothing to count it against).
fn host_message<'a>(
    m: &'a AcceptMessage,
    found: &mut Found,
    plan: &mut Plan<'a>,
) -> Result<AcceptOutcome> {
    let Some(window) = found.windows.get(m.session_id.as_slice()).copied() else {
        return Ok(AcceptOutcome::NoSession);
    };
    let audit_seq = append(m, found, plan)?;
    Ok(AcceptOutcome::Accepted {
        audit_seq,
        queued: false,
        window,
    })
}

/// A client's message: its window, its sender's daily budget, its recipient's quota, then its
/// writes (a refusal writes nothing).
fn client_message<'a>(
    m: &'a AcceptMessage,
    found: &mut Found,
    plan: &mut Plan<'a>,
    unknown: &mut HashMap<&'a str, (u64, u64)>,
) -> Result<AcceptOutcome> {
    let over_budget = Spending::over(m, &found.owners, &found.spent);
    let Some(stored) = found.windows.get_mut(m.session_id.as_slice()) else {
        return Ok(AcceptOutcome::NoSession);
    };
    let window = match stored.accepting(m.seq) {
        Ok(w) => w,
        Err(e) => return Ok(super::sql::window_refusal(&e)),
    };
    if over_budget {
        return Ok(AcceptOutcome::BudgetSpent);
    }
    if let Some(q) = &m.queue {
        let usage = found.queues.get(q.recipient.as_str()).copied();
        let usage = usage.unwrap_or_default();
        if !m.quota.has_room(usage.messages, usage.bytes, q.bytes) {
            return Ok(AcceptOutcome::QueueFull);
        }
    }
    *stored = window;
    let audit_seq = append(m, found, plan)?;
    let queued = match &m.queue {
        Some(q) => queue(
            q,
            (&m.session_id, audit_seq),
            m.created,
            found,
            plan,
            unknown,
        ),
        None => false,
    };
    Ok(AcceptOutcome::Accepted {
        audit_seq,
        queued,
        window,
    })
}

/// Queues `q` for its recipient, naming the audit record `audit` (or counts it in the
/// name's stand-in queue): whether it was queued for a user.
fn queue<'a>(
    q: &'a QueueEntry,
    audit: (&'a [u8], u64),
    created: UnixSeconds,
    found: &mut Found,
    plan: &mut Plan<'a>,
    unknown: &mut HashMap<&'a str, (u64, u64)>,
) -> bool {
    let (name, len) = (q.recipient.as_str(), q.bytes);
    let usage = found.queues.entry(name.to_owned()).or_default();
    usage.messages = usage.messages.saturating_add(1);
    usage.bytes = usage.bytes.saturating_add(len);
    match usage.user_id {
        Some(recipient_id) => {
            plan.queue.push(QueueRow {
                recipient_id,
                body: &q.sealed,
                created,
                counted: len,
                audit,
            });
            true
        }
        None => {
            let counted = unknown.entry(name).or_default();
            counted.0 += 1;
            counted.1 = counted.1.saturating_add(len);
            false
        }
    }
}

/// Appends `m`'s record to its session's chain (position = head + 1); returns the position.
fn append<'a>(m: &'a AcceptMessage, found: &mut Found, plan: &mut Plan<'a>) -> Result<u64> {
    let sid = m.session_id.as_slice();
    let (seq, prev_hash) = match found.heads.get(sid) {
        Some((seq, hash)) => (seq.checked_add(1).ok_or(out_of_range("seq"))?, hash.clone()),
        None => (1, audit_chain::genesis_hash(sid).to_vec()),
    };
    let record_hash = audit_chain::record_hash(sid, seq, &prev_hash, &m.payload);
    let head = (seq, record_hash.to_vec());
    match found.heads.get_mut(sid) {
        Some(known) => *known = head,
        None => {
            found.heads.insert(m.session_id.clone(), head);
        }
    }
    plan.audit.push(AuditRow {
        session_id: sid,
        seq,
        prev_hash,
        record_hash,
        payload: &m.payload,
        created: m.created,
    });
    Ok(seq)
}

fn out_of_range(what: &'static str) -> StoreError {
    StoreError::OutOfRange { what }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::QueueQuota;

    fn message(sid: u8, seq: u64, to: Option<&str>, sent_by: SentBy) -> AcceptMessage {
        AcceptMessage {
            session_id: vec![sid; 4],
            seq,
            payload: vec![sid, seq as u8],
            queue: to.map(|n| QueueEntry {
                recipient: n.to_owned(),
                sealed: vec![0; 10],
                bytes: 10,
            }),
            quota: QueueQuota {
                max_messages: 2,
                max_bytes: 1000,
            },
            daily_budget: u64::MAX,
            held: 0,
            created: 7,
            sent_by,
        }
    }

    fn found(sessions: &[u8], users: &[(&str, i64)]) -> Found {
        let mut f = Found::default();
        for s in sessions {
            f.windows.insert(vec![*s; 4], ReplayWindow::default());
        }
        for (name, id) in users {
            let usage = Usage {
                user_id: Some(*id),
                ..Usage::default()
            };
            f.queues.insert((*name).to_owned(), usage);
        }
        f
    }

    #[test]
    fn a_batch_decides_as_one_at_a_time_would() {
        let c = SentBy::Client;
        let batch = vec![
            message(1, 1, Some("bob"), c),
            message(1, 1, Some("bob"), c), // replayed within the batch
            message(2, 5, Some("bob"), c), // another session, same recipient
            message(1, 2, Some("bob"), c), // bob's queue is full (2 messages)
            message(1, 3, Some("eve"), c), // no such user: counted only
            message(3, 1, None, c),        // no such session
            message(1, 1, None, SentBy::Host), // a gateway answer: audited only
        ];
        let plan = plan(&batch, &mut found(&[1, 2], &[("bob", 9)])).unwrap();
        let kinds: Vec<_> = plan.outcomes.iter().map(std::mem::discriminant).collect();
        let accepted = std::mem::discriminant(&plan.outcomes[0]);
        assert_eq!(kinds[1], std::mem::discriminant(&AcceptOutcome::Replayed));
        assert_eq!(kinds[3], std::mem::discriminant(&AcceptOutcome::QueueFull));
        assert_eq!(kinds[5], std::mem::discriminant(&AcceptOutcome::NoSession));
        for i in [0, 2, 4, 6] {
            assert_eq!(kinds[i], accepted, "message {i}");
        }
        assert!(matches!(
            plan.outcomes[4],
            AcceptOutcome::Accepted {
                queued: false,
                audit_seq: 2,
                ..
            }
        ));
        assert!(matches!(
            plan.outcomes[6],
            AcceptOutcome::Accepted {
                queued: false,
                audit_seq: 3,
                ..
            }
        ));
        assert_eq!(plan.queue.len(), 2);
        assert_eq!(plan.unknown, vec![("eve", 1, 10)]);
        // Session 1's window holds 1 and 3 (2 was refused), written once.
        assert_eq!(plan.windows.len(), 2);
        let w1 = plan.windows[0].1;
        assert_eq!(w1.top(), 3);
        assert!(w1.check(2).is_ok() && w1.check(1).is_err());
    }

    /// The budget counts every accepted record of the sender's sessions against the
    /// message's UTC day, and refuses (after the window) a client message whose record, with
    /// the room its user holds for answers, would pass it; an answer is counted, never
    /// refused.
    #[test]
    fn a_sender_s_daily_budget_counts_its_sessions_together_by_day() {
        let (c, h) = (SentBy::Client, SentBy::Host);
        let day = |user_id, day| SenderDay { user_id, day };
        let budgeted = |sid, seq, sent_by, created, held| AcceptMessage {
            daily_budget: 9,
            held,
            created,
            ..message(sid, seq, None, sent_by)
        };
        let next_day = 86_400;
        let batch = vec![
            budgeted(1, 1, c, 7, 4),        // 3 + 2 + 4 held = 9, at the budget: 5
            budgeted(2, 1, c, 7, 4),        // another session of the same user: 11, over
            budgeted(1, 1, c, 7, 0),        // replayed: the window answers first
            budgeted(1, 2, h, 7, 0),        // an answer: counted, 7
            budgeted(2, 2, c, 7, 0),        // 7 + 2 = 9 fits
            budgeted(3, 1, c, 7, 0),        // another user
            budgeted(2, 3, c, next_day, 0), // a new day
            budgeted(9, 1, h, 7, 0),        // an answer whose session ended
        ];
        let mut f = found(&[1, 2, 3], &[]);
        f.owners = HashMap::from([(vec![1; 4], 10), (vec![2; 4], 10), (vec![3; 4], 11)]);
        f.spent.insert(day(10, 0), 3);
        let plan = plan(&batch, &mut f).unwrap();
        let kind = |i: usize| std::mem::discriminant(&plan.outcomes[i]);
        let accepted = kind(0);
        assert_eq!(kind(1), std::mem::discriminant(&AcceptOutcome::BudgetSpent));
        assert_eq!(kind(2), std::mem::discriminant(&AcceptOutcome::Replayed));
        assert_eq!(kind(7), std::mem::discriminant(&AcceptOutcome::NoSession));
        for i in [3, 4, 5, 6] {
            assert_eq!(kind(i), accepted, "message {i}");
        }
        let changes = vec![(day(10, 0), 6), (day(10, 1), 2), (day(11, 0), 2)];
        assert_eq!(plan.spent, changes);
        assert_eq!(f.spent[&day(10, 0)], 9);
        assert_eq!(plan.audit.len(), 5);
    }

    #[test]
    fn chains_continue_from_their_heads_and_link() {
        let batch = vec![
            message(1, 1, None, SentBy::Client),
            message(1, 2, None, SentBy::Client),
        ];
        let mut f = found(&[1], &[]);
        f.heads.insert(vec![1; 4], (41, vec![0xaa; 32]));
        let plan = plan(&batch, &mut f).unwrap();
        assert_eq!(plan.audit[0].seq, 42);
        assert_eq!(plan.audit[0].prev_hash, vec![0xaa; 32]);
        assert_eq!(plan.audit[1].seq, 43);
        assert_eq!(plan.audit[1].prev_hash, plan.audit[0].record_hash.to_vec());
        let genesis = plan_one_fresh();
        assert_eq!(genesis, audit_chain::genesis_hash(&[1; 4]).to_vec());
    }

    #[test]
    fn queue_entries_are_written_by_recipient_each_in_order() {
        let c = SentBy::Client;
        let mut batch = vec![
            message(1, 1, Some("zed"), c),
            message(1, 2, Some("bob"), c),
            message(1, 3, Some("zed"), c),
        ];
        batch[2].queue = Some(QueueEntry {
            recipient: "zed".to_owned(),
            sealed: vec![1; 3],
            bytes: 3,
        });
        let plan = plan(&batch, &mut found(&[1], &[("bob", 9), ("zed", 20)])).unwrap();
        let order: Vec<(i64, usize, u64)> = plan
            .queue
            .iter()
            .map(|r| (r.recipient_id, r.body.len(), r.audit.1))
            .collect();
        // Each entry names its own message's audit record (positions 1, 2, 3 of the chain).
        assert_eq!(order, [(9, 10, 2), (20, 10, 1), (20, 3, 3)]);
        assert!(plan.queue.iter().all(|r| r.audit.0 == [1; 4]));
    }

    fn plan_one_fresh() -> Vec<u8> {
        let batch = vec![message(1, 1, None, SentBy::Client)];
        let plan = plan(&batch, &mut found(&[1], &[])).unwrap();
        assert_eq!(plan.audit[0].seq, 1);
        plan.audit[0].prev_hash.clone()
    }
}
