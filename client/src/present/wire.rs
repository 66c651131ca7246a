//! Our own connection's packets ([`WireNews`]) and the socket the kernel
//! keeps after our close ([`AfterClose`]), in words (plain mode, the event
//! log, the TUI's wire view and socket panel) and as JSON (`--json`).
//! Packets read as the lab prints them: tcpdump's notation, `me` for our
//! end and `server` for the other.

use serde_json::{Value, json};

use super::duration::fmt_duration;
use crate::net::{AfterClose, WireNews};
use crate::wire::Segment;

/// The names of the two ends in a segment line: the server (the listening
/// side, on its port) and us.
pub const NAMES: [&str; 2] = ["server", "me"];

/// One segment as tcpdump would print it (`0.000042 me.40000 >
/// server.7878: Flags [S], seq 0, win 65495, options [...], length 0`).
pub fn segment_line(s: &Segment) -> String {
    s.line(NAMES)
}

/// The words for wire news: one line per segment (plain mode), or why
/// there are none.
pub fn wire_text(n: &WireNews) -> String {
    match n {
        WireNews::Packets { segments, lost } => {
            let mut lines: Vec<String> = segments
                .iter()
                .map(|s| format!("~ {}", segment_line(s)))
                .collect();
            if *lost > 0 {
                lines.push(format!(
                    "~ ({lost} packets not kept: the capture fell behind)"
                ));
            }
            lines.join("\n")
        }
        WireNews::Off(why) => format!("wire: {why}"),
    }
}

pub fn wire_json(n: &WireNews) -> Value {
    match n {
        WireNews::Packets { segments, lost } => json!({
            "event": "wire",
            "packets": segments.iter().map(|s| s.to_json(NAMES)).collect::<Vec<_>>(),
            "lost": lost,
        }),
        WireNews::Off(why) => json!({"event": "wire-off", "why": why}),
    }
}

/// `after our close the kernel keeps ... in TIME_WAIT for 59.9 s more
/// (sock_diag)`, or that it keeps nothing and what that means.
pub fn after_close_text(a: &AfterClose) -> String {
    let conn = format!("{} -> {}", a.local, a.peer);
    if let Some(e) = &a.error {
        return format!("after our close: cannot ask the kernel about {conn}: {e}");
    }
    match &a.socket {
        Some(k) => {
            let timer = match (k.timer, k.expires) {
                (Some(t), Some(left)) => format!(", {t} timer: {} left", fmt_duration(left)),
                _ => String::new(),
            };
            format!(
                "after our close the kernel keeps {conn} in {}{timer} (sock_diag)",
                k.state
            )
        }
        None => format!(
            "the kernel keeps nothing of {conn} (sock_diag): no TIME_WAIT on our side (we reset it, or the server closed first and holds the TIME_WAIT)"
        ),
    }
}

pub fn after_close_json(a: &AfterClose) -> Value {
    json!({
        "event": "after-close",
        "local": a.local.to_string(),
        "peer": a.peer.to_string(),
        "state": a.socket.as_ref().map(|k| k.state),
        "timer": a.socket.as_ref().and_then(|k| k.timer),
        "expires_ms": a.socket.as_ref().and_then(|k| k.expires).map(|d| d.as_millis() as u64),
        "error": a.error,
    })
}
