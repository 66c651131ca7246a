//! Finding servers on the LAN: `sockchat --discover` and the TUI's picker.
//! `browse.rs` asks mDNS/DNS-SD (mdns-sd) for `_sockchat._tcp.local.` on
//! the interfaces it may use; `diagnose.rs` says why nothing was found
//! (loopback-only servers, multicast route, firewall, interfaces). The
//! TXT record's meaning is `sockchat_shared::discovery` (PROTOCOL.md
//! "Discovery"); this module only finds and lists.

pub mod browse;
pub mod diagnose;
pub mod found;

pub use found::{Choice, Found, order_addrs};

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::present::discover as present;

/// How long `--discover` listens when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest `--timeout` (a discovery is a few round trips).
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// `sockchat --discover [--timeout SECS] [--json]`: browse for `timeout`,
/// print each server once, and when none answered, what was checked.
/// Exit 0 when at least one was found, 1 when none.
pub fn run(timeout: Duration, json: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let all = sockchat_shared::netif::interfaces()
        .map_err(|e| anyhow::anyhow!("cannot list the network interfaces: {e}"))?;
    let queried: Vec<_> = all
        .iter()
        .filter(|i| i.usable_for_mdns())
        .cloned()
        .collect();
    let mut out = std::io::stdout().lock();
    let mut found: Vec<Found> = Vec::new();
    if !queried.is_empty() {
        let browser = browse::Browser::start(&queried)?;
        let deadline = Instant::now() + timeout;
        while let Some(update) = browser.next_until(deadline) {
            if let browse::Update::Found(f) = update
                && !found.iter().any(|g| g.fullname == f.fullname)
            {
                let line = if json {
                    present::found_json(&f).to_string()
                } else {
                    present::found_line(&f)
                };
                writeln!(out, "{line}")?;
                out.flush()?;
                found.push(*f);
            }
        }
        browser.stop();
    }
    let checks = if found.is_empty() {
        diagnose::run(&all, &queried)
    } else {
        Vec::new()
    };
    if json {
        writeln!(
            out,
            "{}",
            present::summary_json(found.len(), timeout, &all, &queried, &checks)
        )?;
    } else {
        for line in present::summary_lines(found.len(), timeout, &queried, &checks) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(if found.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::discovery::TlsTxt;
    use sockchat_shared::discovery::Txt;
    use sockchat_shared::fingerprint::Fingerprint;

    fn found(addrs: &[&str], tls: bool) -> Found {
        Found {
            instance: "box".into(),
            fullname: "box._sockchat._tcp.local.".into(),
            host: "box.local.".into(),
            addrs: order_addrs(addrs.iter().map(|a| a.parse().unwrap()).collect()),
            port: 7878,
            txt: Txt {
                tls: tls.then_some(TlsTxt {
                    port: 7879,
                    fingerprint: Fingerprint([1; 32]),
                }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn ipv4_first_and_link_local_v6_last() {
        let f = found(&["fe80::1", "2001:db8::1", "169.254.77.1"], false);
        assert_eq!(f.addrs[0].to_string(), "169.254.77.1");
        assert_eq!(f.addrs[2].to_string(), "fe80::1");
        let f = found(&["fe80::1", "2001:db8::1"], false);
        assert_eq!(f.address().unwrap().to_string(), "[2001:db8::1]:7878");
        assert_eq!(found(&["fe80::1"], false).choice(), None);
        assert_eq!(f.name(), "box");
    }

    #[test]
    fn tls_is_chosen_when_announced() {
        let c = found(&["169.254.77.1"], true).choice().unwrap();
        assert_eq!(c.server, "169.254.77.1:7879");
        assert_eq!(c.tls, Some(Fingerprint([1; 32])));
        let c = found(&["169.254.77.1"], false).choice().unwrap();
        assert_eq!((c.server.as_str(), c.tls), ("169.254.77.1:7878", None));
    }
}
