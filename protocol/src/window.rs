//! [`ReplayWindow`]: the host's anti-replay state for one session's client-to-host messages,
//! a sliding window of the last [`WINDOW`] sequence numbers (RFC 6347 §4.1.2.6, RFC 4303
//! §3.4.3), so a client may have several messages in flight and have them accepted in any
//! order, each at most once.
//!
//! The state is two integers — the highest sequence number accepted (`top`) and a bitmap of
//! which of the [`WINDOW`] numbers ending at `top` were accepted (bit `i`: `top - i`) — so the
//! store keeps it in two columns and changes it with one compare-and-set.

use crate::ProtocolError;

/// How many sequence numbers, ending at the highest accepted, the window remembers. Anything
/// lower is refused as [`ProtocolError::Reordered`] (too old to tell whether it was seen).
pub const WINDOW: u64 = 64;

/// A session's accepted sequence numbers: the highest, and which of the [`WINDOW`] ending
/// there were seen. The default (nothing accepted yet) accepts any number from 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReplayWindow {
    top: u64,
    seen: u64,
}

impl ReplayWindow {
    /// A window from its stored parts. `seen`'s bit 0 stands for `top` itself and is set
    /// whenever `top` is not 0; bits for numbers below 1 mean nothing.
    pub fn from_parts(top: u64, seen: u64) -> Self {
        let seen = if top == 0 { seen } else { seen | 1 };
        Self { top, seen }
    }

    /// The highest sequence number accepted (0: none yet).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The bitmap of accepted numbers: bit `i` is `top - i`.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether `seq` may be accepted: above the window, or inside it and not yet seen.
    pub fn check(&self, seq: u64) -> Result<(), ProtocolError> {
        if seq > self.top {
            return Ok(());
        }
        let back = self.top - seq;
        if seq == 0 || back >= WINDOW {
            return Err(ProtocolError::Reordered {
                seq,
                last: self.top,
            });
        }
        if self.seen & (1 << back) != 0 {
            return Err(ProtocolError::Replayed { seq });
        }
        Ok(())
    }

    /// Records `seq` as accepted (after [`check`](Self::check)); the window slides when `seq`
    /// is above it.
    pub fn accept(&mut self, seq: u64) -> Result<(), ProtocolError> {
        self.check(seq)?;
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = seq;
        } else {
            self.seen |= 1 << (self.top - seq);
        }
        Ok(())
    }

    /// The window after accepting `seq`, or why not (this one unchanged).
    pub fn accepting(&self, seq: u64) -> Result<Self, ProtocolError> {
        let mut next = *self;
        next.accept(seq)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn replayed(r: Result<(), ProtocolError>) -> bool {
        matches!(r, Err(ProtocolError::Replayed { .. }))
    }

    fn too_old(r: Result<(), ProtocolError>) -> bool {
        matches!(r, Err(ProtocolError::Reordered { .. }))
    }

    #[test]
    fn in_order_out_of_order_duplicate_below_and_far_ahead() {
        let mut w = ReplayWindow::default();
        assert!(too_old(w.check(0)), "0 is never a message");
        for seq in [1, 3, 2, 5] {
            w.accept(seq).expect("fresh");
        }
        assert!(replayed(w.check(3)), "duplicate inside the window");
        w.check(4).expect("4 is inside the window and unseen");
        // Far ahead: the window jumps, and everything it left behind is too old.
        w.accept(5 + 1_000).expect("far ahead");
        assert!(too_old(w.check(4)));
        assert!(too_old(w.check(5 + 1_000 - WINDOW)));
        w.check(5 + 1_000 - WINDOW + 1)
            .expect("the window's lowest, unseen");
        assert!(replayed(w.check(5 + 1_000)));
    }

    #[test]
    fn the_window_edge() {
        let mut w = ReplayWindow::default();
        w.accept(100).expect("first");
        w.check(100 - (WINDOW - 1)).expect("lowest inside");
        assert!(too_old(w.check(100 - WINDOW)), "just below");
        w.accept(100 - (WINDOW - 1)).expect("accept lowest");
        assert!(replayed(w.check(100 - (WINDOW - 1))));
        // Sliding by one pushes the lowest out.
        w.accept(101).expect("slide");
        assert!(too_old(w.check(100 - (WINDOW - 1))));
    }

    #[test]
    fn stored_parts_round_trip_and_a_legacy_all_seen_window() {
        let mut w = ReplayWindow::default();
        for seq in [7, 9, 8, 12] {
            w.accept(seq).expect("fresh");
        }
        assert_eq!(ReplayWindow::from_parts(w.top(), w.seen()), w);
        // A session stored before the window (every number up to top seen).
        let legacy = ReplayWindow::from_parts(40, u64::MAX);
        assert!(replayed(legacy.check(39)));
        legacy.check(41).expect("above");
        // A new session stored with the conservative default still accepts from 1.
        ReplayWindow::from_parts(0, u64::MAX)
            .check(1)
            .expect("first");
    }

    proptest! {
        /// Against a model (the set of everything accepted): a number is accepted at most
        /// once, and a fresh number inside the window is never refused.
        #[test]
        fn at_most_once_against_a_model(seqs in proptest::collection::vec(1u64..300, 1..200)) {
            let mut w = ReplayWindow::default();
            let mut accepted = std::collections::BTreeSet::new();
            for seq in seqs {
                let fresh = !accepted.contains(&seq);
                let inside = seq + WINDOW > w.top();
                match w.accept(seq) {
                    Ok(()) => prop_assert!(accepted.insert(seq), "{seq} accepted twice"),
                    Err(_) => prop_assert!(!(fresh && inside), "fresh {seq} refused"),
                }
            }
        }
    }
}
