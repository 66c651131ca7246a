//! One line of a recording, both ways: an entry (a socket event, a typed
//! line, a change of room) to its JSON object and back. A socket event is
//! the object `--json` prints for it ([`event_json`]), so a recording reads
//! like plain mode's output; the socket panel's samples (TCP_INFO, the UDP
//! numbers), which `--json` leaves out, are added as `tcp-info` and
//! `udp-info`. Every object carries `t_ms` (since the start, monotonic)
//! and `at_ms` (wall clock, Unix ms).
//!
//! **Invariant:** decoding never panics on a hostile object: every field is
//! checked, numbers are range-checked before they become a `Duration`, and
//! the `&'static str`s of the event types come from fixed tables.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sockchat_shared::sockopt::tcp_state_name;
use sockchat_shared::{ChatKind, DisconnectReason, ErrorCode, RoomInfo, ServerMsg};

use crate::net::{
    AfterClose, CloseReason, Fault, HalfClose, LineId, SocketEvent, SocketInfo, SysError,
    Transport, WireNews, sock_diag::KernelSocket, udp::UdpInfo,
};
use crate::present::text::event_json;
use crate::present::wire::NAMES;
use crate::wire::{Segment, Side};

use super::fields::{Obj, T_MAX_US, addr, field, flag, ms, num, small, strings, text};

/// The first line's `format`.
pub const FORMAT: &str = "sockchat-record";
/// The version this build writes and reads. A newer file is refused (its
/// meaning may have changed); an older one does not exist yet.
pub const VERSION: u32 = 1;

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The sockchat that wrote it.
    pub sockchat: String,
    /// `tui` or `plain`.
    pub mode: String,
    /// The server asked for (`HOST:PORT`).
    pub server: String,
    /// The nick asked for (empty: the server picked one).
    pub nick: String,
    /// The room asked for.
    pub room: String,
    /// Wall clock at `t_ms` 0 (Unix ms).
    pub start_ms: u64,
    /// The recording machine's offset from UTC, so times read as they did.
    pub utc_offset_secs: i64,
}

impl Header {
    pub fn new(mode: &str, server: &str, nick: &str, room: &str, start_ms: u64, utc: i64) -> Self {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            sockchat: env!("CARGO_PKG_VERSION").into(),
            mode: mode.into(),
            server: server.into(),
            nick: nick.into(),
            room: room.into(),
            start_ms,
            utc_offset_secs: utc,
        }
    }
}

/// What one line after the header holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// What the net task reported to the UI.
    Socket(SocketEvent),
    /// A line the user typed and sent (a secret in it is already `***`).
    Typed(String),
    /// The user moved to this room or private view (a key: Alt-2, Ctrl-N).
    Focus(String),
}

/// An entry and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// Since the start of the recording.
    pub t: Duration,
    pub entry: Entry,
}

/// What a line decoded to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Entry(Stamped),
    /// A kind this build does not know (a newer sockchat's): skipped and
    /// counted.
    Skipped(String),
}

/// The JSON object for a socket event; `None` for what the UI never
/// shows (pings, pongs, file-transfer protocol messages).
pub fn socket_json(ev: &SocketEvent) -> Option<Value> {
    match ev {
        // The panel's samples: `--json` leaves them out, a replay needs them.
        SocketEvent::Info(i) => tagged(serde_json::to_value(&**i).ok()?, "tcp-info"),
        SocketEvent::UdpInfo(u) => tagged(serde_json::to_value(&**u).ok()?, "udp-info"),
        SocketEvent::Server(ServerMsg::SockInfo { fields, .. } | ServerMsg::Stats { fields }) => {
            // `fields` is a JSON map (its order lost): the order as sent.
            let mut v = event_json(ev)?;
            v["keys"] = json!(fields.iter().map(|(k, _)| k).collect::<Vec<_>>());
            Some(v)
        }
        _ => event_json(ev),
    }
}

fn tagged(mut v: Value, event: &str) -> Option<Value> {
    v.as_object_mut()?
        .insert("event".into(), Value::String(event.into()));
    Some(v)
}

/// The JSON object of an entry at `t`, with `at_ms` from `start_ms`. A typed
/// line's secret is replaced here (`shared::secret::redact`, the rule that
/// keeps it out of the input history), whoever calls.
pub fn encode(entry: &Entry, t: Duration, start_ms: u64) -> Option<Value> {
    let mut v = match entry {
        Entry::Socket(ev) => socket_json(ev)?,
        Entry::Typed(line) => {
            json!({"event": "typed", "line": sockchat_shared::secret::redact(line)})
        }
        Entry::Focus(room) => json!({"event": "focus", "room": room}),
    };
    stamp(&mut v, t, start_ms);
    Some(v)
}

/// Add `t_ms` (µs precision) and `at_ms` to an entry's object.
pub fn stamp(v: &mut Value, t: Duration, start_ms: u64) {
    let us = u64::try_from(t.as_micros())
        .unwrap_or(u64::MAX)
        .min(T_MAX_US);
    v["t_ms"] = json!(us as f64 / 1000.0);
    v["at_ms"] = json!(start_ms.saturating_add(us / 1000));
}

/// Read one object back. `Err`: what is wrong with it, in words.
pub fn decode(v: &Value) -> Result<Decoded, String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    let kind = text(o, "event")?;
    let t_ms = o
        .get("t_ms")
        .and_then(Value::as_f64)
        .ok_or("no \"t_ms\" (milliseconds since the start)")?;
    let us = t_ms * 1000.0;
    if !(0.0..=T_MAX_US as f64).contains(&us) {
        return Err(format!("\"t_ms\" {t_ms} is out of range"));
    }
    let t = Duration::from_micros(us.round() as u64);
    let entry = match kind.as_str() {
        "typed" => Entry::Typed(text(o, "line")?),
        "focus" => Entry::Focus(text(o, "room")?),
        _ => match socket_event(&kind, o, v)? {
            Some(ev) => Entry::Socket(ev),
            None => return Ok(Decoded::Skipped(kind)),
        },
    };
    Ok(Decoded::Entry(Stamped { t, entry }))
}

/// A disconnect reason from its contract text (parameters included), or
/// else its code.
fn reason(o: &Obj) -> Result<DisconnectReason, String> {
    if let Ok(t) = text(o, "text")
        && let Ok(r) = t.parse::<DisconnectReason>()
    {
        return Ok(r);
    }
    let code = text(o, "reason")?;
    DisconnectReason::from_code(&code).ok_or_else(|| format!("unknown reason {code:?}"))
}

/// The system calls whose errors the client reports (`SysError` keeps a
/// `&'static str`); another name reads as `?`.
const SYSCALLS: [&str; 20] = [
    "connect",
    "read",
    "write",
    "recv",
    "send",
    "recvfrom",
    "sendto",
    "sendmsg",
    "recvmsg",
    "setsockopt",
    "getsockopt",
    "shutdown",
    "socket",
    "bind",
    "close",
    "accept",
    "ioctl",
    "poll",
    "getaddrinfo",
    "handshake",
];

fn table(name: &str, names: impl IntoIterator<Item = &'static str>) -> &'static str {
    names.into_iter().find(|n| *n == name).unwrap_or("?")
}

fn tcp_state(name: &str) -> &'static str {
    let known = (0..=12u8).map(tcp_state_name);
    match table(name, known) {
        "?" => "UNKNOWN",
        s => s,
    }
}

fn server(kind: &str, o: &Obj) -> Result<Option<ServerMsg>, String> {
    Ok(Some(match kind {
        "welcome" => ServerMsg::Welcome {
            nick: text(o, "nick")?,
            room: text(o, "room")?,
            server: text(o, "server")?,
        },
        "chat" => ServerMsg::Chat {
            room: text(o, "room")?,
            from: text(o, "from")?,
            text: text(o, "text")?,
            kind: match text(o, "kind")?.as_str() {
                "me" => ChatKind::Me,
                "say" => ChatKind::Say,
                k => return Err(format!("\"kind\" {k:?} is not say or me")),
            },
            ts_ms: num(o, "ts_ms")?,
            history: flag(o, "history")?,
        },
        "private" => ServerMsg::Private {
            from: text(o, "from")?,
            to: text(o, "to")?,
            text: text(o, "text")?,
            ts_ms: num(o, "ts_ms")?,
        },
        "joined" => ServerMsg::Joined {
            room: text(o, "room")?,
            nick: text(o, "nick")?,
        },
        "left" => ServerMsg::Left {
            room: text(o, "room")?,
            nick: text(o, "nick")?,
            reason: match o.get("reason") {
                None | Some(Value::Null) => None,
                Some(_) => Some(reason(o)?),
            },
        },
        "nick-changed" => ServerMsg::NickChanged {
            old: text(o, "old")?,
            new: text(o, "new")?,
        },
        "who" => ServerMsg::Who {
            room: text(o, "room")?,
            nicks: strings(o, "nicks")?,
        },
        "rooms" => ServerMsg::Rooms {
            rooms: field(o, "rooms")?
                .as_array()
                .ok_or("\"rooms\" is not a list")?
                .iter()
                .map(|r| {
                    let r = r.as_object().ok_or("a room is not an object")?;
                    Ok(RoomInfo {
                        name: text(r, "name")?,
                        members: small(r, "members")?,
                    })
                })
                .collect::<Result<_, String>>()?,
        },
        "notice" => ServerMsg::Notice {
            text: text(o, "text")?,
        },
        "server-error" => ServerMsg::Error {
            code: ErrorCode::from_u16(small(o, "code")?),
            text: text(o, "text")?,
        },
        "sockinfo" => ServerMsg::SockInfo {
            nick: text(o, "nick")?,
            fields: pairs(o)?,
        },
        "stats" => ServerMsg::Stats { fields: pairs(o)? },
        "topic" => ServerMsg::Topic {
            room: text(o, "room")?,
            text: text(o, "text")?,
            by: text(o, "by")?,
            changed: flag(o, "changed")?,
        },
        "bye" => ServerMsg::Bye { reason: reason(o)? },
        "away" => ServerMsg::Away {
            nick: text(o, "nick")?,
            text: text(o, "text")?,
        },
        _ => return Ok(None),
    }))
}

/// `fields` (a JSON map) as ordered pairs: in the order of `keys` when
/// the recording gives it.
fn pairs(o: &Obj) -> Result<Vec<(String, String)>, String> {
    let map = field(o, "fields")?
        .as_object()
        .ok_or("\"fields\" is not an object")?;
    let value = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .map(|v| (k.to_string(), v.to_string()))
            .ok_or_else(|| format!("field {k:?} is missing or not a string"))
    };
    match o.get("keys") {
        Some(_) => strings(o, "keys")?.iter().map(|k| value(k)).collect(),
        None => map.keys().map(|k| value(k)).collect(),
    }
}

fn segment(v: &Value) -> Result<Segment, String> {
    let o = v.as_object().ok_or("a packet is not an object")?;
    let flags = text(o, "flags")?;
    let has = |c: char| flags.contains(c);
    let opt_flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
    let t = field(o, "t")?
        .as_f64()
        .filter(|t| t.is_finite())
        .ok_or("a packet's \"t\" is not a number")?;
    Ok(Segment {
        t,
        from: if text(o, "from")? == NAMES[0] {
            Side::Listen
        } else {
            Side::Connect
        },
        src_port: small(o, "src_port")?,
        dst_port: small(o, "dst_port")?,
        syn: has('S'),
        ack: has('.'),
        fin: has('F'),
        rst: has('R'),
        psh: has('P'),
        seq: small(o, "seq")?,
        ack_no: match o.get("ack") {
            None | Some(Value::Null) => 0,
            Some(_) => small(o, "ack")?,
        },
        win: small(o, "win")?,
        len: small(o, "len")?,
        options: o.get("options").and_then(Value::as_str).map(str::to_string),
        probe: opt_flag("window_probe"),
        keepalive: opt_flag("keepalive"),
        retransmit: opt_flag("retransmission"),
    })
}

/// A socket event from its object; `None` for a kind not replayed.
fn socket_event(kind: &str, o: &Obj, v: &Value) -> Result<Option<SocketEvent>, String> {
    if let Some(m) = server(kind, o)? {
        return Ok(Some(SocketEvent::Server(m)));
    }
    let sample = |what: &str| format!("bad {what} sample");
    Ok(Some(match kind {
        "connecting" => SocketEvent::Connecting {
            addr: text(o, "addr")?,
            attempt: small(o, "attempt")?,
        },
        "connected" => SocketEvent::Connected {
            local: addr(o, "local")?,
            peer: addr(o, "peer")?,
            transport: match text(o, "transport")?.as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                t => return Err(format!("\"transport\" {t:?} is not tcp or udp")),
            },
        },
        "error" => SocketEvent::Error(SysError {
            syscall: table(&text(o, "syscall")?, SYSCALLS),
            errno: small(o, "errno")?,
        }),
        "half-closed" => SocketEvent::HalfClosed(match text(o, "side")?.as_str() {
            "we-sent-fin" => HalfClose::WeSentFin,
            "peer-sent-fin" => HalfClose::PeerSentFin,
            s => return Err(format!("\"side\" {s:?} is not a side")),
        }),
        "closed" => SocketEvent::Closed(match text(o, "by")?.as_str() {
            "us" => CloseReason::Local(text(o, "text")?),
            _ => CloseReason::Peer(reason(o)?),
        }),
        "reconnecting" => SocketEvent::Reconnecting {
            delay: ms(o, "delay_ms")?,
            attempt: small(o, "attempt")?,
        },
        "tcp-state" => SocketEvent::TcpState {
            from: tcp_state(&text(o, "from")?),
            to: tcp_state(&text(o, "to")?),
        },
        "latency" => SocketEvent::Latency(Duration::from_micros(num(o, "us")?.min(T_MAX_US))),
        "fault" => SocketEvent::FaultDone {
            fault: Fault::parse(&text(o, "fault")?).ok_or("unknown fault")?,
            did: text(o, "did")?,
            peer_sees: text(o, "peer_sees")?,
        },
        "local-error" => SocketEvent::Local(text(o, "text")?),
        "finished" => SocketEvent::Finished {
            quit: flag(o, "quit")?,
        },
        "line-confirmed" => SocketEvent::LineConfirmed {
            id: LineId(num(o, "id")?),
        },
        "line-failed" => SocketEvent::LineFailed {
            id: LineId(num(o, "id")?),
            why: text(o, "why")?,
        },
        "lag" => SocketEvent::Lag {
            waiting_ms: num(o, "waiting_ms")?,
        },
        "tcp-info" => SocketEvent::Info(Box::new(
            SocketInfo::deserialize(v).map_err(|e| format!("{}: {e}", sample("TCP_INFO")))?,
        )),
        "udp-info" => SocketEvent::UdpInfo(Box::new(
            UdpInfo::deserialize(v).map_err(|e| format!("{}: {e}", sample("UDP")))?,
        )),
        "wire" => SocketEvent::Wire(Box::new(WireNews::Packets {
            segments: field(o, "packets")?
                .as_array()
                .ok_or("\"packets\" is not a list")?
                .iter()
                .map(segment)
                .collect::<Result<_, _>>()?,
            lost: num(o, "lost")?,
        })),
        "wire-off" => SocketEvent::Wire(Box::new(WireNews::Off(text(o, "why")?))),
        "after-close" => SocketEvent::AfterClose(Box::new(AfterClose {
            local: addr(o, "local")?,
            peer: addr(o, "peer")?,
            socket: match o.get("state").and_then(Value::as_str) {
                None => None,
                Some(s) => Some(KernelSocket {
                    state: tcp_state(s),
                    timer: o
                        .get("timer")
                        .and_then(Value::as_str)
                        .map(|t| table(t, ["on", "keepalive", "timewait", "persist"])),
                    expires: match o.get("expires_ms") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(ms(o, "expires_ms")?),
                    },
                }),
            },
            error: o.get("error").and_then(Value::as_str).map(str::to_string),
        })),
        _ => {
            return super::transfer::event(kind, o)
                .map(|e| e.map(|x| SocketEvent::Transfer(Box::new(x))));
        }
    }))
}
