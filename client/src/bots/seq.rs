//! Per-sender sequence tracking on the receiving side: counts unique,
//! duplicated and reordered deliveries.
//!
//! Loss itself is `expected - unique` over the whole run (the senders know
//! what they wrote), because a receiver cannot see the messages that never
//! came after the last one it got. The tracker keeps memory bounded: at most
//! [`WINDOW`] out-of-order sequence numbers are remembered; a gap older than
//! that is given up on (its late arrival would then be miscounted as a
//! duplicate, which at that distance is the lesser evil).

use std::collections::BTreeSet;

/// How far ahead of the oldest missing sequence number we remember arrivals.
pub const WINDOW: u64 = 65_536;

/// What one delivery turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time, in order.
    InOrder,
    /// First time, but after a higher sequence number already arrived.
    Reordered,
    /// Already seen.
    Duplicate,
}

/// Tracks one sender's sequence numbers as seen by one receiver. Sequence
/// numbers start at 0.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    /// Every sequence number below `next` has been seen (or given up on).
    next: u64,
    /// Seen numbers above `next` (arrived ahead of a gap).
    ahead: BTreeSet<u64>,
    /// Highest number seen so far, +1 (0 = nothing yet).
    high: u64,
    pub unique: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, seq: u64) -> Seen {
        if seq < self.next || self.ahead.contains(&seq) {
            self.duplicated += 1;
            return Seen::Duplicate;
        }
        let out = if seq + 1 < self.high {
            self.reordered += 1;
            Seen::Reordered
        } else {
            Seen::InOrder
        };
        self.unique += 1;
        self.high = self.high.max(seq + 1);
        if seq == self.next {
            self.next += 1;
            // Fill forward through numbers that arrived early.
            while self.ahead.remove(&self.next) {
                self.next += 1;
            }
        } else {
            self.ahead.insert(seq);
            // Bound memory: give up on gaps older than the window.
            while seq.saturating_sub(self.next) >= WINDOW {
                self.next += 1;
                while self.ahead.remove(&self.next) {
                    self.next += 1;
                }
            }
        }
        out
    }

    /// Numbers missing below the highest one seen (gaps), a lower bound of
    /// this sender's loss to this receiver.
    pub fn gaps(&self) -> u64 {
        self.high - self.next.min(self.high) - self.ahead.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order() {
        let mut t = SeqTracker::new();
        for s in 0..100 {
            assert_eq!(t.record(s), Seen::InOrder);
        }
        assert_eq!(
            (t.unique, t.duplicated, t.reordered, t.gaps()),
            (100, 0, 0, 0)
        );
    }

    #[test]
    fn loss_shows_as_gap() {
        let mut t = SeqTracker::new();
        for s in [0, 1, 2, 5, 6, 9] {
            assert_eq!(t.record(s), Seen::InOrder);
        }
        assert_eq!(t.unique, 6);
        assert_eq!(t.gaps(), 4); // 3, 4, 7, 8
    }

    #[test]
    fn duplicates() {
        let mut t = SeqTracker::new();
        t.record(0);
        t.record(1);
        assert_eq!(t.record(1), Seen::Duplicate);
        assert_eq!(t.record(0), Seen::Duplicate);
        t.record(5);
        assert_eq!(t.record(5), Seen::Duplicate);
        assert_eq!((t.unique, t.duplicated), (3, 3));
    }

    #[test]
    fn reorder_fills_gap() {
        let mut t = SeqTracker::new();
        t.record(0);
        t.record(2);
        t.record(3);
        assert_eq!(t.gaps(), 1);
        assert_eq!(t.record(1), Seen::Reordered);
        assert_eq!(t.gaps(), 0);
        assert_eq!((t.unique, t.reordered, t.duplicated), (4, 1, 0));
        assert_eq!(t.record(2), Seen::Duplicate);
        assert_eq!(t.record(4), Seen::InOrder);
    }

    #[test]
    fn window_bounds_memory() {
        let mut t = SeqTracker::new();
        t.record(0);
        // Sequence 1 never comes; far later numbers do.
        for s in 2..(WINDOW + 10) {
            t.record(s);
        }
        assert!(t.ahead.len() as u64 <= WINDOW);
        assert_eq!(t.unique, WINDOW + 9);
        // 1 was given up on: its late arrival counts as a duplicate.
        assert_eq!(t.record(1), Seen::Duplicate);
    }
}
