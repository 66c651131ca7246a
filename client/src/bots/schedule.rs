//! Time and schedule math: the monotonic clock every bot stamps messages
//! with, evenly spaced send schedules, and the connection ramp.
//!
//! Coordinated omission: a message's latency is measured from the time it
//! was *scheduled* to be sent, not from when the bot got around to sending
//! it. When the server (or the bots' own CPU) falls behind, messages pile up
//! behind their schedule and that wait is part of the latency a real user
//! would have seen. [`Schedule::due`] hands out every message whose time has
//! come, so a late bot sends a burst stamped with the original times.

use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds. The same clock in every process on this
/// machine, so worker processes can compare stamps with each other.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC
    // is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleep until the monotonic time `ns` (tokio's timer has 1 ms resolution,
/// so wake-ups may be up to ~1 ms late; [`Schedule::due`] makes up for it).
pub async fn sleep_until_ns(ns: u64) {
    let now = mono_ns();
    if ns > now {
        tokio::time::sleep(Duration::from_nanos(ns - now)).await;
    }
}

/// Events evenly spaced at `rate` per second from `start_ns` (shifted by
/// `phase` periods, 0..1, so many senders don't all fire at once) until
/// `end_ns` (exclusive).
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    period_ns: f64,
    phase: f64,
    end_ns: u64,
    /// Index of the next event not yet handed out.
    next: u64,
}

impl Schedule {
    /// `rate` must be > 0.
    pub fn new(start_ns: u64, rate: f64, phase: f64, end_ns: u64) -> Self {
        Self {
            start_ns,
            period_ns: 1e9 / rate.max(1e-9),
            phase: phase.clamp(0.0, 1.0),
            end_ns,
            next: 0,
        }
    }

    /// Scheduled time of event `i`.
    pub fn at(&self, i: u64) -> u64 {
        self.start_ns + ((self.phase + i as f64) * self.period_ns) as u64
    }

    /// Time of the next event, or None when the schedule is finished.
    pub fn next_time(&self) -> Option<u64> {
        let t = self.at(self.next);
        (t < self.end_ns).then_some(t)
    }

    /// Hand out up to `max` events due at `now_ns`: returns (first index,
    /// count). Their scheduled times are `at(first..first+count)`.
    pub fn due(&mut self, now_ns: u64, max: u64) -> (u64, u64) {
        let first = self.next;
        let mut n = 0;
        while n < max {
            let t = self.at(self.next);
            if t > now_ns || t >= self.end_ns {
                break;
            }
            self.next += 1;
            n += 1;
        }
        (first, n)
    }

    /// Events handed out so far.
    pub fn handed_out(&self) -> u64 {
        self.next
    }

    /// Events in the whole schedule.
    pub fn total(&self) -> u64 {
        if self.end_ns <= self.start_ns {
            return 0;
        }
        let span = (self.end_ns - self.start_ns) as f64 / self.period_ns - self.phase;
        if span <= 0.0 {
            return 0;
        }
        // Count i with at(i) < end; guard the float edge by checking.
        let mut n = span.ceil() as u64;
        while n > 0 && self.at(n - 1) >= self.end_ns {
            n -= 1;
        }
        while self.at(n) < self.end_ns {
            n += 1;
        }
        n
    }
}

/// When bot `n` (global index) starts connecting: bots are spread evenly at
/// `rate` connections per second from `t0`; rate 0 means all at once.
pub fn ramp_at(t0_ns: u64, n: usize, rate: f64) -> u64 {
    if rate <= 0.0 {
        t0_ns
    } else {
        t0_ns + (n as f64 * 1e9 / rate) as u64
    }
}

/// Split a group's total `rate` over `senders` bots: each gets the same
/// per-bot rate, and sender `k` is phase-shifted by k/senders of a period so
/// the group's messages are evenly interleaved rather than in bursts.
pub fn per_sender(rate: f64, senders: usize, k: usize) -> (f64, f64) {
    if senders == 0 {
        return (0.0, 0.0);
    }
    (rate / senders as f64, k as f64 / senders as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn evenly_spaced() {
        let s = Schedule::new(10 * S, 4.0, 0.0, 11 * S);
        assert_eq!(s.at(0), 10 * S);
        assert_eq!(s.at(1), 10 * S + S / 4);
        assert_eq!(s.total(), 4);
    }

    #[test]
    fn phase_shift_and_total() {
        let s = Schedule::new(0, 10.0, 0.5, S);
        assert_eq!(s.at(0), S / 20);
        assert_eq!(s.total(), 10);
        // A period that does not divide the span.
        let s = Schedule::new(0, 3.0, 0.0, S);
        assert_eq!(s.total(), 3);
        assert_eq!(Schedule::new(5, 3.0, 0.0, 5).total(), 0);
    }

    #[test]
    fn late_wakeup_hands_out_backlog_with_original_times() {
        let mut s = Schedule::new(0, 1000.0, 0.0, S);
        // Woken 10.5 ms late: 11 messages (t = 0..=10 ms) are due.
        let (first, n) = s.due(10_500_000, 1000);
        assert_eq!((first, n), (0, 11));
        assert_eq!(s.at(first + n - 1), 10_000_000);
        // The cap bounds one burst; the rest stays due.
        let (first, n) = s.due(20_000_000, 5);
        assert_eq!((first, n), (11, 5));
        assert_eq!(s.next_time(), Some(16_000_000));
        // Past the end nothing more is handed out.
        let (_, n) = s.due(5 * S, u64::MAX);
        assert_eq!(s.handed_out(), 1000);
        assert_eq!(n, 1000 - 16);
        assert_eq!(s.next_time(), None);
    }

    #[test]
    fn ramp_and_split() {
        assert_eq!(ramp_at(100, 0, 1000.0), 100);
        assert_eq!(ramp_at(0, 1000, 2000.0), S / 2);
        assert_eq!(ramp_at(7, 1000, 0.0), 7);
        let (r, p) = per_sender(5000.0, 10, 3);
        assert_eq!(r, 500.0);
        assert!((p - 0.3).abs() < 1e-12);
        // The group rate is kept: 10 senders at 500/s over 2 s = 10,000.
        let total: u64 = (0..10)
            .map(|k| {
                let (r, p) = per_sender(5000.0, 10, k);
                Schedule::new(0, r, p, 2 * S).total()
            })
            .sum();
        assert_eq!(total, 10_000);
    }
}
