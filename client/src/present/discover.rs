//! Servers found on the LAN and the discovery checks, in words (`sockchat
//! --discover`, the TUI's picker) and as JSON (`--discover --json`). Every
//! string from an announcement is sanitized here: it comes from anyone on
//! the link.

use std::time::Duration;

use serde_json::{Value, json};
use sockchat_shared::netif::Iface;
use sockchat_shared::sanitize::sanitize;

use crate::discover::diagnose::Finding;
use crate::discover::found::Found;

/// `users 3 · rooms 2 · TLS SHA256:AB:… · UDP 7878`: what the TXT record
/// says, for the list's second column.
pub fn found_details(f: &Found) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let mut parts = vec![
        format!("users {}", n(f.txt.users)),
        format!("rooms {}", n(f.txt.rooms)),
    ];
    match &f.txt.tls {
        Some(t) => parts.push(format!("TLS :{} {}", t.port, t.fingerprint)),
        None => parts.push("no TLS".into()),
    }
    if let Some(u) = f.txt.udp_port {
        parts.push(format!("UDP :{u}"));
    }
    if !f.txt.version.is_empty() {
        parts.push(format!("v{}", sanitize(&f.txt.version)));
    }
    parts.join("  ")
}

/// The name and address as shown (`lab (169.254.77.1:7878)`).
pub fn found_title(f: &Found) -> String {
    let addr = f
        .address()
        .map_or_else(|| "no usable address".to_string(), |a| a.to_string());
    format!("{}  {addr}", sanitize(f.name()))
}

/// One line for `--discover`.
pub fn found_line(f: &Found) -> String {
    let mut line = format!("{}  {}", found_title(f), found_details(f));
    if !f.txt.problems.is_empty() {
        let p: Vec<String> = f
            .txt
            .problems
            .iter()
            .map(|p| sanitize(p).into_owned())
            .collect();
        line.push_str(&format!("  (announcement: {})", p.join("; ")));
    }
    line
}

/// One JSON object for `--discover --json`.
pub fn found_json(f: &Found) -> Value {
    let s = |v: &str| sanitize(v).into_owned();
    json!({
        "event": "server-found",
        "name": s(f.name()),
        "instance": s(&f.instance),
        "host": s(&f.host),
        "address": f.address().map(|a| a.to_string()),
        "addresses": f.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "port": f.port,
        "version": s(&f.txt.version),
        "proto": f.txt.proto,
        "users": f.txt.users,
        "rooms": f.txt.rooms,
        "tls": f.txt.tls.is_some(),
        "tls_port": f.txt.tls.map(|t| t.port),
        "fingerprint": f.txt.tls.map(|t| t.fingerprint.to_string()),
        "udp_port": f.txt.udp_port,
        "problems": f.txt.problems.iter().map(|p| s(p)).collect::<Vec<_>>(),
    })
}

/// `cause: firewall: ...`.
pub fn finding_line(c: &Finding) -> String {
    format!("{}: {}: {}", c.status.as_str(), c.check, c.text)
}

fn names(ifs: &[Iface]) -> String {
    if ifs.is_empty() {
        "no interface".into()
    } else {
        ifs.iter()
            .map(Iface::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The closing lines of `--discover`: the count, and when none was found
/// what was checked, causes first.
pub fn summary_lines(
    found: usize,
    waited: Duration,
    queried: &[Iface],
    checks: &[Finding],
) -> Vec<String> {
    let secs = waited.as_secs_f64();
    if found > 0 {
        return vec![format!(
            "{found} server(s) found in {secs:.0} s on {}",
            names(queried)
        )];
    }
    let mut out = vec![
        format!(
            "no sockchat server found: browsed {} for {secs:.0} s on {}",
            sockchat_shared::discovery::SERVICE_TYPE,
            names(queried)
        ),
        "what was checked:".to_string(),
    ];
    let mut sorted: Vec<&Finding> = checks.iter().collect();
    sorted.sort_by_key(|c| c.status as u8);
    out.extend(sorted.into_iter().map(|c| format!("  {}", finding_line(c))));
    out
}

/// The closing JSON object of `--discover --json`.
pub fn summary_json(
    found: usize,
    waited: Duration,
    all: &[Iface],
    queried: &[Iface],
    checks: &[Finding],
) -> Value {
    json!({
        "event": "discover-done",
        "found": found,
        "seconds": waited.as_secs_f64(),
        "interfaces": all.iter().map(|i| json!({
            "name": i.name,
            "addresses": i.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "queried": queried.iter().any(|q| q.name == i.name),
            "why_not": i.why_not_mdns(),
        })).collect::<Vec<_>>(),
        "checks": checks.iter().map(|c| json!({
            "check": c.check,
            "status": c.status.as_str(),
            "text": c.text,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::diagnose::Status;
    use sockchat_shared::discovery::{TlsTxt, Txt};
    use sockchat_shared::fingerprint::Fingerprint;

    fn found() -> Found {
        Found {
            instance: "box".into(),
            fullname: "box._sockchat._tcp.local.".into(),
            host: "box.local.".into(),
            addrs: vec!["169.254.77.1".parse().unwrap()],
            port: 7878,
            txt: Txt {
                name: "lab\u{1b}[31m".into(),
                version: "0.1.0".into(),
                users: Some(2),
                rooms: Some(1),
                tls: Some(TlsTxt {
                    port: 7879,
                    fingerprint: Fingerprint([0xab; 32]),
                }),
                udp_port: Some(7878),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_found_server_reads_in_one_line_without_control_characters() {
        let l = found_line(&found());
        assert!(l.starts_with("lab"), "{l}");
        assert!(!l.contains('\u{1b}'), "{l}");
        assert!(
            l.contains("169.254.77.1:7878  users 2  rooms 1  TLS :7879 SHA256:AB:AB"),
            "{l}"
        );
        assert!(l.ends_with("UDP :7878  v0.1.0"), "{l}");
        let j = found_json(&found());
        assert_eq!(j["address"], "169.254.77.1:7878");
        assert_eq!(j["users"], 2);
        assert_eq!(j["tls"], true);
        assert_eq!(j["udp_port"], 7878);
    }

    #[test]
    fn nothing_found_lists_the_causes_first() {
        let checks = vec![
            Finding {
                check: "loopback",
                status: Status::Hint,
                text: "h".into(),
            },
            Finding {
                check: "firewall",
                status: Status::Cause,
                text: "drops".into(),
            },
        ];
        let l = summary_lines(0, Duration::from_secs(3), &[], &checks);
        assert!(l[0].starts_with("no sockchat server found"), "{l:?}");
        assert_eq!(l[2], "  cause: firewall: drops");
        assert_eq!(l[3], "  hint: loopback: h");
    }
}
