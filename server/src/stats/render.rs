//! A [`Snapshot`] in the three shapes operators read: the key/value fields
//! of a `/stats` reply (PROTOCOL.md lists the keys), the one INFO log line
//! (`stats users=N rooms=N ...`), and Prometheus text (format 0.0.4, written
//! by the `prometheus-client` crate) for the metrics endpoint. The names are
//! the same in all three (the metrics add the `sockchat_` prefix and the
//! `_total` / `_seconds` suffixes Prometheus expects).

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tracing::info;

use super::Snapshot;

/// A rate as shown: one decimal, `n/a` before the first sample.
fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}"))
}

/// The fields of a `Stats` reply, in this order.
pub fn fields(s: &Snapshot) -> Vec<(String, String)> {
    let kv = |k: &str, v: String| (k.to_string(), v);
    vec![
        kv("users", s.users.to_string()),
        kv("rooms", s.rooms.to_string()),
        kv("udp_sessions", s.udp_sessions.to_string()),
        kv("messages_per_sec", rate(s.messages_per_sec)),
        kv("deliveries_per_sec", rate(s.deliveries_per_sec)),
        kv("messages", s.messages.to_string()),
        kv("deliveries", s.deliveries.to_string()),
        kv("slow_consumers_cut", s.slow_consumers_cut.to_string()),
        kv("dropped", s.dropped.to_string()),
        kv(
            "kernel_udp_drops",
            s.kernel_udp_drops
                .map_or_else(|| "n/a".to_string(), |d| d.to_string()),
        ),
        kv("uptime_secs", s.uptime.as_secs().to_string()),
        kv("tasks", s.tasks.to_string()),
        kv("log_lines_dropped", s.log_lines_dropped.to_string()),
    ]
}

/// The one INFO line: `stats users=N rooms=N ...` (text logs) with the same
/// keys as [`fields`].
pub fn log(s: &Snapshot) {
    info!(
        users = s.users,
        rooms = s.rooms,
        udp_sessions = s.udp_sessions,
        messages_per_sec = %rate(s.messages_per_sec),
        deliveries_per_sec = %rate(s.deliveries_per_sec),
        messages = s.messages,
        deliveries = s.deliveries,
        slow_consumers_cut = s.slow_consumers_cut,
        dropped = s.dropped,
        kernel_udp_drops = s.kernel_udp_drops,
        uptime_secs = s.uptime.as_secs(),
        tasks = s.tasks,
        log_lines_dropped = s.log_lines_dropped,
        "stats"
    );
}

/// The `Content-Type` of [`prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The snapshot as Prometheus text (format 0.0.4): totals as counters,
/// the rest as gauges (Prometheus computes rates itself, so the
/// per-second figures are left out).
pub fn prometheus(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("sockchat");
    let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    r.register(
        "users",
        "Users with a nick, every transport",
        gauge(s.users as u64),
    );
    r.register("rooms", "Rooms that exist now", gauge(s.rooms as u64));
    r.register(
        "udp_sessions",
        "UDP sessions alive now",
        gauge(s.udp_sessions),
    );
    r.register(
        "messages",
        "Chat messages accepted from local users (room and private)",
        ConstCounter::new(s.messages),
    );
    r.register(
        "deliveries",
        "Copies of chat messages queued to members",
        ConstCounter::new(s.deliveries),
    );
    r.register(
        "slow_consumers_cut",
        "Sessions ended because their outbound queue was full",
        ConstCounter::new(s.slow_consumers_cut),
    );
    r.register(
        "dropped_frames",
        "Frames dropped for members under slow_consumer = drop",
        ConstCounter::new(s.dropped),
    );
    if let Some(d) = s.kernel_udp_drops {
        r.register(
            "kernel_udp_drops",
            "Datagrams the kernel dropped for the server's UDP sockets (/proc/net/udp drops)",
            ConstCounter::new(d),
        );
    }
    r.register_with_unit(
        "uptime",
        "Time since the server started",
        Unit::Seconds,
        ConstGauge::new(s.uptime.as_secs_f64()),
    );
    r.register("tasks", "Live tokio tasks", gauge(s.tasks as u64));
    r.register(
        "log_lines_dropped",
        "Log lines dropped because stderr did not take them (a reader that stopped reading)",
        ConstCounter::new(s.log_lines_dropped),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snap() -> Snapshot {
        Snapshot {
            users: 3,
            rooms: 2,
            udp_sessions: 1,
            messages: 10,
            deliveries: 25,
            messages_per_sec: Some(2.25),
            deliveries_per_sec: None,
            slow_consumers_cut: 1,
            dropped: 4,
            kernel_udp_drops: Some(7),
            uptime: Duration::from_secs(90),
            tasks: 9,
            log_lines_dropped: 11,
        }
    }

    #[test]
    fn fields_in_order() {
        let f = fields(&snap());
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[..3], ["users", "rooms", "udp_sessions"]);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("messages_per_sec"), Some("2.2"));
        assert_eq!(get("deliveries_per_sec"), Some("n/a"));
        assert_eq!(get("uptime_secs"), Some("90"));
        assert_eq!(get("kernel_udp_drops"), Some("7"));
        assert_eq!(keys.last(), Some(&"log_lines_dropped"));
        assert_eq!(get("log_lines_dropped"), Some("11"));
    }

    #[test]
    fn prometheus_text_names_and_values() {
        let t = prometheus(&snap());
        for line in [
            "# TYPE sockchat_users gauge",
            "sockchat_users 3",
            "# TYPE sockchat_messages_total counter",
            "sockchat_messages_total 10",
            "sockchat_deliveries_total 25",
            "sockchat_kernel_udp_drops_total 7",
            "sockchat_uptime_seconds 90.0",
            "# TYPE sockchat_log_lines_dropped_total counter",
            "sockchat_log_lines_dropped_total 11",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} missing in:\n{t}");
        }
    }
}
