//! Hosts made of network namespaces, for the tests that need a real link
//! between two machines: a pulled cable (`plain_cable.rs`), kernel drops
//! (`transfer_netns.rs`), mDNS discovery (`discovery.rs`). Each test makes
//! its own namespaces (named after its tag and the process id) and they
//! are deleted on drop, so traffic never leaves them.
//!
//! Needs root (CAP_NET_ADMIN) and `ip` (iproute2), `nft` (nftables) for
//! firewall rules: [`preconditions`] skips without them locally and fails
//! under CI (`crate::require`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Plain;

/// Run `program args` (with `stdin`); its stdout, or an error naming it
/// with its stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .map(|mut i| i.write_all(text.as_bytes()))
            .transpose()
            .map_err(|e| format!("{program} stdin: {e}"))?;
    }
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args, None).map(|_| ())
}

/// Root, `ip`, and `nft` when `nft` is true; otherwise skip with the
/// reason (a failure under CI).
pub fn preconditions(nft: bool) -> bool {
    crate::require(
        crate::is_root(),
        "needs root (CAP_NET_ADMIN) for network namespaces",
    ) && crate::require(
        crate::on_path("ip"),
        "needs `ip` (iproute2; ./test.sh installs it)",
    ) && (!nft
        || crate::require(
            crate::on_path("nft"),
            "needs `nft` (nftables; ./test.sh installs it)",
        ))
}

/// Hosts (namespaces) with one interface each, on one link: a veth pair
/// ([`Net::pair`]) or ports of a bridge in a switch namespace
/// ([`Net::bridged`]). Host `i` is `hosts[i]`, its interface `dev(i)`, its
/// address `addr(i)` in the /24 `subnet` (`169.254.77` → `.1`, `.2`...).
pub struct Net {
    pub hosts: Vec<String>,
    /// The switch namespace of a bridged net; its port for host `i` is
    /// [`Net::port`].
    pub switch: Option<String>,
    devs: Vec<String>,
    subnet: String,
}

impl Net {
    fn named(tag: &str, n: usize, devs: Vec<String>, subnet: &str) -> Net {
        let id = std::process::id();
        Net {
            hosts: (0..n).map(|i| format!("sct-{tag}-{i}-{id}")).collect(),
            switch: None,
            devs,
            subnet: subnet.to_string(),
        }
    }

    /// Two hosts joined by a veth pair whose ends are `devs`.
    pub fn pair(tag: &str, subnet: &str, devs: [&str; 2]) -> Result<Net, String> {
        let n = Net::named(tag, 2, devs.iter().map(|d| d.to_string()).collect(), subnet);
        for ns in &n.hosts {
            ip(&["netns", "add", ns])?;
        }
        ip(&[
            "link",
            "add",
            devs[0],
            "netns",
            &n.hosts[0],
            "type",
            "veth",
            "peer",
            "name",
            devs[1],
            "netns",
            &n.hosts[1],
        ])?;
        n.address_all()?;
        Ok(n)
    }

    /// `count` hosts, interface `e0`, `e1`... each cabled to port `p0`,
    /// `p1`... of a bridge in a switch namespace.
    pub fn bridged(tag: &str, subnet: &str, count: usize) -> Result<Net, String> {
        let mut n = Net::named(
            tag,
            count,
            (0..count).map(|i| format!("e{i}")).collect(),
            subnet,
        );
        let sw = format!("sct-{tag}-sw-{}", std::process::id());
        ip(&["netns", "add", &sw])?;
        n.switch = Some(sw.clone());
        for ns in &n.hosts {
            ip(&["netns", "add", ns])?;
        }
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        for i in 0..count {
            let port = n.port(i);
            ip(&[
                "link",
                "add",
                &n.devs[i],
                "netns",
                &n.hosts[i],
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &sw,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
        }
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        n.address_all()?;
        Ok(n)
    }

    fn address_all(&self) -> Result<(), String> {
        for (i, ns) in self.hosts.iter().enumerate() {
            let cidr = format!("{}/24", self.addr(i));
            ip(&["-n", ns, "addr", "add", &cidr, "dev", &self.devs[i]])?;
            ip(&["-n", ns, "link", "set", &self.devs[i], "up"])?;
        }
        Ok(())
    }

    /// Bring every host's `lo` up (a new namespace's is down). Not by
    /// default: with `lo` down a host never receives the ICMP "host
    /// unreachable" its own kernel sends itself when ARP for a pulled
    /// cable's peer fails, so the cable stays silent (`plain_cable.rs`:
    /// only the TCP timers find out).
    pub fn loopback_up(&self) -> Result<(), String> {
        for ns in &self.hosts {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Host `i`'s address (`SUBNET.(i+1)`).
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// Host `i`'s interface.
    pub fn dev(&self, i: usize) -> &str {
        &self.devs[i]
    }

    /// The switch's port cabled to host `i` (bridged nets).
    pub fn port(&self, i: usize) -> String {
        format!("p{i}")
    }

    /// Load an nftables ruleset (`nft -f -`) in host `i`.
    pub fn nft(&self, i: usize, rules: &str) -> Result<(), String> {
        run(
            "ip",
            &["netns", "exec", &self.hosts[i], "nft", "-f", "-"],
            Some(rules),
        )
        .map(|_| ())
    }

    /// The packets counted by every `counter` of table `FAMILY NAME` in
    /// host `i` (what its rules dropped, for a drop rule).
    pub fn nft_packets(&self, i: usize, family: &str, table: &str) -> Result<u64, String> {
        let out = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.hosts[i],
                "nft",
                "list",
                "table",
                family,
                table,
            ],
            None,
        )?;
        Ok(out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse::<u64>().ok())
            .sum())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(self.switch.iter()) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// `ip netns exec NS program args`, without the user's config (`ip netns
/// exec` execs the program, so the child's pid is the program's).
pub fn netns_command(ns: &str, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

/// `program args` inside namespace `ns` (stderr dropped), its stdout
/// lines collected.
pub fn in_netns(ns: &str, program: &Path, args: &[&str], name: &str, step: Duration) -> Plain {
    Plain::spawn(
        netns_command(ns, program, args).stderr(Stdio::null()),
        name.to_string(),
        step,
    )
}
