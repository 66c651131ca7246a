//! `[discovery]`: the server announces itself on the LAN with mDNS/DNS-SD
//! (mdns-sd), as `_sockchat._tcp.local.` with the TXT keys of
//! `sockchat_shared::discovery` (PROTOCOL.md "Discovery"), so `sockchat
//! --discover` and the TUI's picker find it without an address typed.
//!
//! Only on the interfaces that hold a listen address (every multicast
//! interface for `0.0.0.0` / `[::]`): a server bound to loopback only is
//! never announced — another host could not connect to it — and its log
//! says so. The users and rooms counts are re-announced when they change,
//! at most once per `refresh_secs` (each announcement is a multicast
//! packet to the whole link). On shutdown the record is withdrawn
//! (a goodbye, TTL 0) so browsers drop it at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use sockchat_shared::config::DiscoveryConfig;
use sockchat_shared::discovery::{self, SERVICE_TYPE, TlsTxt, Txt};
use sockchat_shared::fingerprint::Fingerprint;
use sockchat_shared::netif::Iface;
use tracing::{info, warn};

use crate::hub::Hub;

/// How often the counts are looked at (cheap: two lock-and-len).
const POLL: Duration = Duration::from_secs(1);
/// How long shutdown waits for the goodbye to go out.
const GOODBYE: Duration = Duration::from_secs(1);

/// What the server listens on, as bound.
#[derive(Debug, Clone, Default)]
pub struct Listening {
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub fingerprint: Option<Fingerprint>,
    pub udp: Vec<SocketAddr>,
}

impl Listening {
    /// The bound sockets' addresses (a socket whose address cannot be read
    /// is left out).
    pub fn of(
        tcp: &[std::net::TcpListener],
        tls: Option<&crate::tls::TlsListeners>,
        udp: &[std::net::UdpSocket],
    ) -> Listening {
        Listening {
            tcp: tcp.iter().filter_map(|l| l.local_addr().ok()).collect(),
            tls: tls
                .map(|t| {
                    t.listeners
                        .iter()
                        .filter_map(|l| l.local_addr().ok())
                        .collect()
                })
                .unwrap_or_default(),
            fingerprint: tls.map(|t| t.server.fingerprint),
            udp: udp.iter().filter_map(|u| u.local_addr().ok()).collect(),
        }
    }
}

/// Where to announce: the interfaces and, on each, the addresses a client
/// can connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub interfaces: Vec<String>,
    pub addrs: Vec<IpAddr>,
    /// The SRV port: plain TCP's, or TLS's when there is no plain TCP.
    pub port: u16,
}

/// Why nothing is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnnounced {
    /// Every listener is on loopback: no other host could connect.
    LoopbackOnly(Vec<SocketAddr>),
    /// No up, multicast-capable, non-loopback interface holds a listen
    /// address.
    NoInterface(Vec<SocketAddr>),
}

impl std::fmt::Display for NotAnnounced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            NotAnnounced::LoopbackOnly(v) => write!(
                f,
                "listening on loopback only ({}): clients on other hosts cannot connect, so the \
                 server is not announced on the LAN (listen on a LAN address or 0.0.0.0 to be found)",
                list(v)
            ),
            NotAnnounced::NoInterface(v) => write!(
                f,
                "no up, multicast-capable interface holds a listen address ({})",
                list(v)
            ),
        }
    }
}

/// Pick the interfaces and addresses to announce (pure: the listen
/// addresses and the host's interfaces in, the plan out).
pub fn plan(listening: &Listening, ifaces: &[Iface]) -> Result<Plan, NotAnnounced> {
    let front: &[SocketAddr] = if listening.tcp.is_empty() {
        &listening.tls
    } else {
        &listening.tcp
    };
    let lan: Vec<SocketAddr> = front
        .iter()
        .copied()
        .filter(|a| !a.ip().is_loopback())
        .collect();
    let Some(port) = lan.first().map(|a| a.port()) else {
        return Err(NotAnnounced::LoopbackOnly(front.to_vec()));
    };
    let mut interfaces = Vec::new();
    let mut addrs = Vec::new();
    for i in ifaces.iter().filter(|i| i.usable_for_mdns()) {
        let mine: Vec<IpAddr> = i
            .addrs
            .iter()
            .copied()
            .filter(|ip| {
                lan.iter().any(|l| {
                    let wild = l.ip().is_unspecified() && l.is_ipv4() == ip.is_ipv4();
                    wild || l.ip() == *ip
                })
            })
            .collect();
        if !mine.is_empty() {
            interfaces.push(i.name.clone());
            addrs.extend(mine);
        }
    }
    if interfaces.is_empty() {
        return Err(NotAnnounced::NoInterface(lan));
    }
    Ok(Plan {
        interfaces,
        addrs,
        port,
    })
}

/// The TXT record for these counts.
fn txt(name: &str, listening: &Listening, users: usize, rooms: usize) -> Txt {
    Txt {
        name: name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        proto: Some(sockchat_shared::proto::VERSION),
        users: Some(users as u64),
        rooms: Some(rooms as u64),
        tls: match (listening.tls.first(), listening.fingerprint) {
            (Some(a), Some(fingerprint)) => Some(TlsTxt {
                port: a.port(),
                fingerprint,
            }),
            _ => None,
        },
        udp_port: listening.udp.first().map(|a| a.port()),
        problems: Vec::new(),
    }
}

/// The instance name: `[discovery] name`, else the host name.
fn instance_name(c: &DiscoveryConfig, host: &str) -> String {
    if c.name.is_empty() {
        host.to_string()
    } else {
        c.name.clone()
    }
}

/// A running announcement; [`Announcer::stop`] withdraws it.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullname: String,
    refresh: tokio::task::JoinHandle<()>,
}

/// Start announcing when `[discovery] announce` is on and a LAN interface
/// holds a listen address; log what was done or why not.
pub fn start(c: &DiscoveryConfig, listening: &Listening, hub: Arc<Hub>) -> Option<Announcer> {
    if !c.announce {
        info!("discovery: not announced ([discovery] announce = false)");
        return None;
    }
    let ifaces = match sockchat_shared::netif::interfaces() {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "discovery: not announced: cannot list the network interfaces");
            return None;
        }
    };
    let plan = match plan(listening, &ifaces) {
        Ok(p) => p,
        Err(why) => {
            info!("discovery: not announced: {why}");
            return None;
        }
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = discovery::host_label(hostname.trim());
    let name = instance_name(c, &host);
    match announce(&name, &host, &plan, listening, &hub) {
        Ok((daemon, fullname)) => {
            info!(
                service = SERVICE_TYPE,
                name = %name,
                interfaces = %plan.interfaces.join(","),
                port = plan.port,
                "discovery: announced"
            );
            let refresh = tokio::spawn(refresh(
                daemon.clone(),
                name,
                host,
                plan,
                listening.clone(),
                hub,
                Duration::from_secs(u64::from(c.refresh_secs)),
            ));
            Some(Announcer {
                daemon,
                fullname,
                refresh,
            })
        }
        Err(e) => {
            warn!(error = %e, "discovery: not announced: mDNS failed");
            None
        }
    }
}

/// The service record for the hub's counts now.
fn service(
    name: &str,
    host: &str,
    plan: &Plan,
    listening: &Listening,
    hub: &Hub,
) -> Result<ServiceInfo, mdns_sd::Error> {
    let t = txt(name, listening, hub.user_count(), hub.room_count());
    let pairs = t.to_pairs();
    let props: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServiceInfo::new(
        SERVICE_TYPE,
        name,
        &format!("{host}.local."),
        &plan.addrs[..],
        plan.port,
        &props[..],
    )
}

/// A daemon bound to the plan's interfaces only, the service registered.
fn announce(
    name: &str,
    host: &str,
    plan: &Plan,
    listening: &Listening,
    hub: &Hub,
) -> Result<(ServiceDaemon, String), mdns_sd::Error> {
    let info = service(name, host, plan, listening, hub)?;
    let fullname = info.get_fullname().to_string();
    let daemon = ServiceDaemon::new()?;
    // Nowhere else: not on an interface the server does not listen on.
    daemon.disable_interface(IfKind::All)?;
    daemon.enable_interface(
        plan.interfaces
            .iter()
            .map(|n| IfKind::Name(n.clone()))
            .collect::<Vec<_>>(),
    )?;
    daemon.register(info)?;
    Ok((daemon, fullname))
}

/// Re-announce when the counts change, at most once per `every`.
async fn refresh(
    daemon: ServiceDaemon,
    name: String,
    host: String,
    plan: Plan,
    listening: Listening,
    hub: Arc<Hub>,
    every: Duration,
) {
    let mut announced = (hub.user_count(), hub.room_count());
    let mut last = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = (hub.user_count(), hub.room_count());
        if now == announced || last.elapsed() < every {
            continue;
        }
        match service(&name, &host, &plan, &listening, &hub).and_then(|s| daemon.register(s)) {
            Ok(()) => {
                announced = now;
                last = tokio::time::Instant::now();
                tracing::debug!(users = now.0, rooms = now.1, "discovery: re-announced");
            }
            Err(e) => warn!(error = %e, "discovery: re-announce failed"),
        }
    }
}

impl Announcer {
    /// Withdraw the record (goodbye packets) and stop the daemon.
    pub async fn stop(self) {
        self.refresh.abort();
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(GOODBYE, rx.recv_async()).await;
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(GOODBYE, rx.recv_async()).await;
        }
        info!("discovery: withdrawn");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addrs: &[&str], loopback: bool) -> Iface {
        Iface {
            name: name.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            up: true,
            loopback,
            multicast: !loopback,
        }
    }

    fn host() -> Vec<Iface> {
        vec![
            iface("lo", &["127.0.0.1", "::1"], true),
            iface("eth0", &["192.168.7.2", "fe80::1"], false),
            iface("wlan0", &["10.1.2.3"], false),
        ]
    }

    fn tcp(addrs: &[&str]) -> Listening {
        Listening {
            tcp: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn loopback_only_is_not_announced() {
        let l = tcp(&["127.0.0.1:7878", "[::1]:7878"]);
        let why = plan(&l, &host()).unwrap_err();
        assert!(matches!(why, NotAnnounced::LoopbackOnly(ref v) if v.len() == 2));
        assert!(why.to_string().contains("loopback only"), "{why}");
    }

    #[test]
    fn a_lan_address_announces_on_its_interface_only() {
        let p = plan(&tcp(&["192.168.7.2:7000", "127.0.0.1:7000"]), &host()).unwrap();
        assert_eq!(p.interfaces, ["eth0"]);
        assert_eq!(p.addrs, ["192.168.7.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.port, 7000);
    }

    #[test]
    fn wildcards_announce_on_every_multicast_interface_per_family() {
        let p = plan(&tcp(&["0.0.0.0:7878"]), &host()).unwrap();
        assert_eq!(p.interfaces, ["eth0", "wlan0"]);
        assert_eq!(p.addrs.len(), 2);
        let p = plan(&tcp(&["0.0.0.0:7878", "[::]:7878"]), &host()).unwrap();
        assert_eq!(p.addrs.len(), 3);
    }

    #[test]
    fn an_address_no_interface_holds_is_not_announced() {
        let why = plan(&tcp(&["192.168.99.9:7878"]), &host()).unwrap_err();
        assert!(matches!(why, NotAnnounced::NoInterface(_)));
    }

    #[test]
    fn tls_only_announces_the_tls_port_and_fingerprint() {
        let l = Listening {
            tls: vec!["0.0.0.0:7879".parse().unwrap()],
            fingerprint: Some(Fingerprint([7; 32])),
            ..Default::default()
        };
        assert_eq!(plan(&l, &host()).unwrap().port, 7879);
        let t = txt("lab", &l, 2, 1);
        assert_eq!(t.tls.map(|t| t.port), Some(7879));
        assert_eq!(t.udp_port, None);
        assert_eq!((t.users, t.rooms), (Some(2), Some(1)));
    }

    #[test]
    fn default_instance_name_is_the_host() {
        assert_eq!(instance_name(&DiscoveryConfig::default(), "box"), "box");
    }
}
