//! Durations as an operator types them for `/ban` and `/mute`: `90`
//! (seconds), `30s`, `10m`, `2h`, `7d`. One parser for the server's text
//! mode and the client's input line.

/// Longest duration that can be typed: 365 days (it fits the protocol's
/// `u32` seconds, where 0 means "until lifted").
pub const MAX_SECS: u32 = 365 * 24 * 3600;

/// Seconds in `typed` (`30s`, `10m`, `2h`, `7d`, or a bare number of
/// seconds), or `None` when it is not a duration, is zero or is longer
/// than [`MAX_SECS`].
pub fn parse_duration(typed: &str) -> Option<u32> {
    let t = typed.trim().to_ascii_lowercase();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t.as_str(), "s"),
    };
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(mult)?;
    if secs == 0 || secs > u64::from(MAX_SECS) {
        return None;
    }
    u32::try_from(secs).ok()
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
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
