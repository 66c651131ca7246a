//! TOML scenario files (`sockchat bots --scenario FILE`): groups of bots with
//! behaviours, and scheduled faults. Examples live in `examples/bots/`.
//!
//! ```toml
//! duration = "10s"
//! rooms = 10
//! [[group]]
//! name = "chatters"
//! behaviour = "chatter"
//! count = 50
//! rate = "200/s"        # the whole group
//! size = "32..256"      # or 64, or "64:90,1024:10"
//! [[fault]]
//! every = "2s"
//! group = "chatters"
//! fraction = 0.05
//! action = "rst"
//! ```
//! Unknown keys are errors naming the key, like the server's config.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::group::{Behaviour, Fault, Group, Method};
use super::parse::{self, SizeDist};
use super::wire::Wire;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub server: Option<String>,
    pub wire: Option<Wire>,
    pub duration: Option<String>,
    pub connect_rate: Option<String>,
    pub settle: Option<String>,
    pub drain: Option<String>,
    pub rooms: Option<usize>,
    pub room_prefix: Option<String>,
    pub source_ips: Option<String>,
    pub first_line: Option<String>,
    pub join_lines: Option<Vec<String>>,
    pub echo: Option<bool>,
    #[serde(default)]
    pub group: Vec<GroupSpec>,
    #[serde(default)]
    pub fault: Vec<FaultSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: Option<String>,
    pub behaviour: Behaviour,
    pub count: usize,
    /// Group total, e.g. "200/s". Chatters default 1/s per bot.
    pub rate: Option<String>,
    /// How many of the group send (default: all chatters/flooders/churners).
    pub senders: Option<usize>,
    pub size: Option<SizeSpec>,
    /// Rooms `[first, last]` (inclusive indices) this group uses; default all.
    pub rooms: Option<[usize; 2]>,
    pub stop_reading_after: Option<String>,
    pub session: Option<String>,
    pub pause: Option<String>,
    /// Churners: sessions per second for the whole group.
    pub churn_rate: Option<String>,
    pub disconnect: Option<Vec<Method>>,
    /// UDP: fraction of this group's outgoing datagrams dropped on purpose.
    pub udp_drop: Option<f64>,
    /// Join a room after connecting (default true). Churners with
    /// `join = false` only connect, say hello and hang up.
    pub join: Option<bool>,
}

/// `size = 64` or `size = "32..512"` / `"64:90,1024:10"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    Bytes(usize),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub every: String,
    pub group: String,
    pub fraction: f64,
    pub action: Method,
    pub reconnect_after: Option<String>,
}

fn dur(s: &Option<String>, def: Duration) -> anyhow::Result<Duration> {
    match s {
        Some(s) => parse::duration(s).map_err(anyhow::Error::msg),
        None => Ok(def),
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in scenario {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        Ok(toml::from_str(text)?)
    }

    pub fn groups(&self, n_rooms: usize) -> anyhow::Result<Vec<Group>> {
        let mut out = Vec::new();
        for (i, g) in self.group.iter().enumerate() {
            let name = g
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", g.behaviour.name(), i));
            let ctx = || format!("group {name:?}");
            let sends = matches!(
                g.behaviour,
                Behaviour::Chatter | Behaviour::Flooder | Behaviour::Churner
            );
            let senders = if sends {
                g.senders.unwrap_or(g.count)
            } else {
                0
            };
            if senders > g.count {
                bail!("{}: senders {} > count {}", ctx(), senders, g.count);
            }
            let default_rate = match g.behaviour {
                Behaviour::Chatter => senders as f64,
                Behaviour::Flooder => senders as f64 * 1000.0,
                _ => 0.0,
            };
            let rate = match &g.rate {
                Some(r) => parse::rate(r)
                    .map_err(anyhow::Error::msg)
                    .with_context(ctx)?,
                None => default_rate,
            };
            let size = match &g.size {
                None => Ok(SizeDist::Fixed(64)),
                Some(SizeSpec::Bytes(n)) => SizeDist::parse(&n.to_string()),
                Some(SizeSpec::Text(s)) => SizeDist::parse(s),
            }
            .map_err(anyhow::Error::msg)
            .with_context(ctx)?;
            let rooms = match g.rooms {
                None => 0..n_rooms,
                Some([a, b]) if a <= b && b < n_rooms => a..b + 1,
                Some([a, b]) => bail!("{}: rooms [{a}, {b}] outside 0..{n_rooms}", ctx()),
            };
            let churn_rate = match &g.churn_rate {
                Some(r) => parse::rate(r)
                    .map_err(anyhow::Error::msg)
                    .with_context(ctx)?,
                None => 0.0,
            };
            let udp_drop = match g.udp_drop {
                Some(d) if (0.0..=1.0).contains(&d) => d,
                Some(_) => bail!("{}: udp_drop must be in 0..=1", ctx()),
                None => 0.0,
            };
            out.push(Group {
                name,
                behaviour: g.behaviour,
                count: g.count,
                senders,
                rate,
                size,
                rooms,
                measured: matches!(g.behaviour, Behaviour::Chatter | Behaviour::Lurker),
                stop_reading_after: dur(&g.stop_reading_after, Duration::from_secs(1))?,
                session: dur(&g.session, Duration::from_millis(100))?,
                pause: dur(&g.pause, Duration::ZERO)?,
                churn_rate,
                udp_drop,
                join: g.join.unwrap_or(true),
                methods: g.disconnect.clone().unwrap_or_else(|| {
                    vec![
                        Method::Fin,
                        Method::Rst,
                        Method::Quit,
                        Method::CloseUnread,
                        Method::HalfClose,
                    ]
                }),
            });
        }
        Ok(out)
    }

    pub fn faults(&self, groups: &[Group]) -> anyhow::Result<Vec<Fault>> {
        let mut out = Vec::new();
        for f in &self.fault {
            let group = groups
                .iter()
                .position(|g| g.name == f.group)
                .with_context(|| format!("fault: no group named {:?}", f.group))?;
            if !(0.0..=1.0).contains(&f.fraction) {
                bail!("fault on {:?}: fraction must be in 0..=1", f.group);
            }
            let every = parse::duration(&f.every).map_err(anyhow::Error::msg)?;
            if every < Duration::from_millis(10) {
                bail!("fault on {:?}: every must be >= 10ms", f.group);
            }
            out.push(Fault {
                every,
                group,
                fraction: f.fraction,
                method: f.action,
                reconnect_after: dur(&f.reconnect_after, Duration::from_millis(100))?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scenario_parses() {
        let s = Scenario::parse(
            r#"
            duration = "3s"
            rooms = 4
            wire = "lines"
            [[group]]
            name = "talk"
            behaviour = "chatter"
            count = 8
            rate = "80/s"
            size = "32..128"
            [[group]]
            behaviour = "lurker"
            count = 20
            rooms = [0, 1]
            [[group]]
            behaviour = "churner"
            count = 3
            session = "50ms"
            join = false
            disconnect = ["rst", "half-close"]
            [[fault]]
            every = "1s"
            group = "talk"
            fraction = 0.25
            action = "close-unread"
            "#,
        )
        .expect("parses");
        assert_eq!(s.wire, Some(Wire::Lines));
        let g = s.groups(4).expect("groups");
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].senders, 8);
        assert_eq!(g[0].size, SizeDist::Uniform(32, 128));
        assert_eq!(g[1].rooms, 0..2);
        assert_eq!(g[1].senders, 0);
        assert_eq!(g[2].methods, vec![Method::Rst, Method::HalfClose]);
        assert!(!g[2].join && g[0].join);
        let f = s.faults(&g).expect("faults");
        assert_eq!(f[0].group, 0);
        assert_eq!(f[0].method, Method::CloseUnread);
    }

    #[test]
    fn mistakes_are_named() {
        let e = Scenario::parse("[[group]]\nbehaviour = \"chatter\"\ncount = 1\nrat = \"1/s\"\n")
            .expect_err("unknown key");
        assert!(format!("{e:#}").contains("rat"), "{e:#}");
        let e = Scenario::parse("[[group]]\nbehaviour = \"dancer\"\ncount = 1\n").expect_err("bad");
        assert!(format!("{e:#}").contains("dancer"), "{e:#}");
        let s = Scenario::parse("[[group]]\nbehaviour = \"lurker\"\ncount = 1\nrooms = [0, 9]\n")
            .expect("parses");
        assert!(s.groups(2).is_err());
        let s = Scenario::parse(
            "[[group]]\nbehaviour = \"lurker\"\ncount = 1\n[[fault]]\nevery=\"1s\"\ngroup=\"x\"\nfraction=0.1\naction=\"rst\"\n",
        )
        .expect("parses");
        let g = s.groups(1).expect("groups");
        assert!(s.faults(&g).is_err());
    }
}
