//! Who may come in, and who may see whose address: the `[access]` section.
//!
//! - **Allow/deny lists** of addresses and CIDR blocks (`ipnet`), checked
//!   by [`crate::ctx::Ctx::admit`] for every TCP connection and UDP session
//!   before anything else: a denied address gets `Error` 14 (`Forbidden`)
//!   and the connection closes; `deny` wins over `allow`; an empty `allow`
//!   lets everyone in.
//! - **`/sockinfo` privacy**: a user's IP address and port (the `peer`
//!   field) are shown to that user only, unless `sockinfo_address =
//!   "everyone"`; the socket's TCP internals stay public (they are what the
//!   panel teaches).

use std::net::IpAddr;

use ipnet::IpNet;
use sockchat_shared::config::AccessConfig;

/// The `sockinfo` key that carries a user's address.
pub const ADDRESS_KEY: &str = "peer";
/// What others see instead of it.
pub const HIDDEN: &str = "hidden (only its user sees it; [access] sockinfo_address)";

/// Parse one list entry: an address (`10.0.0.7`, `::1`) or a CIDR block
/// (`10.0.0.0/8`).
fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Check `[access]`: the key and why, for the first bad value.
pub fn check_config(c: &AccessConfig) -> Option<(&'static str, String)> {
    for (key, list) in [("access.allow", &c.allow), ("access.deny", &c.deny)] {
        if let Some(bad) = list.iter().find(|s| parse_net(s).is_none()) {
            return Some((
                key,
                format!("{bad:?} is not an address or CIDR block (e.g. \"10.0.0.0/8\", \"::1\")"),
            ));
        }
    }
    if !matches!(c.sockinfo_address.as_str(), "self" | "everyone") {
        return Some((
            "access.sockinfo_address",
            format!(
                "{:?} (expected \"self\" or \"everyone\")",
                c.sockinfo_address
            ),
        ));
    }
    None
}

/// The parsed `[access]` section.
#[derive(Debug, Clone, Default)]
pub struct Access {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    address_public: bool,
}

impl Access {
    /// From a checked config (entries that do not parse are skipped: the
    /// config was validated at load).
    pub fn new(c: &AccessConfig) -> Self {
        let nets = |v: &[String]| v.iter().filter_map(|s| parse_net(s)).collect();
        Access {
            allow: nets(&c.allow),
            deny: nets(&c.deny),
            address_public: c.sockinfo_address == "everyone",
        }
    }

    /// May `ip` come in? `Err` is the refusal text.
    pub fn admits(&self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(format!("{ip} is not allowed on this server (denied)"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Err(format!(
                "{ip} is not allowed on this server (not in the allow list)"
            ));
        }
        Ok(())
    }

    /// A user's `/sockinfo` fields as `viewer` may see them: the address
    /// hidden unless the viewer is the user (`own`) or addresses are public.
    pub fn sockinfo_for(
        &self,
        mut fields: Vec<(String, String)>,
        own: bool,
    ) -> Vec<(String, String)> {
        if !own && !self.address_public {
            for (k, v) in &mut fields {
                if k == ADDRESS_KEY {
                    *v = HIDDEN.to_string();
                }
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow: &[&str], deny: &[&str], addr: &str) -> AccessConfig {
        AccessConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            sockinfo_address: addr.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn allow_and_deny() {
        let open = Access::new(&AccessConfig::default());
        assert!(open.admits(ip("192.0.2.1")).is_ok());
        let a = Access::new(&cfg(&["10.0.0.0/8", "::1"], &["10.0.0.66"], "self"));
        assert!(a.admits(ip("10.1.2.3")).is_ok());
        assert!(a.admits(ip("::1")).is_ok());
        assert!(a.admits(ip("::ffff:10.1.2.3")).is_ok(), "v4-mapped is v4");
        let denied = a.admits(ip("10.0.0.66")).expect_err("deny wins");
        assert!(
            denied.contains("10.0.0.66") && denied.contains("denied"),
            "{denied}"
        );
        let outside = a.admits(ip("192.0.2.1")).expect_err("not allowed");
        assert!(outside.contains("allow list"), "{outside}");
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(check_config(&AccessConfig::default()), None);
        let (k, why) = check_config(&cfg(&["10.0.0.0/33"], &[], "self")).expect("bad");
        assert_eq!(k, "access.allow");
        assert!(why.contains("10.0.0.0/33"), "{why}");
        assert_eq!(
            check_config(&cfg(&[], &["nope"], "self")).expect("bad").0,
            "access.deny"
        );
        assert_eq!(
            check_config(&cfg(&[], &[], "ops")).expect("bad").0,
            "access.sockinfo_address"
        );
    }

    #[test]
    fn the_address_is_for_its_user() {
        let f = vec![
            ("transport".to_string(), "tcp".to_string()),
            ("peer".to_string(), "10.0.0.7:5555".to_string()),
            ("tcpi_rtt_us".to_string(), "300".to_string()),
        ];
        let private = Access::new(&AccessConfig::default());
        assert_eq!(private.sockinfo_for(f.clone(), true), f);
        let seen = private.sockinfo_for(f.clone(), false);
        assert_eq!(seen[1].1, HIDDEN);
        assert_eq!(
            (seen[0].clone(), seen[2].clone()),
            (f[0].clone(), f[2].clone())
        );
        let public = Access::new(&cfg(&[], &[], "everyone"));
        assert_eq!(public.sockinfo_for(f.clone(), false), f);
    }
}
