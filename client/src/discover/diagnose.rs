//! Why no server answered: the causes a client can check on its own host,
//! each from what the kernel or a tool says (parsed here, pure, unit-tested
//! on real outputs), never guessed:
//!
//! - interfaces: which ones were asked, which not and why (loopback, down,
//!   no MULTICAST flag, no address); several links are named;
//! - multicast route: the routing table (`/proc/net/route`) for
//!   224.0.0.251, the mDNS group;
//! - firewall: the nftables ruleset (`nft list ruleset`): a rule or a
//!   `policy drop` that drops 5353/udp, or that the ruleset cannot be read;
//! - loopback: a server bound to 127.0.0.1 / ::1 is never announced and
//!   cannot be seen from another host (a hint; a listener on the default
//!   ports on this host's loopback is named).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockchat_shared::netif::Iface;

/// The mDNS IPv4 group and port (RFC 6762).
pub const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
pub const MDNS_PORT: u16 = 5353;
/// How long `nft list ruleset` may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// This explains why nothing was found.
    Cause,
    /// Checked: not the reason.
    Ok,
    /// Could not be checked (and why is in the text).
    Unknown,
    /// Worth knowing; not checked from here.
    Hint,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Cause => "cause",
            Status::Ok => "ok",
            Status::Unknown => "unknown",
            Status::Hint => "hint",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `interfaces`, `multicast-route`, `firewall`, `loopback`.
    pub check: &'static str,
    pub status: Status,
    pub text: String,
}

fn finding(check: &'static str, status: Status, text: impl Into<String>) -> Finding {
    Finding {
        check,
        status,
        text: text.into(),
    }
}

/// Run every check (`all`: the host's interfaces; `queried`: those asked).
pub fn run(all: &[Iface], queried: &[Iface]) -> Vec<Finding> {
    let routes = std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .map_err(|e| e.to_string());
    let mut listeners = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(f) {
            listeners.extend(parse_tcp_listeners(&t));
        }
    }
    vec![
        interfaces(all, queried),
        multicast_route(routes, queried),
        firewall(read_nft()),
        loopback(&listeners),
    ]
}

/// The interfaces asked and not asked.
pub fn interfaces(all: &[Iface], queried: &[Iface]) -> Finding {
    let skipped: Vec<String> = all
        .iter()
        .filter(|i| !queried.iter().any(|q| q.name == i.name))
        .map(|i| format!("{} ({})", i.name, i.why_not_mdns().unwrap_or("not asked")))
        .collect();
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!("; not queried: {}", skipped.join(", "))
    };
    let asked: Vec<String> = queried.iter().map(Iface::describe).collect();
    match queried.len() {
        0 => finding(
            "interfaces",
            Status::Cause,
            format!(
                "no interface to ask on: mDNS needs one that is up, has the MULTICAST flag, an \
                 address and is not loopback{skipped}"
            ),
        ),
        1 => finding(
            "interfaces",
            Status::Ok,
            format!("queried {}{skipped}", asked.join(", ")),
        ),
        _ => finding(
            "interfaces",
            Status::Hint,
            format!(
                "several interfaces queried: {}{skipped}. mDNS does not cross routers: the server \
                 must be on the same link as one of them",
                asked.join(", ")
            ),
        ),
    }
}

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dest: Ipv4Addr,
    pub mask: Ipv4Addr,
}

impl Route {
    fn covers(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask) == u32::from(self.dest)
    }

    fn prefix(&self) -> u32 {
        u32::from(self.mask).count_ones()
    }

    fn describe(&self) -> String {
        format!("{}/{} dev {}", self.dest, self.prefix(), self.iface)
    }
}

/// `/proc/net/route`: a header line, then `Iface Destination Gateway Flags
/// RefCnt Use Metric Mask ...` with addresses in little-endian hex.
pub fn parse_routes(text: &str) -> Vec<Route> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Route {
                iface: f.first()?.to_string(),
                dest: hex(f.get(1)?)?,
                mask: hex(f.get(7)?)?,
            })
        })
        .collect()
}

/// Which route the kernel would pick for the mDNS group (longest prefix).
pub fn multicast_route(routes: Result<Vec<Route>, String>, queried: &[Iface]) -> Finding {
    const C: &str = "multicast-route";
    let routes = match routes {
        Ok(r) => r,
        Err(e) => {
            return finding(
                C,
                Status::Unknown,
                format!("cannot read /proc/net/route: {e}"),
            );
        }
    };
    let best = routes
        .iter()
        .filter(|r| r.covers(MDNS_GROUP))
        .max_by_key(|r| r.prefix());
    let names: Vec<&str> = queried.iter().map(|i| i.name.as_str()).collect();
    match best {
        None => finding(
            C,
            Status::Hint,
            format!(
                "no route covers {MDNS_GROUP} (no default route, no 224.0.0.0/4; `ip route get \
                 {MDNS_GROUP}` fails). sockchat names the interface on every mDNS packet and \
                 needs none, but a server or tool that lets the kernel pick the interface cannot \
                 send to or join the group (ENODEV): ip route add 224.0.0.0/4 dev {}",
                names.first().copied().unwrap_or("IFACE")
            ),
        ),
        Some(r) if names.contains(&r.iface.as_str()) => finding(
            C,
            Status::Ok,
            format!("{MDNS_GROUP} routes via {} ({})", r.iface, r.describe()),
        ),
        Some(r) => finding(
            C,
            Status::Hint,
            format!(
                "{MDNS_GROUP} routes via {} ({}), not via the interface(s) queried ({}): \
                 sockchat asks on each of those itself, but a server or tool that lets the kernel \
                 pick the interface uses the other link",
                r.iface,
                r.describe(),
                names.join(", ")
            ),
        ),
    }
}

/// What `nft list ruleset` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftOutput {
    /// The ruleset text.
    Ruleset(String),
    /// `nft` is not installed.
    Missing,
    /// It ran and failed (its message: often "Operation not permitted").
    Failed(String),
}

/// Run `nft list ruleset` (bounded in time).
fn read_nft() -> NftOutput {
    let child = Command::new("nft")
        .args(["list", "ruleset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return NftOutput::Missing,
        Err(e) => return NftOutput::Failed(e.to_string()),
    };
    let deadline = Instant::now() + NFT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return NftOutput::Failed(format!("no answer in {} s", NFT_TIMEOUT.as_secs()));
            }
            Err(e) => return NftOutput::Failed(e.to_string()),
        }
    }
    match child.wait_with_output() {
        Ok(o) if o.status.success() => {
            NftOutput::Ruleset(String::from_utf8_lossy(&o.stdout).into_owned())
        }
        Ok(o) => NftOutput::Failed(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => NftOutput::Failed(e.to_string()),
    }
}

/// A rule or chain policy that drops mDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftDrop {
    /// `inet filter`.
    pub table: String,
    pub chain: String,
    /// `input`, `output`, `prerouting`...
    pub hook: String,
    /// The rule as nft prints it, or `policy drop`.
    pub rule: String,
    /// The rule's counter, when it has one.
    pub packets: Option<u64>,
}

impl NftDrop {
    fn describe(&self) -> String {
        let counted = match self.packets {
            Some(n) => format!(" ({n} packets dropped so far)"),
            None => String::new(),
        };
        format!(
            "table {} chain {} (hook {}): `{}`{counted}",
            self.table, self.chain, self.hook, self.rule
        )
    }
}

/// Rules and policies in `nft list ruleset` that drop 5353/udp on a hook
/// mDNS crosses (input and prerouting for answers, output and
/// postrouting for questions): a drop/reject rule naming port 5353 (or
/// `mdns`), one dropping all UDP, or a chain with `policy drop` where no
/// rule accepts 5353.
pub fn nft_drops(ruleset: &str) -> Vec<NftDrop> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut chain: Option<(String, String, bool, bool)> = None; // name, hook, policy drop, accepts 5353
    for raw in ruleset.lines() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("table ") {
            table = rest.trim_end_matches('{').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = Some((
                rest.trim_end_matches('{').trim().to_string(),
                String::new(),
                false,
                false,
            ));
        } else if line == "}" {
            if let Some((name, hook, true, false)) = chain.take()
                && mdns_hook(&hook)
            {
                out.push(NftDrop {
                    table: table.clone(),
                    chain: name,
                    hook,
                    rule: "policy drop".into(),
                    packets: None,
                });
            }
        } else if let Some((name, hook, policy_drop, accepts)) = &mut chain {
            if line.starts_with("type ") {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "hook") {
                    *hook = words.get(i + 1).unwrap_or(&"").to_string();
                }
                *policy_drop = line.contains("policy drop");
                continue;
            }
            let words: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','))
                .filter(|w| !w.is_empty())
                .collect();
            let names_mdns = words.iter().any(|w| *w == "5353" || *w == "mdns");
            let verdict_drop = words.iter().any(|w| *w == "drop" || *w == "reject");
            let accept = words.contains(&"accept");
            if names_mdns && accept {
                *accepts = true;
            }
            let all_udp = (line.contains("l4proto udp") || line.contains("protocol udp"))
                && !line.contains("dport")
                && !line.contains("sport");
            if verdict_drop && mdns_hook(hook) && (names_mdns || all_udp) {
                out.push(NftDrop {
                    table: table.clone(),
                    chain: name.clone(),
                    hook: hook.clone(),
                    rule: line.to_string(),
                    packets: words
                        .iter()
                        .position(|w| *w == "packets")
                        .and_then(|i| words.get(i + 1)?.parse().ok()),
                });
            }
        }
    }
    out
}

fn mdns_hook(hook: &str) -> bool {
    matches!(hook, "input" | "prerouting" | "output" | "postrouting")
}

/// The firewall finding from what nft said.
pub fn firewall(nft: NftOutput) -> Finding {
    const C: &str = "firewall";
    match nft {
        NftOutput::Missing => finding(
            C,
            Status::Unknown,
            "nft (nftables) is not installed: the firewall was not checked",
        ),
        NftOutput::Failed(e) => finding(
            C,
            Status::Unknown,
            format!(
                "cannot read the nftables ruleset (nft: {e}): run as root to check whether \
                 5353/udp is dropped"
            ),
        ),
        NftOutput::Ruleset(text) => {
            let drops = nft_drops(&text);
            if drops.is_empty() {
                let tables = text.lines().filter(|l| l.starts_with("table ")).count();
                finding(
                    C,
                    Status::Ok,
                    format!(
                        "nftables ruleset read ({tables} tables): nothing drops {MDNS_PORT}/udp"
                    ),
                )
            } else {
                let rules: Vec<String> = drops.iter().map(NftDrop::describe).collect();
                finding(
                    C,
                    Status::Cause,
                    format!(
                        "nftables drops mDNS ({MDNS_PORT}/udp): {}. Servers' answers never reach \
                         this program; allow it with e.g. `nft insert rule TABLE CHAIN udp dport \
                         {MDNS_PORT} accept`",
                        rules.join("; ")
                    ),
                )
            }
        }
    }
}

/// Listening sockets of `/proc/net/tcp` or `/proc/net/tcp6` (state `0A`).
pub fn parse_tcp_listeners(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3)? != &"0A" {
                return None;
            }
            let (ip, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = match ip.len() {
                8 => IpAddr::V4(Ipv4Addr::from(
                    u32::from_str_radix(ip, 16).ok()?.swap_bytes(),
                )),
                32 => {
                    // Four host-order 32-bit words.
                    let mut b = [0u8; 16];
                    for (i, chunk) in b.chunks_mut(4).enumerate() {
                        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                        chunk.copy_from_slice(&w.swap_bytes().to_be_bytes());
                    }
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// The loopback hint, with any listener on this host's loopback on the
/// default ports (7878 plain, 7879 TLS).
pub fn loopback(listeners: &[SocketAddr]) -> Finding {
    const C: &str = "loopback";
    let mut local: Vec<&SocketAddr> = listeners
        .iter()
        .filter(|a| a.ip().is_loopback() && matches!(a.port(), 7878 | 7879))
        .collect();
    local.sort();
    local.dedup();
    let general = "a server bound to loopback only (127.0.0.1 or ::1) is never announced and \
                   cannot be seen or reached from another host: its log says \"discovery: not \
                   announced: listening on loopback only\"";
    if local.is_empty() {
        finding(C, Status::Hint, general)
    } else {
        let list: Vec<String> = local.iter().map(|a| a.to_string()).collect();
        finding(
            C,
            Status::Cause,
            format!(
                "something listens on {} on this host, on loopback only: if it is a \
                 sockchat-server it is not announced; connect with --server {}. In general, {general}",
                list.join(", "),
                list[0]
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addrs: &[&str], loopback: bool, multicast: bool) -> Iface {
        Iface {
            name: name.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            up: true,
            loopback,
            multicast,
        }
    }

    /// A real `/proc/net/route` of a namespace with one /24 on `eb`.
    const ROUTE_LINK_ONLY: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eb\t004DFEA9\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    /// A laptop: default route via wlan0, a /24 on eth0.
    const ROUTE_DEFAULT: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
        eth0\t0007A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn routes_parse_and_the_group_is_looked_up() {
        let r = parse_routes(ROUTE_LINK_ONLY);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].describe(), "169.254.77.0/24 dev eb");
        let eb = [iface("eb", &["169.254.77.2"], false, true)];
        let f = multicast_route(Ok(r), &eb);
        assert_eq!(f.status, Status::Hint);
        assert!(
            f.text.contains("ip route add 224.0.0.0/4 dev eb"),
            "{}",
            f.text
        );

        let eth0 = [iface("eth0", &["192.168.7.2"], false, true)];
        let f = multicast_route(Ok(parse_routes(ROUTE_DEFAULT)), &eth0);
        assert_eq!(f.status, Status::Hint, "{}", f.text);
        assert!(
            f.text.contains("via wlan0 (0.0.0.0/0 dev wlan0)"),
            "{}",
            f.text
        );

        let mut routes = parse_routes(ROUTE_DEFAULT);
        routes.push(Route {
            iface: "eth0".into(),
            dest: Ipv4Addr::new(224, 0, 0, 0),
            mask: Ipv4Addr::new(240, 0, 0, 0),
        });
        let f = multicast_route(Ok(routes), &eth0);
        assert_eq!(f.status, Status::Ok, "{}", f.text);
        assert_eq!(
            multicast_route(Err("gone".into()), &eth0).status,
            Status::Unknown
        );
    }

    /// `nft list ruleset` as nftables 1.0 prints it, with the test's rule
    /// and an unrelated table.
    const NFT_DROP: &str = "table inet filter {\n\
        \tchain input {\n\
        \t\ttype filter hook input priority filter; policy accept;\n\
        \t\ttcp dport 22 accept\n\
        \t}\n\
        }\n\
        table inet sockchat_test {\n\
        \tchain in {\n\
        \t\ttype filter hook input priority filter; policy accept;\n\
        \t\tudp dport 5353 counter packets 4 bytes 368 drop\n\
        \t}\n\
        }\n";

    #[test]
    fn an_nft_rule_dropping_5353_is_the_cause() {
        let d = nft_drops(NFT_DROP);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].table, "inet sockchat_test");
        assert_eq!((d[0].chain.as_str(), d[0].hook.as_str()), ("in", "input"));
        assert_eq!(d[0].packets, Some(4));
        let f = firewall(NftOutput::Ruleset(NFT_DROP.into()));
        assert_eq!(f.status, Status::Cause);
        assert!(
            f.text.contains("udp dport 5353 counter packets 4"),
            "{}",
            f.text
        );
        assert!(f.text.contains("4 packets dropped so far"), "{}", f.text);
    }

    #[test]
    fn sets_services_all_udp_and_policies_are_seen() {
        let set = "table ip t {\n chain c {\n  type filter hook prerouting priority raw; policy accept;\n  udp dport { 53, 5353 } reject\n }\n}\n";
        assert_eq!(nft_drops(set).len(), 1);
        let named = "table ip t {\n chain c {\n  type filter hook output priority 0; policy accept;\n  udp sport mdns drop\n }\n}\n";
        assert_eq!(nft_drops(named).len(), 1);
        let all = "table ip t {\n chain c {\n  type filter hook input priority 0; policy accept;\n  meta l4proto udp drop\n }\n}\n";
        assert_eq!(nft_drops(all).len(), 1);
        let policy = "table ip t {\n chain c {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n";
        let d = nft_drops(policy);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rule, "policy drop");
        let allowed = "table ip t {\n chain c {\n  type filter hook input priority 0; policy drop;\n  udp dport 5353 accept\n }\n}\n";
        assert!(nft_drops(allowed).is_empty());
        // Not on a hook mDNS crosses, or another port: not a cause.
        let fwd = "table ip t {\n chain c {\n  type filter hook forward priority 0; policy drop;\n  udp dport 5353 drop\n }\n}\n";
        assert!(nft_drops(fwd).is_empty());
        let other = "table ip t {\n chain c {\n  type filter hook input priority 0; policy accept;\n  udp dport 53530 drop\n }\n}\n";
        assert!(nft_drops(other).is_empty());
        let f = firewall(NftOutput::Ruleset(String::new()));
        assert_eq!(f.status, Status::Ok);
    }

    #[test]
    fn an_unreadable_ruleset_says_so() {
        let f = firewall(NftOutput::Failed(
            "Operation not permitted (you must be root)".into(),
        ));
        assert_eq!(f.status, Status::Unknown);
        assert!(f.text.contains("Operation not permitted"), "{}", f.text);
        assert_eq!(firewall(NftOutput::Missing).status, Status::Unknown);
    }

    #[test]
    fn interfaces_say_which_were_asked() {
        let lo = iface("lo", &["127.0.0.1"], true, false);
        let eb = iface("eb", &["169.254.77.2"], false, true);
        let wl = iface("wlan0", &["10.0.0.2"], false, true);
        let f = interfaces(&[eb.clone(), lo.clone()], std::slice::from_ref(&eb));
        assert_eq!(f.status, Status::Ok);
        assert_eq!(
            f.text,
            "queried eb (169.254.77.2); not queried: lo (loopback)"
        );
        let f = interfaces(&[eb.clone(), wl.clone(), lo.clone()], &[eb, wl]);
        assert_eq!(f.status, Status::Hint);
        assert!(
            f.text.contains("eb (169.254.77.2), wlan0 (10.0.0.2)"),
            "{}",
            f.text
        );
        let f = interfaces(std::slice::from_ref(&lo), &[]);
        assert_eq!(f.status, Status::Cause);
    }

    /// `/proc/net/tcp` and `tcp6` lines: a listener on 127.0.0.1:7878,
    /// one on 0.0.0.0:22, an established connection; ::1 port 7879.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
        0: 0100007F:1EC6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
        1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
        2: 0100007F:1EC6 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
    const TCP6: &str = "  sl  local_address                         remote_address                        st\n\
        0: 00000000000000000000000001000000:1EC7 00000000000000000000000000000000:0000 0A 0\n";

    #[test]
    fn loopback_listeners_on_default_ports_are_named() {
        let mut l = parse_tcp_listeners(TCP);
        assert_eq!(l.len(), 2);
        l.extend(parse_tcp_listeners(TCP6));
        assert_eq!(l[2].to_string(), "[::1]:7879");
        let f = loopback(&l);
        assert_eq!(f.status, Status::Cause);
        assert!(f.text.contains("127.0.0.1:7878, [::1]:7879"), "{}", f.text);
        let f = loopback(&[]);
        assert_eq!(f.status, Status::Hint);
        assert!(f.text.contains("loopback only"), "{}", f.text);
    }
}
