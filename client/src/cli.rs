//! Command line: `sockchat [chat flags]`, `sockchat lab ...`, `sockchat bots ...`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sockchat",
    version,
    about = "Terminal chat for the LAN that tells the truth about its sockets",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub chat: ChatArgs,
}

#[derive(Debug, Subcommand)]
// BotsArgs has many optional flags; the enum is parsed once per process.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the abrupt-disconnect experiments on real sockets.
    Lab(crate::lab::LabArgs),
    /// Load-test a chat server with scripted bots.
    Bots(crate::bots::BotsArgs),
}

/// Flags of the chat client (TUI and plain mode).
#[derive(Debug, Clone, Args, Default)]
pub struct ChatArgs {
    /// Server address (HOST:PORT). Default: [client] server in the config.
    #[arg(long, short)]
    pub server: Option<String>,
    /// Nick to ask for. Default: the server assigns guestN.
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
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub udp_drop: f64,
    /// With --udp: duplicate this fraction of our outgoing datagrams.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub udp_dup: f64,
    /// With --udp: reorder (hold back one) this fraction of our datagrams.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub udp_reorder: f64,
    /// With --udp: largest datagram we send (1472 Ethernet-safe, 548
    /// Internet-safe, 65507 the hard limit). Larger messages are refused.
    #[arg(long, value_name = "BYTES", default_value_t = sockchat_shared::udp::DEFAULT_MAX_PAYLOAD)]
    pub udp_max_payload: usize,
    /// Plain mode: stdin lines are sent, every event is printed as one line.
    #[arg(long)]
    pub plain: bool,
    /// Plain mode with one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Do not reconnect automatically.
    #[arg(long)]
    pub no_reconnect: bool,
    /// TCP keepalive of our socket: `IDLE,INTERVAL,COUNT` in seconds, or
    /// `off`. The kernel declares a silent server dead after
    /// IDLE + COUNT x INTERVAL seconds (ETIMEDOUT). Default: [client]
    /// keepalive ("60,10,5").
    #[arg(long, value_name = "IDLE,INTERVAL,COUNT|off")]
    pub keepalive: Option<String>,
    /// TCP_USER_TIMEOUT in ms: unacknowledged data older than this ends the
    /// connection with ETIMEDOUT (0: the kernel's default, ~15 min).
    /// Default: [client] user_timeout_ms.
    #[arg(long, value_name = "MS")]
    pub user_timeout_ms: Option<u32>,
    /// Room to join after connecting. Default: [client] room.
    #[arg(long)]
    pub room: Option<String>,
    /// Write the client's tracing log to this file (never to the screen).
    #[arg(long)]
    pub log_file: Option<String>,
}

/// Everything the chat client runs with: the `[client]` config section with
/// the flags applied on top, and the net task's settings derived from it.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub client: sockchat_shared::config::ClientConfig,
    pub net: crate::net::NetConfig,
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
        use anyhow::Context;
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
        if let Some(s) = &self.server {
            client.server = s.clone();
        }
        client.server = with_default_port(&client.server);
        if let Some(n) = &self.nick {
            client.nick = n.clone();
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
                drop: self.udp_drop,
                duplicate: self.udp_dup,
                reorder: self.udp_reorder,
            }
            .check()
            .map_err(|e| anyhow::anyhow!("--udp-drop/--udp-dup/--udp-reorder: {e}"))?;
            let max_payload = sockchat_shared::udp::check_max_payload(self.udp_max_payload)
                .map_err(|e| anyhow::anyhow!("--udp-max-payload: {e}"))?;
            Some(crate::net::udp::UdpOptions {
                max_payload,
                faults,
                ..Default::default()
            })
        } else {
            None
        };
        if client.info_poll_ms == 0 {
            anyhow::bail!("[client] info_poll_ms must be at least 1");
        }
        if let Some(k) = &self.keepalive {
            client.keepalive = k.clone();
        }
        if let Some(u) = self.user_timeout_ms {
            client.user_timeout_ms = u;
        }
        let keepalive = parse_keepalive(&client.keepalive)?;
        let net = crate::net::NetConfig {
            keepalive,
            user_timeout_ms: client.user_timeout_ms,
            server: client.server.clone(),
            nick: client.nick.clone(),
            room: client.room.clone(),
            reconnect: client.reconnect,
            reconnect_initial: std::time::Duration::from_millis(client.reconnect_initial_ms.max(1)),
            reconnect_max: std::time::Duration::from_millis(
                client
                    .reconnect_max_ms
                    .max(client.reconnect_initial_ms.max(1)),
            ),
            info_poll: std::time::Duration::from_millis(client.info_poll_ms),
            udp,
            ..crate::net::NetConfig::default()
        };
        Ok(ChatSettings { client, net })
    }
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

/// Send tracing to `path` (append). Empty path: no log at all. The terminal
/// is never a log target: it belongs to the UI.
pub fn init_file_log(path: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if path.is_empty() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {path}"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
