//! The host's network interfaces as discovery sees them: name, addresses
//! (if-addrs) and the kernel's flags (`/sys/class/net/NAME/flags`: up,
//! loopback, multicast). The server picks the ones it announces on, the
//! client the ones it browses on and lists them when nothing is found.
//! Inside a network namespace these are the namespace's interfaces.

use std::net::IpAddr;

/// `IFF_UP`, `IFF_LOOPBACK`, `IFF_MULTICAST` (linux/if.h).
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_MULTICAST: u32 = 0x1000;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub up: bool,
    pub loopback: bool,
    pub multicast: bool,
}

impl Iface {
    /// Up, multicast-capable, not loopback, with an address: mDNS can be
    /// sent and heard there.
    pub fn usable_for_mdns(&self) -> bool {
        self.up && self.multicast && !self.loopback && !self.addrs.is_empty()
    }

    /// Why [`Iface::usable_for_mdns`] is false, in words (`None` when it
    /// is true).
    pub fn why_not_mdns(&self) -> Option<&'static str> {
        if self.loopback {
            Some("loopback")
        } else if !self.up {
            Some("down")
        } else if !self.multicast {
            Some("no MULTICAST flag")
        } else if self.addrs.is_empty() {
            Some("no address")
        } else {
            None
        }
    }

    /// `eth0 (192.168.1.5, fe80::1)`.
    pub fn describe(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        if addrs.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, addrs.join(", "))
        }
    }
}

/// The flags word of `/sys/class/net/NAME/flags` (`0x1003`).
pub fn parse_flags(text: &str) -> Option<u32> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    u32::from_str_radix(hex, 16).ok()
}

/// Build the list from `(name, flags)` pairs and `(name, address)` pairs,
/// sorted by name (pure: the parts [`interfaces`] reads).
pub fn assemble(flags: &[(String, u32)], addrs: &[(String, IpAddr)]) -> Vec<Iface> {
    let mut out: Vec<Iface> = flags
        .iter()
        .map(|(name, f)| Iface {
            name: name.clone(),
            addrs: addrs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .collect(),
            up: f & IFF_UP != 0,
            loopback: f & IFF_LOOPBACK != 0,
            multicast: f & IFF_MULTICAST != 0,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The interfaces of this host (or network namespace).
pub fn interfaces() -> std::io::Result<Vec<Iface>> {
    let mut flags = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let f = std::fs::read_to_string(entry.path().join("flags"))
            .ok()
            .and_then(|t| parse_flags(&t))
            .unwrap_or(0);
        flags.push((name, f));
    }
    let addrs: Vec<(String, IpAddr)> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| {
            let ip = i.ip();
            (i.name, ip)
        })
        .collect();
    Ok(assemble(&flags, &addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_addresses_make_interfaces() {
        assert_eq!(parse_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_flags("nonsense"), None);
        let ifs = assemble(
            &[
                ("lo".into(), 0x9),
                ("eth0".into(), 0x1003),
                ("tun0".into(), 0xd1),
            ],
            &[
                ("lo".into(), "127.0.0.1".parse().unwrap()),
                ("eth0".into(), "192.168.7.2".parse().unwrap()),
                ("eth0".into(), "fe80::1".parse().unwrap()),
                ("tun0".into(), "10.8.0.2".parse().unwrap()),
            ],
        );
        let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "lo", "tun0"]);
        assert!(ifs[0].usable_for_mdns());
        assert_eq!(ifs[0].describe(), "eth0 (192.168.7.2, fe80::1)");
        assert_eq!(ifs[1].why_not_mdns(), Some("loopback"));
        assert_eq!(ifs[2].why_not_mdns(), Some("no MULTICAST flag"));
    }

    /// Each flag bit is read on its own (0x1 up, 0x8 loopback, 0x1000
    /// multicast), and an interface is usable for mDNS exactly when no
    /// reason says otherwise, over all 16 combinations; the reason named is
    /// the first that applies.
    #[test]
    fn mdns_usable_exactly_when_no_reason_against() {
        let addr: IpAddr = "192.168.7.2".parse().expect("addr");
        for bits in 0u32..16 {
            let (up, lo, mc, has) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
            let on = |b: bool, flag: u32| if b { flag } else { 0 };
            // 0x40 (IFF_RUNNING): the other bits change nothing.
            let f = on(up, IFF_UP) | on(lo, IFF_LOOPBACK) | on(mc, IFF_MULTICAST) | 0x40;
            let addrs = if has {
                vec![("x".to_string(), addr)]
            } else {
                vec![]
            };
            let i = &assemble(&[("x".to_string(), f)], &addrs)[0];
            assert_eq!((i.up, i.loopback, i.multicast), (up, lo, mc), "{f:#x}");
            assert_eq!(i.addrs.is_empty(), !has);
            let why = if lo {
                Some("loopback")
            } else if !up {
                Some("down")
            } else if !mc {
                Some("no MULTICAST flag")
            } else if !has {
                Some("no address")
            } else {
                None
            };
            assert_eq!(i.why_not_mdns(), why, "{i:?}");
            assert_eq!(i.usable_for_mdns(), why.is_none(), "{i:?}");
        }
        assert_eq!(assemble(&[("x".into(), 0)], &[])[0].describe(), "x");
        assert_eq!(parse_flags(" 1003 "), Some(0x1003), "0x is optional");
    }

    #[test]
    fn this_host_has_a_loopback() {
        let ifs = interfaces().unwrap();
        assert!(ifs.iter().any(|i| i.loopback), "{ifs:?}");
    }
}
