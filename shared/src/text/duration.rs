//! Durations as people type them, read in one place: `/ban` and `/mute`
//! (`90` seconds, `30s`, `10m`, `2h`, `7d`: [`parse_duration`], whole
//! seconds, for the server's text mode and the client's input line) and the
//! bots' flags and scenario files (`500ms`, `1.5`, `2m`: [`parse_span`],
//! which `sockchat bots` bounds to its own range).

use std::time::Duration;

/// Longest duration that can be typed: 365 days (it fits the protocol's
/// `u32` seconds, where 0 means "until lifted").
pub const MAX_SECS: u32 = 365 * 24 * 3600;

/// A number (digits, at most one `.`; no sign) followed directly by an
/// optional unit, case-insensitive: `us`/`µs`, `ms`, `s`/`sec` (the
/// default), `m`/`min`, `h`, `d`. `None` for anything else (`5 m`, `-5`,
/// `10x`) or a span too long for a `Duration`.
pub fn parse_span(typed: &str) -> Option<Duration> {
    let t = typed.trim().to_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if !num.bytes().any(|b| b.is_ascii_digit()) || num.matches('.').count() > 1 {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" | "sec" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Seconds in `typed` (`30s`, `10m`, `2h`, `7d`, or a bare number of
/// seconds: a whole number, read by [`parse_span`]), or `None` when it is
/// not a duration, has a fraction, is not whole seconds, is zero or is
/// longer than [`MAX_SECS`].
pub fn parse_duration(typed: &str) -> Option<u32> {
    if typed.contains('.') {
        return None;
    }
    let d = parse_span(typed)?;
    if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > u64::from(MAX_SECS) {
        return None;
    }
    u32::try_from(d.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2H"), Some(7200));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("365d"), Some(MAX_SECS));
    }

    #[test]
    fn not_durations() {
        for bad in [
            "",
            "0",
            "0m",
            "m",
            "10x",
            "1.5h",
            "-5",
            "10mm",
            "366d",
            "spam",
            "5 m",
            "99999999999999999999",
            "500ms",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_span("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_span("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_span("250µs"), Some(Duration::from_micros(250)));
        assert_eq!(parse_span("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_span("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_span(" 2D "), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_span("0"), Some(Duration::ZERO));
        for bad in [
            "",
            ".",
            "1.2.3s",
            "s",
            "-1s",
            "5 s",
            "ten",
            "5 parsecs",
            "1e3s",
        ] {
            assert_eq!(parse_span(bad), None, "{bad:?}");
        }
        assert_eq!(parse_span(&format!("{}d", u64::MAX)), None, "too long");
    }
}
