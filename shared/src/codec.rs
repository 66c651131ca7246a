//! The codec: pure functions from messages to bytes and back. No sockets, no
//! clock, so it can be tested at every split point and fuzzed alone.
//!
//! Framing (TCP): `u32 big-endian payload length` then the payload. The length
//! is checked against the maximum *before* anything is allocated, so a peer
//! cannot make us reserve memory by announcing a huge frame.
//!
//! Payload: `u8 tag` then the fields in order. Integers are big-endian;
//! a string is `u16 length` + UTF-8 bytes; a list is `u16 count` + items.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::fields::{R, W};
use crate::proto::{ChatKind, ClientMsg, ErrorCode, RoomInfo, ServerMsg};
use crate::reason::DisconnectReason;

/// Length of the frame header (the u32 payload length).
pub const HEADER_LEN: usize = 4;

pub use crate::fields::DecodeError;

impl From<DecodeError> for DisconnectReason {
    fn from(e: DecodeError) -> Self {
        DisconnectReason::ProtocolError {
            detail: e.to_string(),
        }
    }
}

/// Find the first complete frame at the start of `buf` without copying or
/// allocating: `Ok(Some((payload, used)))` where `payload` borrows `buf` and
/// `used` is the header plus payload length to consume; `Ok(None)` when more
/// bytes are needed. The announced length is checked against `max` as soon
/// as the 4 header bytes are there, *before* waiting for (or reserving room
/// for) the payload, so a peer cannot make anyone buffer a huge frame.
///
/// This is the one frame splitter: [`decode_frame`], the server (TCP, and
/// each UDP datagram's payload), the client and the bots all call it.
/// Many frames in one buffer: call it again on `&buf[used..]`.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if len > max {
        return Err(DecodeError::FrameTooLarge { len, max });
    }
    if len == 0 {
        return Err(DecodeError::EmptyFrame);
    }
    let used = HEADER_LEN + len;
    Ok(buf.get(HEADER_LEN..used).map(|payload| (payload, used)))
}

/// Take one complete frame payload out of `buf`, if there is one (the
/// owned-buffer form of [`split_frame`]).
///
/// Returns `Ok(None)` when more bytes are needed (the buffer is left as is, so
/// this is safe to call after every read and cancel-safe inside `select!`).
/// Many frames in one read: call it in a loop until `Ok(None)`.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, DecodeError> {
    let len = match split_frame(buf, max)? {
        Some((payload, _)) => payload.len(),
        None => {
            if let Some(header) = buf.first_chunk::<HEADER_LEN>() {
                // Reserve only what this (bounded, checked) frame still needs.
                let want = HEADER_LEN + u32::from_be_bytes(*header) as usize;
                buf.reserve(want.saturating_sub(buf.len()));
            }
            return Ok(None);
        }
    };
    buf.advance(HEADER_LEN);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Check a preamble (MAGIC + version). Returns the peer's version.
pub fn check_preamble(bytes: &[u8]) -> Result<u8, DecodeError> {
    if bytes.len() < crate::proto::PREAMBLE_LEN {
        return Err(DecodeError::Truncated("preamble"));
    }
    if bytes[..4] != crate::proto::MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let v = bytes[4];
    if v != crate::proto::VERSION {
        return Err(DecodeError::BadVersion(v));
    }
    Ok(v)
}

// ---------------------------------------------------------------- writing

impl W<'_> {
    fn reason(&mut self, r: &DisconnectReason) {
        let by_why;
        let (code, param, detail): (u8, u32, &str) = match r {
            DisconnectReason::Quit { message } => (1, 0, message.as_str()),
            DisconnectReason::Eof => (2, 0, ""),
            DisconnectReason::Reset => (3, 0, ""),
            DisconnectReason::BrokenPipe => (4, 0, ""),
            DisconnectReason::TimedOut => (5, 0, ""),
            DisconnectReason::Refused => (6, 0, ""),
            DisconnectReason::IdleTimeout { secs } => (7, *secs, ""),
            DisconnectReason::SlowConsumer { frames } => (8, *frames, ""),
            DisconnectReason::ProtocolError { detail } => (9, 0, detail.as_str()),
            DisconnectReason::RateLimited => (10, 0, ""),
            DisconnectReason::ServerShutdown => (11, 0, ""),
            DisconnectReason::Os { errno } => (12, *errno as u32, ""),
            DisconnectReason::Kicked { by, why } => {
                by_why = crate::reason::join_by_why(by, why);
                (13, 0, by_why.as_str())
            }
            DisconnectReason::Banned { by, why, secs } => {
                by_why = crate::reason::join_by_why(by, why);
                (14, *secs, by_why.as_str())
            }
            // 15: cluster mode.
            DisconnectReason::ServerLost => (15, 0, ""),
        };
        self.u8(code);
        self.u32(param);
        self.str(detail);
    }

    /// `list<(key: str, value: str)>` (`SockInfo`, `Stats`); more than
    /// 65,535 pairs are cut (a server pages a longer list first).
    fn pairs(&mut self, fields: &[(String, String)]) {
        let n = fields.len().min(u16::MAX as usize);
        self.u16(n as u16);
        for (k, v) in &fields[..n] {
            self.str(k);
            self.str(v);
        }
    }
}

/// Append a length-prefixed frame holding `payload` to `dst`.
fn frame_with(dst: &mut BytesMut, body: impl FnOnce(&mut W<'_>)) {
    let start = dst.len();
    dst.put_u32(0);
    body(&mut W(dst));
    let len = (dst.len() - start - HEADER_LEN) as u32;
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Append the payload (tag + fields, no length prefix) of a client message.
pub fn encode_client_payload(msg: &ClientMsg, dst: &mut BytesMut) {
    write_client(&mut W(dst), msg);
}

/// Append the payload (tag + fields, no length prefix) of a server message.
pub fn encode_server_payload(msg: &ServerMsg, dst: &mut BytesMut) {
    write_server(&mut W(dst), msg);
}

/// Append a length-prefixed client frame to `dst`.
pub fn encode_client(msg: &ClientMsg, dst: &mut BytesMut) {
    frame_with(dst, |w| write_client(w, msg));
}

/// Append a length-prefixed server frame to `dst`.
pub fn encode_server(msg: &ServerMsg, dst: &mut BytesMut) {
    frame_with(dst, |w| write_server(w, msg));
}

/// Encode a server frame into its own `Bytes`, to be shared by every
/// recipient of a room message (encode once, clone the handle).
pub fn server_frame(msg: &ServerMsg) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    encode_server(msg, &mut b);
    b.freeze()
}

/// Encode a client frame into its own `Bytes`.
pub fn client_frame(msg: &ClientMsg) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    encode_client(msg, &mut b);
    b.freeze()
}

fn write_client(w: &mut W<'_>, msg: &ClientMsg) {
    match msg {
        ClientMsg::Hello { nick } => {
            w.u8(0x01);
            w.str(nick);
        }
        ClientMsg::Nick { nick } => {
            w.u8(0x02);
            w.str(nick);
        }
        ClientMsg::Join { room } => {
            w.u8(0x03);
            w.str(room);
        }
        ClientMsg::Leave { room } => {
            w.u8(0x04);
            w.str(room);
        }
        ClientMsg::Say { room, text } => {
            w.u8(0x05);
            w.str(room);
            w.str(text);
        }
        ClientMsg::Me { room, text } => {
            w.u8(0x06);
            w.str(room);
            w.str(text);
        }
        ClientMsg::Private { to, text } => {
            w.u8(0x07);
            w.str(to);
            w.str(text);
        }
        ClientMsg::Who { room } => {
            w.u8(0x08);
            w.str(room);
        }
        ClientMsg::Rooms => w.u8(0x09),
        ClientMsg::Ping { token } => {
            w.u8(0x0A);
            w.u64(*token);
        }
        ClientMsg::Pong { token } => {
            w.u8(0x0B);
            w.u64(*token);
        }
        ClientMsg::Quit { message } => {
            w.u8(0x0C);
            w.str(message);
        }
        ClientMsg::SockInfo { nick } => {
            w.u8(0x0D);
            w.str(nick);
        }
        ClientMsg::Transfer(x) => {
            w.u8(crate::transfer::TAG_CLIENT);
            crate::transfer::write(w, x);
        }
        ClientMsg::Pass { password } => {
            w.u8(0x0E);
            w.str(password);
        }
        ClientMsg::Register { password } => {
            w.u8(0x0F);
            w.str(password);
        }
        ClientMsg::Identify { nick, password } => {
            w.u8(0x10);
            w.str(nick);
            w.str(password);
        }
        ClientMsg::Oper { password } => {
            w.u8(0x11);
            w.str(password);
        }
        ClientMsg::Invite { nick, room } => {
            w.u8(0x12);
            w.str(nick);
            w.str(room);
        }
        ClientMsg::RoomKey { room, key } => {
            w.u8(0x13);
            w.str(room);
            w.str(key);
        }
        ClientMsg::InviteOnly { room, on } => {
            w.u8(0x14);
            w.str(room);
            w.u8(u8::from(*on));
        }
        ClientMsg::Kick { nick, reason } => {
            w.u8(0x15);
            w.str(nick);
            w.str(reason);
        }
        ClientMsg::Ban {
            target,
            secs,
            reason,
        } => {
            w.u8(0x16);
            w.str(target);
            w.u32(*secs);
            w.str(reason);
        }
        ClientMsg::Unban { target } => {
            w.u8(0x17);
            w.str(target);
        }
        ClientMsg::Mute { nick, secs } => {
            w.u8(0x18);
            w.str(nick);
            w.u32(*secs);
        }
        ClientMsg::Unmute { nick } => {
            w.u8(0x19);
            w.str(nick);
        }
        ClientMsg::JoinKey { room, key } => {
            w.u8(0x1A);
            w.str(room);
            w.str(key);
        }
        ClientMsg::Away { text } => {
            w.u8(0x1B);
            w.str(text);
        }
        ClientMsg::Stats => w.u8(0x1C),
        ClientMsg::Topic { room, text } => {
            w.u8(0x1D);
            w.str(room);
            w.u8(u8::from(text.is_some()));
            w.str(text.as_deref().unwrap_or(""));
        }
        ClientMsg::Bans => w.u8(0x1E),
    }
}

fn write_server(w: &mut W<'_>, msg: &ServerMsg) {
    match msg {
        ServerMsg::Welcome { nick, room, server } => {
            w.u8(0x81);
            w.str(nick);
            w.str(room);
            w.str(server);
        }
        ServerMsg::Chat {
            room,
            from,
            text,
            kind,
            ts_ms,
            history,
        } => {
            w.u8(TAG_CHAT);
            w.str(room);
            w.str(from);
            w.str(text);
            w.u8(*kind as u8);
            w.u64(*ts_ms);
            w.u8(u8::from(*history));
        }
        ServerMsg::Private {
            from,
            to,
            text,
            ts_ms,
        } => {
            w.u8(0x83);
            w.str(from);
            w.str(to);
            w.str(text);
            w.u64(*ts_ms);
        }
        ServerMsg::Joined { room, nick } => {
            w.u8(0x84);
            w.str(room);
            w.str(nick);
        }
        ServerMsg::Left { room, nick, reason } => {
            w.u8(0x85);
            w.str(room);
            w.str(nick);
            match reason {
                None => w.u8(0),
                Some(r) => {
                    w.u8(1);
                    w.reason(r);
                }
            }
        }
        ServerMsg::NickChanged { old, new } => {
            w.u8(0x86);
            w.str(old);
            w.str(new);
        }
        ServerMsg::Who { room, nicks } => {
            w.u8(0x87);
            w.str(room);
            let n = nicks.len().min(u16::MAX as usize);
            w.u16(n as u16);
            for nick in &nicks[..n] {
                w.str(nick);
            }
        }
        ServerMsg::Rooms { rooms } => {
            w.u8(0x88);
            let n = rooms.len().min(u16::MAX as usize);
            w.u16(n as u16);
            for r in &rooms[..n] {
                w.str(&r.name);
                w.u32(r.members);
            }
        }
        ServerMsg::Notice { text } => {
            w.u8(0x89);
            w.str(text);
        }
        ServerMsg::Error { code, text } => {
            w.u8(0x8A);
            w.u16(code.to_u16());
            w.str(text);
        }
        ServerMsg::Ping { token } => {
            w.u8(0x8B);
            w.u64(*token);
        }
        ServerMsg::Pong { token } => {
            w.u8(0x8C);
            w.u64(*token);
        }
        ServerMsg::SockInfo { nick, fields } => {
            w.u8(0x8D);
            w.str(nick);
            w.pairs(fields);
        }
        ServerMsg::Bye { reason } => {
            w.u8(0x8E);
            w.reason(reason);
        }
        ServerMsg::Transfer(x) => {
            w.u8(crate::transfer::TAG_SERVER);
            crate::transfer::write(w, x);
        }
        ServerMsg::Away { nick, text } => {
            w.u8(0x8F);
            w.str(nick);
            w.str(text);
        }
        ServerMsg::Stats { fields } => {
            w.u8(0x90);
            w.pairs(fields);
        }
        ServerMsg::Topic {
            room,
            text,
            by,
            changed,
        } => {
            w.u8(0x91);
            w.str(room);
            w.str(text);
            w.str(by);
            w.u8(u8::from(*changed));
        }
    }
}

// ---------------------------------------------------------------- reading

impl<'a> R<'a> {
    fn reason(&mut self) -> Result<DisconnectReason, DecodeError> {
        let code = self.u8("reason")?;
        let param = self.u32("reason")?;
        let detail = self.str("reason detail")?;
        Ok(match code {
            1 => DisconnectReason::Quit { message: detail },
            2 => DisconnectReason::Eof,
            3 => DisconnectReason::Reset,
            4 => DisconnectReason::BrokenPipe,
            5 => DisconnectReason::TimedOut,
            6 => DisconnectReason::Refused,
            7 => DisconnectReason::IdleTimeout { secs: param },
            8 => DisconnectReason::SlowConsumer { frames: param },
            9 => DisconnectReason::ProtocolError { detail },
            10 => DisconnectReason::RateLimited,
            11 => DisconnectReason::ServerShutdown,
            12 => DisconnectReason::Os {
                errno: param as i32,
            },
            13 => {
                let (by, why) = crate::reason::split_by_why(&detail);
                DisconnectReason::Kicked { by, why }
            }
            14 => {
                let (by, why) = crate::reason::split_by_why(&detail);
                DisconnectReason::Banned {
                    by,
                    why,
                    secs: param,
                }
            }
            15 => DisconnectReason::ServerLost,
            _ => return Err(DecodeError::BadValue("reason code")),
        })
    }
    /// `list<(key: str, value: str)>`: the allocation is bounded by the
    /// bytes really there (each pair takes at least 4), not by the count.
    fn pairs(&mut self) -> Result<Vec<(String, String)>, DecodeError> {
        let n = self.u16("count")? as usize;
        let mut fields = Vec::with_capacity(n.min(self.0.len() / 4));
        for _ in 0..n {
            fields.push((self.str("key")?, self.str("value")?));
        }
        Ok(fields)
    }
    fn finish<T>(self, v: T) -> Result<T, DecodeError> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(DecodeError::Trailing(self.0.len()))
        }
    }
}

/// Decode a client message payload (tag + fields).
pub fn decode_client(payload: &[u8]) -> Result<ClientMsg, DecodeError> {
    let mut r = R(payload);
    let tag = r.u8("tag").map_err(|_| DecodeError::EmptyFrame)?;
    let msg = match tag {
        0x01 => ClientMsg::Hello {
            nick: r.str("nick")?,
        },
        0x02 => ClientMsg::Nick {
            nick: r.str("nick")?,
        },
        0x03 => ClientMsg::Join {
            room: r.str("room")?,
        },
        0x04 => ClientMsg::Leave {
            room: r.str("room")?,
        },
        0x05 => ClientMsg::Say {
            room: r.str("room")?,
            text: r.str("text")?,
        },
        0x06 => ClientMsg::Me {
            room: r.str("room")?,
            text: r.str("text")?,
        },
        0x07 => ClientMsg::Private {
            to: r.str("to")?,
            text: r.str("text")?,
        },
        0x08 => ClientMsg::Who {
            room: r.str("room")?,
        },
        0x09 => ClientMsg::Rooms,
        0x0A => ClientMsg::Ping {
            token: r.u64("token")?,
        },
        0x0B => ClientMsg::Pong {
            token: r.u64("token")?,
        },
        0x0C => ClientMsg::Quit {
            message: r.str("message")?,
        },
        0x0D => ClientMsg::SockInfo {
            nick: r.str("nick")?,
        },
        0x1B => ClientMsg::Away {
            text: r.str("text")?,
        },
        0x1C => ClientMsg::Stats,
        0x1D => {
            let room = r.str("room")?;
            let set = r.bool("set")?;
            let text = r.str("text")?;
            // A query carries no text: one encoding per message.
            if !set && !text.is_empty() {
                return Err(DecodeError::BadValue("text"));
            }
            ClientMsg::Topic {
                room,
                text: set.then_some(text),
            }
        }
        crate::transfer::TAG_CLIENT => ClientMsg::Transfer(crate::transfer::read(&mut r)?),
        0x0E => ClientMsg::Pass {
            password: r.str("password")?,
        },
        0x0F => ClientMsg::Register {
            password: r.str("password")?,
        },
        0x10 => ClientMsg::Identify {
            nick: r.str("nick")?,
            password: r.str("password")?,
        },
        0x11 => ClientMsg::Oper {
            password: r.str("password")?,
        },
        0x12 => ClientMsg::Invite {
            nick: r.str("nick")?,
            room: r.str("room")?,
        },
        0x13 => ClientMsg::RoomKey {
            room: r.str("room")?,
            key: r.str("key")?,
        },
        0x14 => ClientMsg::InviteOnly {
            room: r.str("room")?,
            on: r.bool("on")?,
        },
        0x15 => ClientMsg::Kick {
            nick: r.str("nick")?,
            reason: r.str("reason")?,
        },
        0x16 => ClientMsg::Ban {
            target: r.str("target")?,
            secs: r.u32("secs")?,
            reason: r.str("reason")?,
        },
        0x17 => ClientMsg::Unban {
            target: r.str("target")?,
        },
        0x18 => ClientMsg::Mute {
            nick: r.str("nick")?,
            secs: r.u32("secs")?,
        },
        0x19 => ClientMsg::Unmute {
            nick: r.str("nick")?,
        },
        0x1A => ClientMsg::JoinKey {
            room: r.str("room")?,
            key: r.str("key")?,
        },
        0x1E => ClientMsg::Bans,
        t => return Err(DecodeError::UnknownTag(t)),
    };
    r.finish(msg)
}

/// Tag of the server's `Chat` message.
const TAG_CHAT: u8 = 0x82;

/// A `Chat` message borrowed from its payload: what [`decode_chat`] gives
/// without allocating (the bots read millions of these per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatRef<'a> {
    pub room: &'a str,
    pub from: &'a str,
    pub text: &'a str,
    pub kind: ChatKind,
    pub ts_ms: u64,
    pub history: bool,
}

/// The fields of a `Chat` payload after its tag, checked exactly as
/// [`decode_server`] checks them (it calls this).
fn chat_fields<'a>(r: &mut R<'a>) -> Result<ChatRef<'a>, DecodeError> {
    Ok(ChatRef {
        room: r.str_ref("room")?,
        from: r.str_ref("from")?,
        text: r.str_ref("text")?,
        kind: match r.u8("kind")? {
            0 => ChatKind::Say,
            1 => ChatKind::Me,
            _ => return Err(DecodeError::BadValue("kind")),
        },
        ts_ms: r.u64("ts_ms")?,
        history: r.bool("history")?,
    })
}

/// A server payload read as a `Chat` without allocating: `Ok(None)` when it
/// is another message (decode those with [`decode_server`]), an error when
/// it is a malformed `Chat` (the same error `decode_server` gives).
pub fn decode_chat(payload: &[u8]) -> Result<Option<ChatRef<'_>>, DecodeError> {
    let mut r = R(payload);
    match r.u8("tag") {
        Ok(TAG_CHAT) => {
            let c = chat_fields(&mut r)?;
            r.finish(Some(c))
        }
        Ok(_) => Ok(None),
        Err(_) => Err(DecodeError::EmptyFrame),
    }
}

/// Decode a server message payload (tag + fields).
pub fn decode_server(payload: &[u8]) -> Result<ServerMsg, DecodeError> {
    let mut r = R(payload);
    let tag = r.u8("tag").map_err(|_| DecodeError::EmptyFrame)?;
    let msg = match tag {
        0x81 => ServerMsg::Welcome {
            nick: r.str("nick")?,
            room: r.str("room")?,
            server: r.str("server")?,
        },
        TAG_CHAT => {
            let c = chat_fields(&mut r)?;
            ServerMsg::Chat {
                room: c.room.to_owned(),
                from: c.from.to_owned(),
                text: c.text.to_owned(),
                kind: c.kind,
                ts_ms: c.ts_ms,
                history: c.history,
            }
        }
        0x83 => ServerMsg::Private {
            from: r.str("from")?,
            to: r.str("to")?,
            text: r.str("text")?,
            ts_ms: r.u64("ts_ms")?,
        },
        0x84 => ServerMsg::Joined {
            room: r.str("room")?,
            nick: r.str("nick")?,
        },
        0x85 => {
            let room = r.str("room")?;
            let nick = r.str("nick")?;
            let reason = if r.bool("has_reason")? {
                Some(r.reason()?)
            } else {
                None
            };
            ServerMsg::Left { room, nick, reason }
        }
        0x86 => ServerMsg::NickChanged {
            old: r.str("old")?,
            new: r.str("new")?,
        },
        0x87 => {
            let room = r.str("room")?;
            let n = r.u16("count")? as usize;
            // Each entry needs at least 2 bytes: bound the allocation by what
            // is really there, not by what the count claims.
            let mut nicks = Vec::with_capacity(n.min(r.0.len() / 2));
            for _ in 0..n {
                nicks.push(r.str("nick")?);
            }
            ServerMsg::Who { room, nicks }
        }
        0x88 => {
            let n = r.u16("count")? as usize;
            let mut rooms = Vec::with_capacity(n.min(r.0.len() / 6));
            for _ in 0..n {
                rooms.push(RoomInfo {
                    name: r.str("room")?,
                    members: r.u32("members")?,
                });
            }
            ServerMsg::Rooms { rooms }
        }
        0x89 => ServerMsg::Notice {
            text: r.str("text")?,
        },
        0x8A => ServerMsg::Error {
            code: ErrorCode::from_u16(r.u16("code")?),
            text: r.str("text")?,
        },
        0x8B => ServerMsg::Ping {
            token: r.u64("token")?,
        },
        0x8C => ServerMsg::Pong {
            token: r.u64("token")?,
        },
        0x8D => {
            let nick = r.str("nick")?;
            let fields = r.pairs()?;
            ServerMsg::SockInfo { nick, fields }
        }
        0x8E => ServerMsg::Bye {
            reason: r.reason()?,
        },
        0x8F => ServerMsg::Away {
            nick: r.str("nick")?,
            text: r.str("text")?,
        },
        0x90 => ServerMsg::Stats { fields: r.pairs()? },
        0x91 => ServerMsg::Topic {
            room: r.str("room")?,
            text: r.str("text")?,
            by: r.str("by")?,
            changed: r.bool("changed")?,
        },
        crate::transfer::TAG_SERVER => ServerMsg::Transfer(crate::transfer::read(&mut r)?),
        t => return Err(DecodeError::UnknownTag(t)),
    };
    r.finish(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(i: usize) -> ClientMsg {
        ClientMsg::Say {
            room: "lobby".into(),
            text: format!("message {i} ✓"),
        }
    }

    #[test]
    fn every_split_point() {
        let mut wire = BytesMut::new();
        let msgs: Vec<ClientMsg> = (0..5).map(say).collect();
        for m in &msgs {
            encode_client(m, &mut wire);
        }
        let wire = wire.freeze();
        for split in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(p) = decode_frame(&mut buf, 1024).expect("valid") {
                    out.push(decode_client(&p).expect("valid"));
                }
            }
            assert_eq!(out, msgs, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn byte_by_byte_and_all_at_once() {
        let mut wire = BytesMut::new();
        let msgs: Vec<ClientMsg> = (0..100).map(say).collect();
        for m in &msgs {
            encode_client(m, &mut wire);
        }
        // Many frames in one read ("sticky packets").
        let mut all = wire.clone();
        let mut out = Vec::new();
        while let Some(p) = decode_frame(&mut all, 1024).expect("valid") {
            out.push(decode_client(&p).expect("valid"));
        }
        assert_eq!(out, msgs);
        // One byte per read.
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(p) = decode_frame(&mut buf, 1024).expect("valid") {
                out.push(decode_client(&p).expect("valid"));
            }
        }
        assert_eq!(out, msgs);
    }

    #[test]
    fn oversize_rejected_before_allocation() {
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF, 1][..]);
        let cap = buf.capacity();
        assert_eq!(
            decode_frame(&mut buf, 65536),
            Err(DecodeError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                max: 65536
            })
        );
        assert_eq!(buf.capacity(), cap, "no allocation for a rejected frame");
    }

    /// The frame limit is inclusive: a payload of exactly `max` bytes is a
    /// frame, `max + 1` is refused from its header alone, and a zero length
    /// (no tag) is refused too. Both forms, `split_frame` and
    /// `decode_frame`, say the same.
    #[test]
    fn frame_size_limit_is_inclusive_and_zero_is_refused() {
        let max = 16;
        for len in [1, max - 1, max] {
            let mut wire = (len as u32).to_be_bytes().to_vec();
            wire.extend(std::iter::repeat_n(0xAB, len));
            wire.push(0x99); // the next frame's first byte: not consumed
            let (payload, used) = split_frame(&wire, max)
                .expect("within the limit")
                .expect("a whole frame");
            assert_eq!((payload.len(), used), (len, HEADER_LEN + len), "{len}");
            let mut buf = BytesMut::from(&wire[..]);
            let p = decode_frame(&mut buf, max).expect("within").expect("whole");
            assert_eq!(p.len(), len);
            assert_eq!(&buf[..], &[0x99], "only the frame consumed");
        }
        let over = ((max + 1) as u32).to_be_bytes();
        let too_large = DecodeError::FrameTooLarge { len: max + 1, max };
        assert_eq!(split_frame(&over, max), Err(too_large.clone()));
        assert_eq!(
            decode_frame(&mut BytesMut::from(&over[..]), max),
            Err(too_large)
        );
        let zero = [0u8, 0, 0, 0, 0x09];
        assert_eq!(split_frame(&zero, max), Err(DecodeError::EmptyFrame));
        assert_eq!(
            decode_frame(&mut BytesMut::from(&zero[..]), max),
            Err(DecodeError::EmptyFrame)
        );
        // A header alone: wait for the payload, do not fail.
        assert_eq!(split_frame(&(max as u32).to_be_bytes(), max), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0], max), Ok(None));
    }

    #[test]
    fn bad_utf8_is_an_error() {
        let payload = [0x05, 0, 1, b'a', 0, 2, 0xC3, 0x28];
        assert_eq!(decode_client(&payload), Err(DecodeError::BadUtf8("text")));
    }

    #[test]
    fn trailing_and_unknown() {
        assert_eq!(decode_client(&[0x09, 0]), Err(DecodeError::Trailing(1)));
        assert_eq!(decode_client(&[0x7F]), Err(DecodeError::UnknownTag(0x7F)));
        assert_eq!(decode_client(&[]), Err(DecodeError::EmptyFrame));
    }

    #[test]
    fn preamble() {
        assert_eq!(check_preamble(&crate::proto::preamble()), Ok(1));
        assert_eq!(check_preamble(b"hello"), Err(DecodeError::BadMagic));
        assert_eq!(
            check_preamble(&[0, b'S', b'C', b'K', 9]),
            Err(DecodeError::BadVersion(9))
        );
    }
}
