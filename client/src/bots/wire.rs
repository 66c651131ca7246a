//! What the bots put on the wire and how they read it back.
//!
//! Every bot message carries its own measurement in the chat text, so it
//! survives any server that relays text (sockchat framed, sockchat text mode,
//! `ncat --chat`, which prefixes `<userN> `):
//!
//! ```text
//! ~B1a2b3c4d.17.4093.1234567890123~xxxxxxxx...   (padding up to --size)
//!   |  run id |   |    |  scheduled send time (CLOCK_MONOTONIC, µs)
//!   B = measured, U = unmeasured sender; 17 = sender (bot number); 4093 = sequence
//! ```
//!
//! The run id keeps history replays of an earlier run (or another bots
//! process) from being counted as deliveries. Receivers find the marker
//! anywhere in a line, so they need not understand the server's formatting.
//!
//! Framed mode: frames are split by `shared::codec::split_frame` and `Chat`
//! read by `shared::codec::decode_chat`, both without allocating (the
//! fan-out receive path runs millions of times per second); other frames go
//! through `shared::codec::decode_server`. Text mode's disconnect lines are
//! read by `shared::text::bye_reason`.

use bytes::{BufMut, BytesMut};
use sockchat_shared::codec::{self, DecodeError, HEADER_LEN};
use sockchat_shared::text;
use sockchat_shared::{ClientMsg, DisconnectReason, ServerMsg};

/// The wire a bot speaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// sockchat protocol over TCP: preamble, Hello, length-prefixed frames.
    Framed,
    /// Plain text lines over TCP (sockchat text mode, ncat --chat, ...).
    Lines,
    /// sockchat protocol over UDP (needs a server with the UDP transport).
    Udp,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Framed => "framed",
            Wire::Lines => "lines",
            Wire::Udp => "udp",
        }
    }
}

/// Longest line we keep waiting for a newline on before calling the peer
/// broken (bounded memory against a server that never sends `\n`).
pub const MAX_LINE: usize = 1 << 20;

/// A decoded bot marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub measured: bool,
    pub run: u32,
    pub sender: u32,
    pub seq: u64,
    pub sched_us: u64,
}

/// What the bot has to react to in what it received.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A chat line or frame carrying a bot marker. `history` frames (replays
    /// on join) are reported with `history = true` and not counted.
    Mark { mark: Mark, history: bool },
    /// Framed keepalive: must be answered with a Pong.
    Ping(u64),
    /// The server said why it is closing the connection.
    Bye(DisconnectReason),
    /// Anything else (notices, joins, welcome, lines from humans).
    Other,
}

/// Append the marker and padding: the chat text of one bot message.
pub fn write_text(dst: &mut BytesMut, m: &Mark, size: usize) {
    let start = dst.len();
    dst.put_slice(if m.measured { b"~B" } else { b"~U" });
    put_hex8(dst, m.run);
    dst.put_u8(b'.');
    put_dec(dst, m.sender as u64);
    dst.put_u8(b'.');
    put_dec(dst, m.seq);
    dst.put_u8(b'.');
    put_dec(dst, m.sched_us);
    dst.put_u8(b'~');
    let used = dst.len() - start;
    if size > used {
        dst.put_bytes(b'x', size - used);
    }
}

/// Append one lines-mode message (text + `\n`).
pub fn write_line_msg(dst: &mut BytesMut, m: &Mark, size: usize) {
    write_text(dst, m, size.saturating_sub(1));
    dst.put_u8(b'\n');
}

/// Append one framed `Say` message; byte-identical to
/// `codec::encode_client(&ClientMsg::Say{..})` without building Strings.
pub fn write_say_frame(dst: &mut BytesMut, room: &str, m: &Mark, size: usize) {
    let start = dst.len();
    dst.put_u32(0);
    write_say_payload(dst, room, m, size);
    let len = (dst.len() - start - HEADER_LEN) as u32;
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Append one UDP datagram carrying a `Say`: the 8-byte sockchat UDP header
/// (magic, version, flags, sequence), the session token when there is one,
/// and the payload, as `shared::udp::encode_in_session` would make it.
pub fn write_say_datagram(
    dst: &mut BytesMut,
    seq: u32,
    token: Option<u64>,
    room: &str,
    m: &Mark,
    size: usize,
) {
    dst.put_slice(&sockchat_shared::udp::MAGIC);
    dst.put_u8(sockchat_shared::udp::VERSION);
    dst.put_u8(if token.is_some() {
        sockchat_shared::udp::flags::COOKIE
    } else {
        0
    });
    dst.put_u32(seq);
    if let Some(t) = token {
        dst.put_u64(t);
    }
    write_say_payload(dst, room, m, size);
}

/// The `Say` payload: tag, room, text (no length prefix).
fn write_say_payload(dst: &mut BytesMut, room: &str, m: &Mark, size: usize) {
    dst.put_u8(0x05);
    dst.put_u16(room.len() as u16);
    dst.put_slice(room.as_bytes());
    let len_at = dst.len();
    dst.put_u16(0);
    write_text(dst, m, size);
    let text_len = (dst.len() - len_at - 2) as u16;
    dst[len_at..len_at + 2].copy_from_slice(&text_len.to_be_bytes());
}

/// Append a framed client message through the shared codec.
pub fn write_frame(dst: &mut BytesMut, msg: &ClientMsg) {
    codec::encode_client(msg, dst);
}

fn put_dec(dst: &mut BytesMut, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    dst.put_slice(&buf[i..]);
}

fn put_hex8(dst: &mut BytesMut, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        dst.put_u8(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Find and decode a marker anywhere in `s`.
///
/// Hot path (one call per delivery): framed and UDP texts start with the
/// marker, and sockchat's text-mode lines have it within the first few
/// dozen bytes, so a plain byte loop over a short prefix beats a call into
/// memchr (which showed as a third of the bots' CPU in `perf`).
pub fn find_mark(s: &[u8]) -> Option<Mark> {
    const NEAR: usize = 96;
    for (i, &c) in s.iter().take(NEAR).enumerate() {
        if c == b'~'
            && let Some(m) = parse_mark(&s[i..])
        {
            return Some(m);
        }
    }
    if s.len() <= NEAR {
        return None;
    }
    let mut from = NEAR;
    while let Some(i) = memchr::memchr(b'~', &s[from..]) {
        let at = from + i;
        if let Some(m) = parse_mark(&s[at..]) {
            return Some(m);
        }
        from = at + 1;
    }
    None
}

fn parse_mark(s: &[u8]) -> Option<Mark> {
    let measured = match s.get(1)? {
        b'B' => true,
        b'U' => false,
        _ => return None,
    };
    let hex = s.get(2..10)?;
    let mut run = 0u32;
    for &c in hex {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        run = run << 4 | d as u32;
    }
    let mut rest = s.get(10..)?;
    let mut nums = [0u64; 3];
    for n in &mut nums {
        rest = rest.strip_prefix(b".")?;
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 19 {
            return None;
        }
        *n = rest[..digits]
            .iter()
            .fold(0u64, |a, &c| a * 10 + (c - b'0') as u64);
        rest = &rest[digits..];
    }
    rest.strip_prefix(b"~")?;
    Some(Mark {
        measured,
        run,
        sender: u32::try_from(nums[0]).ok()?,
        seq: nums[1],
        sched_us: nums[2],
    })
}

/// Parse complete lines in `buf`, calling `f` per line's event. Returns the
/// bytes consumed (a partial last line stays for the next read).
pub fn parse_lines(buf: &[u8], mut f: impl FnMut(Event)) -> usize {
    let mut pos = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[pos..]) {
        let line = &buf[pos..pos + i];
        f(match find_mark(line) {
            Some(mark) => Event::Mark {
                mark,
                history: false,
            },
            None => match std::str::from_utf8(line).ok().and_then(text::bye_reason) {
                Some(r) => Event::Bye(r),
                None => Event::Other,
            },
        });
        pos += i + 1;
    }
    pos
}

/// Parse complete frames in `buf` (split by the shared
/// `codec::split_frame`), calling `f` per frame's event. Returns the bytes
/// consumed, or the protocol error that makes the stream unusable.
pub fn parse_frames(
    buf: &[u8],
    max: usize,
    mut f: impl FnMut(Event),
) -> Result<usize, DecodeError> {
    let mut pos = 0;
    while let Some((payload, used)) = codec::split_frame(&buf[pos..], max)? {
        f(frame_event(payload)?);
        pos += used;
    }
    Ok(pos)
}

/// The event in one server payload. `Chat` goes through the shared
/// non-allocating `codec::decode_chat` (the hot path); the rest through
/// `codec::decode_server`.
pub fn frame_event(p: &[u8]) -> Result<Event, DecodeError> {
    if let Some(chat) = codec::decode_chat(p)? {
        return Ok(match find_mark(chat.text.as_bytes()) {
            Some(mark) => Event::Mark {
                mark,
                history: chat.history,
            },
            None => Event::Other,
        });
    }
    Ok(match codec::decode_server(p)? {
        ServerMsg::Ping { token } => Event::Ping(token),
        ServerMsg::Bye { reason } => Event::Bye(reason),
        _ => Event::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::ChatKind;

    fn mark() -> Mark {
        Mark {
            measured: true,
            run: 0x1a2b3c4d,
            sender: 17,
            seq: 4093,
            sched_us: 1_234_567_890_123,
        }
    }

    #[test]
    fn text_round_trip_and_padding() {
        let mut b = BytesMut::new();
        write_text(&mut b, &mark(), 64);
        assert_eq!(b.len(), 64);
        assert!(b.starts_with(b"~B1a2b3c4d.17.4093.1234567890123~xxx"));
        assert_eq!(find_mark(&b), Some(mark()));
        // ncat --chat style prefix and sockchat text-mode prefix.
        let mut line = b"<user5> ".to_vec();
        line.extend_from_slice(&b);
        assert_eq!(find_mark(&line), Some(mark()));
        let line = format!("[lobby] bot~3: ~x {}", String::from_utf8_lossy(&b));
        assert_eq!(find_mark(line.as_bytes()), Some(mark()));
        // A size smaller than the marker is not padded and not truncated.
        let mut b = BytesMut::new();
        write_text(&mut b, &mark(), 4);
        assert_eq!(find_mark(&b), Some(mark()));
    }

    #[test]
    fn mark_far_into_a_long_line() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[b'~'; 300]);
        write_text(&mut b, &mark(), 0);
        assert_eq!(find_mark(&b), Some(mark()));
    }

    #[test]
    fn garbage_is_not_a_mark() {
        for s in [
            &b"~B"[..],
            b"~Bzzzzzzzz.1.2.3~",
            b"~B1a2b3c4d.1.2.3",
            b"~B1a2b3c4d..2.3~",
            b"~~~",
        ] {
            assert_eq!(find_mark(s), None, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn say_frame_matches_shared_codec() {
        let mut mine = BytesMut::new();
        write_say_frame(&mut mine, "room7", &mark(), 100);
        let mut text = BytesMut::new();
        write_text(&mut text, &mark(), 100);
        let mut theirs = BytesMut::new();
        codec::encode_client(
            &ClientMsg::Say {
                room: "room7".into(),
                text: String::from_utf8(text.to_vec()).expect("ascii"),
            },
            &mut theirs,
        );
        assert_eq!(mine, theirs);
    }

    #[test]
    fn say_datagram_matches_shared_udp() {
        let mut mine = BytesMut::new();
        write_say_datagram(&mut mine, 77, Some(0xC0FFEE), "r1", &mark(), 90);
        let mut text = BytesMut::new();
        write_text(&mut text, &mark(), 90);
        let theirs = sockchat_shared::udp::encode_in_session(
            77,
            Some(0xC0FFEE),
            &ClientMsg::Say {
                room: "r1".into(),
                text: String::from_utf8(text.to_vec()).expect("ascii"),
            },
            1472,
        )
        .expect("fits");
        assert_eq!(&mine[..], &theirs[..]);
    }

    #[test]
    fn lines_split_anywhere() {
        let mut all = BytesMut::new();
        write_line_msg(&mut all, &mark(), 40);
        all.extend_from_slice(b"* bob joined lobby\n");
        write_line_msg(&mut all, &mark(), 40);
        for cut in 0..all.len() {
            let mut events = Vec::new();
            let used = parse_lines(&all[..cut], |e| events.push(e));
            let mut rest = all[used..cut].to_vec();
            rest.extend_from_slice(&all[cut..]);
            let used2 = parse_lines(&rest, |e| events.push(e));
            assert_eq!(used2, rest.len());
            assert_eq!(events.len(), 3);
            assert_eq!(events[1], Event::Other);
        }
    }

    #[test]
    fn text_mode_reasons() {
        let events = |text: &[u8]| {
            let mut v = Vec::new();
            let used = parse_lines(text, |e| v.push(e));
            (used, v)
        };
        let text = b"! rate limited\r\n! slow consumer (queue full: 1024 frames)\n* server shutting down\n";
        let (used, ev) = events(&text[..]);
        assert_eq!(used, text.len());
        assert_eq!(
            ev,
            [
                Event::Bye(DisconnectReason::RateLimited),
                Event::Bye(DisconnectReason::SlowConsumer { frames: 1024 }),
                Event::Bye(DisconnectReason::ServerShutdown),
            ]
        );
        let (_, ev) = events(b"! nick already taken: bob\n[r] a: ! rate limited\n\xff! x\n");
        assert_eq!(ev, [Event::Other, Event::Other, Event::Other]);
    }

    #[test]
    fn frames_chat_ping_bye() {
        let mut text = BytesMut::new();
        write_text(&mut text, &mark(), 0);
        let text = String::from_utf8(text.to_vec()).expect("ascii");
        let mut buf = BytesMut::new();
        for history in [false, true] {
            codec::encode_server(
                &ServerMsg::Chat {
                    room: "r".into(),
                    from: "bot17".into(),
                    text: text.clone(),
                    kind: ChatKind::Say,
                    ts_ms: 1,
                    history,
                },
                &mut buf,
            );
        }
        codec::encode_server(&ServerMsg::Ping { token: 9 }, &mut buf);
        codec::encode_server(
            &ServerMsg::Bye {
                reason: DisconnectReason::SlowConsumer { frames: 3 },
            },
            &mut buf,
        );
        for cut in 0..buf.len() {
            let mut ev = Vec::new();
            let used = parse_frames(&buf[..cut], 65536, |e| ev.push(e)).expect("valid");
            let used2 = parse_frames(&buf[used..], 65536, |e| ev.push(e)).expect("valid");
            assert_eq!(used + used2, buf.len());
            assert_eq!(
                ev,
                vec![
                    Event::Mark {
                        mark: mark(),
                        history: false
                    },
                    Event::Mark {
                        mark: mark(),
                        history: true
                    },
                    Event::Ping(9),
                    Event::Bye(DisconnectReason::SlowConsumer { frames: 3 }),
                ]
            );
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(parse_frames(&[0, 0, 0, 0], 100, |_| {}).is_err());
        assert!(parse_frames(&[0, 1, 0, 0], 100, |_| {}).is_err());
        assert!(parse_frames(&[0, 0, 0, 2, 0x82, 0], 100, |_| {}).is_err());
        assert!(parse_frames(&[0, 0, 0, 1, 0xEE], 100, |_| {}).is_err());
    }
}
