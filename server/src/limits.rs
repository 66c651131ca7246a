//! Per-connection and per-address limits: the message token bucket and the
//! per-IP connection counter. (The global connection cap is a `Semaphore` in
//! the listener.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Token bucket: `rate` tokens per second, at most `burst` banked. One chat
/// command costs one token; pings and pongs are free.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts live connections per source address. The returned guard gives the
/// slot back when the connection ends, whichever way it ends.
#[derive(Debug, Clone)]
pub struct PerIpLimit {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held by a connection for its whole life; dropping it frees the slot.
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIpLimit {
    /// `max == usize::MAX` means no per-address cap (`--no-rate-limits`).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            counts: Arc::default(),
        }
    }

    /// A slot for `ip`, or `None` when it already has `max` connections.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            counts: self.counts.clone(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn per_ip_slots_are_returned() {
        let l = PerIpLimit::new(2);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = l.try_acquire(ip).expect("1");
        let _b = l.try_acquire(ip).expect("2");
        assert!(l.try_acquire(ip).is_none());
        drop(a);
        assert!(l.try_acquire(ip).is_some());
    }
}
