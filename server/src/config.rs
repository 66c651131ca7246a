//! Server settings: config.toml (types and defaults live in
//! `sockchat_shared::config`) plus command-line overrides, every section
//! checked once at start-up so a bad value is an error that names its key
//! instead of a surprise later. The checks live here, not in the features
//! they configure, so the settings import no feature: only the rules of
//! leaves (an access list entry, a password hash, a NATS token).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sockchat_shared::config::{
    ClusterConfig, Config, DEFAULT_TLS_PORT, DiscoveryConfig, MetricsConfig, TransferConfig,
    UdpConfig,
};
use sockchat_shared::udp::FaultConfig;
use thiserror::Error;

use crate::cluster::subject::check_token;

/// Why the configuration could not be used. Every variant names the file or
/// the key, so the user knows what to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The toml error text names the offending key (`unknown field
    /// \`baclog\``, `invalid type ... for key \`limits.max_connections\``).
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Command-line flags that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen ADDR:PORT` (repeatable): replaces `server.listen`.
    pub listen: Vec<String>,
    /// `--no-rate-limits`: no per-connection message limits, no per-address caps.
    pub no_rate_limits: bool,
    /// `--log FILTER`: wins over `RUST_LOG` and `log.level`.
    pub log: Option<String>,
    /// The `RUST_LOG` environment variable (main reads it): wins over
    /// `log.level`.
    pub env_log: Option<String>,
    /// `--log-json`: `log.format = "json"`.
    pub log_json: bool,
    /// `--tls`: turn the TLS listener on (as an empty `[tls]` would).
    pub tls: bool,
    /// `--tls-listen ADDR:PORT` (repeatable): replaces `tls.listen` (and
    /// turns TLS on).
    pub tls_listen: Vec<String>,
    /// `--data-dir DIR`: replaces `tls.data_dir`.
    pub data_dir: Option<String>,
    /// `--reuse-port`: `server.reuse_port = true`.
    pub reuse_port: bool,
    /// `--cluster URL`: replaces `cluster.nats_url`.
    pub cluster: Option<String>,
    /// `--node NAME`: replaces `cluster.node`.
    pub node: Option<String>,
    /// `--stats SECS`: replaces `log.stats_interval_secs`.
    pub stats: Option<u64>,
    /// `--metrics ADDR:PORT`: replaces `metrics.listen`.
    pub metrics: Option<String>,
}

/// Which tokio runtime runs the server (`server.runtime`). The benchmark
/// compares them: on 2 cores a current-thread runtime avoids cross-thread
/// wake-ups and can be as fast as multi-thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFlavor {
    MultiThread,
    CurrentThread,
}

/// Validated settings: the parsed config plus what the flags changed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// `server.listen`, parsed.
    pub listen: Vec<SocketAddr>,
    /// True with `--no-rate-limits` (trusted load tests).
    pub no_rate_limits: bool,
    pub runtime: RuntimeFlavor,
    /// True when logs are JSON (`log.format = "json"` or `--log-json`).
    pub log_json: bool,
    /// The checked log filter: `--log`, else `RUST_LOG`, else `log.level`.
    pub log_filter: String,
    /// The TLS listener's addresses (`tls.listen`, parsed, or every
    /// `server.listen` address on port 7879); empty when TLS is off.
    pub tls_listen: Vec<SocketAddr>,
    /// `metrics.listen`, parsed and checked; `None`: no endpoint.
    pub metrics: Option<SocketAddr>,
}

impl Settings {
    /// Built-in defaults with `listen` replaced (handy for tests: `127.0.0.1:0`).
    #[allow(
        clippy::expect_used,
        reason = "the built-in defaults pass validation (unit-tested)"
    )]
    pub fn with_listen(addr: SocketAddr) -> Self {
        let mut config = Config::default();
        config.server.listen = vec![addr.to_string()];
        Self::from_config(config, Overrides::default()).expect("defaults are valid")
    }

    /// Apply overrides to a parsed config and validate every value.
    pub fn from_config(mut config: Config, ov: Overrides) -> Result<Self, ConfigError> {
        if !ov.listen.is_empty() {
            config.server.listen = ov.listen.clone();
        }
        if ov.log_json {
            config.log.format = "json".into();
        }
        if ov.reuse_port {
            config.server.reuse_port = true;
        }
        if let Some(u) = &ov.cluster {
            config.cluster.nats_url = u.clone();
        }
        if let Some(n) = &ov.node {
            config.cluster.node = n.clone();
        }
        if let Some(secs) = ov.stats {
            config.log.stats_interval_secs = secs;
        }
        if let Some(m) = &ov.metrics {
            config.metrics.listen = m.clone();
        }
        if ov.tls || !ov.tls_listen.is_empty() || ov.data_dir.is_some() {
            let t = config.tls.get_or_insert_with(Default::default);
            if !ov.tls_listen.is_empty() {
                t.listen = ov.tls_listen.clone();
            }
            if let Some(d) = &ov.data_dir {
                t.data_dir = d.clone();
            }
        }
        let listen = validate(&config)?;
        let tls_listen = tls_listen_addrs(&config, &listen)?;
        let metrics = check_metrics(&config.metrics)?;
        // An explicit --log wins over RUST_LOG, which wins over the file;
        // whichever is used must be a valid filter (the error names it).
        let log_filter = match (ov.log, ov.env_log.filter(|e| !e.is_empty())) {
            (Some(f), _) => check_filter("--log", f)?,
            (None, Some(e)) => check_filter("RUST_LOG", e)?,
            (None, None) => config.log.level.clone(),
        };
        let runtime = match config.server.runtime.as_str() {
            "multi-thread" => RuntimeFlavor::MultiThread,
            "current-thread" => RuntimeFlavor::CurrentThread,
            _ => unreachable!("validated"),
        };
        Ok(Self {
            log_json: config.log.format == "json",
            log_filter,
            config,
            listen,
            no_rate_limits: ov.no_rate_limits,
            runtime,
            tls_listen,
            metrics,
        })
    }

    /// Load `--config FILE` (or the built-in defaults with `None`) and apply
    /// the overrides.
    pub fn load(path: Option<&Path>, ov: Overrides) -> Result<Self, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                sockchat_shared::config::parse(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string().trim_end().to_string(),
                })?
            }
        };
        Self::from_config(config, ov)
    }
}

/// The longest `limits.max_message_len`: a Chat frame adds at most 2,057
/// bytes (a 255-character room and nick, the other fields) to its text, and
/// must fit the 65,536-byte frame every client accepts.
pub const MAX_MESSAGE_LEN: usize = 60_000;

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Check every value the types alone do not constrain. Returns the parsed
/// listen addresses.
pub fn validate(c: &Config) -> Result<Vec<SocketAddr>, ConfigError> {
    if c.server.listen.is_empty() {
        return Err(invalid("server.listen", "at least one address is needed"));
    }
    let mut listen = Vec::new();
    for a in &c.server.listen {
        let addr: SocketAddr = a.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("{a:?} is not an ADDR:PORT (e.g. \"0.0.0.0:7878\" or \"[::]:7878\")"),
            )
        })?;
        listen.push(addr);
    }
    if !matches!(c.server.runtime.as_str(), "multi-thread" | "current-thread") {
        return Err(invalid(
            "server.runtime",
            format!(
                "{:?} (expected \"multi-thread\" or \"current-thread\")",
                c.server.runtime
            ),
        ));
    }
    if !matches!(c.log.format.as_str(), "text" | "json") {
        return Err(invalid(
            "log.format",
            format!("{:?} (expected \"text\" or \"json\")", c.log.format),
        ));
    }
    if c.server.backlog == 0 {
        return Err(invalid("server.backlog", "must be at least 1"));
    }
    if c.server.outbox_frames == 0 {
        return Err(invalid("server.outbox_frames", "must be at least 1"));
    }
    if c.server.send_buffer > i32::MAX as u32 {
        return Err(invalid("server.send_buffer", "too large"));
    }
    if c.server.recv_buffer > i32::MAX as u32 {
        return Err(invalid("server.recv_buffer", "too large"));
    }
    if sockchat_shared::names::check_room(&c.server.default_room, c.limits.max_room_len).is_err() {
        return Err(invalid(
            "server.default_room",
            format!(
                "{:?} is not a valid room name (1..={} letters, digits, '-', '_', '.')",
                c.server.default_room, c.limits.max_room_len
            ),
        ));
    }
    if c.server.keepalive {
        // The kernel's ranges (TCP_KEEPIDLE/TCP_KEEPINTVL 1..=32767,
        // TCP_KEEPCNT 1..=127): outside them setsockopt fails with EINVAL.
        let ka: [(&'static str, u32, u32); 3] = [
            (
                "server.keepalive_idle_secs",
                c.server.keepalive_idle_secs,
                32767,
            ),
            (
                "server.keepalive_interval_secs",
                c.server.keepalive_interval_secs,
                32767,
            ),
            ("server.keepalive_count", c.server.keepalive_count, 127),
        ];
        for (key, v, max) in ka {
            if v == 0 || v > max {
                return Err(invalid(key, format!("{v} is out of range 1..={max}")));
            }
        }
    }
    check_filter("log.level", c.log.level.clone())?;
    validate_udp(&c.udp)?;
    check_transfer(&c.transfer)?;
    check_discovery(&c.discovery)?;
    if let Some((key, why)) = crate::access::check_config(&c.access) {
        return Err(invalid(key, why));
    }
    if let Some((key, why)) = crate::auth::check_config(&c.auth) {
        return Err(invalid(key, why));
    }
    check_cluster(&c.cluster)?;
    if c.log.stats_interval_secs > 365 * 24 * 3600 {
        return Err(invalid(
            "log.stats_interval_secs",
            format!("{} s is more than a year", c.log.stats_interval_secs),
        ));
    }
    // Durations are added to clock readings: bound them so an absurd value
    // is a config error, not an overflow later.
    const YEAR_SECS: u64 = 365 * 24 * 3600;
    let durations: [(&'static str, u64); 7] = [
        ("server.shutdown_grace_secs", c.server.shutdown_grace_secs),
        (
            "server.detect_timeout_ms",
            c.server.detect_timeout_ms / 1000,
        ),
        (
            "limits.handshake_timeout_secs",
            c.limits.handshake_timeout_secs,
        ),
        ("limits.idle_timeout_secs", c.limits.idle_timeout_secs),
        ("limits.ping_interval_secs", c.limits.ping_interval_secs),
        (
            "limits.text_idle_timeout_secs",
            c.limits.text_idle_timeout_secs,
        ),
        (
            "server.keepalive_idle_secs",
            u64::from(c.server.keepalive_idle_secs),
        ),
    ];
    for (key, v) in durations {
        if v > YEAR_SECS {
            return Err(invalid(key, format!("{v} s is more than a year")));
        }
    }
    let l = &c.limits;
    // The admission semaphore holds at most MAX_PERMITS: a larger value
    // would be cut silently, so it is an error instead.
    let max_permits = tokio::sync::Semaphore::MAX_PERMITS;
    if l.max_connections == 0 || l.max_connections > max_permits {
        return Err(invalid(
            "limits.max_connections",
            format!("must be between 1 and {max_permits}"),
        ));
    }
    if l.max_connections_per_ip == 0 {
        return Err(invalid(
            "limits.max_connections_per_ip",
            "must be at least 1",
        ));
    }
    if l.handshake_timeout_secs == 0 {
        return Err(invalid(
            "limits.handshake_timeout_secs",
            "must be at least 1",
        ));
    }
    if l.idle_timeout_secs > 0 && l.ping_interval_secs == 0 {
        return Err(invalid(
            "limits.ping_interval_secs",
            "must be at least 1 when limits.idle_timeout_secs is set",
        ));
    }
    if l.max_message_len == 0 || l.max_message_len > MAX_MESSAGE_LEN {
        return Err(invalid(
            "limits.max_message_len",
            format!(
                "must be between 1 and {MAX_MESSAGE_LEN} (a chat line with its room and nick must fit one 65,536-byte frame)"
            ),
        ));
    }
    if l.max_frame < 64 || l.max_frame > 16 * 1024 * 1024 {
        return Err(invalid(
            "limits.max_frame",
            "must be between 64 and 16777216",
        ));
    }
    if !(l.messages_per_sec.is_finite() && l.messages_per_sec > 0.0) {
        return Err(invalid(
            "limits.messages_per_sec",
            "must be a positive number",
        ));
    }
    if !(l.burst.is_finite() && l.burst >= 1.0) {
        return Err(invalid("limits.burst", "must be at least 1"));
    }
    if l.rate_limit_strikes == 0 {
        return Err(invalid("limits.rate_limit_strikes", "must be at least 1"));
    }
    if l.max_rooms == 0 {
        return Err(invalid("limits.max_rooms", "must be at least 1"));
    }
    if l.max_rooms_per_user == 0 {
        return Err(invalid("limits.max_rooms_per_user", "must be at least 1"));
    }
    if l.max_rooms_created_per_user == 0 {
        return Err(invalid(
            "limits.max_rooms_created_per_user",
            "must be at least 1",
        ));
    }
    if l.max_rooms_created_per_ip == 0 {
        return Err(invalid(
            "limits.max_rooms_created_per_ip",
            "must be at least 1",
        ));
    }
    if l.max_nick_len == 0 || l.max_nick_len > 255 {
        return Err(invalid("limits.max_nick_len", "must be between 1 and 255"));
    }
    if l.max_room_len == 0 || l.max_room_len > 255 {
        return Err(invalid("limits.max_room_len", "must be between 1 and 255"));
    }
    Ok(listen)
}

/// A tracing filter from `what` (`--log`, `RUST_LOG`, `log.level`): the
/// shared grammar (each directive a level or TARGET=LEVEL), then tracing's
/// own parser.
fn check_filter(what: &'static str, filter: String) -> Result<String, ConfigError> {
    sockchat_shared::config::check_log_filter(&filter)
        .and_then(|()| {
            tracing_subscriber::EnvFilter::builder()
                .parse(&filter)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| invalid(what, format!("{filter:?} is not a valid log filter: {e}")))?;
    Ok(filter)
}

/// Bounds of `udp.recv_buffer` when set: the kernel's minimum (2,304 bytes,
/// SOCK_MIN_RCVBUF) rounded up, and 1 GiB (doubled, still an int).
pub const UDP_RECV_BUFFER_MIN: usize = 4096;
pub const UDP_RECV_BUFFER_MAX: usize = 1 << 30;

/// Check the `[udp]` section; the error names the key.
fn validate_udp(c: &UdpConfig) -> Result<(), ConfigError> {
    sockchat_shared::udp::check_max_payload(c.max_payload)
        .map_err(|e| invalid("udp.max_payload", e.to_string()))?;
    udp_faults(c)
        .check()
        .map_err(|e| invalid("udp fault injection", e.to_string()))?;
    if c.max_sessions == 0 {
        return Err(invalid("udp.max_sessions", "must be at least 1"));
    }
    if c.session_timeout_secs == 0 {
        return Err(invalid("udp.session_timeout_secs", "must be at least 1"));
    }
    // The kernel takes an int and doubles it; below 2 KiB it uses its own
    // minimum, so a smaller number would not mean what it says.
    if c.recv_buffer != 0 && !(UDP_RECV_BUFFER_MIN..=UDP_RECV_BUFFER_MAX).contains(&c.recv_buffer) {
        return Err(invalid(
            "udp.recv_buffer",
            format!(
                "{} is out of range: 0 (server.recv_buffer) or {UDP_RECV_BUFFER_MIN}..={UDP_RECV_BUFFER_MAX} bytes",
                c.recv_buffer
            ),
        ));
    }
    Ok(())
}

/// The `[udp]` fault-injection probabilities as the injector takes them.
pub fn udp_faults(c: &UdpConfig) -> FaultConfig {
    FaultConfig {
        drop: c.drop_probability,
        duplicate: c.duplicate_probability,
        reorder: c.reorder_probability,
    }
}

/// Check `[transfer]`; the error names the key.
fn check_transfer(c: &TransferConfig) -> Result<(), ConfigError> {
    if c.window < 4096 {
        return Err(invalid("transfer.window", "must be at least 4096 bytes"));
    }
    if c.max_per_user == 0 {
        return Err(invalid("transfer.max_per_user", "must be at least 1"));
    }
    if c.max_per_server == 0 {
        return Err(invalid("transfer.max_per_server", "must be at least 1"));
    }
    if c.room_recipients == 0 {
        return Err(invalid("transfer.room_recipients", "must be at least 1"));
    }
    Ok(())
}

/// Check `[discovery]`; the error names the key.
fn check_discovery(c: &DiscoveryConfig) -> Result<(), ConfigError> {
    if !c.name.is_empty()
        && let Err(e) = sockchat_shared::discovery::check_instance_name(&c.name)
    {
        return Err(invalid("discovery.name", e));
    }
    if !(1..=3600).contains(&c.refresh_secs) {
        return Err(invalid(
            "discovery.refresh_secs",
            format!("{} is out of range 1..=3600", c.refresh_secs),
        ));
    }
    Ok(())
}

/// Check `[cluster]` (only when it is on: `nats_url` set); node and prefix
/// must be tokens NATS accepts (`cluster::subject`'s rule).
fn check_cluster(c: &ClusterConfig) -> Result<(), ConfigError> {
    if c.nats_url.is_empty() {
        return Ok(());
    }
    if !c.node.is_empty()
        && let Err(e) = check_token(&c.node)
    {
        return Err(invalid("cluster.node", e));
    }
    if let Err(e) = check_token(&c.subject_prefix) {
        return Err(invalid("cluster.subject_prefix", e));
    }
    if !(10..=60_000).contains(&c.heartbeat_ms) {
        return Err(invalid("cluster.heartbeat_ms", "must be 10..=60000"));
    }
    let timeout_ms = c.node_timeout_secs.saturating_mul(1000);
    if c.node_timeout_secs > 3600 || timeout_ms < 2 * c.heartbeat_ms {
        return Err(invalid(
            "cluster.node_timeout_secs",
            "must be at least two heartbeats and at most 3600",
        ));
    }
    if c.tls_cert.is_empty() != c.tls_key.is_empty() {
        return Err(invalid(
            "cluster.tls_cert",
            "tls_cert and tls_key go together",
        ));
    }
    Ok(())
}

/// Check `[metrics]`: the parsed address (`None`: off). The endpoint
/// (`stats::http`) has no authentication, so a non-loopback address is
/// refused unless `metrics.allow_remote` says otherwise.
fn check_metrics(c: &MetricsConfig) -> Result<Option<SocketAddr>, ConfigError> {
    if c.listen.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = c.listen.parse().map_err(|_| {
        invalid(
            "metrics.listen",
            format!(
                "{:?} is not an ADDR:PORT (e.g. \"127.0.0.1:9178\")",
                c.listen
            ),
        )
    })?;
    if !addr.ip().is_loopback() && !c.allow_remote {
        return Err(invalid(
            "metrics.listen",
            format!(
                "{addr} is not a loopback address: the endpoint has no authentication \
                 (use 127.0.0.1 or [::1], or set metrics.allow_remote = true)"
            ),
        ));
    }
    Ok(Some(addr))
}

/// `tls.listen` parsed, or every `server.listen` address on port 7879;
/// empty when TLS is off.
fn tls_listen_addrs(c: &Config, listen: &[SocketAddr]) -> Result<Vec<SocketAddr>, ConfigError> {
    let Some(t) = &c.tls else {
        return Ok(Vec::new());
    };
    if (t.cert.is_empty()) != (t.key.is_empty()) {
        return Err(ConfigError::Invalid {
            key: "tls.cert",
            message: "tls.cert and tls.key go together (both empty: a self-signed certificate)"
                .into(),
        });
    }
    if t.listen.is_empty() {
        return Ok(listen
            .iter()
            .map(|a| SocketAddr::new(a.ip(), DEFAULT_TLS_PORT))
            .collect());
    }
    t.listen
        .iter()
        .map(|a| {
            a.parse().map_err(|_| ConfigError::Invalid {
                key: "tls.listen",
                message: format!("{a:?} is not an ADDR:PORT (e.g. \"0.0.0.0:7879\")"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load(None, Overrides::default()).expect("defaults");
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.runtime, RuntimeFlavor::MultiThread);
    }

    #[test]
    fn overrides_win() {
        let s = Settings::load(
            None,
            Overrides {
                listen: vec!["127.0.0.1:0".into()],
                log_json: true,
                ..Default::default()
            },
        )
        .expect("valid");
        assert_eq!(s.listen, vec!["127.0.0.1:0".parse().expect("addr")]);
        assert!(s.log_json);
    }

    #[test]
    fn udp_values_name_the_key() {
        let mut c = UdpConfig::default();
        assert!(validate_udp(&c).is_ok());
        c.max_payload = 70000;
        let e = validate_udp(&c).expect_err("too big").to_string();
        assert!(e.contains("udp.max_payload"), "{e}");
        c.max_payload = 1472;
        c.drop_probability = 2.0;
        let e = validate_udp(&c).expect_err("bad p").to_string();
        assert!(e.contains("drop"), "{e}");
        c.drop_probability = 0.0;
        for bad in [1, UDP_RECV_BUFFER_MIN - 1, UDP_RECV_BUFFER_MAX + 1] {
            c.recv_buffer = bad;
            let e = validate_udp(&c).expect_err("bad buffer").to_string();
            assert!(e.contains("udp.recv_buffer"), "{e}");
        }
        for good in [0, UDP_RECV_BUFFER_MIN, UDP_RECV_BUFFER_MAX] {
            c.recv_buffer = good;
            assert!(validate_udp(&c).is_ok(), "{good}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut c = Config::default();
        c.server.runtime = "fibers".into();
        let e = Settings::from_config(c, Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("server.runtime"), "{e}");
        let mut c = Config::default();
        c.server.listen = vec!["nowhere".into()];
        let e = Settings::from_config(c, Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("server.listen"), "{e}");
        let mut c = Config::default();
        c.limits.idle_timeout_secs = u64::MAX;
        let e = Settings::from_config(c, Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("limits.idle_timeout_secs"), "{e}");
        let mut c = Config::default();
        c.limits.max_connections = usize::MAX;
        let e = Settings::from_config(c, Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("limits.max_connections"), "{e}");
        let mut c = Config::default();
        c.limits.messages_per_sec = 0.0;
        let e = Settings::from_config(c, Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("limits.messages_per_sec"), "{e}");
    }

    /// The key a check's error names.
    fn key<T>(r: Result<T, ConfigError>) -> Option<&'static str> {
        match r {
            Err(ConfigError::Invalid { key, .. }) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn discovery_values_name_the_key() {
        let mut c = DiscoveryConfig::default();
        assert!(check_discovery(&c).is_ok());
        c.refresh_secs = 0;
        assert_eq!(key(check_discovery(&c)), Some("discovery.refresh_secs"));
        c.refresh_secs = 5;
        c.name = "a.b".into();
        assert_eq!(key(check_discovery(&c)), Some("discovery.name"));
    }

    #[test]
    fn metrics_loopback_only_unless_allowed() {
        let c = |listen: &str, allow_remote| MetricsConfig {
            listen: listen.into(),
            allow_remote,
        };
        assert!(matches!(check_metrics(&c("", false)), Ok(None)));
        assert!(matches!(
            check_metrics(&c("127.0.0.1:0", false)),
            Ok(Some(_))
        ));
        assert!(matches!(check_metrics(&c("[::1]:9", false)), Ok(Some(_))));
        let e = check_metrics(&c("0.0.0.0:9178", false)).expect_err("refused");
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        assert_eq!(key::<()>(Err(e)), Some("metrics.listen"));
        assert!(matches!(
            check_metrics(&c("0.0.0.0:9178", true)),
            Ok(Some(_))
        ));
        assert!(check_metrics(&c("localhost", false)).is_err());
    }
}
