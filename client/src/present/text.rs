//! How events read in words: one line of text with its severity (plain
//! mode, the TUI's event log) or one JSON object (`--json`). Server
//! messages are rendered by `shared::text::render`, the renderer of the
//! server's text mode, so a person reads one format everywhere; this file
//! adds the lines for what happens to our own socket.
//!
//! **Invariant:** text lines are sanitised (the renderer does it for server
//! messages; [`event_line`] for the rest). JSON keeps the strings exactly as
//! received: it is data for programs, and serde escapes control characters.

use serde_json::{Value, json};
use sockchat_shared::sanitize::sanitize;
use sockchat_shared::text::{Line, Severity, render};
use sockchat_shared::{ChatKind, ServerMsg};

use super::duration::fmt_duration;
use super::wire::{after_close_json, after_close_text, wire_json, wire_text};
use crate::net::{CloseReason, HalfClose, SocketEvent, SysError, Transport, WireNews};
use sockchat_shared::errno;

/// A failed system call as the user reads it: the errno and what it means
/// for this socket, then Winsock's code for the same condition beside it
/// (`... — Windows: WSAECONNRESET 10054`), and where Windows reports the
/// situation differently, how (seed 003: 10053 there is ETIMEDOUT here).
pub fn error_text(e: &SysError) -> String {
    let mut t = e.to_string();
    if let Some((name, code)) = errno::windows(e.errno) {
        t.push_str(&format!(" — Windows: {name} {code}"));
    }
    if let Some(note) = errno::windows_note(e.errno) {
        t.push_str(&format!(" (Windows vs Linux: {note})"));
    }
    t
}

/// The text of a half-close.
pub fn half_close_text(h: HalfClose) -> &'static str {
    match h {
        HalfClose::PeerSentFin => "read: EOF (peer sent FIN) — HALF-CLOSED (peer sent FIN)",
        HalfClose::WeSentFin => "HALF-CLOSED (we sent FIN)",
    }
}

/// One line for any event, as the user `me` (our nick) reads it; `None`
/// for events that only feed the panel (TCP_INFO polls, latency) or the end
/// marker.
pub fn event_line(ev: &SocketEvent, me: &str) -> Option<Line> {
    use Severity::{Error, Notice};
    let (severity, text) = match ev {
        SocketEvent::Server(m) => return render(m, me),
        SocketEvent::Connecting { addr, attempt } => (
            Notice,
            format!("* connecting to {addr} (attempt {attempt})"),
        ),
        SocketEvent::Connected {
            local,
            peer,
            transport: Transport::Tcp,
        } => (
            Notice,
            format!("* connected {local} -> {peer} (tcp): ESTABLISHED"),
        ),
        // UDP has no connection state: the handshake's answer is a session.
        SocketEvent::Connected {
            local,
            peer,
            transport: Transport::Udp,
        } => (
            Notice,
            format!("* connected {local} -> {peer} (udp): session up"),
        ),
        SocketEvent::Error(e) => (Error, format!("! {}", error_text(e))),
        SocketEvent::HalfClosed(h) => (Notice, format!("* {}", half_close_text(*h))),
        SocketEvent::Closed(r) => (Notice, format!("* CLOSED: {r}")),
        SocketEvent::Reconnecting { delay, attempt } => (
            Notice,
            format!(
                "* reconnecting in {} (attempt {attempt})",
                fmt_duration(*delay)
            ),
        ),
        SocketEvent::TcpState { from, to } => (Notice, format!("* tcp state {from} -> {to}")),
        SocketEvent::FaultDone {
            fault,
            did,
            peer_sees,
        } => (
            Notice,
            format!("* fault {fault}: {did}; the peer should see: {peer_sees}"),
        ),
        SocketEvent::Local(s) => (Error, format!("! {s}")),
        SocketEvent::LineFailed { why, .. } => (Error, format!("! not sent: {why}")),
        SocketEvent::Transfer(e) => super::transfer::line(e),
        SocketEvent::Wire(n) => (
            if matches!(**n, WireNews::Off(_)) {
                Error
            } else {
                Notice
            },
            wire_text(n),
        ),
        SocketEvent::AfterClose(a) => (Notice, format!("* {}", after_close_text(a))),
        SocketEvent::Info(_)
        | SocketEvent::UdpInfo(_)
        | SocketEvent::Latency(_)
        | SocketEvent::LineConfirmed { .. }
        | SocketEvent::Lag { .. }
        | SocketEvent::Finished { .. } => return None,
    };
    // Line by line: packets are one line per segment.
    let text: Vec<_> = text.split('\n').map(sanitize).collect();
    Some(Line {
        severity,
        text: text.join("\n"),
    })
}

fn close_json(r: &CloseReason) -> Value {
    match r {
        CloseReason::Peer(d) => json!({
            "by": "peer",
            "reason": d.code(),
            "errno": d.errno(),
            "text": d.to_string(),
        }),
        CloseReason::Local(s) => json!({"by": "us", "reason": "local", "text": s}),
    }
}

/// One JSON object for an event (`--json`); `None` for TCP_INFO polls.
pub fn event_json(ev: &SocketEvent) -> Option<Value> {
    Some(match ev {
        SocketEvent::Connecting { addr, attempt } => {
            json!({"event": "connecting", "addr": addr, "attempt": attempt})
        }
        SocketEvent::Connected {
            local,
            peer,
            transport,
        } => json!({
            "event": "connected",
            "local": local.to_string(),
            "peer": peer.to_string(),
            "transport": transport.to_string(),
        }),
        SocketEvent::Server(m) => return server_json(m),
        SocketEvent::Error(e) => json!({
            "event": "error",
            "syscall": e.syscall,
            "errno": e.errno,
            "name": e.name(),
            "reason": e.reason().code(),
            "text": e.to_string(),
            "windows": errno::windows(e.errno).map(|(name, code)| json!({"name": name, "code": code})),
        }),
        SocketEvent::HalfClosed(h) => json!({
            "event": "half-closed",
            "side": match h { HalfClose::WeSentFin => "we-sent-fin", HalfClose::PeerSentFin => "peer-sent-fin" },
        }),
        SocketEvent::Closed(r) => {
            let mut v = close_json(r);
            v["event"] = json!("closed");
            v
        }
        SocketEvent::Reconnecting { delay, attempt } => json!({
            "event": "reconnecting",
            "delay_ms": delay.as_millis() as u64,
            "attempt": attempt,
        }),
        SocketEvent::TcpState { from, to } => json!({"event": "tcp-state", "from": from, "to": to}),
        SocketEvent::Latency(d) => json!({"event": "latency", "us": d.as_micros() as u64}),
        SocketEvent::FaultDone {
            fault,
            did,
            peer_sees,
        } => json!({"event": "fault", "fault": fault.name(), "did": did, "peer_sees": peer_sees}),
        SocketEvent::Local(s) => json!({"event": "local-error", "text": s}),
        SocketEvent::Finished { quit } => json!({"event": "finished", "quit": quit}),
        SocketEvent::LineConfirmed { id } => json!({"event": "line-confirmed", "id": id.0}),
        SocketEvent::LineFailed { id, why } => {
            json!({"event": "line-failed", "id": id.0, "why": why})
        }
        SocketEvent::Lag { waiting_ms } => json!({"event": "lag", "waiting_ms": waiting_ms}),
        SocketEvent::Transfer(e) => super::transfer::json(e),
        SocketEvent::Wire(n) => wire_json(n),
        SocketEvent::AfterClose(a) => after_close_json(a),
        SocketEvent::Info(_) | SocketEvent::UdpInfo(_) => return None,
    })
}

fn server_json(m: &ServerMsg) -> Option<Value> {
    Some(match m {
        ServerMsg::Welcome { nick, room, server } => {
            json!({"event": "welcome", "nick": nick, "room": room, "server": server})
        }
        ServerMsg::Chat {
            room,
            from,
            text,
            kind,
            ts_ms,
            history,
        } => json!({
            "event": "chat",
            "room": room,
            "from": from,
            "text": text,
            "kind": match kind { ChatKind::Say => "say", ChatKind::Me => "me" },
            "ts_ms": ts_ms,
            "history": history,
        }),
        ServerMsg::Private {
            from,
            to,
            text,
            ts_ms,
        } => json!({"event": "private", "from": from, "to": to, "text": text, "ts_ms": ts_ms}),
        ServerMsg::Joined { room, nick } => json!({"event": "joined", "room": room, "nick": nick}),
        ServerMsg::Left { room, nick, reason } => json!({
            "event": "left",
            "room": room,
            "nick": nick,
            "reason": reason.as_ref().map(|r| r.code()),
            "errno": reason.as_ref().and_then(|r| r.errno()),
            "text": reason.as_ref().map(|r| r.to_string()),
        }),
        ServerMsg::NickChanged { old, new } => {
            json!({"event": "nick-changed", "old": old, "new": new})
        }
        ServerMsg::Who { room, nicks } => json!({"event": "who", "room": room, "nicks": nicks}),
        ServerMsg::Rooms { rooms } => json!({
            "event": "rooms",
            "rooms": rooms.iter().map(|r| json!({"name": r.name, "members": r.members})).collect::<Vec<_>>(),
        }),
        ServerMsg::Notice { text } => json!({"event": "notice", "text": text}),
        ServerMsg::Error { code, text } => {
            json!({"event": "server-error", "code": code.to_u16(), "text": text})
        }
        ServerMsg::SockInfo { nick, fields } => {
            json!({"event": "sockinfo", "nick": nick, "fields": field_map(fields)})
        }
        ServerMsg::Stats { fields } => json!({"event": "stats", "fields": field_map(fields)}),
        ServerMsg::Bye { reason } => json!({
            "event": "bye",
            "reason": reason.code(),
            "text": reason.to_string(),
        }),
        ServerMsg::Away { nick, text } => json!({"event": "away", "nick": nick, "text": text}),
        ServerMsg::Topic {
            room,
            text,
            by,
            changed,
        } => json!({"event": "topic", "room": room, "text": text, "by": by, "changed": changed}),
        ServerMsg::Ping { .. } | ServerMsg::Pong { .. } | ServerMsg::Transfer(_) => return None,
    })
}

/// Key/value pairs (`SockInfo`, `Stats`) as one JSON object.
fn field_map(fields: &[(String, String)]) -> serde_json::Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(syscall: &'static str, errno: i32) -> SysError {
        SysError { syscall, errno }
    }

    #[test]
    fn errors_show_the_windows_code_beside_the_linux_errno() {
        let t = error_text(&err("read", libc::ECONNRESET));
        assert!(
            t.starts_with("read: ECONNRESET (104) connection reset by peer"),
            "{t}"
        );
        assert!(t.contains(" — Windows: WSAECONNRESET 10054"), "{t}");
        // 10053: what gives it on Windows, what Linux says then.
        let t = error_text(&err("write", libc::ECONNABORTED));
        assert!(t.contains("Windows: WSAECONNABORTED 10053"), "{t}");
        assert!(t.contains("ETIMEDOUT 110"), "{t}");
        let t = error_text(&err("read", libc::ETIMEDOUT));
        assert!(
            t.contains("WSAETIMEDOUT 10060") && t.contains("10053"),
            "{t}"
        );
        // No Winsock twin: no code, but the difference is said.
        let t = error_text(&err("write", libc::EPIPE));
        assert!(!t.contains("Windows: WSA"), "{t}");
        assert!(t.contains("WSAECONNRESET 10054"), "{t}");
        let line =
            event_line(&SocketEvent::Error(err("read", libc::ECONNRESET)), "me").expect("a line");
        assert!(line.text.contains("WSAECONNRESET 10054"), "{}", line.text);
        let j = event_json(&SocketEvent::Error(err("read", libc::ECONNRESET))).expect("json");
        assert_eq!(j["windows"]["code"], 10054);
        assert_eq!(j["windows"]["name"], "WSAECONNRESET");
    }
}
