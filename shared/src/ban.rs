//! What `/ban` and `/unban` name: a nick, an address or a CIDR block, and
//! whether a ban matches a user. Pure: the server keeps the bans and their
//! expiry (`server/src/operators.rs`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::fold;

/// A ban's target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BanTarget {
    /// A nick, by its folded key (`fold::nick_key`): look-alikes are
    /// banned too.
    Nick(String),
    /// An address (IPv4-mapped IPv6 addresses are their IPv4 address).
    Addr(IpAddr),
    /// A CIDR block.
    Net(IpNet),
}

impl BanTarget {
    /// Parse what an operator typed. An address or a CIDR block wins over
    /// a nick (`10.0.0.7` is a valid nick too, but banning it as an
    /// address is what an operator means); anything else is a nick,
    /// folded.
    pub fn parse(typed: &str) -> Self {
        let t = typed.trim();
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Self::Addr(ip.to_canonical());
        }
        if let Ok(net) = t.parse::<IpNet>() {
            return Self::Net(net.trunc());
        }
        Self::Nick(fold::nick_key(t))
    }

    /// Does this ban keep out a user with `nick` (as typed) from `ip`?
    /// `nick` is `None` at admission (no nick yet).
    pub fn matches(&self, nick: Option<&str>, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            Self::Nick(key) => nick.is_some_and(|n| fold::nick_key(n) == *key),
            Self::Addr(a) => *a == ip,
            Self::Net(net) => net.contains(&ip),
        }
    }

    /// Does it match addresses (checked at admission), rather than a nick?
    pub fn is_address(&self) -> bool {
        !matches!(self, Self::Nick(_))
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nick(key) => write!(f, "nick {key}"),
            Self::Addr(a) => write!(f, "address {a}"),
            Self::Net(n) => write!(f, "block {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// A ban is shown as the kind of target and the target, as parsed
    /// (the nick folded, the block's host bits dropped).
    #[test]
    fn a_ban_shows_its_kind_and_target() {
        let shown = |typed: &str| BanTarget::parse(typed).to_string();
        assert_eq!(shown("Bob"), format!("nick {}", fold::nick_key("bob")));
        assert_eq!(shown("::ffff:10.0.0.7"), "address 10.0.0.7");
        assert_eq!(shown("10.1.2.3/8"), "block 10.0.0.0/8");
    }

    #[test]
    fn addresses_win_over_nicks() {
        assert_eq!(
            BanTarget::parse("10.0.0.7"),
            BanTarget::Addr(ip("10.0.0.7"))
        );
        assert_eq!(
            BanTarget::parse("::ffff:10.0.0.7"),
            BanTarget::Addr(ip("10.0.0.7"))
        );
        assert!(matches!(BanTarget::parse("10.0.0.0/8"), BanTarget::Net(_)));
        // Host bits are dropped: 10.1.2.3/8 is 10.0.0.0/8.
        assert_eq!(
            BanTarget::parse("10.1.2.3/8"),
            BanTarget::parse("10.0.0.0/8")
        );
        assert_eq!(
            BanTarget::parse("Alice"),
            BanTarget::Nick(fold::nick_key("alice"))
        );
        assert!(BanTarget::parse("::1").is_address());
        assert!(!BanTarget::parse("bob").is_address());
    }

    #[test]
    fn matching() {
        let nick = BanTarget::parse("alice");
        assert!(nick.matches(Some("ALICE"), ip("192.0.2.1")));
        assert!(
            nick.matches(Some("\u{430}lice"), ip("192.0.2.1")),
            "look-alike"
        );
        assert!(!nick.matches(Some("bob"), ip("192.0.2.1")));
        assert!(!nick.matches(None, ip("192.0.2.1")), "no nick at admission");
        let addr = BanTarget::parse("127.0.0.5");
        assert!(addr.matches(None, ip("127.0.0.5")));
        assert!(addr.matches(Some("x"), ip("::ffff:127.0.0.5")));
        assert!(!addr.matches(None, ip("127.0.0.6")));
        let net = BanTarget::parse("127.0.0.0/30");
        assert!(net.matches(None, ip("127.0.0.3")));
        assert!(!net.matches(None, ip("127.0.0.4")));
        let v6 = BanTarget::parse("fd00::/16");
        assert!(v6.matches(None, ip("fd00::1")));
        assert!(!v6.matches(None, ip("127.0.0.1")));
    }
}
