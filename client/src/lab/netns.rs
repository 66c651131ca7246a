//! "Pulled cable" for real: two hosts (network namespaces) cabled to a
//! switch (a third namespace with a bridge) by veth pairs, link-local
//! addresses inside the namespaces only, a TCP connection across, then the
//! far host's cable is pulled at the switch. No FIN, no RST: nothing at all arrives, and only
//! TCP_USER_TIMEOUT (data in flight) or keepalive (idle) ends it, ETIMEDOUT.
//!
//! **Invariant:** the namespaces (and with them the veth pair) are removed by
//! [`NetnsPair`]'s `Drop`, on success, failure and panic; stale pairs left by a
//! lab that was killed are removed at the next start.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sockchat_shared::sockopt;

use super::cleanup::{self, Resource};
use super::nsenter::in_netns;
use super::outcome::{Outcome, Status, code_of};
use super::wire::{Kind, Pattern, Side, Wire};

const PREFIX: &str = "sclab-";
/// Inside the namespaces only; never configured on the host.
const ADDR_NEAR: &str = "169.254.77.1";
const ADDR_FAR: &str = "169.254.77.2";
const USER_TIMEOUT: Duration = Duration::from_millis(2500);
/// Keepalive: first probe after 1 s idle, then every 1 s, dead after 2
/// unanswered probes (about 3 s).
const KA_IDLE: i32 = 1;
const KA_INTVL: i32 = 1;
const KA_CNT: i32 = 2;
/// Far longer than either timer: a read that waits this long is a failure.
const WAIT_LIMIT: Duration = Duration::from_secs(12);

/// Run `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = cleanup::child_command("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run ip {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Why this machine cannot run the namespace scenarios, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (CAP_NET_ADMIN) to create network namespaces; run as root".into());
    }
    match cleanup::child_command("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some("`ip` (iproute2) is not installed".into())
        }
        Err(e) => Some(format!("cannot run `ip`: {e}")),
    }
}

/// Three namespaces, `sclab-{a,s,b}-PID-N`: the near host, a switch (a
/// bridge) and the far host, cabled with two veth pairs. Pulling the far
/// host's cable at the switch leaves the near host's own link up, as on a
/// real LAN: its packets still leave, they just go nowhere.
/// Created by [`NetnsPair::create`], deleted on drop.
pub struct NetnsPair {
    pub near: String,
    pub switch: String,
    pub far: String,
    /// The switch port the far host's cable is plugged into.
    pub far_port: String,
    /// The near host's end of its cable (where `--wire` captures).
    pub near_dev: String,
}

impl NetnsPair {
    pub fn create(tag: u32) -> anyhow::Result<Self> {
        remove_stale();
        let pid = std::process::id();
        // Guard first: whatever part of the setup fails, Drop removes the rest.
        let pair = NetnsPair {
            near: format!("{PREFIX}a-{pid}-{tag}"),
            switch: format!("{PREFIX}s-{pid}-{tag}"),
            far: format!("{PREFIX}b-{pid}-{tag}"),
            // Interface names: at most 15 bytes (3 letters, 7-digit pid, tag).
            far_port: format!("swb{pid}{tag}"),
            near_dev: format!("sca{pid}{tag}"),
        };
        let (near_dev, near_port) = (pair.near_dev.clone(), format!("swa{pid}{tag}"));
        let far_dev = format!("scb{pid}{tag}");
        let bridge = format!("br{pid}{tag}");
        for ns in [&pair.near, &pair.switch, &pair.far] {
            // Registered before it exists: an interrupt mid-setup still
            // removes it (deleting a missing namespace is harmless).
            cleanup::create_registered(Resource::Netns(ns.clone()), || ip(&["netns", "add", ns]))?;
        }
        let sw = pair.switch.as_str();
        ip(&["-n", sw, "link", "add", &bridge, "type", "bridge"])?;
        for (host, dev, port) in [
            (&pair.near, &near_dev, &near_port),
            (&pair.far, &far_dev, &pair.far_port),
        ] {
            ip(&[
                "link", "add", dev, "netns", host, "type", "veth", "peer", "name", port, "netns",
                sw,
            ])?;
            ip(&["-n", sw, "link", "set", port, "master", &bridge])?;
            ip(&["-n", sw, "link", "set", port, "up"])?;
            ip(&["-n", host, "link", "set", dev, "up"])?;
        }
        ip(&["-n", sw, "link", "set", &bridge, "up"])?;
        ip(&[
            "-n",
            &pair.near,
            "addr",
            "add",
            &format!("{ADDR_NEAR}/24"),
            "dev",
            &near_dev,
        ])?;
        ip(&[
            "-n",
            &pair.far,
            "addr",
            "add",
            &format!("{ADDR_FAR}/24"),
            "dev",
            &far_dev,
        ])?;
        Ok(pair)
    }

    /// "Pull the cable": the switch port of the far host goes down. No
    /// packet tells anyone; the near host's link stays up.
    pub fn pull_cable(&self) -> anyhow::Result<()> {
        ip(&["-n", &self.switch, "link", "set", &self.far_port, "down"])
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it
        // the peer end. Errors are ignored: a half-built pair has less to do.
        for ns in [&self.near, &self.switch, &self.far] {
            let _ = ip(&["netns", "del", ns]);
            cleanup::unregister(&Resource::Netns(ns.clone()));
        }
    }
}

/// Remove `sclab-*-PID-*` namespaces whose lab process no longer exists
/// (a lab killed before its Drop could run).
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Which timer is supposed to notice.
#[derive(Clone, Copy)]
enum Detector {
    /// Data in flight, TCP_USER_TIMEOUT.
    UserTimeout,
    /// Idle connection, keepalive probes.
    Keepalive,
}

pub fn cable_pulled_send(wire: &Wire) -> Outcome {
    cable(wire, "cable-pulled-send", Detector::UserTimeout, 1)
}

pub fn cable_pulled_idle(wire: &Wire) -> Outcome {
    cable(wire, "cable-pulled-idle", Detector::Keepalive, 2)
}

/// What the near host's cable must carry: the handshake and the "hello"
/// that proves the path, then, once the cable is pulled, our unanswered
/// segments (retransmissions with growing gaps, or keepalive probes) and
/// nothing at all from the far host.
fn pattern(det: Detector) -> Pattern {
    let p = Pattern::default()
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .then(Side::Connect, Kind::Data);
    match det {
        Detector::UserTimeout => p
            .then(Side::Connect, Kind::Retransmit)
            .then(Side::Connect, Kind::Retransmit)
            .silent_after(Side::Connect, Kind::Retransmit)
            .growing_gaps(Side::Connect)
            // TCP_USER_TIMEOUT ends it silently (tcp_write_err): no RST.
            .never(Some(Side::Connect), Kind::Rst),
        Detector::Keepalive => p
            .then(Side::Connect, Kind::KeepAlive)
            .then(Side::Connect, Kind::KeepAlive)
            // When keepalive gives up, Linux sends an RST into the dead
            // path (tcp_keepalive_timer), then reports ETIMEDOUT.
            .then(Side::Connect, Kind::Rst)
            .silent_after(Side::Connect, Kind::KeepAlive),
    }
}

fn cable(wire: &Wire, name: &'static str, det: Detector, tag: u32) -> Outcome {
    let action = match det {
        Detector::UserTimeout => format!(
            "cable pulled at the switch (3 netns), then write; TCP_USER_TIMEOUT={}ms",
            USER_TIMEOUT.as_millis()
        ),
        Detector::Keepalive => format!(
            "cable pulled at the switch (3 netns) on an idle connection; keepalive {KA_IDLE}s+{KA_CNT}x{KA_INTVL}s"
        ),
    };
    if let Some(why) = skip_reason() {
        let mut o = Outcome::judge(
            name,
            action,
            "skipped",
            None,
            "timed-out",
            Some(libc::ETIMEDOUT),
            false,
            "not run: see the skip reason",
        );
        o.status = Status::Skipped(why);
        return o.with_target("network namespaces");
    }
    let run = || -> anyhow::Result<Outcome> {
        let pair = NetnsPair::create(tag)?;
        let far_addr: SocketAddr = format!("{ADDR_FAR}:0").parse()?;
        let listener = in_netns(&pair.far, move || {
            let l = TcpListener::bind(far_addr)?;
            Ok(l)
        })?;
        let target: SocketAddr = SocketAddr::new(far_addr.ip(), listener.local_addr()?.port());
        let mut cap = wire.capture_on(
            &pair.near_dev,
            Some(&pair.near),
            target.port(),
            ["far", "near"],
            pattern(det),
        )?;
        let client = in_netns(&pair.near, move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            let fd = s.as_raw_fd();
            match det {
                Detector::UserTimeout => {
                    s.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
                }
                Detector::Keepalive => {
                    sockopt::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
                    sockopt::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KA_IDLE)?;
                    sockopt::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, KA_INTVL)?;
                    sockopt::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KA_CNT)?;
                }
            }
            s.connect_timeout(&target.into(), Duration::from_secs(3))?;
            Ok(TcpStream::from(s))
        })?;
        let (mut far_side, _) = super::probe::accept_within(&listener, Duration::from_secs(3))?;
        // Prove the path works before pulling it.
        let mut client = client;
        client.write_all(b"hello")?;
        let mut b = [0u8; 5];
        far_side.set_read_timeout(Some(Duration::from_secs(3)))?;
        far_side.read_exact(&mut b)?;

        pair.pull_cable()?;
        cap.mark("switch: far host's port set down (cable pulled)");
        let pulled = Instant::now();
        let mut details = vec![format!(
            "netns {} ({ADDR_NEAR}) <-veth-> {} (bridge) <-veth-> {} ({ADDR_FAR}); switch port {} set down",
            pair.near, pair.switch, pair.far, pair.far_port
        )];
        if let Detector::UserTimeout = det {
            let w = client.write(b"are you there?");
            cap.mark("near: write(14 bytes)");
            details.push(format!(
                "write after the pull: {} (queued; nobody can tell yet)",
                match &w {
                    Ok(n) => format!("ok, {n} bytes"),
                    Err(e) => e.to_string(),
                }
            ));
        }
        // Block in read() like a chat client does; sample the kernel's view
        // from this thread meanwhile.
        let client = Arc::new(client);
        let reader = {
            let c = Arc::clone(&client);
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(WAIT_LIMIT));
                let mut buf = [0u8; 64];
                let r = (&*c).read(&mut buf);
                (r, pulled.elapsed())
            })
        };
        let fd = client.as_raw_fd();
        let mut next = Instant::now();
        while !reader.is_finished() && pulled.elapsed() < WAIT_LIMIT + Duration::from_secs(1) {
            if Instant::now() >= next {
                if let Ok(i) = sockopt::tcp_info(fd) {
                    details.push(format!(
                        "t={:.1}s state={} unacked={} retransmits={} keepalive_probes={} rto={}ms",
                        pulled.elapsed().as_secs_f32(),
                        i.state_name(),
                        i.unacked,
                        i.retransmits,
                        i.probes,
                        i.rto_us / 1000
                    ));
                }
                next += Duration::from_millis(500);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (r, took) = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        cap.mark(format!(
            "near: read() -> {}",
            match &r {
                Ok(n) => format!("{n}"),
                Err(e) => super::probe::err_text(e),
            }
        ));
        let (obs, errno) = match &r {
            Ok(0) => ("eof".to_string(), None),
            Ok(n) => (format!("data ({n} bytes)"), None),
            Err(e) => code_of(e),
        };
        details.push(format!(
            "read() returned {} after {took:?}; far side still thinks: {}",
            match &r {
                Ok(n) => format!("{n}"),
                Err(e) => e.to_string(),
            },
            sockopt::tcp_info(far_side.as_raw_fd())
                .map(|i| i.state_name())
                .unwrap_or("n/a"),
        ));
        let why = match det {
            Detector::UserTimeout => {
                "no FIN or RST can cross a dead path; unacknowledged data is retransmitted until TCP_USER_TIMEOUT expires (default: ~15 min of retries), then ETIMEDOUT"
            }
            Detector::Keepalive => {
                "an idle connection over a dead path looks perfectly healthy; only keepalive probes (off by default, 2 h idle default) find out, then ETIMEDOUT"
            }
        };
        let trace = cap.finish();
        drop(pair); // explicit: namespaces go away before we report
        Ok(Outcome::judge(
            name,
            action.clone(),
            obs,
            errno,
            "timed-out",
            Some(libc::ETIMEDOUT),
            true,
            why,
        )
        .with_target("network namespaces")
        .with_details(details)
        .with_wire(trace))
    };
    run().unwrap_or_else(|e| {
        Outcome::setup_failed(name, "timed-out", &e).with_target("network namespaces")
    })
}
