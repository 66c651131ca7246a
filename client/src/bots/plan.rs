//! The plan of a run: who the bots are, what each group does, and the
//! schedule. Built from the command line alone or from a TOML scenario file
//! with command-line flags on top (a flag given on the command line wins).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

use super::BotsArgs;
pub use super::group::{Behaviour, Fault, Group, Method};
use super::parse::{self, LossLimit, SizeDist};
use super::scenario::Scenario;
use super::wire::Wire;

/// Pass/fail limits (like k6 thresholds): a missed one makes the exit code 1.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    pub max_p99: Option<Duration>,
    pub max_loss: Option<LossLimit>,
    pub min_connected: Option<usize>,
}

/// How bots are spread over several `--server`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Spread {
    /// Bot N connects to server N mod count.
    #[default]
    Bots,
    /// Senders connect to the first server, the other bots are spread over
    /// the rest (with one server: all on it).
    Roles,
}

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The first server.
    pub server: SocketAddr,
    /// Every server (cluster nodes), at least one.
    pub servers: Vec<SocketAddr>,
    pub spread: Spread,
    pub wire: Wire,
    /// Lines mode: first line after connecting, `{n}` = bot number.
    pub first_line: Option<String>,
    /// Lines mode: lines sent to join the room (`{room}`, `{n}`).
    pub join_lines: Vec<String>,
    /// Framed mode: nick in Hello (`{n}`).
    pub nick: String,
    /// Framed mode: leave the server's default room after joining ours.
    pub leave_room: Option<String>,
    /// The server echoes a sender's own messages back (sockchat: framed yes,
    /// text no).
    pub echo: bool,
    pub source_ips: Vec<IpAddr>,
    pub connect_rate: f64,
    pub connect_timeout: Duration,
    pub duration: Duration,
    pub settle: Duration,
    pub drain: Duration,
    pub rooms: Vec<String>,
    pub groups: Vec<Group>,
    pub faults: Vec<Fault>,
    pub threads: usize,
    pub workers: usize,
    pub run_id: u32,
    pub max_frame: usize,
    pub thresholds: Thresholds,
    pub progress: bool,
    /// `--timeline`: slice width in µs (0 = no timeline).
    pub timeline_us: u64,
}

impl Plan {
    pub fn total_bots(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The server bot `n` connects to (`sender`: it sends).
    pub fn server_for(&self, n: usize, sender: bool) -> SocketAddr {
        let k = self.servers.len();
        match self.spread {
            _ if k <= 1 => self.server,
            Spread::Bots => self.servers[n % k],
            Spread::Roles if sender => self.server,
            Spread::Roles => self.servers[1 + n % (k - 1)],
        }
    }

    /// Build from the command line (and the scenario file it names).
    pub fn from_args(a: &BotsArgs) -> anyhow::Result<Plan> {
        let sc = match &a.scenario {
            Some(path) => Some(Scenario::load(path)?),
            None => None,
        };
        let sc_ref = sc.as_ref();
        // A flag on the command line wins over the scenario, which wins over
        // the built-in default.
        let pick = |cli: &Option<String>, scen: Option<&String>, def: &str| -> String {
            cli.clone()
                .or_else(|| scen.cloned())
                .unwrap_or_else(|| def.to_string())
        };
        let server_s = pick(
            &a.server,
            sc_ref.and_then(|s| s.server.as_ref()),
            "127.0.0.1:7878",
        );
        let mut servers = Vec::new();
        for one in server_s.split(',').map(str::trim) {
            let server = one
                .to_socket_addrs()
                .with_context(|| format!("bad --server {one:?}"))?
                .next()
                .with_context(|| format!("--server {one:?} resolves to nothing"))?;
            if !server.ip().is_loopback() {
                bail!("--server {server}: the bots only load this machine (a loopback address)");
            }
            servers.push(server);
        }
        let Some(&server) = servers.first() else {
            bail!("--server: no address");
        };
        let wire = a
            .wire
            .or(sc_ref.and_then(|s| s.wire))
            .unwrap_or(Wire::Framed);
        let duration = e(parse::duration(&pick(
            &a.duration,
            sc_ref.and_then(|s| s.duration.as_ref()),
            "10s",
        )))?;
        let connect_rate = e(parse::rate(&pick(
            &a.connect_rate,
            sc_ref.and_then(|s| s.connect_rate.as_ref()),
            "2000/s",
        )))?;
        let connect_timeout = e(parse::duration(&pick(&a.connect_timeout, None, "5s")))?;
        let settle = e(parse::duration(&pick(
            &a.settle,
            sc_ref.and_then(|s| s.settle.as_ref()),
            "500ms",
        )))?;
        let drain = e(parse::duration(&pick(
            &a.drain,
            sc_ref.and_then(|s| s.drain.as_ref()),
            "10s",
        )))?;
        let n_rooms = match (a.rooms, sc_ref.and_then(|s| s.rooms)) {
            (Some(r), _) | (None, Some(r)) => r,
            _ => 1,
        };
        if n_rooms == 0 || n_rooms > 100_000 {
            bail!("--rooms must be 1..=100000");
        }
        let prefix = pick(
            &a.room_prefix,
            sc_ref.and_then(|s| s.room_prefix.as_ref()),
            "bots",
        );
        let rooms: Vec<String> = (0..n_rooms).map(|i| format!("{prefix}{i}")).collect();
        let source_ips = match a
            .source_ips
            .as_ref()
            .or(sc_ref.and_then(|s| s.source_ips.as_ref()))
        {
            Some(s) => e(parse::source_ips(s))?,
            None => Vec::new(),
        };
        let mut groups = match sc_ref {
            Some(s) if !s.group.is_empty() && a.count.is_none() => s.groups(n_rooms)?,
            _ => simple_groups(a, n_rooms)?,
        };
        let faults = match sc_ref {
            Some(s) => s.faults(&groups)?,
            None => Vec::new(),
        };
        // A group some fault hits is not measured: its members' deliveries
        // and losses are by design.
        for f in &faults {
            groups[f.group].measured = false;
        }
        let total: usize = groups.iter().map(|g| g.count).sum();
        if total == 0 {
            bail!("no bots: --count (or the scenario's groups) must be > 0");
        }
        let join_lines = match (&a.join_line, sc_ref.and_then(|s| s.join_lines.clone())) {
            (v, _) if !v.is_empty() => v.clone(),
            (_, Some(v)) => v,
            _ => vec!["/join {room}".to_string(), "/leave lobby".to_string()],
        };
        let join_lines = join_lines
            .into_iter()
            .filter(|l| !l.is_empty() && l != "none")
            .collect();
        let first_line = a
            .first_line
            .clone()
            .or(sc_ref.and_then(|s| s.first_line.clone()));
        let threads = match a.threads {
            Some(t) if (1..=64).contains(&t) => t,
            Some(t) => bail!("--threads {t}: must be 1..=64"),
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(64),
        };
        let mut thresholds = Thresholds::default();
        if let Some(p) = &a.max_p99 {
            thresholds.max_p99 = Some(e(parse::duration(p))?);
        }
        if let Some(l) = &a.max_loss {
            thresholds.max_loss = Some(e(parse::loss_limit(l))?);
        }
        thresholds.min_connected = a.min_connected;
        if let Some(d) = a.udp_drop {
            if !(0.0..=1.0).contains(&d) {
                bail!("--udp-drop must be in 0..=1");
            }
            for g in &mut groups {
                g.udp_drop = d;
            }
        }
        if wire == Wire::Udp {
            // One message per datagram: the text must fit in 1472 bytes
            // with the header, the room name and the Say fields.
            let room_len = rooms.iter().map(String::len).max().unwrap_or(0);
            for g in &groups {
                let need = g.size.max() + room_len + 8 + 1 + 2 + 2;
                if need > sockchat_shared::udp::DEFAULT_MAX_PAYLOAD {
                    bail!(
                        "group {:?}: {}-byte messages do not fit in one {}-byte datagram; use a smaller --size",
                        g.name,
                        g.size.max(),
                        sockchat_shared::udp::DEFAULT_MAX_PAYLOAD
                    );
                }
            }
        }
        if a.workers == 0 || a.workers > 64 {
            bail!("--workers must be 1..=64");
        }
        Ok(Plan {
            server,
            servers,
            spread: a.spread.unwrap_or_default(),
            wire,
            first_line,
            join_lines,
            // The run tag keeps nicks unique against sessions a previous
            // run left behind (UDP sessions linger until their timeout).
            nick: a.nick.clone().unwrap_or_else(|| "b{run}-{id}".into()),
            leave_room: match a.leave_room.as_deref() {
                Some("") | Some("none") => None,
                Some(r) => Some(r.to_string()),
                None => Some("lobby".into()),
            },
            // sockchat echoes room messages to framed senders (their client
            // shows them) but not to text users (nc shows what they typed).
            echo: a
                .echo
                .or(sc_ref.and_then(|s| s.echo))
                .unwrap_or(wire != Wire::Lines),
            source_ips,
            connect_rate,
            connect_timeout,
            duration,
            settle,
            drain,
            rooms,
            groups,
            faults,
            threads,
            workers: a.workers,
            run_id: a.run_id.unwrap_or_else(rand::random),
            max_frame: sockchat_shared::proto::DEFAULT_MAX_FRAME,
            thresholds,
            progress: !a.no_progress,
            timeline_us: match &a.timeline {
                None => 0,
                Some(w) => {
                    let w = e(parse::duration(w))?;
                    if w < Duration::from_millis(1) {
                        bail!(
                            "--timeline {}: the slice must be at least 1ms",
                            a.timeline.as_deref().unwrap_or("")
                        );
                    }
                    u64::try_from(w.as_micros()).unwrap_or(u64::MAX)
                }
            },
        })
    }
}

/// A parse error string as an anyhow error.
fn e<T>(r: Result<T, String>) -> anyhow::Result<T> {
    r.map_err(anyhow::Error::msg)
}

/// The command-line-only load: `--senders` chatters and the rest lurkers.
fn simple_groups(a: &BotsArgs, n_rooms: usize) -> anyhow::Result<Vec<Group>> {
    let count = match &a.count {
        Some(c) => e(parse::count(c))?,
        None => 10,
    };
    let senders = match &a.senders {
        Some(s) => e(parse::count(s))?,
        None => count.min(1),
    };
    if senders > count {
        bail!("--senders {senders} is more than --count {count}");
    }
    let rate = e(parse::rate(a.rate.as_deref().unwrap_or("100/s")))?;
    let size = e(SizeDist::parse(a.size.as_deref().unwrap_or("64")))?;
    let base = Group {
        name: String::new(),
        behaviour: Behaviour::Chatter,
        count: 0,
        senders: 0,
        rate: 0.0,
        size,
        rooms: 0..n_rooms,
        measured: true,
        stop_reading_after: Duration::ZERO,
        session: Duration::ZERO,
        pause: Duration::ZERO,
        churn_rate: 0.0,
        methods: Vec::new(),
        udp_drop: 0.0,
        join: true,
    };
    let mut groups = Vec::new();
    if senders > 0 {
        groups.push(Group {
            name: "chatters".into(),
            count: senders,
            senders,
            rate,
            ..base.clone()
        });
    }
    if count > senders {
        groups.push(Group {
            name: "lurkers".into(),
            behaviour: Behaviour::Lurker,
            count: count - senders,
            ..base
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_spread_over_several_servers() {
        let mut args = BotsArgs {
            server: Some("127.0.0.1:1, 127.0.0.1:2,127.0.0.1:3".into()),
            count: Some("6".into()),
            workers: 1,
            ..Default::default()
        };
        let p = Plan::from_args(&args).expect("plan");
        let port = |n, sender| p.server_for(n, sender).port();
        assert_eq!(
            (0..4).map(|n| port(n, false)).collect::<Vec<_>>(),
            [1, 2, 3, 1]
        );
        args.spread = Some(Spread::Roles);
        let p = Plan::from_args(&args).expect("plan");
        let port = |n, sender| p.server_for(n, sender).port();
        assert_eq!(port(0, true), 1);
        assert_eq!(port(7, true), 1);
        assert_eq!(
            (0..4).map(|n| port(n, false)).collect::<Vec<_>>(),
            [2, 3, 2, 3]
        );
        args.server = Some("127.0.0.1:1,10.0.0.1:2".into());
        assert!(Plan::from_args(&args).is_err(), "loopback only");
    }
}
