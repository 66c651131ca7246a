//! One server a discovery found, and how to connect to it: what the
//! browser builds and the list, the `--discover` output and the picker
//! show. A leaf (the presentation imports it without the browser).

use std::net::{IpAddr, SocketAddr};

use sockchat_shared::discovery::Txt;
use sockchat_shared::fingerprint::Fingerprint;

/// One server found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The DNS-SD instance name (the first label of the full name).
    pub instance: String,
    /// The full DNS-SD name, unique on the link (the key of the list).
    pub fullname: String,
    /// The SRV target (`host.local.`).
    pub host: String,
    /// Its addresses, IPv4 first, link-local IPv6 last.
    pub addrs: Vec<IpAddr>,
    /// The SRV port (plain TCP, or TLS on a TLS-only server).
    pub port: u16,
    pub txt: Txt,
}

/// Where and how to connect to a [`Found`] server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// `HOST:PORT` for `--server`.
    pub server: String,
    /// With TLS: the announced certificate (trusted as a first use would
    /// be: an existing pin for the server still wins).
    pub tls: Option<Fingerprint>,
    /// `HOST:PORT` of the announced UDP port (used with `--udp`).
    pub udp: Option<String>,
    /// What the list showed.
    pub name: String,
}

impl Found {
    /// The name to show: the TXT `name`, else the instance name.
    pub fn name(&self) -> &str {
        if self.txt.name.is_empty() {
            &self.instance
        } else {
            &self.txt.name
        }
    }

    /// The address to connect to: the first IPv4 one, else an IPv6 one
    /// that needs no scope (a link-local one would need the interface).
    pub fn ip(&self) -> Option<IpAddr> {
        self.addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| self.addrs.iter().find(|a| !is_link_local_v6(a)))
            .copied()
    }

    /// `ADDR:PORT` of the SRV record.
    pub fn address(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// TLS when the server announces it (its TLS port and certificate),
    /// plain TCP otherwise.
    pub fn choice(&self) -> Option<Choice> {
        let ip = self.ip()?;
        let (port, tls) = match &self.txt.tls {
            Some(t) => (t.port, Some(t.fingerprint)),
            None => (self.port, None),
        };
        Some(Choice {
            server: SocketAddr::new(ip, port).to_string(),
            tls,
            udp: self
                .txt
                .udp_port
                .map(|p| SocketAddr::new(ip, p).to_string()),
            name: self.name().to_string(),
        })
    }
}

fn is_link_local_v6(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Addresses in the order [`Found::ip`] prefers, without repeats.
pub fn order_addrs(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
    v.sort_by_key(|a| (!a.is_ipv4(), is_link_local_v6(a), *a));
    v.dedup();
    v
}
