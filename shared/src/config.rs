//! Config types for config.toml. Every key has a built-in default equal to
//! the one documented in config.toml, so the server runs with no file at all.
//! Unknown keys are errors that name the key (`deny_unknown_fields`).

use serde::Deserialize;

/// The whole file: `[server]`, `[limits]`, `[udp]`, `[log]`, `[client]`,
/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub udp: UdpConfig,
    pub transfer: TransferConfig,
    pub access: AccessConfig,
    pub auth: AuthConfig,
    pub cluster: ClusterConfig,
    pub discovery: DiscoveryConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub client: ClientConfig,
    /// `[tls]`: present (even empty) turns the TLS listener on.
    pub tls: Option<TlsConfig>,
}

/// What happens to a member whose outbox is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Disconnect it with reason `slow-consumer`.
    #[default]
    Disconnect,
    /// Drop the frame for that member and count the drop.
    Drop,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP (and UDP) listen addresses. An IPv6 address that cannot be bound
    /// (IPv6 disabled) is skipped with a warning if another one was bound.
    pub listen: Vec<String>,
    pub backlog: u32,
    pub reuse_address: bool,
    /// SO_REUSEPORT on the listeners: several processes bind the same port
    /// and the kernel spreads connections between them (`--reuse-port`;
    /// with `[cluster]` each process is a node).
    pub reuse_port: bool,
    pub nodelay: bool,
    /// SO_SNDBUF / SO_RCVBUF in bytes; 0 keeps the kernel's default (autotuning).
    pub send_buffer: u32,
    pub recv_buffer: u32,
    pub keepalive: bool,
    pub keepalive_idle_secs: u32,
    pub keepalive_interval_secs: u32,
    pub keepalive_count: u32,
    /// TCP_USER_TIMEOUT in ms; 0 = kernel default.
    pub user_timeout_ms: u32,
    pub default_room: String,
    /// Room messages replayed to a member on join.
    pub history: usize,
    /// Rooms with more members than this do not announce joins and leaves
    /// (each one would cost a frame per member: members² for a ramp).
    /// Disconnects are still logged with their reason.
    pub announce_max_members: usize,
    /// Frames an outbox holds before its member is a slow consumer.
    pub outbox_frames: usize,
    pub slow_consumer: SlowConsumerPolicy,
    /// How long to wait for a first byte before treating a silent client as
    /// a text (nc) user and greeting it.
    pub detect_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    /// Tokio runtime flavour: "multi-thread" or "current-thread".
    pub runtime: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec!["0.0.0.0:7878".into(), "[::]:7878".into()],
            backlog: 4096,
            reuse_address: true,
            reuse_port: false,
            nodelay: true,
            send_buffer: 0,
            recv_buffer: 0,
            keepalive: true,
            keepalive_idle_secs: 60,
            keepalive_interval_secs: 10,
            keepalive_count: 5,
            user_timeout_ms: 0,
            default_room: "lobby".into(),
            history: 50,
            announce_max_members: 1000,
            outbox_frames: 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            detect_timeout_ms: 300,
            shutdown_grace_secs: 5,
            runtime: "multi-thread".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A framed client must finish its hello within this time.
    pub handshake_timeout_secs: u64,
    /// Framed clients: no traffic and no pong for this long ends the
    /// connection (`idle-timeout`). 0 = off.
    pub idle_timeout_secs: u64,
    /// Framed clients: the server pings after this much silence.
    pub ping_interval_secs: u64,
    /// Text (nc) users: idle timeout; 0 = off (TCP keepalive still applies).
    pub text_idle_timeout_secs: u64,
    /// Longest chat text in bytes.
    pub max_message_len: usize,
    /// Largest frame payload in bytes (checked before allocating).
    pub max_frame: usize,
    /// Token bucket: sustained messages per second per connection...
    pub messages_per_sec: f64,
    /// ...and the burst allowed on top.
    pub burst: f64,
    /// Rate-limit violations in a row before disconnecting (`rate-limited`).
    pub rate_limit_strikes: u32,
    /// Rooms users may create (the default room does not count).
    pub max_rooms: usize,
    pub max_rooms_per_user: usize,
    /// Rooms one user may have created that still exist (a room is deleted
    /// when its last member leaves)...
    pub max_rooms_created_per_user: usize,
    /// ...and one address (off with `--no-rate-limits`), so no one fills
    /// `max_rooms`.
    pub max_rooms_created_per_ip: usize,
    pub max_nick_len: usize,
    pub max_room_len: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_connections_per_ip: 256,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 90,
            ping_interval_secs: 30,
            text_idle_timeout_secs: 0,
            max_message_len: 4096,
            max_frame: crate::proto::DEFAULT_MAX_FRAME,
            messages_per_sec: 20.0,
            burst: 40.0,
            rate_limit_strikes: 20,
            max_rooms: 1000,
            max_rooms_per_user: 32,
            max_rooms_created_per_user: 8,
            max_rooms_created_per_ip: 50,
            max_nick_len: 24,
            max_room_len: 32,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    pub enabled: bool,
    /// A session with no datagram for this long ends (`idle-timeout`).
    pub session_timeout_secs: u64,
    /// Largest UDP payload we send or accept: 1472 = 1500 Ethernet MTU - 20
    /// IPv4 - 8 UDP. (548 is the Internet-safe figure, 65507 the hard limit.)
    pub max_payload: usize,
    pub max_sessions: usize,
    /// SO_RCVBUF of the server's UDP socket, in bytes: one socket receives
    /// from every UDP client, so a burst (1,000 handshakes) overflows the
    /// kernel default. 0 = `server.recv_buffer` (0 there too: the kernel's
    /// default). The kernel doubles it and clamps it to
    /// `net.core.rmem_max` (unless the server may use SO_RCVBUFFORCE).
    pub recv_buffer: usize,
    /// Send runs of equal-sized datagrams to one member as one UDP GSO
    /// (`UDP_SEGMENT`) message where the kernel has it (the default);
    /// false: one message per datagram. A destination the kernel refuses
    /// a GSO send to (e.g. a route whose MTU a segment does not fit) gets
    /// one message per datagram from then on, the others keep GSO.
    pub gso: bool,
    /// Fault injection for demonstrations, probabilities in 0..=1 (off).
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    pub reorder_probability: f64,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_timeout_secs: 30,
            max_payload: 1472,
            max_sessions: 10_000,
            recv_buffer: 4 * 1024 * 1024,
            gso: true,
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            reorder_probability: 0.0,
        }
    }
}

/// `[access]`: who may come in, and who may see whose address.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Addresses or CIDR blocks allowed in; empty: everyone (but `deny`).
    pub allow: Vec<String>,
    /// Addresses or CIDR blocks refused (wins over `allow`).
    pub deny: Vec<String>,
    /// Who sees a user's IP address and port in `/sockinfo`: `"self"` (the
    /// user only) or `"everyone"`. The TCP internals are public either way.
    pub sockinfo_address: String,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            sockinfo_address: "self".into(),
        }
    }
}

/// `[auth]`: passwords, registered nicks and operators (PROTOCOL.md "Who
/// may come in"; SECURITY.md says where each secret lives).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The server password in plain text (`""`: none). Prefer
    /// `password_hash`; at most one of the two.
    pub password: String,
    /// The server password as an argon2 PHC string (`$argon2id$...`).
    pub password_hash: String,
    /// `/register` allowed.
    pub registration: bool,
    /// The registered nicks (argon2 hashes only). Empty: `nicks` in the
    /// server's data dir (`tls.data_dir`, else `$XDG_DATA_HOME/sockchat-server`).
    pub nicks_file: String,
    /// `/oper PASSWORD` in plain text (`""`: none); prefer the hash.
    pub oper_password: String,
    /// The operator password as an argon2 PHC string.
    pub oper_password_hash: String,
    /// Registered nicks that become operators when they identify.
    pub operators: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password: String::new(),
            password_hash: String::new(),
            registration: true,
            nicks_file: String::new(),
            oper_password: String::new(),
            oper_password_hash: String::new(),
            operators: Vec::new(),
        }
    }
}

/// `[transfer]`: file transfers relayed by the server (PROTOCOL.md "File
/// transfer").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    pub enabled: bool,
    /// Largest file offered (bytes); a bigger offer is refused `too-big`.
    pub max_file_size: u64,
    /// Transfers one user may have open, sending and receiving together.
    pub max_per_user: usize,
    /// Transfers open on the whole server.
    pub max_per_server: usize,
    /// Most bytes of one transfer sent and not yet acknowledged by the
    /// receiver: what the server may hold for it (flow control).
    pub window: u32,
    /// Bytes per second of file chunks one user may send through the
    /// server, all its transfers together; 0: no limit. Chunks over it wait
    /// in the server (within each transfer's window), so the sender slows.
    pub rate_per_user: u64,
    /// Most members a `/send PATH #room` offers the file to (each gets its
    /// own copy to accept or decline); a bigger room is refused `too-many`.
    pub room_recipients: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_file_size: 4 << 30,
            max_per_user: 4,
            max_per_server: 256,
            window: 1 << 20,
            rate_per_user: 0,
            room_recipients: 32,
        }
    }
}

/// Where plain mode connects when neither `--server` nor `[client] server`
/// names a server.
pub const LOCAL_SERVER: &str = "127.0.0.1:7878";

/// `[discovery]`: the server announces itself on the LAN with mDNS/DNS-SD
/// (`_sockchat._tcp.local.`, PROTOCOL.md "Discovery") so `sockchat
/// --discover` and the TUI's picker find it. A server bound to loopback
/// only is never announced.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// False: not announced.
    pub announce: bool,
    /// The instance name clients show; empty: the host name.
    pub name: String,
    /// A change of the users or rooms count is announced at most this
    /// often (seconds, 1..=3600): each announcement is multicast to the link.
    pub refresh_secs: u32,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            announce: true,
            name: String::new(),
            refresh_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "sockchat_server=debug"; RUST_LOG wins.
    pub level: String,
    /// "text" (human-readable) or "json".
    pub format: String,
    /// Log the server's numbers (`stats users=N rooms=N ...`) every this
    /// many seconds; 0: off (`--stats SECS`).
    pub stats_interval_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
            stats_interval_secs: 0,
        }
    }
}

/// `[metrics]`: the server's numbers as Prometheus text on `GET /metrics`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ADDR:PORT` of the endpoint; empty (the default): off.
    pub listen: String,
    /// The endpoint has no authentication: an address that is not
    /// loopback is refused unless this is true.
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// HOST:PORT. Empty: the TUI looks for servers on the LAN and shows a
    /// picker (`--discover`); plain mode connects to [`LOCAL_SERVER`].
    pub server: String,
    /// Empty: the server assigns `guestN`.
    pub nick: String,
    pub room: String,
    pub reconnect: bool,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// TCP_INFO poll period for the socket panel.
    pub info_poll_ms: u64,
    /// "auto" (on when the terminal is wide), "on" or "off".
    pub socket_panel: String,
    pub colors: bool,
    pub timestamps: bool,
    /// Where the client's tracing log goes (never to the screen).
    pub log_file: String,
    /// TCP keepalive of the client's socket: "IDLE,INTERVAL,COUNT" in
    /// seconds, or "off".
    pub keepalive: String,
    /// TCP_USER_TIMEOUT of the client's socket in ms; 0 = kernel default.
    pub user_timeout_ms: u32,
    /// A ping to the server unanswered this long ends the connection with
    /// `idle-timeout` (and the client reconnects).
    pub ping_timeout_ms: u64,
    /// Keys of the terminal UI: "F1".."F12", "C-x" (Ctrl) or "M-x" (Alt).
    pub key_help: String,
    pub key_panel: String,
    pub key_log: String,
    /// The wire view: this connection's packets (TUI).
    pub key_wire: String,
    pub key_next_room: String,
    pub key_prev_room: String,
    /// Bytes of chat lines the terminal UI keeps across all rooms; past it
    /// the oldest lines (in any room) are dropped.
    pub scrollback_bytes: u64,
    /// Where accepted files are saved; empty: the XDG download directory
    /// (`$XDG_DOWNLOAD_DIR`, else `~/Downloads`), else the current one.
    pub download_dir: String,
    /// Offers from these nicks are accepted without asking (exact nicks,
    /// compared as the server compares nicks: case and look-alikes fold).
    pub auto_accept: Vec<String>,
    /// Connect with TLS (`--tls`); the server's certificate is pinned on
    /// first use in `known_servers`.
    pub tls: bool,
    /// Pin this certificate up front (`SHA256:AB:CD:...`); empty: trust on
    /// first use.
    pub tls_fingerprint: String,
    /// The pinned fingerprints. Empty: `$XDG_CONFIG_HOME/sockchat/known_servers`
    /// (`~/.config/sockchat/known_servers`).
    pub known_servers: String,
    /// When the terminal UI rings the bell: "off", "mentions" (lines that
    /// name you, and private messages), "pms", "all".
    pub bell: String,
    /// Keep each room's lines in a file in this folder (`ROOM.log`,
    /// appended); empty: no chat log.
    pub chat_log_dir: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            server: String::new(),
            nick: String::new(),
            room: "lobby".into(),
            reconnect: true,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            info_poll_ms: 250,
            socket_panel: "auto".into(),
            colors: true,
            timestamps: true,
            log_file: String::new(),
            keepalive: "60,10,5".into(),
            user_timeout_ms: 0,
            ping_timeout_ms: 15_000,
            key_help: "F1".into(),
            key_panel: "F2".into(),
            key_log: "F3".into(),
            key_wire: "F4".into(),
            key_next_room: "C-n".into(),
            key_prev_room: "C-p".into(),
            scrollback_bytes: 32 * 1024 * 1024,
            download_dir: String::new(),
            auto_accept: Vec::new(),
            tls: false,
            tls_fingerprint: String::new(),
            known_servers: String::new(),
            bell: "mentions".into(),
            chat_log_dir: String::new(),
        }
    }
}

/// `[tls]`: the server's TLS listener (off unless the section is present
/// or `--tls` is given).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses of the TLS listener. Empty: every `server.listen` address
    /// with the port [`DEFAULT_TLS_PORT`].
    pub listen: Vec<String>,
    /// PEM certificate chain and private key. Both empty: a self-signed
    /// certificate is made on first run and kept in `data_dir`.
    pub cert: String,
    pub key: String,
    /// Where the self-signed certificate lives. Empty:
    /// `$XDG_DATA_HOME/sockchat-server` (`~/.local/share/sockchat-server`).
    pub data_dir: String,
    /// No plain TCP listener and no UDP (both are plaintext): TLS only.
    pub tls_only: bool,
}

/// `[cluster]`: several server processes (nodes) share rooms, nicks and
/// presence through a NATS server. `nats_url` empty (the default): off, one
/// process, nothing changes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `nats://HOST:PORT` (comma-separated for several). Empty: cluster off.
    pub nats_url: String,
    /// This node's name, unique in the cluster. Empty: `HOSTNAME-PID`.
    pub node: String,
    /// First token of every subject and of the KV bucket's name, so
    /// several clusters can share one NATS.
    pub subject_prefix: String,
    /// NATS credentials: a `.creds` file (JWT + nkey), or a token, or a
    /// user and password. Empty: none.
    pub credentials_file: String,
    pub token: String,
    pub user: String,
    pub password: String,
    /// TLS to NATS: require it, trust this CA (PEM), present this client
    /// certificate and key (PEM). Empty: system roots, no client cert.
    pub tls_required: bool,
    pub tls_ca: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// How often a node says it is alive.
    pub heartbeat_ms: u64,
    /// A node not heard from for this long is lost: the others remove its
    /// users and announce them `server-lost`.
    pub node_timeout_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: String::new(),
            node: String::new(),
            subject_prefix: "sockchat".into(),
            credentials_file: String::new(),
            token: String::new(),
            user: String::new(),
            password: String::new(),
            tls_required: false,
            tls_ca: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            heartbeat_ms: 1000,
            node_timeout_secs: 5,
        }
    }
}

/// The TLS port when `tls.listen` is empty.
pub const DEFAULT_TLS_PORT: u16 = 7879;

/// The log levels a filter directive may name.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The part of a log filter's grammar both binaries add on top of
/// tracing's `EnvFilter` (which accepts any bare word as a target name, so
/// a misspelt level like `debugg` would silently log nothing): a filter is
/// comma-separated directives, each a level (`info`) or `TARGET=LEVEL`
/// (`sockchat_server=debug`); empty directives are refused too. The
/// binaries then let `EnvFilter` parse it (levels, span filters).
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("empty filter (expected a level such as \"info\")".into());
    }
    for d in filter.split(',') {
        let d = d.trim();
        if d.is_empty() {
            return Err(format!("empty directive in {filter:?}"));
        }
        if !d.contains('=') && !LOG_LEVELS.contains(&d.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} is not a level (expected one of {}, or TARGET=LEVEL)",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Parse a config file's text. The error names the offending key.
pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters() {
        assert!(check_log_filter("info").is_ok());
        assert!(check_log_filter("WARN,sockchat_server=debug").is_ok());
        let e = check_log_filter("debugg").expect_err("typo");
        assert!(e.contains("\"debugg\" is not a level"), "{e}");
        assert!(check_log_filter("").is_err());
        assert!(check_log_filter("info,,debug").is_err());
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(parse("").expect("empty parses"), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[server]\nlisten = []\nbaclog = 5\n").expect_err("typo");
        assert!(err.to_string().contains("baclog"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = parse("[limits]\nmax_connections = \"many\"\n").expect_err("bad");
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    /// The documented config.toml at the repository root is exactly the
    /// built-in defaults.
    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../../config.toml");
        assert_eq!(parse(text).expect("config.toml parses"), Config::default());
    }
}
