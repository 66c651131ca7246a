//! The one disconnect vocabulary used everywhere: logs, TUI, text mode, JSON.
//!
//! Every connection ends with exactly one [`DisconnectReason`]. Kernel errors
//! keep their real errno (number and symbolic name) all the way to the user.

use std::fmt;
use std::io;

use crate::errno;

/// Why a connection ended. The `Display` text is the contract text from
/// DESIGN.md (e.g. `connection reset by peer (ECONNRESET 104)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The user said `/quit`, with its message (may be empty; the server
    /// sanitises it and cuts it to `limits.max_message_len`). Rooms see it:
    /// `* byer left lobby: quit: goodbye everyone`.
    Quit { message: String },
    /// `read` returned 0: the peer sent FIN.
    Eof,
    /// ECONNRESET 104.
    Reset,
    /// EPIPE 32.
    BrokenPipe,
    /// ETIMEDOUT 110 (keepalive or TCP_USER_TIMEOUT gave up).
    TimedOut,
    /// ECONNREFUSED 111.
    Refused,
    /// No traffic (or no pong) within the configured time.
    IdleTimeout { secs: u32 },
    /// The outbound queue was full (N frames queued).
    SlowConsumer { frames: u32 },
    /// Bad frame, oversize frame, bad UTF-8, bad handshake...
    ProtocolError { detail: String },
    /// The peer sent faster than its rate limit allows.
    RateLimited,
    /// The server is stopping gracefully.
    ServerShutdown,
    /// Cluster mode: the node this user was on stopped answering (no
    /// heartbeat within `cluster.node_timeout_secs`); the other nodes
    /// announce its users' departures with this reason.
    ServerLost,
    /// Any other errno, kept with its number and symbolic name.
    Os { errno: i32 },
    /// A server operator ended the session with `/kick`: who (their nick)
    /// and why (may be empty).
    Kicked { by: String, why: String },
    /// A server operator banned the user (`/ban`): who, why (may be empty)
    /// and for how long in seconds (0: until unbanned or the server
    /// restarts).
    Banned { by: String, why: String, secs: u32 },
}

impl DisconnectReason {
    /// `Quit` without a message.
    pub fn quit() -> Self {
        Self::Quit {
            message: String::new(),
        }
    }

    /// The short machine-readable code (`reset`, `eof`, ...). JSON outputs and
    /// the `errors` map of the bots use it. Other errnos use their lowercase
    /// symbolic name (`ehostunreach`).
    pub fn code(&self) -> String {
        match self {
            Self::Quit { .. } => "quit".into(),
            Self::Eof => "eof".into(),
            Self::Reset => "reset".into(),
            Self::BrokenPipe => "broken-pipe".into(),
            Self::TimedOut => "timed-out".into(),
            Self::Refused => "refused".into(),
            Self::IdleTimeout { .. } => "idle-timeout".into(),
            Self::SlowConsumer { .. } => "slow-consumer".into(),
            Self::ProtocolError { .. } => "protocol-error".into(),
            Self::RateLimited => "rate-limited".into(),
            Self::ServerShutdown => "server-shutdown".into(),
            Self::ServerLost => "server-lost".into(),
            Self::Os { errno } => errno::name(*errno).to_ascii_lowercase(),
            Self::Kicked { .. } => "kicked".into(),
            Self::Banned { .. } => "banned".into(),
        }
    }

    /// The errno behind this reason, if the kernel reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Reset => Some(libc::ECONNRESET),
            Self::BrokenPipe => Some(libc::EPIPE),
            Self::TimedOut => Some(libc::ETIMEDOUT),
            Self::Refused => Some(libc::ECONNREFUSED),
            Self::Os { errno } => Some(*errno),
            _ => None,
        }
    }

    /// Classify an errno into the vocabulary.
    pub fn from_errno(e: i32) -> Self {
        match e {
            libc::ECONNRESET => Self::Reset,
            libc::EPIPE => Self::BrokenPipe,
            libc::ETIMEDOUT => Self::TimedOut,
            libc::ECONNREFUSED => Self::Refused,
            other => Self::Os { errno: other },
        }
    }

    /// Classify an I/O error. Errors that carry an errno keep it; the rest
    /// (only produced by std/tokio wrappers, never by the kernel) map by kind.
    pub fn from_io_error(err: &io::Error) -> Self {
        if let Some(e) = err.raw_os_error() {
            return Self::from_errno(e);
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof => Self::Eof,
            io::ErrorKind::ConnectionReset => Self::Reset,
            io::ErrorKind::BrokenPipe => Self::BrokenPipe,
            io::ErrorKind::TimedOut => Self::TimedOut,
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::InvalidData => Self::ProtocolError {
                detail: err.to_string(),
            },
            _ => Self::ProtocolError {
                detail: format!("i/o error: {err}"),
            },
        }
    }

    /// Parse a code produced by [`DisconnectReason::code`] (parameters are
    /// not part of the code and come back as zero / empty).
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "quit" => Self::Quit {
                message: String::new(),
            },
            "eof" => Self::Eof,
            "reset" => Self::Reset,
            "broken-pipe" => Self::BrokenPipe,
            "timed-out" => Self::TimedOut,
            "refused" => Self::Refused,
            "idle-timeout" => Self::IdleTimeout { secs: 0 },
            "slow-consumer" => Self::SlowConsumer { frames: 0 },
            "protocol-error" => Self::ProtocolError {
                detail: String::new(),
            },
            "rate-limited" => Self::RateLimited,
            "server-shutdown" => Self::ServerShutdown,
            "kicked" => Self::Kicked {
                by: String::new(),
                why: String::new(),
            },
            "banned" => Self::Banned {
                by: String::new(),
                why: String::new(),
                secs: 0,
            },
            "server-lost" => Self::ServerLost,
            other => Self::Os {
                errno: errno::from_name(&other.to_ascii_uppercase())?,
            },
        })
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quit { message } if message.is_empty() => f.write_str("quit"),
            Self::Quit { message } => write!(f, "quit: {message}"),
            Self::Eof => f.write_str("closed by peer (EOF, FIN received)"),
            Self::Reset => f.write_str("connection reset by peer (ECONNRESET 104)"),
            Self::BrokenPipe => f.write_str("broken pipe (EPIPE 32)"),
            Self::TimedOut => f.write_str("timed out (ETIMEDOUT 110)"),
            Self::Refused => f.write_str("connection refused (ECONNREFUSED 111)"),
            Self::IdleTimeout { secs } => write!(f, "idle timeout ({secs} s)"),
            Self::SlowConsumer { frames } => {
                write!(f, "slow consumer (queue full: {frames} frames)")
            }
            Self::ProtocolError { detail } => write!(f, "protocol error: {detail}"),
            Self::RateLimited => f.write_str("rate limited"),
            Self::ServerShutdown => f.write_str("server shutting down"),
            Self::ServerLost => f.write_str("server lost (cluster node stopped answering)"),
            Self::Os { errno: e } => {
                write!(f, "{} ({} {})", errno::describe(*e), errno::name(*e), e)
            }
            Self::Kicked { by, why } => {
                write!(f, "kicked by {by}")?;
                colon_why(f, why)
            }
            Self::Banned { by, why, secs } => {
                write!(f, "banned by {by}")?;
                if *secs > 0 {
                    write!(f, " for {secs} s")?;
                }
                colon_why(f, why)
            }
        }
    }
}

/// `: WHY` after a kick or ban, or nothing when no reason was given.
fn colon_why(f: &mut fmt::Formatter<'_>, why: &str) -> fmt::Result {
    if why.is_empty() {
        Ok(())
    } else {
        write!(f, ": {why}")
    }
}

/// Who and why of a kick or ban in one `detail` string on the wire:
/// `BY` or `BY: WHY` (a nick never contains `:` or a space, so the first
/// `": "` splits them). [`split_by_why`] is the inverse.
pub fn join_by_why(by: &str, why: &str) -> String {
    if why.is_empty() {
        by.to_string()
    } else {
        format!("{by}: {why}")
    }
}

/// The inverse of [`join_by_why`]: `(by, why)`.
pub fn split_by_why(detail: &str) -> (String, String) {
    match detail.split_once(": ") {
        Some((by, why)) => (by.to_string(), why.to_string()),
        None => (detail.to_string(), String::new()),
    }
}

/// A text that is not the [`Display`](fmt::Display) of any reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a disconnect reason: {0:?}")]
pub struct ParseReasonError(pub String);

/// The inverse of `Display`: the contract text back to the reason, parameters
/// included (`idle timeout (30 s)` -> `IdleTimeout { secs: 30 }`, `no route
/// to host (EHOSTUNREACH 113)` -> `Os { errno: 113 }`). An errno with a
/// variant of its own comes back as that variant (`... (ECONNRESET 104)` is
/// `Reset`). Exact: no whitespace is trimmed and nothing is guessed (the
/// caller trims a line ending).
impl std::str::FromStr for DisconnectReason {
    type Err = ParseReasonError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseReasonError(text.to_string());
        if let Some(message) = text.strip_prefix("quit: ") {
            return Ok(Self::Quit {
                message: message.to_string(),
            });
        }
        const FIXED: [DisconnectReason; 9] = [
            DisconnectReason::Quit {
                message: String::new(),
            },
            DisconnectReason::Eof,
            DisconnectReason::Reset,
            DisconnectReason::BrokenPipe,
            DisconnectReason::TimedOut,
            DisconnectReason::Refused,
            DisconnectReason::RateLimited,
            DisconnectReason::ServerShutdown,
            DisconnectReason::ServerLost,
        ];
        if let Some(r) = FIXED.into_iter().find(|r| r.to_string() == text) {
            return Ok(r);
        }
        if let Some(rest) = text.strip_prefix("kicked by ") {
            let (by, why) = split_by_why(rest);
            return Ok(Self::Kicked { by, why });
        }
        if let Some(rest) = text.strip_prefix("banned by ") {
            let (who, why) = split_by_why(rest);
            let (by, secs) = match who.split_once(" for ") {
                Some((by, d)) => {
                    let n = d.strip_suffix(" s").ok_or_else(err)?;
                    (by.to_string(), n.parse().map_err(|_| err())?)
                }
                None => (who, 0),
            };
            return Ok(Self::Banned { by, why, secs });
        }
        if let Some(detail) = text.strip_prefix("protocol error: ") {
            return Ok(Self::ProtocolError {
                detail: detail.to_string(),
            });
        }
        if let Some(n) = text
            .strip_prefix("idle timeout (")
            .and_then(|r| r.strip_suffix(" s)"))
        {
            let secs = n.parse().map_err(|_| err())?;
            return Ok(Self::IdleTimeout { secs });
        }
        if let Some(n) = text
            .strip_prefix("slow consumer (queue full: ")
            .and_then(|r| r.strip_suffix(" frames)"))
        {
            let frames = n.parse().map_err(|_| err())?;
            return Ok(Self::SlowConsumer { frames });
        }
        // "<description> (ENAME N)": all three must be this errno's.
        let (desc, inner) = text
            .strip_suffix(')')
            .and_then(|t| t.rsplit_once(" ("))
            .ok_or_else(err)?;
        let (name, num) = inner.split_once(' ').ok_or_else(err)?;
        let n: i32 = num.parse().map_err(|_| err())?;
        if errno::name(n) != name || errno::describe(n) != desc {
            return Err(err());
        }
        Ok(Self::from_errno(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_parse_back() {
        for r in [
            DisconnectReason::quit(),
            DisconnectReason::Quit {
                message: "see you (EPIPE 32)".into(),
            },
            DisconnectReason::Eof,
            DisconnectReason::Reset,
            DisconnectReason::BrokenPipe,
            DisconnectReason::TimedOut,
            DisconnectReason::Refused,
            DisconnectReason::RateLimited,
            DisconnectReason::ServerShutdown,
            DisconnectReason::ServerLost,
            DisconnectReason::IdleTimeout { secs: 30 },
            DisconnectReason::SlowConsumer { frames: 1024 },
            DisconnectReason::ProtocolError {
                detail: "bad (EPIPE 32)".into(),
            },
            DisconnectReason::Os { errno: 113 },
            DisconnectReason::Os { errno: 9999 },
            DisconnectReason::Kicked {
                by: "op".into(),
                why: "spam: again".into(),
            },
            DisconnectReason::Kicked {
                by: "op".into(),
                why: String::new(),
            },
            DisconnectReason::Banned {
                by: "op".into(),
                why: "flood".into(),
                secs: 600,
            },
            DisconnectReason::Banned {
                by: "op".into(),
                why: String::new(),
                secs: 0,
            },
        ] {
            assert_eq!(r.to_string().parse::<DisconnectReason>(), Ok(r.clone()));
        }
        assert!(
            " timed out (ETIMEDOUT 110)"
                .parse::<DisconnectReason>()
                .is_err()
        );
        // An errno with its own variant comes back as that variant.
        assert_eq!(
            DisconnectReason::Os { errno: 104 }.to_string().parse(),
            Ok(DisconnectReason::Reset)
        );
        for bad in [
            "",
            "nick already taken: alice",
            "idle timeout (x s)",
            "slow consumer (queue full: -1 frames)",
            "no route (EHOSTUNREACH 999)",
            "(EHOSTUNREACH 113)",
            "whatever (E12 13)",
        ] {
            assert!(bad.parse::<DisconnectReason>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contract_texts() {
        // A quit without a message is the bare word, no dangling colon.
        assert_eq!(DisconnectReason::quit().to_string(), "quit");
        let bye = DisconnectReason::Quit {
            message: "bye".into(),
        };
        assert_eq!(bye.to_string(), "quit: bye");
        assert_eq!(
            DisconnectReason::Reset.to_string(),
            "connection reset by peer (ECONNRESET 104)"
        );
        assert_eq!(
            DisconnectReason::Eof.to_string(),
            "closed by peer (EOF, FIN received)"
        );
        assert_eq!(
            DisconnectReason::BrokenPipe.to_string(),
            "broken pipe (EPIPE 32)"
        );
        assert_eq!(
            DisconnectReason::IdleTimeout { secs: 30 }.to_string(),
            "idle timeout (30 s)"
        );
        assert_eq!(
            DisconnectReason::SlowConsumer { frames: 1024 }.to_string(),
            "slow consumer (queue full: 1024 frames)"
        );
        assert_eq!(
            DisconnectReason::Os { errno: 113 }.to_string(),
            "no route to host (EHOSTUNREACH 113)"
        );
        let kicked = |why: &str| DisconnectReason::Kicked {
            by: "op".into(),
            why: why.into(),
        };
        assert_eq!(kicked("").to_string(), "kicked by op");
        assert_eq!(kicked("spam").to_string(), "kicked by op: spam");
        let banned = |secs, why: &str| DisconnectReason::Banned {
            by: "op".into(),
            why: why.into(),
            secs,
        };
        assert_eq!(banned(0, "").to_string(), "banned by op");
        assert_eq!(banned(60, "").to_string(), "banned by op for 60 s");
        assert_eq!(
            banned(60, "flood").to_string(),
            "banned by op for 60 s: flood"
        );
        assert_eq!(kicked("x").code(), "kicked");
        assert_eq!(banned(1, "x").code(), "banned");
        assert!("banned by op for x s".parse::<DisconnectReason>().is_err());
        assert!("banned by op for 5".parse::<DisconnectReason>().is_err());
    }

    #[test]
    fn who_and_why_share_one_detail() {
        for (by, why) in [("op", ""), ("op", "spam"), ("op", "a: b"), ("", "x")] {
            assert_eq!(
                split_by_why(&join_by_why(by, why)),
                (by.to_string(), why.to_string())
            );
        }
        assert_eq!(join_by_why("op", ""), "op");
        assert_eq!(join_by_why("op", "spam"), "op: spam");
    }

    #[test]
    fn classify_real_errnos() {
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(DisconnectReason::from_io_error(&e), DisconnectReason::Reset);
        let e = io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(
            DisconnectReason::from_io_error(&e),
            DisconnectReason::BrokenPipe
        );
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        let r = DisconnectReason::from_io_error(&e);
        assert_eq!(r.errno(), Some(113));
        assert_eq!(r.code(), "ehostunreach");
        assert_eq!(DisconnectReason::from_code("ehostunreach"), Some(r));
    }

    /// `errno()` gives the kernel's number for exactly the reasons that
    /// come from one, and `from_errno` is its inverse for each of them.
    #[test]
    fn errno_of_each_reason_and_back() {
        for (r, e) in [
            (DisconnectReason::Reset, Some(libc::ECONNRESET)),
            (DisconnectReason::BrokenPipe, Some(libc::EPIPE)),
            (DisconnectReason::TimedOut, Some(libc::ETIMEDOUT)),
            (DisconnectReason::Refused, Some(libc::ECONNREFUSED)),
            (DisconnectReason::Os { errno: 113 }, Some(113)),
            (DisconnectReason::Eof, None),
            (DisconnectReason::quit(), None),
            (DisconnectReason::IdleTimeout { secs: 5 }, None),
        ] {
            assert_eq!(r.errno(), e, "{r:?}");
            if let Some(e) = e {
                assert_eq!(DisconnectReason::from_errno(e), r);
            }
        }
    }

    /// An I/O error without an errno (made by std or tokio, not the
    /// kernel) is classified by its kind; any other kind is a protocol
    /// error that keeps the error's text.
    #[test]
    fn io_errors_without_an_errno_map_by_kind() {
        use io::ErrorKind as K;
        for (kind, want) in [
            (K::UnexpectedEof, DisconnectReason::Eof),
            (K::ConnectionReset, DisconnectReason::Reset),
            (K::BrokenPipe, DisconnectReason::BrokenPipe),
            (K::TimedOut, DisconnectReason::TimedOut),
            (K::ConnectionRefused, DisconnectReason::Refused),
            (
                K::InvalidData,
                DisconnectReason::ProtocolError {
                    detail: "bad".into(),
                },
            ),
            (
                K::Other,
                DisconnectReason::ProtocolError {
                    detail: "i/o error: bad".into(),
                },
            ),
        ] {
            let e = io::Error::new(kind, "bad");
            assert_eq!(DisconnectReason::from_io_error(&e), want, "{kind:?}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for r in [
            DisconnectReason::quit(),
            DisconnectReason::Eof,
            DisconnectReason::Reset,
            DisconnectReason::BrokenPipe,
            DisconnectReason::TimedOut,
            DisconnectReason::Refused,
            DisconnectReason::RateLimited,
            DisconnectReason::ServerShutdown,
            DisconnectReason::Kicked {
                by: String::new(),
                why: String::new(),
            },
            DisconnectReason::Banned {
                by: String::new(),
                why: String::new(),
                secs: 0,
            },
            DisconnectReason::ServerLost,
        ] {
            assert_eq!(DisconnectReason::from_code(&r.code()), Some(r));
        }
    }
}
