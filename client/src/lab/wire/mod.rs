//! `sockchat lab --wire`: each TCP scenario captures its own packets on
//! `lo`, shows them in tcpdump's notation beside what the sockets
//! returned, and checks them against the packet pattern the scenario
//! promises (FIN both ways, RST and no FIN, SYN answered by RST-ACK, ...).
//!
//! `crate::wire::capture` (the AF_PACKET socket and its filter) and
//! `crate::wire::packet` (headers to segments, the notation) are shared
//! with the client's wire view; here: `pattern` (the expectations and
//! their check), `pcap` (`--pcap DIR`). Scenarios only see [`Wire`],
//! [`Capture`] and the pattern types; outcomes carry a [`WireResult`].

mod pattern;
mod pcap;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::wire::packet::Side;
pub use pattern::{Kind, Pattern};

use crate::wire::capture::{self, Keep, RawPacket, Sniffer};
use crate::wire::packet::{self, Segment};
use pattern::Check;

/// How long a capture waits for the pattern's segments to show up after
/// the scenario is done (loopback needs microseconds; window probes and a
/// loaded machine need more; the pulled cable's have all been sent by
/// the time its connection timed out).
const WAIT_PATTERN: Duration = Duration::from_secs(3);
/// After the pattern is complete, how long to keep listening so that a
/// segment that must *not* come (a FIN after an RST) would be seen.
const SETTLE: Duration = Duration::from_millis(200);
/// The table shows this many segments from each end of a long trace.
const TABLE_EDGE: usize = 15;
/// At most this many packets per scenario (memory bound); more are counted.
const MAX_PACKETS: usize = 20_000;

/// Whether and how the lab captures: decided once per run.
#[derive(Debug, Clone)]
pub enum Wire {
    Off,
    On {
        pcap: Option<PathBuf>,
        /// Held for the run: keeps kernel timestamping on (see
        /// `capture::available`).
        _stamps: Arc<OwnedFd>,
    },
    /// `--wire` was asked for but this process cannot capture: why, and how
    /// to grant it.
    Unavailable(String),
}

impl Wire {
    /// `--wire` (or `--pcap`, which implies it): check once that a packet
    /// socket can be opened here.
    pub fn new(enabled: bool, pcap: Option<PathBuf>) -> Wire {
        if !enabled && pcap.is_none() {
            return Wire::Off;
        }
        match capture::available() {
            Ok(fd) => Wire::On {
                pcap,
                _stamps: Arc::new(fd),
            },
            Err(e) => Wire::Unavailable(format!(
                "cannot capture packets: {e}. Capturing needs CAP_NET_RAW: run the lab as root, or grant it once with `{}`; the scenarios run without packets",
                capture::grant_hint()
            )),
        }
    }

    pub fn pcap_dir(&self) -> Option<&Path> {
        match self {
            Wire::On { pcap, .. } => pcap.as_deref(),
            _ => None,
        }
    }

    /// Start capturing TCP port `port` on `lo` before the scenario's first
    /// SYN. `names`: what to call the socket on `port` and the other end.
    /// Off or unavailable: a capture that records nothing.
    pub fn capture(
        &self,
        port: u16,
        names: [&'static str; 2],
        pattern: Pattern,
    ) -> anyhow::Result<Capture> {
        self.capture_on("lo", None, port, names, pattern)
    }

    /// [`Wire::capture`] on interface `iface` inside network namespace
    /// `netns` (the pulled cable's veth).
    pub fn capture_on(
        &self,
        iface: &str,
        netns: Option<&str>,
        port: u16,
        names: [&'static str; 2],
        pattern: Pattern,
    ) -> anyhow::Result<Capture> {
        let running = match self {
            Wire::On { .. } => Some(Running {
                sniffer: start_sniffer(port, iface, netns)?,
                marks: Vec::new(),
                port,
                iface: iface.to_string(),
                names,
                pattern,
            }),
            _ => None,
        };
        Ok(Capture {
            running,
            why_not: self.why_not(),
        })
    }

    /// The note for an outcome this run did not capture.
    pub fn why_not(&self) -> Option<String> {
        match self {
            Wire::Off => None,
            Wire::On { .. } => Some("this scenario has no capture".into()),
            Wire::Unavailable(why) => Some(why.clone()),
        }
    }
}

/// Capture TCP port `port` on interface `iface`, inside network namespace
/// `netns` if given (the socket and the interface index belong to the
/// namespace it is created in).
fn start_sniffer(port: u16, iface: &str, netns: Option<&str>) -> anyhow::Result<Sniffer> {
    let open = {
        let iface = iface.to_string();
        move || -> std::io::Result<_> {
            let fd = capture::open_port(port, &iface)?;
            let lo = (iface == capture::LOOPBACK)
                .then(|| capture::if_index(&iface))
                .transpose()?;
            Ok((fd, lo))
        }
    };
    let (fd, lo) = match netns {
        None => open()?,
        Some(ns) => super::nsenter::in_netns(ns, open)?,
    };
    Ok(Sniffer::run(fd, Keep::First(MAX_PACKETS), lo)?)
}

struct Running {
    sniffer: Sniffer,
    /// The scenario's system calls, with the wall clock the kernel stamps
    /// packets with, so they interleave with the segments.
    marks: Vec<(Duration, String)>,
    port: u16,
    iface: String,
    names: [&'static str; 2],
    pattern: Pattern,
}

/// One scenario's capture. Call [`Capture::finish`] once the scenario's
/// sockets are closed.
pub struct Capture {
    running: Option<Running>,
    why_not: Option<String>,
}

impl Capture {
    /// Note what a side's system call did (`peer: read() -> reset`), to be
    /// shown between the packets at the time it happened.
    pub fn mark(&mut self, what: impl Into<String>) {
        if let Some(r) = &mut self.running {
            r.marks.push((capture::wall_clock(), what.into()));
        }
    }

    /// Wait (bounded) for the pattern's segments, listen a little longer,
    /// stop and check. `None` when the lab runs without `--wire`.
    pub fn finish(self) -> Option<WireResult> {
        let Some(r) = self.running else {
            return self.why_not.map(WireResult::NotCaptured);
        };
        let deadline = Instant::now() + WAIT_PATTERN;
        while Instant::now() < deadline
            && !r
                .pattern
                .seen(&packet::parse(&r.sniffer.snapshot(), r.port).0)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(SETTLE);
        let got = r.sniffer.stop();
        let (segments, bad) = packet::parse(&got.packets, r.port);
        let t0 = got.packets.first().map_or(Duration::ZERO, |p| p.ts);
        let syscalls = r
            .marks
            .into_iter()
            .map(|(at, what)| (at.as_secs_f64() - t0.as_secs_f64(), what))
            .collect();
        let mut checks = r.pattern.check(&segments, r.names);
        checks.push(Check {
            what: "capture complete".into(),
            ok: got.dropped == 0 && got.error.is_none() && bad == 0,
            saw: match &got.error {
                Some(e) => e.clone(),
                None => format!(
                    "{} packets, {} dropped, {bad} unparsable",
                    got.packets.len(),
                    got.dropped
                ),
            },
        });
        Some(WireResult::Captured(Trace {
            names: r.names,
            port: r.port,
            iface: r.iface,
            segments,
            syscalls,
            checks,
            raw: got.packets,
            pcap: None,
        }))
    }
}

/// What `--wire` found for one scenario.
#[derive(Debug, Clone)]
pub enum WireResult {
    Captured(Trace),
    NotCaptured(String),
}

/// One scenario's packets and the check of their pattern.
#[derive(Debug, Clone)]
pub struct Trace {
    names: [&'static str; 2],
    port: u16,
    iface: String,
    segments: Vec<Segment>,
    /// (seconds since the first packet, what the call did).
    syscalls: Vec<(f64, String)>,
    checks: Vec<Check>,
    raw: Vec<RawPacket>,
    /// Where `--pcap` wrote them, or why it could not.
    pub pcap: Option<Result<PathBuf, String>>,
}

impl WireResult {
    /// `false` only for a capture whose pattern failed (or whose pcap could
    /// not be written); not capturing is not a failure.
    pub fn ok(&self) -> bool {
        match self {
            WireResult::Captured(t) => {
                t.checks.iter().all(|c| c.ok) && !matches!(t.pcap, Some(Err(_)))
            }
            WireResult::NotCaptured(_) => true,
        }
    }

    /// `--pcap DIR`: write this capture to `DIR/SCENARIO.pcap`.
    pub fn write_pcap(&mut self, dir: &Path, scenario: &str) {
        if let WireResult::Captured(t) = self {
            t.pcap = Some(pcap::write(dir, scenario, &t.raw).map_err(|e| format!("{e:#}")));
        }
    }

    /// The lines under a scenario in the table: packets, then checks.
    pub fn lines(&self) -> Vec<String> {
        match self {
            WireResult::NotCaptured(why) => vec![format!("wire: not captured: {why}")],
            WireResult::Captured(t) => {
                let mut v = vec![format!(
                    "wire: port {} on {}, {} = the socket on it, {} = the other end",
                    t.port, t.iface, t.names[0], t.names[1]
                )];
                let n = t.segments.len();
                let mut calls = t.syscalls.iter().peekable();
                for (i, seg) in t.segments.iter().enumerate() {
                    while let Some((at, what)) = calls.next_if(|(at, _)| *at < seg.t) {
                        v.push(format!("  {at:>9.6} ---- {what}"));
                    }
                    // Long streams: the start and the end tell the story.
                    if n > 2 * TABLE_EDGE && i == TABLE_EDGE {
                        v.push(format!(
                            "  ... {} segments not shown (--json and --pcap have them all)",
                            n - 2 * TABLE_EDGE
                        ));
                    }
                    if n <= 2 * TABLE_EDGE || i < TABLE_EDGE || i >= n - TABLE_EDGE {
                        v.push(format!("  {}", seg.line(t.names)));
                    }
                }
                for (at, what) in calls {
                    v.push(format!("  {at:>9.6} ---- {what}"));
                }
                for c in &t.checks {
                    v.push(format!(
                        "  {} {} ({})",
                        if c.ok { "ok  " } else { "FAIL" },
                        c.what,
                        c.saw
                    ));
                }
                match &t.pcap {
                    Some(Ok(p)) => v.push(format!("  pcap: {}", p.display())),
                    Some(Err(e)) => v.push(format!("  FAIL pcap: {e}")),
                    None => {}
                }
                v
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            WireResult::NotCaptured(why) => serde_json::json!({ "captured": false, "why": why }),
            WireResult::Captured(t) => serde_json::json!({
                "captured": true,
                "pass": self.ok(),
                "port": t.port,
                "interface": t.iface,
                "names": { "listen": t.names[0], "connect": t.names[1] },
                "packets": t.segments.iter().map(|s| s.to_json(t.names)).collect::<Vec<_>>(),
                "syscalls": t.syscalls.iter().map(|(at, what)| serde_json::json!({ "t": at, "what": what })).collect::<Vec<_>>(),
                "checks": t.checks.iter().map(|c| serde_json::json!({ "what": c.what, "ok": c.ok, "saw": c.saw })).collect::<Vec<_>>(),
                "pcap": match &t.pcap { Some(Ok(p)) => Some(p.display().to_string()), _ => None },
                "pcap_error": match &t.pcap { Some(Err(e)) => Some(e.as_str()), _ => None },
            }),
        }
    }
}
