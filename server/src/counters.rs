//! The server's running totals, cheap enough for the fan-out path: one
//! `Relaxed` add per fan-out (never per delivery), the rest on rare events
//! (a session's end, a UDP session made or ended). A leaf: the hub, the
//! sessions and the UDP transport write here; `stats` reads it.
//!
//! Rates (messages/s, deliveries/s) are not counted here but computed from
//! samples of the totals ([`Rates`]), so the hot path only ever adds.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Totals since the server started.
#[derive(Debug)]
pub struct Counters {
    started: Instant,
    /// Chat messages accepted from local users: room messages (each
    /// message of a batch) and private messages.
    messages: AtomicU64,
    /// Copies of those messages queued to members: a room message to N
    /// members other than its sender is N deliveries; a private message is
    /// one. Cluster mode: other nodes' room messages queued to local
    /// members count too (their messages count on their own node).
    deliveries: AtomicU64,
    /// Sessions ended with `slow-consumer` (their outbox was full).
    slow_cut: AtomicU64,
    /// Frames dropped for members under `slow_consumer = "drop"` by
    /// sessions that have ended (live ones are summed when read).
    dropped_ended: AtomicU64,
    /// UDP sessions alive now (every UDP socket together).
    udp_sessions: AtomicU64,
    /// The inodes of the server's UDP sockets: the rows of
    /// `/proc/net/udp{,6}` whose `drops` column is the kernel's loss.
    udp_inodes: Mutex<Vec<u64>>,
    /// Samples of the totals, for the rates.
    pub rates: Rates,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            messages: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            slow_cut: AtomicU64::new(0),
            dropped_ended: AtomicU64::new(0),
            udp_sessions: AtomicU64::new(0),
            udp_inodes: Mutex::default(),
            rates: Rates::default(),
        }
    }
}

impl Counters {
    /// One fan-out: `messages` accepted, `deliveries` copies queued.
    #[inline]
    pub fn fan_out(&self, messages: usize, deliveries: usize) {
        if messages > 0 {
            self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        }
        if deliveries > 0 {
            self.deliveries
                .fetch_add(deliveries as u64, Ordering::Relaxed);
        }
    }

    /// A session ended: whether it was cut as a slow consumer, and the
    /// frames its outbox dropped under the drop policy.
    pub fn session_ended(&self, slow_consumer: bool, dropped: u64) {
        if slow_consumer {
            self.slow_cut.fetch_add(1, Ordering::Relaxed);
        }
        if dropped > 0 {
            self.dropped_ended.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// A UDP session was made (`true`) or ended.
    pub fn udp_session(&self, made: bool) {
        if made {
            self.udp_sessions.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .udp_sessions
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Remember one of the server's UDP sockets (by inode) for the kernel's
    /// drop counter.
    pub fn add_udp_socket(&self, inode: u64) {
        self.udp_inodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(inode);
    }

    pub fn udp_inodes(&self) -> Vec<u64> {
        self.udp_inodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn slow_cut(&self) -> u64 {
        self.slow_cut.load(Ordering::Relaxed)
    }

    pub fn dropped_ended(&self) -> u64 {
        self.dropped_ended.load(Ordering::Relaxed)
    }

    pub fn udp_sessions(&self) -> u64 {
        self.udp_sessions.load(Ordering::Relaxed)
    }
}

/// Samples of (messages, deliveries) totals, to give rates over the last
/// [`Rates::WINDOW`] without any per-message work: a task adds one sample a
/// second (`stats::spawn_sampler`).
#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Rates {
    /// How far back a rate looks.
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// Record the totals at `now`; samples older than the window (but the
    /// newest such one, the window's start) are forgotten.
    pub fn sample(&self, now: Instant, messages: u64, deliveries: u64) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back((now, messages, deliveries));
        while s.len() > 2 && s.get(1).is_some_and(|b| now - b.0 >= Self::WINDOW) {
            s.pop_front();
        }
    }

    /// (messages/s, deliveries/s) between the oldest sample kept and the
    /// totals at `now`; `None` before the first sample or when no time
    /// passed.
    pub fn per_sec(&self, now: Instant, messages: u64, deliveries: u64) -> Option<(f64, f64)> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let &(t0, m0, d0) = s.front()?;
        let secs = now.saturating_duration_since(t0).as_secs_f64();
        (secs > 0.0).then(|| {
            (
                messages.saturating_sub(m0) as f64 / secs,
                deliveries.saturating_sub(d0) as f64 / secs,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_udp_gauge() {
        let c = Counters::default();
        c.fan_out(2, 6);
        c.fan_out(1, 0);
        assert_eq!((c.messages(), c.deliveries()), (3, 6));
        c.session_ended(true, 4);
        c.session_ended(false, 0);
        assert_eq!((c.slow_cut(), c.dropped_ended()), (1, 4));
        c.udp_session(true);
        c.udp_session(false);
        c.udp_session(false);
        assert_eq!(c.udp_sessions(), 0, "never below zero");
    }

    #[test]
    fn rates_over_the_window() {
        let r = Rates::default();
        let t = Instant::now();
        assert_eq!(r.per_sec(t, 0, 0), None);
        r.sample(t, 0, 0);
        for i in 1..=20u64 {
            r.sample(t + Duration::from_secs(i), i * 10, i * 30);
        }
        // 10 messages and 30 deliveries a second, whatever the history.
        let (m, d) = r
            .per_sec(t + Duration::from_secs(20), 200, 600)
            .expect("rate");
        assert!(
            (m - 10.0).abs() < 1e-9 && (d - 30.0).abs() < 1e-9,
            "{m} {d}"
        );
        assert!(r.samples.lock().expect("lock").len() <= 12, "bounded");
    }
}
