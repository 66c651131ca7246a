//! Command line: `sockchat [chat flags]`, `sockchat lab ...`, `sockchat bots ...`.

use clap::{Args, Parser, Subcommand};

pub use crate::usage::{UsageError, usage};

#[derive(Debug, Parser)]
#[command(
    name = "sockchat",
    version,
    about = "Terminal chat for the LAN that tells the truth about its sockets",
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub chat: ChatArgs,
}

/// The exit codes, the same for `sockchat` and `sockchat-server` (README).
pub const EXIT_CODES: &str = "Exit codes: 0 ok, 1 runtime failure (connection lost for good, \
a line not delivered, a failed experiment...), 2 usage or config error (bad flag, flag that \
does not apply, invalid value).";

#[derive(Debug, Subcommand)]
// BotsArgs has many optional flags; the enum is parsed once per process.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the abrupt-disconnect experiments on real sockets.
    #[command(after_help = EXIT_CODES)]
    Lab(crate::lab::LabArgs),
    /// Load-test a chat server with scripted bots.
    #[command(after_help = EXIT_CODES)]
    Bots(crate::bots::BotsArgs),
    /// Play a recording (`--record FILE`) back in the terminal UI: socket
    /// panel, event log and chat; space pauses, +/- change the speed, q
    /// quits. Opens no socket.
    #[command(after_help = EXIT_CODES)]
    Replay(crate::tui::replay::ReplayArgs),
}

/// Flags of the chat client (TUI and plain mode).
#[derive(Debug, Clone, Args, Default)]
pub struct ChatArgs {
    /// Server address (HOST:PORT). Default: [client] server in the config;
    /// with neither, the TUI finds servers on the LAN and shows a picker,
    /// and plain mode connects to 127.0.0.1:7878.
    #[arg(long, short)]
    pub server: Option<String>,
    /// List the servers that announce themselves on the LAN (mDNS,
    /// `_sockchat._tcp.local.`): name, address, users, rooms, TLS and its
    /// fingerprint; with --json one object each. When none answers, say
    /// what was checked (interfaces, multicast route, firewall, loopback).
    /// Exits 0 when one was found, 1 when none.
    #[arg(long)]
    pub discover: bool,
    /// With --discover: listen this many seconds (1..=600). [default: 3]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Nick to ask for: 1 to 255 letters, digits, '-', '_' or '.' (the
    /// server may allow fewer; 24 by default). An invalid nick is refused
    /// here. Default: [client] nick, else the server assigns guestN.
    #[arg(long, short)]
    pub nick: Option<String>,
    /// Config file (default: ~/.config/sockchat/config.toml if present).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Use UDP instead of TCP (connected UDP socket, sequence numbers,
    /// loss/dup/reorder counts in the socket panel).
    #[arg(long)]
    pub udp: bool,
    /// With --udp: drop this fraction (0..=1) of our outgoing datagrams.
    #[arg(long, value_name = "P")]
    pub udp_drop: Option<f64>,
    /// With --udp: duplicate this fraction of our outgoing datagrams.
    #[arg(long, value_name = "P")]
    pub udp_dup: Option<f64>,
    /// With --udp: reorder (hold back one) this fraction of our datagrams.
    #[arg(long, value_name = "P")]
    pub udp_reorder: Option<f64>,
    /// With --udp: largest datagram we send (1472 Ethernet-safe, 548
    /// Internet-safe, 65507 the hard limit). Larger messages are refused.
    /// [default: 1472]
    #[arg(long, value_name = "BYTES")]
    pub udp_max_payload: Option<usize>,
    /// TLS over TCP. The server's certificate is trusted on first use: its
    /// fingerprint is pinned in known_servers, and a changed one is refused
    /// with a warning. Default: [client] tls.
    #[arg(long)]
    pub tls: bool,
    /// Trust only this certificate (implies --tls): `SHA256:AB:CD:...` as
    /// the server prints it at start (or openssl's digits). It is pinned,
    /// replacing an older pin: the command to accept a changed certificate.
    #[arg(long, value_name = "SHA256:...")]
    pub tls_fingerprint: Option<String>,
    /// The pinned fingerprints file (default: SOCKCHAT_KNOWN_SERVERS, else
    /// [client] known_servers, else ~/.config/sockchat/known_servers).
    #[arg(long, value_name = "FILE")]
    pub known_servers: Option<String>,
    /// Plain mode: stdin lines are sent, every event is printed as one line.
    /// Exits 0 only when every line was delivered (echoed by the server)
    /// and the session ended by /quit or end of input; 1 when a line could
    /// not be sent or delivered, or no session could be made.
    #[arg(long)]
    pub plain: bool,
    /// Plain mode with one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// TCP: capture this connection's own packets (needs CAP_NET_RAW) and
    /// print them in tcpdump's notation (`~ ...` lines; `--json`: `wire`
    /// objects). The TUI always captures them for its wire view (F4).
    #[arg(long)]
    pub wire: bool,
    /// Do not reconnect automatically.
    #[arg(long)]
    pub no_reconnect: bool,
    /// TCP only. TCP keepalive of our socket: `IDLE,INTERVAL,COUNT` in seconds, or
    /// `off`. The kernel declares a silent server dead after
    /// IDLE + COUNT x INTERVAL seconds (ETIMEDOUT). Default: [client]
    /// keepalive ("60,10,5").
    #[arg(long, value_name = "IDLE,INTERVAL,COUNT|off")]
    pub keepalive: Option<String>,
    /// TCP only. TCP_USER_TIMEOUT in ms: unacknowledged data older than this ends the
    /// connection with ETIMEDOUT (0: the kernel's default, ~15 min).
    /// Default: [client] user_timeout_ms.
    #[arg(long, value_name = "MS")]
    pub user_timeout_ms: Option<u32>,
    /// A ping to the server unanswered this long (a hung or silent server)
    /// ends the connection with `idle-timeout`, then the client reconnects.
    /// Default: [client] ping_timeout_ms (15000).
    #[arg(long, value_name = "MS")]
    pub ping_timeout_ms: Option<u64>,
    /// Room to join after connecting. Default: [client] room.
    #[arg(long)]
    pub room: Option<String>,
    /// Write the client's tracing log to this file (never to the screen).
    #[arg(long)]
    pub log_file: Option<String>,
    /// Save accepted files here (default: [client] download_dir, else
    /// $XDG_DOWNLOAD_DIR, else ~/Downloads, else the current folder).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<std::path::PathBuf>,
    /// Log filter for --log-file: a level (`info`) or TARGET=LEVEL
    /// directives (`sockchat=debug,warn`). Wins over RUST_LOG; a bad
    /// filter (here or in RUST_LOG) is an error. Default: RUST_LOG, else info.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Record the session to FILE as JSON lines (socket events as --json
    /// prints them, TCP_INFO samples, lines sent; never a password or room
    /// key), for `sockchat replay FILE`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

/// Everything the chat client runs with: the `[client]` config section with
/// the flags applied on top, and the net task's settings derived from it.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub client: sockchat_shared::config::ClientConfig,
    pub net: crate::net::NetConfig,
    /// The checked log filter for the log file (`--log`, else RUST_LOG,
    /// else `info`).
    pub log_filter: String,
    /// Neither `--server` nor `[client] server` named a server: the TUI
    /// finds them on the LAN and shows a picker.
    pub pick_server: bool,
}

/// The per-user config file: `~/.config/sockchat/config.toml`
/// (`$XDG_CONFIG_HOME/sockchat/config.toml` when that is set).
pub fn user_config_path() -> Option<std::path::PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(std::path::PathBuf::from(x).join("sockchat/config.toml"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| std::path::PathBuf::from(h).join(".config/sockchat/config.toml"))
}

impl ChatArgs {
    /// Load the config (`--config FILE`, else the user's file if present,
    /// else built-in defaults), then let flags override it.
    pub fn settings(&self) -> anyhow::Result<ChatSettings> {
        self.settings_inner().map_err(|e| usage(format!("{e:#}")))
    }

    fn settings_inner(&self) -> anyhow::Result<ChatSettings> {
        use anyhow::{Context, bail};
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => user_config_path().filter(|p| p.exists()),
        };
        let mut client = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                sockchat_shared::config::parse(&text)
                    .with_context(|| format!("in config {}", p.display()))?
                    .client
            }
            None => sockchat_shared::config::ClientConfig::default(),
        };
        self.check_mode()?;
        if let Some(s) = &self.server {
            client.server = s.clone();
        }
        // No server named anywhere: the TUI shows the picker; plain mode
        // (and the picker's fallback) uses the local default.
        let pick_server = client.server.is_empty();
        if pick_server {
            client.server = sockchat_shared::config::LOCAL_SERVER.to_string();
        }
        client.server = with_default_port(&client.server);
        if let Some(n) = &self.nick {
            if n.is_empty() {
                bail!("--nick \"\": give a nick, or leave --nick out to get guestN");
            }
            sockchat_shared::names::check_nick(n, MAX_NICK_CHARS)
                .map_err(|e| anyhow::anyhow!("--nick {n:?}: {e}"))?;
            client.nick = n.clone();
        } else if !client.nick.is_empty() {
            sockchat_shared::names::check_nick(&client.nick, MAX_NICK_CHARS)
                .map_err(|e| anyhow::anyhow!("[client] nick {:?}: {e}", client.nick))?;
        }
        if let Some(r) = &self.room {
            client.room = r.clone();
        }
        if self.no_reconnect {
            client.reconnect = false;
        }
        if let Some(l) = &self.log_file {
            client.log_file = l.clone();
        }
        let udp = if self.udp {
            let faults = sockchat_shared::udp::FaultConfig {
                drop: self.udp_drop.unwrap_or(0.0),
                duplicate: self.udp_dup.unwrap_or(0.0),
                reorder: self.udp_reorder.unwrap_or(0.0),
            }
            .check()
            .map_err(|e| anyhow::anyhow!("--udp-drop/--udp-dup/--udp-reorder: {e}"))?;
            let max_payload = sockchat_shared::udp::check_max_payload(
                self.udp_max_payload
                    .unwrap_or(sockchat_shared::udp::DEFAULT_MAX_PAYLOAD),
            )
            .map_err(|e| anyhow::anyhow!("--udp-max-payload: {e}"))?;
            Some(crate::net::udp::UdpOptions {
                max_payload,
                faults,
                ..Default::default()
            })
        } else {
            None
        };
        if self.tls || self.tls_fingerprint.is_some() {
            client.tls = true;
        }
        if let Some(f) = &self.tls_fingerprint {
            client.tls_fingerprint = f.clone();
        }
        let tls = if client.tls {
            let fingerprint = match client.tls_fingerprint.as_str() {
                "" => None,
                f => Some(
                    sockchat_shared::fingerprint::Fingerprint::parse(f)
                        .map_err(|e| anyhow::anyhow!("--tls-fingerprint: {e}"))?,
                ),
            };
            Some(crate::net::tls::TlsOptions {
                fingerprint,
                known_servers: crate::net::known_servers::default_path(
                    self.known_servers.as_deref(),
                    &client.known_servers,
                ),
                announced: None,
            })
        } else {
            None
        };
        // Out-of-range values are errors that name the key, never clamped.
        if client.info_poll_ms == 0 {
            bail!("[client] info_poll_ms must be at least 1");
        }
        if client.reconnect_initial_ms == 0 {
            bail!("[client] reconnect_initial_ms must be at least 1");
        }
        if client.reconnect_max_ms < client.reconnect_initial_ms {
            bail!(
                "[client] reconnect_max_ms ({}) must be at least reconnect_initial_ms ({})",
                client.reconnect_max_ms,
                client.reconnect_initial_ms
            );
        }
        if !matches!(client.socket_panel.as_str(), "auto" | "on" | "off") {
            bail!(
                "[client] socket_panel must be \"auto\", \"on\" or \"off\", not {:?}",
                client.socket_panel
            );
        }
        // One message of the largest size must fit.
        if client.scrollback_bytes < 64 * 1024 {
            bail!(
                "[client] scrollback_bytes must be at least 65536, not {}",
                client.scrollback_bytes
            );
        }
        if let Some(k) = &self.keepalive {
            client.keepalive = k.clone();
        }
        if let Some(u) = self.user_timeout_ms {
            client.user_timeout_ms = u;
        }
        if let Some(p) = self.ping_timeout_ms {
            client.ping_timeout_ms = p;
        }
        if !(300..=3_600_000).contains(&client.ping_timeout_ms) {
            anyhow::bail!(
                "ping timeout {} ms is out of range (300 ms to 1 hour)",
                client.ping_timeout_ms
            );
        }
        let keepalive = parse_keepalive(&client.keepalive)?;
        let log_filter = log_filter(self.log.as_deref(), std::env::var("RUST_LOG").ok())?;
        let net = crate::net::NetConfig {
            keepalive,
            user_timeout_ms: client.user_timeout_ms,
            server: client.server.clone(),
            nick: client.nick.clone(),
            room: client.room.clone(),
            reconnect: client.reconnect,
            reconnect_initial: std::time::Duration::from_millis(client.reconnect_initial_ms),
            reconnect_max: std::time::Duration::from_millis(client.reconnect_max_ms),
            info_poll: std::time::Duration::from_millis(client.info_poll_ms),
            ping_timeout: std::time::Duration::from_millis(client.ping_timeout_ms),
            udp,
            tls,
            wire: self.wire,
            download_dir: match &self.download_dir {
                Some(d) => d.clone(),
                None => crate::net::transfer::download_dir(&client.download_dir),
            },
            auto_accept: client.auto_accept.clone(),
            ..crate::net::NetConfig::default()
        };
        Ok(ChatSettings {
            client,
            net,
            log_filter,
            pick_server,
        })
    }

    /// `--discover`'s listening time, checked: the flags that connect do
    /// not go with it.
    pub fn discover_timeout(&self) -> anyhow::Result<std::time::Duration> {
        if self.server.is_some() {
            return Err(usage(
                "--discover lists the servers on the LAN and connects to none: leave out --server",
            ));
        }
        let secs = self
            .timeout
            .unwrap_or(crate::discover::DEFAULT_TIMEOUT.as_secs());
        if !(1..=crate::discover::MAX_TIMEOUT_SECS).contains(&secs) {
            return Err(usage(format!(
                "--timeout {secs} is out of range (1 to {} seconds)",
                crate::discover::MAX_TIMEOUT_SECS
            )));
        }
        Ok(std::time::Duration::from_secs(secs))
    }

    /// Flags that do not apply to the chosen transport are errors that say
    /// why, not silently ignored.
    fn check_mode(&self) -> anyhow::Result<()> {
        if self.timeout.is_some() {
            anyhow::bail!("--timeout only applies to --discover");
        }
        if !self.udp {
            let udp_only = [
                ("--udp-drop", self.udp_drop.is_some()),
                ("--udp-dup", self.udp_dup.is_some()),
                ("--udp-reorder", self.udp_reorder.is_some()),
                ("--udp-max-payload", self.udp_max_payload.is_some()),
            ];
            if let Some((flag, _)) = udp_only.iter().find(|(_, set)| *set) {
                anyhow::bail!(
                    "{flag} only applies to UDP: add --udp (over TCP the kernel retransmits, \
                     and there are no datagrams to drop, duplicate, reorder or size)"
                );
            }
        } else {
            if self.wire {
                anyhow::bail!(
                    "--wire shows the packets of a TCP connection and does not apply with --udp \
                     (the session's datagrams are counted in the socket panel and /sockinfo)"
                );
            }
            let tcp_only = [
                ("--keepalive", self.keepalive.is_some()),
                ("--user-timeout-ms", self.user_timeout_ms.is_some()),
            ];
            if let Some((flag, _)) = tcp_only.iter().find(|(_, set)| *set) {
                anyhow::bail!(
                    "{flag} is a TCP socket option and does not apply with --udp \
                     (a UDP session is kept alive by pings and ends by timeout)"
                );
            }
        }
        Ok(())
    }
}

/// The longest nick any server can allow (`limits.max_nick_len` is at most
/// 255); the server's own limit (24 by default) may be lower.
const MAX_NICK_CHARS: usize = 255;

/// The log filter: an explicit `--log` wins, else `RUST_LOG` (when set and
/// not empty), else `info`. Whichever is used is checked; the error names it.
pub fn log_filter(flag: Option<&str>, env: Option<String>) -> anyhow::Result<String> {
    let (what, filter) = match (flag, env.filter(|e| !e.is_empty())) {
        (Some(f), _) => ("--log", f.to_string()),
        (None, Some(e)) => ("RUST_LOG", e),
        (None, None) => return Ok("info".into()),
    };
    sockchat_shared::config::check_log_filter(&filter)
        .and_then(|()| {
            tracing_subscriber::EnvFilter::builder()
                .parse(&filter)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| anyhow::anyhow!("{what} {filter:?} is not a valid log filter: {e}"))?;
    Ok(filter)
}

/// `HOST` or a bare IP address gets the default port 7878; `HOST:PORT`,
/// `IPv4:PORT` and `[IPv6]:PORT` stay as they are.
pub fn with_default_port(server: &str) -> String {
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, 7878).to_string();
    }
    if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:7878")
    }
}

/// `off` or `IDLE,INTERVAL,COUNT` (seconds, each at least 1).
pub fn parse_keepalive(s: &str) -> anyhow::Result<Option<(u32, u32, u32)>> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("keepalive {s:?}: expected IDLE,INTERVAL,COUNT or off"))?;
    match parts[..] {
        [i, n, c] if i > 0 && n > 0 && c > 0 => Ok(Some((i, n, c))),
        _ => anyhow::bail!(
            "keepalive {s:?}: expected three numbers >= 1 (IDLE,INTERVAL,COUNT) or off"
        ),
    }
}

/// Send tracing to the log file (append) with the checked filter. No log
/// file: no log at all. The terminal is never a log target: it belongs to
/// the UI.
pub fn init_file_log(settings: &ChatSettings) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = &settings.client.log_file;
    if path.is_empty() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {path}"))?;
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&settings.log_filter)
        .with_context(|| format!("log filter {:?}", settings.log_filter))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
