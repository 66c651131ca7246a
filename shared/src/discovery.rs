//! Finding a server on the LAN (mDNS/DNS-SD, RFC 6762 and 6763): the
//! service type a server announces and the TXT keys it puts beside its SRV
//! record, written by the server and read by the client — the contract
//! PROTOCOL.md "Discovery" documents for other clients. Pure: no sockets.
//!
//! An announcement comes from anyone on the link: every value is checked
//! here, a bad one is left out with a problem noted (never a panic), and
//! the strings still go through the sanitizer when shown.

use crate::fingerprint::Fingerprint;

/// The DNS-SD service type (RFC 6763 section 7), with its domain.
pub const SERVICE_TYPE: &str = "_sockchat._tcp.local.";

/// The TXT keys, in the order the server writes them.
pub mod key {
    /// The instance name as the operator wrote it (`[discovery] name`).
    pub const NAME: &str = "name";
    /// The server's version (`sockchat-server --version`).
    pub const VERSION: &str = "version";
    /// The framed protocol's version byte (PROTOCOL.md "Preamble").
    pub const PROTO: &str = "proto";
    /// Users connected now (refreshed when it changes, rate-limited).
    pub const USERS: &str = "users";
    /// Rooms that exist now (the default room included).
    pub const ROOMS: &str = "rooms";
    /// `1` when a TLS listener is on.
    pub const TLS: &str = "tls";
    /// The TLS listener's port (with `tls=1`).
    pub const TLS_PORT: &str = "tls_port";
    /// The TLS certificate's SHA-256 fingerprint (`SHA256:AB:CD:...`).
    pub const FINGERPRINT: &str = "fingerprint";
    /// The UDP port, when UDP is on.
    pub const UDP: &str = "udp";
}

/// A TXT value longer than this is refused (one TXT string holds at most
/// 255 bytes with its key; RFC 6763 section 6.1).
pub const MAX_VALUE: usize = 200;

/// What a server says about itself beside its address and port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txt {
    pub name: String,
    pub version: String,
    pub proto: Option<u8>,
    pub users: Option<u64>,
    pub rooms: Option<u64>,
    /// `tls=1`: the TLS listener's port and certificate. Both are needed:
    /// a `tls=1` without a valid port and fingerprint is a problem, and
    /// the client does not use TLS from it.
    pub tls: Option<TlsTxt>,
    pub udp_port: Option<u16>,
    /// What was wrong in the record, in words (empty when nothing was).
    pub problems: Vec<String>,
}

/// The TLS half of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsTxt {
    pub port: u16,
    pub fingerprint: Fingerprint,
}

impl Txt {
    /// The key/value pairs to announce, in a fixed order.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (key::NAME, self.name.clone()),
            (key::VERSION, self.version.clone()),
        ];
        if let Some(p) = self.proto {
            v.push((key::PROTO, p.to_string()));
        }
        if let Some(u) = self.users {
            v.push((key::USERS, u.to_string()));
        }
        if let Some(r) = self.rooms {
            v.push((key::ROOMS, r.to_string()));
        }
        if let Some(t) = &self.tls {
            v.push((key::TLS, "1".to_string()));
            v.push((key::TLS_PORT, t.port.to_string()));
            v.push((key::FINGERPRINT, t.fingerprint.to_string()));
        }
        if let Some(u) = self.udp_port {
            v.push((key::UDP, u.to_string()));
        }
        v
    }

    /// Read a record's pairs (keys compare case-insensitively, RFC 6763
    /// section 6.4; the first of a repeated key wins; unknown keys are
    /// ignored, so a later server may add some).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Txt {
        let mut t = Txt::default();
        let mut seen: Vec<String> = Vec::new();
        let mut tls_on = false;
        let mut tls_port = None;
        let mut fingerprint = None;
        for (k, v) in pairs {
            let k = k.to_ascii_lowercase();
            if seen.contains(&k) {
                continue;
            }
            seen.push(k.clone());
            let Some(v) = v else {
                continue;
            };
            if v.len() > MAX_VALUE {
                t.problems
                    .push(format!("{k}: value of {} bytes left out", v.len()));
                continue;
            }
            match k.as_str() {
                key::NAME => t.name = v.to_string(),
                key::VERSION => t.version = v.to_string(),
                key::PROTO => t.proto = number(&mut t.problems, &k, v),
                key::USERS => t.users = number(&mut t.problems, &k, v),
                key::ROOMS => t.rooms = number(&mut t.problems, &k, v),
                key::TLS => tls_on = v == "1",
                key::TLS_PORT => tls_port = port(&mut t.problems, &k, v),
                key::FINGERPRINT => match Fingerprint::parse(v) {
                    Ok(f) => fingerprint = Some(f),
                    Err(e) => t.problems.push(format!("{k}: {e}")),
                },
                key::UDP => t.udp_port = port(&mut t.problems, &k, v),
                _ => {}
            }
        }
        if tls_on {
            match (tls_port, fingerprint) {
                (Some(port), Some(fingerprint)) => t.tls = Some(TlsTxt { port, fingerprint }),
                _ => t
                    .problems
                    .push("tls=1 without a valid tls_port and fingerprint: TLS not used".into()),
            }
        }
        t
    }
}

fn number<T: std::str::FromStr>(problems: &mut Vec<String>, k: &str, v: &str) -> Option<T> {
    let n = v.parse().ok();
    if n.is_none() {
        problems.push(format!("{k}: {v:?} is not a number"));
    }
    n
}

fn port(problems: &mut Vec<String>, k: &str, v: &str) -> Option<u16> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Some(p),
        _ => {
            problems.push(format!("{k}: {v:?} is not a port"));
            None
        }
    }
}

/// A DNS-SD instance name an operator may choose (`[discovery] name`):
/// 1 to 63 bytes (one DNS label), no control character, no `.` (instance
/// names are not escaped on the wire by every implementation).
pub fn check_instance_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "{name:?} must be 1 to 63 bytes (one DNS label), not {}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == '.') {
        return Err(format!("{name:?} may not contain {c:?}"));
    }
    Ok(())
}

/// A host name as an mDNS host label: the first label of `hostname`,
/// letters, digits and `-` kept, anything else a `-`, at most 63 bytes;
/// `sockchat` when nothing is left.
pub fn host_label(hostname: &str) -> String {
    let first = hostname.split('.').next().unwrap_or_default();
    let label: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "sockchat".to_string()
    } else {
        label.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint([0xab; 32])
    }

    #[test]
    fn a_record_round_trips() {
        let t = Txt {
            name: "lab room".into(),
            version: "0.1.0".into(),
            proto: Some(1),
            users: Some(3),
            rooms: Some(2),
            tls: Some(TlsTxt {
                port: 7879,
                fingerprint: fp(),
            }),
            udp_port: Some(7878),
            problems: vec![],
        };
        let pairs = t.to_pairs();
        let back = Txt::from_pairs(pairs.iter().map(|(k, v)| (*k, Some(v.as_str()))));
        assert_eq!(back, t);
        assert!(pairs.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
    }

    #[test]
    fn tls_needs_port_and_fingerprint() {
        let t = Txt::from_pairs([("tls", Some("1")), ("tls_port", Some("7879"))]);
        assert_eq!(t.tls, None);
        assert!(t.problems[0].contains("TLS not used"), "{:?}", t.problems);
        let t = Txt::from_pairs([
            ("TLS", Some("1")),
            ("Tls_Port", Some("7879")),
            ("fingerprint", Some("SHA256:nope")),
        ]);
        assert_eq!(t.tls, None);
        assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
    }

    #[test]
    fn hostile_values_are_left_out_with_a_reason() {
        let long = "x".repeat(MAX_VALUE + 1);
        let t = Txt::from_pairs([
            ("users", Some("-1")),
            ("rooms", Some("many")),
            ("udp", Some("0")),
            ("name", Some(long.as_str())),
            ("users", Some("5")),
            ("flag", None),
            ("future_key", Some("ok")),
        ]);
        assert_eq!((t.users, t.rooms, t.udp_port), (None, None, None));
        assert_eq!(t.name, "");
        assert_eq!(t.problems.len(), 4, "{:?}", t.problems);
    }

    /// The limits are inclusive: a value of exactly MAX_VALUE bytes and an
    /// instance name of exactly 63 bytes (one DNS label) are taken.
    #[test]
    fn limits_are_inclusive() {
        let v = "x".repeat(MAX_VALUE);
        let t = Txt::from_pairs([("name", Some(v.as_str())), ("udp", Some("65535"))]);
        assert_eq!((t.name.len(), t.udp_port), (MAX_VALUE, Some(65535)));
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert!(check_instance_name(&"a".repeat(63)).is_ok());
        assert!(check_instance_name("a").is_ok());
        assert_eq!(host_label("a-b.example"), "a-b", "a hyphen is kept");
        assert_eq!(host_label("-web-01-"), "web-01");
        assert_eq!(host_label(&"h".repeat(70)), "h".repeat(63));
    }

    #[test]
    fn instance_names() {
        assert!(check_instance_name("lab").is_ok());
        assert!(check_instance_name("salle de TP 3").is_ok());
        assert!(check_instance_name("").is_err());
        assert!(check_instance_name(&"a".repeat(64)).is_err());
        assert!(check_instance_name("a.b").is_err());
        assert!(check_instance_name("a\u{7}").is_err());
    }

    #[test]
    fn host_labels() {
        assert_eq!(host_label("box.example.org"), "box");
        assert_eq!(host_label("my_box"), "my-box");
        assert_eq!(host_label(""), "sockchat");
        assert_eq!(host_label("___"), "sockchat");
    }
}
