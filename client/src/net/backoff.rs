//! Reconnect delays: exponential backoff with jitter, so a room full of
//! clients does not hammer a restarting server in lockstep.

use std::time::Duration;

/// Delay before attempt `attempt` (1 = the first retry): `initial * 2^(n-1)`
/// capped at `max`, then scaled by `jitter` in `[0.5, 1.0]` ("equal jitter":
/// never less than half the nominal delay, never more than it).
pub fn delay(initial: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let nominal = initial.saturating_mul(1u32 << exp).min(max);
    nominal.mul_f64(jitter.clamp(0.5, 1.0))
}

/// A fresh random jitter factor in `[0.5, 1.0)`.
pub fn jitter() -> f64 {
    rand::random_range(0.5..1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let i = Duration::from_millis(500);
        let m = Duration::from_secs(30);
        assert_eq!(delay(i, m, 1, 1.0), Duration::from_millis(500));
        assert_eq!(delay(i, m, 2, 1.0), Duration::from_millis(1000));
        assert_eq!(delay(i, m, 4, 1.0), Duration::from_millis(4000));
        assert_eq!(delay(i, m, 10, 1.0), m);
        assert_eq!(delay(i, m, 1000, 1.0), m);
        assert_eq!(delay(i, m, 2, 0.5), Duration::from_millis(500));
        let j = jitter();
        assert!((0.5..1.0).contains(&j));
    }
}
