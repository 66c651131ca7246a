//! Parsers for the human-friendly values of the bots' command line and
//! scenario files: rates (`2000/s`), durations (`10s`, `500ms`), sizes
//! (`64`, `32..512`), source-address ranges (`127.0.0.1-127.0.0.16`).
//!
//! Pure functions, so the CLI and the TOML scenarios accept exactly the same
//! spellings and both are unit-tested here.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A rate in events per second. `0` means "unpaced" where a caller allows it.
pub fn rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, p)) => (n.trim(), p.trim()),
        None => (t, "s"),
    };
    let n: f64 =
        parse_number(num).ok_or_else(|| format!("bad rate {s:?}: expected e.g. 2000/s"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("bad rate {s:?}: must be >= 0"));
    }
    let secs = match per {
        "s" | "sec" | "" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "bad rate unit {other:?} in {s:?}: use /s, /ms or /min"
            ));
        }
    };
    Ok(n / secs)
}

/// A number with an optional `k`/`M` suffix (`20k` = 20000).
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim().replace('_', "");
    let (digits, mult) = if let Some(d) = s.strip_suffix(['k', 'K']) {
        (d.to_string(), 1e3)
    } else if let Some(d) = s.strip_suffix('M') {
        (d.to_string(), 1e6)
    } else {
        (s, 1.0)
    };
    digits.parse::<f64>().ok().map(|v| v * mult)
}

/// A count with an optional `k` suffix (`20k`).
pub fn count(s: &str) -> Result<usize, String> {
    let v = parse_number(s).ok_or_else(|| format!("bad count {s:?}"))?;
    if v < 0.0 || v.fract() != 0.0 || v > 10_000_000.0 {
        return Err(format!("bad count {s:?}: a whole number up to 10M"));
    }
    Ok(v as usize)
}

/// A duration: `10s`, `500ms`, `2m`, `250us`, or a bare number of seconds
/// (the one reader of typed durations, `sockchat_shared::text::parse_span`),
/// at most 24 h.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = sockchat_shared::text::parse_span(s)
        .ok_or_else(|| format!("bad duration {s:?}: expected e.g. 10s or 500ms"))?;
    if d > Duration::from_secs(86_400) {
        return Err(format!("bad duration {s:?}: 0 to 24 h"));
    }
    Ok(d)
}

/// A loss threshold: an absolute count (`0`, `10`) or a percentage (`0.1%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossLimit {
    Count(u64),
    Percent(f64),
}

pub fn loss_limit(s: &str) -> Result<LossLimit, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("bad loss limit {s:?}"))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(format!("bad loss limit {s:?}: 0% to 100%"));
        }
        return Ok(LossLimit::Percent(v));
    }
    t.parse()
        .map(LossLimit::Count)
        .map_err(|_| format!("bad loss limit {s:?}: a count (0) or a percentage (0.1%)"))
}

/// Message size distribution (bytes of chat text per message).
#[derive(Debug, Clone, PartialEq)]
pub enum SizeDist {
    Fixed(usize),
    /// Uniform in `min..=max`.
    Uniform(usize, usize),
    /// (size, weight) pairs.
    Weighted(Vec<(usize, f64)>),
}

/// Largest chat text a bot will produce (the server's default limit is
/// 4096 bytes; a bigger size is a configuration mistake, not a load).
pub const MAX_SIZE: usize = 60_000;

impl SizeDist {
    /// `64`, `32..512`, or `64:90,1024:10` (size:weight pairs).
    pub fn parse(s: &str) -> Result<SizeDist, String> {
        let t = s.trim();
        let d = if let Some((a, b)) = t.split_once("..") {
            let a = count(a)?;
            let b = count(b.trim_start_matches('='))?;
            if a > b {
                return Err(format!("bad size range {s:?}: min > max"));
            }
            SizeDist::Uniform(a, b)
        } else if t.contains(':') || t.contains(',') {
            let mut v = Vec::new();
            for part in t.split(',') {
                let (sz, w) = part
                    .split_once(':')
                    .ok_or_else(|| format!("bad size distribution {s:?}: use size:weight,..."))?;
                let w: f64 = w
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad weight in {s:?}"))?;
                if !(w.is_finite() && w >= 0.0) {
                    return Err(format!("bad weight in {s:?}"));
                }
                v.push((count(sz)?, w));
            }
            if v.iter().map(|p| p.1).sum::<f64>() <= 0.0 {
                return Err(format!("bad size distribution {s:?}: weights sum to 0"));
            }
            SizeDist::Weighted(v)
        } else {
            SizeDist::Fixed(count(t)?)
        };
        if d.max() > MAX_SIZE {
            return Err(format!("size {s:?} too large (max {MAX_SIZE} bytes)"));
        }
        Ok(d)
    }

    pub fn max(&self) -> usize {
        match self {
            SizeDist::Fixed(n) => *n,
            SizeDist::Uniform(_, b) => *b,
            SizeDist::Weighted(v) => v.iter().map(|p| p.0).max().unwrap_or(0),
        }
    }

    /// Pick a size; `u` is uniform in [0, 1).
    pub fn pick(&self, u: f64) -> usize {
        match self {
            SizeDist::Fixed(n) => *n,
            SizeDist::Uniform(a, b) => a + ((u * ((b - a + 1) as f64)) as usize).min(b - a),
            SizeDist::Weighted(v) => {
                let total: f64 = v.iter().map(|p| p.1).sum();
                let mut x = u * total;
                for (sz, w) in v {
                    if x < *w {
                        return *sz;
                    }
                    x -= w;
                }
                v.last().map(|p| p.0).unwrap_or(0)
            }
        }
    }
}

/// Source addresses: `127.0.0.1`, `127.0.0.1-127.0.0.16`, or a comma list
/// of either. Only loopback addresses are accepted: the bots never load
/// anything but this machine.
pub fn source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| format!("bad address {a:?}"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| format!("bad address {b:?}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if a > b || b - a > 65_535 {
                return Err(format!("bad address range {part:?}"));
            }
            out.extend((a..=b).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
        } else {
            out.push(part.parse().map_err(|_| format!("bad address {part:?}"))?);
        }
    }
    if let Some(bad) = out.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!(
            "source address {bad} is not loopback: the bots only load this machine"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(rate("2000/s"), Ok(2000.0));
        assert_eq!(rate("5k/s"), Ok(5000.0));
        assert_eq!(rate("1/ms"), Ok(1000.0));
        assert_eq!(rate("120/min"), Ok(2.0));
        assert_eq!(rate("30"), Ok(30.0));
        assert!(rate("-1/s").is_err());
        assert!(rate("fast").is_err());
        assert!(rate("1/fortnight").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(duration("ten").is_err());
        assert!(duration("5 parsecs").is_err());
        assert!(duration("1000000h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(SizeDist::parse("64"), Ok(SizeDist::Fixed(64)));
        let u = SizeDist::parse("32..512").expect("range");
        assert_eq!(u.pick(0.0), 32);
        assert_eq!(u.pick(0.999_999), 512);
        let w = SizeDist::parse("64:90,1024:10").expect("weighted");
        assert_eq!(w.pick(0.5), 64);
        assert_eq!(w.pick(0.95), 1024);
        assert_eq!(w.max(), 1024);
        assert!(SizeDist::parse("512..32").is_err());
        assert!(SizeDist::parse("1000000").is_err());
        assert!(SizeDist::parse("64:0").is_err());
    }

    #[test]
    fn addresses() {
        let v = source_ips("127.0.0.1-127.0.0.16").expect("range");
        assert_eq!(v.len(), 16);
        assert_eq!(v[15], "127.0.0.16".parse::<IpAddr>().expect("ip"));
        assert_eq!(source_ips("127.0.0.2, ::1").expect("list").len(), 2);
        assert!(source_ips("10.0.0.1").is_err());
        assert!(source_ips("127.0.0.9-127.0.0.1").is_err());
    }

    #[test]
    fn loss_limits() {
        assert_eq!(loss_limit("0"), Ok(LossLimit::Count(0)));
        assert_eq!(loss_limit("0.5%"), Ok(LossLimit::Percent(0.5)));
        assert!(loss_limit("lots").is_err());
    }
}
