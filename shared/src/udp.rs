//! The UDP transport's pure pieces: the datagram format, the payload-size
//! rule, per-direction sequence accounting (loss, duplicates, reordering),
//! a seeded fault injector for outgoing datagrams, the stateless address
//! cookie, and a parser for the kernel's `/proc/net/udp` drop counters.
//!
//! One message per datagram. A datagram is a fixed 8-byte header, an
//! optional 8-byte cookie, then the *same payload encoding as TCP*
//! ([`crate::codec::encode_client_payload`] / [`crate::codec::decode_server`])
//! with no length prefix: the datagram boundary is the frame boundary.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "SU" (0x53 0x55)
//! 2       1     version (1)
//! 3       1     flags: 0x01 FROM_SERVER, 0x02 COOKIE, 0x04 PADDED; others must be 0
//! 4       4     sequence number, u32 big-endian, per session and direction
//! 8       8     cookie, u64 big-endian               (only if COOKIE)
//! ..      2     payload length, u16 big-endian       (only if PADDED)
//! ..      n     payload: tag + fields, as in TCP frames
//! ..      ...   zero padding up to the datagram end  (only if PADDED)
//! ```
//!
//! COOKIE is set on the Hello that answers a retry and on **every** later
//! client datagram of the session: the cookie that Hello echoed is the
//! session's token ([`encode_in_session`]). The server drops a session
//! datagram without it or with a sequence number outside
//! [`SeqTracker::WINDOW`] of the highest seen ([`SeqTracker::in_window`]).
//!
//! Nothing here touches a socket or a clock, except [`procfs`] which reads
//! `/proc/net/udp{,6}` (like `sockopt` reads TCP_INFO).

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::codec::{self, DecodeError};
use crate::proto::{ClientMsg, ServerMsg};

/// First two bytes of every sockchat datagram ("Sockchat Udp").
pub const MAGIC: [u8; 2] = *b"SU";
/// Datagram format version.
pub const VERSION: u8 = 1;
/// Fixed header: magic (2) + version (1) + flags (1) + sequence (4).
pub const HEADER_LEN: usize = 8;
/// Length of the optional cookie that follows the header.
pub const COOKIE_LEN: usize = 8;
/// Header of a client datagram inside a session: the fixed header plus the
/// session token ([`encode_in_session`]). What a client→server message
/// loses of `max_payload`.
pub const SESSION_HEADER_LEN: usize = HEADER_LEN + COOKIE_LEN;

/// 1500-byte Ethernet MTU - 20 (IPv4 header) - 8 (UDP header): the largest
/// payload that crosses a LAN without IP fragmentation. The default.
pub const ETHERNET_SAFE_PAYLOAD: usize = 1472;
/// 576-byte minimum IPv4 reassembly buffer - 20 - 8: safe on any Internet
/// path, however small its MTU.
pub const INTERNET_SAFE_PAYLOAD: usize = 548;
/// 65535 (IPv4 total length) - 20 - 8: the hard limit; `sendto` fails with
/// EMSGSIZE above it. Anything above the path MTU is fragmented by IP, and
/// losing one fragment loses the whole datagram, so we never go there by
/// default.
pub const MAX_UDP_PAYLOAD: usize = 65507;
/// Default maximum datagram size (header included) we send or accept.
pub const DEFAULT_MAX_PAYLOAD: usize = ETHERNET_SAFE_PAYLOAD;
/// A client pads its Hello datagrams to at least this size, so the server's
/// answer to an address it has not verified yet (a [`encode_retry`], 16
/// bytes) is never larger than the request: no amplification.
pub const MIN_HELLO_LEN: usize = 64;
/// The smallest `max_payload` we accept: room for a padded Hello.
pub const MIN_MAX_PAYLOAD: usize = MIN_HELLO_LEN;

/// Header flag bits.
pub mod flags {
    /// Set on every server→client datagram, clear on client→server ones, so
    /// a datagram reflected back at its sender is rejected, never answered.
    pub const FROM_SERVER: u8 = 0x01;
    /// An 8-byte cookie follows the header.
    pub const COOKIE: u8 = 0x02;
    /// A u16 payload length follows (and padding follows the payload).
    pub const PADDED: u8 = 0x04;
    /// Every bit we know; the others must be zero.
    pub const ALL: u8 = FROM_SERVER | COOKIE | PADDED;
}

/// Why a message could not be put in a datagram. Nothing is sent then: we
/// never truncate and never leave a large datagram to IP fragmentation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "message too large for one UDP datagram: {len} bytes, the maximum is {max} \
         (not sent: UDP messages are never truncated or fragmented)"
    )]
    TooLarge { len: usize, max: usize },
}

/// Why a received datagram was rejected. Each one is counted and dropped by
/// the receiver; none is fatal.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DatagramError {
    #[error("datagram of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    #[error("datagram of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a sockchat datagram (bad magic)")]
    BadMagic,
    #[error("unsupported datagram version {0}")]
    BadVersion(u8),
    #[error("unknown flag bits 0x{0:02x}")]
    BadFlags(u8),
    #[error("datagram sent in the wrong direction")]
    WrongDirection,
    #[error("datagram without a message")]
    Empty,
    #[error("bad padding: {0}")]
    BadPadding(&'static str),
    #[error("{0}")]
    Payload(#[from] DecodeError),
}

/// A decoded datagram header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub from_server: bool,
    pub seq: u32,
    pub cookie: Option<u64>,
}

/// A decoded client→server datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDatagram {
    pub seq: u32,
    /// The address cookie echoed from a retry (Hello only).
    pub cookie: Option<u64>,
    pub msg: ClientMsg,
}

/// What a server→client datagram carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerBody {
    Msg(ServerMsg),
    /// "Prove you receive at this address: send your Hello again with this
    /// cookie." The server's only answer to an address without a session.
    Retry {
        cookie: u64,
    },
}

/// A decoded server→client datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDatagram {
    pub seq: u32,
    pub body: ServerBody,
}

/// Check a configured maximum datagram size; the error says the valid range.
pub fn check_max_payload(max: usize) -> Result<usize, String> {
    if (MIN_MAX_PAYLOAD..=MAX_UDP_PAYLOAD).contains(&max) {
        Ok(max)
    } else {
        Err(format!(
            "udp max_payload {max} is out of range {MIN_MAX_PAYLOAD}..={MAX_UDP_PAYLOAD} \
             (1472 is Ethernet-safe, 548 Internet-safe)"
        ))
    }
}

fn put_header(dst: &mut BytesMut, flag_bits: u8, seq: u32, cookie: Option<u64>) {
    dst.put_slice(&MAGIC);
    dst.put_u8(VERSION);
    dst.put_u8(flag_bits | if cookie.is_some() { flags::COOKIE } else { 0 });
    dst.put_u32(seq);
    if let Some(c) = cookie {
        dst.put_u64(c);
    }
}

fn check_len(b: BytesMut, max: usize) -> Result<Bytes, EncodeError> {
    if b.len() > max {
        Err(EncodeError::TooLarge { len: b.len(), max })
    } else {
        Ok(b.freeze())
    }
}

/// Encode a client message as one datagram of at most `max` bytes, without
/// a session token (a server drops it once a session exists: see
/// [`encode_in_session`]).
pub fn encode_client(seq: u32, msg: &ClientMsg, max: usize) -> Result<Bytes, EncodeError> {
    encode_in_session(seq, None, msg, max)
}

/// Encode a client message of a session: the COOKIE field carries `token`,
/// the cookie the session's Hello echoed. The server refuses every
/// datagram of a session that does not carry it, so a blind spoofer of the
/// session's address can neither speak for it nor end it.
pub fn encode_in_session(
    seq: u32,
    token: Option<u64>,
    msg: &ClientMsg,
    max: usize,
) -> Result<Bytes, EncodeError> {
    let mut b = BytesMut::with_capacity(64);
    put_header(&mut b, 0, seq, token);
    codec::encode_client_payload(msg, &mut b);
    check_len(b, max)
}

/// Encode a Hello datagram, padded to [`MIN_HELLO_LEN`], carrying the cookie
/// from the server's retry once the client has one.
pub fn encode_hello(
    seq: u32,
    nick: &str,
    cookie: Option<u64>,
    max: usize,
) -> Result<Bytes, EncodeError> {
    let mut payload = BytesMut::new();
    codec::encode_client_payload(
        &ClientMsg::Hello {
            nick: nick.to_owned(),
        },
        &mut payload,
    );
    let mut b = BytesMut::with_capacity(MIN_HELLO_LEN.max(payload.len() + 32));
    put_header(&mut b, flags::PADDED, seq, cookie);
    // The payload is bounded by the u16 nick length, far below u16::MAX.
    let plen = u16::try_from(payload.len()).map_err(|_| EncodeError::TooLarge {
        len: payload.len(),
        max,
    })?;
    b.put_u16(plen);
    b.put_slice(&payload);
    if b.len() < MIN_HELLO_LEN {
        b.put_bytes(0, MIN_HELLO_LEN - b.len());
    }
    check_len(b, max)
}

/// Encode a server message payload once, checking that it fits in a
/// datagram of `max` bytes together with a header. Fan-out then calls
/// [`with_server_header`] per recipient (each has its own sequence).
pub fn encode_server_payload(msg: &ServerMsg, max: usize) -> Result<Bytes, EncodeError> {
    let mut b = BytesMut::with_capacity(64);
    codec::encode_server_payload(msg, &mut b);
    if b.len() + HEADER_LEN > max {
        return Err(EncodeError::TooLarge {
            len: b.len() + HEADER_LEN,
            max,
        });
    }
    Ok(b.freeze())
}

/// Prefix an already encoded (and size-checked) server payload with a
/// server header carrying `seq`.
pub fn with_server_header(seq: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    put_header(&mut b, flags::FROM_SERVER, seq, None);
    b.put_slice(payload);
    b.freeze()
}

/// Encode a server message as one datagram of at most `max` bytes.
pub fn encode_server(seq: u32, msg: &ServerMsg, max: usize) -> Result<Bytes, EncodeError> {
    let p = encode_server_payload(msg, max)?;
    Ok(with_server_header(seq, &p))
}

/// What a UDP member is told instead of a server message whose datagram
/// (`size` bytes, header included) does not fit `max`: messages are never
/// truncated or fragmented. It says what really happened: the member's own
/// echo (a `Chat` or `Private` from `own_nick`, not replayed history) means
/// the message *was* delivered to everyone else; anything else was not
/// delivered to this member.
pub fn oversize_notice(payload: &[u8], own_nick: &str, size: usize, max: usize) -> ServerMsg {
    let fit = format!("did not fit in one UDP datagram ({size} bytes, the maximum is {max})");
    let text = match codec::decode_server(payload) {
        Ok(ServerMsg::Chat {
            room,
            from,
            history: false,
            ..
        }) if from == own_nick => format!(
            "your message was delivered to the room {room}; your echo {fit}, so it is not shown here"
        ),
        Ok(ServerMsg::Private { from, to, .. }) if from == own_nick && to != own_nick => {
            format!("your private message was delivered to {to}; your copy {fit}")
        }
        Ok(ServerMsg::Chat { room, from, .. }) => format!(
            "a message from {from} in {room} {fit} and was not delivered to you; long messages need TCP"
        ),
        Ok(ServerMsg::Private { from, .. }) => format!(
            "a private message from {from} {fit} and was not delivered to you; long messages need TCP"
        ),
        _ => format!("a server message {fit} and was not delivered to you; long messages need TCP"),
    };
    ServerMsg::Notice { text }
}

/// The retry datagram (16 bytes): header with FROM_SERVER|COOKIE, sequence
/// 0, no payload. Smaller than any valid Hello, which is padded to 64.
pub fn encode_retry(cookie: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + COOKIE_LEN);
    put_header(&mut b, flags::FROM_SERVER, 0, Some(cookie));
    b.freeze()
}

/// Parse the header; returns it and the rest (payload, maybe padded).
pub fn decode_header(buf: &[u8], max: usize) -> Result<(Header, &[u8]), DatagramError> {
    if buf.len() > max {
        return Err(DatagramError::TooLarge {
            len: buf.len(),
            max,
        });
    }
    if buf.len() < HEADER_LEN {
        return Err(DatagramError::TooShort(buf.len()));
    }
    if buf[..2] != MAGIC {
        return Err(DatagramError::BadMagic);
    }
    if buf[2] != VERSION {
        return Err(DatagramError::BadVersion(buf[2]));
    }
    let f = buf[3];
    if f & !flags::ALL != 0 {
        return Err(DatagramError::BadFlags(f));
    }
    let seq = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut rest = &buf[HEADER_LEN..];
    let cookie = if f & flags::COOKIE != 0 {
        if rest.len() < COOKIE_LEN {
            return Err(DatagramError::Payload(DecodeError::Truncated("cookie")));
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&rest[..COOKIE_LEN]);
        rest = &rest[COOKIE_LEN..];
        Some(u64::from_be_bytes(c))
    } else {
        None
    };
    if f & flags::PADDED != 0 {
        if rest.len() < 2 {
            return Err(DatagramError::BadPadding("missing payload length"));
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        if n > body.len() {
            return Err(DatagramError::BadPadding("payload length beyond datagram"));
        }
        if body[n..].iter().any(|&b| b != 0) {
            return Err(DatagramError::BadPadding("non-zero padding"));
        }
        rest = &body[..n];
    }
    Ok((
        Header {
            from_server: f & flags::FROM_SERVER != 0,
            seq,
            cookie,
        },
        rest,
    ))
}

/// Decode a client→server datagram of at most `max` bytes.
pub fn decode_client(buf: &[u8], max: usize) -> Result<ClientDatagram, DatagramError> {
    let (h, payload) = decode_header(buf, max)?;
    if h.from_server {
        return Err(DatagramError::WrongDirection);
    }
    if payload.is_empty() {
        return Err(DatagramError::Empty);
    }
    Ok(ClientDatagram {
        seq: h.seq,
        cookie: h.cookie,
        msg: codec::decode_client(payload)?,
    })
}

/// Decode a server→client datagram of at most `max` bytes.
pub fn decode_server(buf: &[u8], max: usize) -> Result<ServerDatagram, DatagramError> {
    let (h, payload) = decode_header(buf, max)?;
    if !h.from_server {
        return Err(DatagramError::WrongDirection);
    }
    let body = match (payload.is_empty(), h.cookie) {
        (true, Some(cookie)) => ServerBody::Retry { cookie },
        (true, None) => return Err(DatagramError::Empty),
        (false, _) => ServerBody::Msg(codec::decode_server(payload)?),
    };
    Ok(ServerDatagram { seq: h.seq, body })
}

// ------------------------------------------------------------ address cookie

/// Stateless address validation (the idea of DTLS HelloVerifyRequest and
/// QUIC Retry). The server answers a Hello from an unknown address with a
/// small retry carrying `cookie(addr, epoch)`; only a Hello that echoes it
/// creates a session. A spoofed source never sees the cookie, so it can
/// make us send at most one retry no larger than its own datagram, and it
/// costs us no memory.
#[derive(Debug, Clone)]
pub struct CookieJar {
    key: [u64; 2],
    /// Cookies stay valid for one to two epochs.
    epoch_secs: u64,
}

impl CookieJar {
    /// `key` must be secret and random (the server draws it at start).
    pub fn new(key: [u64; 2], epoch_secs: u64) -> Self {
        Self {
            key,
            epoch_secs: epoch_secs.max(1),
        }
    }

    fn mac(&self, addr: &std::net::SocketAddr, epoch: u64) -> u64 {
        // SipHash-2-4 is a keyed PRF made for short inputs: a cookie cannot
        // be computed without the key, nor the key recovered from cookies an
        // attacker collects for its own addresses. The cookie is also the
        // session token (see `encode_in_session`), so this matters.
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher24::new_with_keys(self.key[0], self.key[1]);
        h.write_u64(epoch);
        match addr {
            std::net::SocketAddr::V4(a) => {
                h.write_u8(4);
                h.write(&a.ip().octets());
            }
            std::net::SocketAddr::V6(a) => {
                h.write_u8(6);
                h.write(&a.ip().octets());
            }
        }
        h.write_u16(addr.port());
        h.finish()
    }

    /// The cookie for `addr` at time `now_secs`.
    pub fn issue(&self, addr: &std::net::SocketAddr, now_secs: u64) -> u64 {
        self.mac(addr, now_secs / self.epoch_secs)
    }

    /// Accepts cookies of this epoch and the previous one.
    pub fn verify(&self, addr: &std::net::SocketAddr, cookie: u64, now_secs: u64) -> bool {
        let e = now_secs / self.epoch_secs;
        self.mac(addr, e) == cookie || (e > 0 && self.mac(addr, e - 1) == cookie)
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------- sequence tracker

/// Counters of one receiving direction. `lost` is derived like RTP's
/// (RFC 3550 §A.3): expected - received unique, so a late datagram that
/// fills a gap un-counts its loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeqStats {
    /// Every datagram fed in, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Sequence numbers from the first expected to the highest seen.
    pub expected: u64,
    /// expected - unique (gaps not filled yet).
    pub lost: u64,
    /// Sequence numbers seen again.
    pub duplicated: u64,
    /// Arrived after a higher sequence number (and not a duplicate).
    pub reordered: u64,
    /// Too old to judge (behind the window): not counted as unique, so
    /// they stay in `lost`.
    pub late: u64,
}

impl SeqStats {
    /// lost / expected, 0 when nothing expected yet.
    pub fn loss_rate(&self) -> f64 {
        ratio(self.lost, self.expected)
    }
    /// duplicated / received.
    pub fn dup_rate(&self) -> f64 {
        ratio(self.duplicated, self.received)
    }
    /// reordered / unique.
    pub fn reorder_rate(&self) -> f64 {
        ratio(self.reordered, self.unique)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// What one received sequence number turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// The next expected, or a jump ahead (the gap counts as lost for now).
    InOrder {
        gap: u64,
    },
    Reordered,
    Duplicate,
    /// Behind the window: cannot tell duplicate from late; ignored.
    Late,
}

/// Sliding-window accounting of one direction's sequence numbers: fixed
/// memory (a [`SeqTracker::WINDOW`]-bit ring), sequence numbers extended to
/// 64 bits so the u32 wrap is invisible (serial arithmetic, RFC 1982).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    /// Extended sequence number expected first (None: the first received).
    base: Option<u64>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Bit `s % WINDOW` set = extended sequence s was received, for s in
    /// (highest - WINDOW, highest].
    bits: [u64; Self::WORDS],
    stats: SeqStats,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqTracker {
    /// How far back a reordered datagram is still recognised (datagrams).
    pub const WINDOW: u64 = 1024;
    const WORDS: usize = (Self::WINDOW / 64) as usize;

    /// A tracker that starts counting at the first datagram it sees
    /// (datagrams lost before it are unknown, so not counted).
    pub fn new() -> Self {
        Self {
            base: None,
            highest: None,
            bits: [0; Self::WORDS],
            stats: SeqStats::default(),
        }
    }

    /// A tracker that expects `first` first: datagrams before the first one
    /// received count as lost (sessions start their sequences at 0).
    pub fn expecting(first: u32) -> Self {
        let mut t = Self::new();
        t.base = Some(u64::from(first));
        t
    }

    pub fn stats(&self) -> SeqStats {
        self.stats
    }

    fn bit(&self, s: u64) -> bool {
        let i = (s % Self::WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, s: u64, on: bool) {
        let i = (s % Self::WINDOW) as usize;
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// True when `seq` lies within [`Self::WINDOW`] of the highest sequence
    /// number seen (either side), or nothing was seen yet. A datagram outside
    /// it is refused by the server without being recorded: an old one may be
    /// a replay, and a far jump ahead would push every later genuine
    /// datagram behind the window.
    pub fn in_window(&self, seq: u32) -> bool {
        let Some(h) = self.highest else {
            return true;
        };
        let d = i64::from(seq.wrapping_sub(h as u32) as i32);
        d.unsigned_abs() < Self::WINDOW
    }

    /// Account for one received sequence number.
    pub fn record(&mut self, seq: u32) -> SeqVerdict {
        self.stats.received += 1;
        let verdict = match self.highest {
            None => {
                let base = *self.base.get_or_insert(u64::from(seq));
                // Distance from the expected first one, serially (a session
                // may start just before the u32 wrap).
                let d = i64::from(seq.wrapping_sub(base as u32) as i32);
                let ext = base.wrapping_add(d as u64);
                if d < 0 {
                    // Before the expected first one (only with `expecting`).
                    self.stats.late += 1;
                    SeqVerdict::Late
                } else {
                    self.highest = Some(ext);
                    self.set(ext, true);
                    self.stats.unique += 1;
                    SeqVerdict::InOrder { gap: ext - base }
                }
            }
            Some(h) => {
                // Serial-number distance: the nearest extended value.
                let d = i64::from(seq.wrapping_sub(h as u32) as i32);
                let base = self.base.unwrap_or(0);
                if d > 0 {
                    let ext = h + d as u64;
                    let d = d as u64;
                    if d >= Self::WINDOW {
                        self.bits = [0; Self::WORDS];
                    } else {
                        for s in h + 1..ext {
                            self.set(s, false);
                        }
                    }
                    self.set(ext, true);
                    self.highest = Some(ext);
                    self.stats.unique += 1;
                    SeqVerdict::InOrder { gap: d - 1 }
                } else {
                    let back = d.unsigned_abs();
                    // Before the first expected, or behind the window.
                    if back > h || h - back < base || back >= Self::WINDOW {
                        self.stats.late += 1;
                        SeqVerdict::Late
                    } else {
                        let ext = h - back;
                        if self.bit(ext) {
                            self.stats.duplicated += 1;
                            SeqVerdict::Duplicate
                        } else {
                            self.set(ext, true);
                            self.stats.unique += 1;
                            self.stats.reordered += 1;
                            SeqVerdict::Reordered
                        }
                    }
                }
            }
        };
        if let (Some(b), Some(h)) = (self.base, self.highest) {
            self.stats.expected = h - b + 1;
            self.stats.lost = self.stats.expected.saturating_sub(self.stats.unique);
        }
        verdict
    }
}

// ------------------------------------------------------------- fault injection

/// Probabilities (0..=1) of what happens to each outgoing datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultConfig {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

impl FaultConfig {
    /// True when every probability is 0 (the injector can be skipped).
    pub fn is_off(&self) -> bool {
        self.drop <= 0.0 && self.duplicate <= 0.0 && self.reorder <= 0.0
    }

    /// Check that each probability is a number in 0..=1.
    pub fn check(&self) -> Result<Self, String> {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} probability {p} is not in 0..=1"));
            }
        }
        Ok(*self)
    }
}

/// What the injector did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultStats {
    /// Datagrams handed to the injector.
    pub offered: u64,
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams sent after a later one.
    pub reordered: u64,
}

/// A small deterministic PRNG (SplitMix64): seeded for reproducible tests,
/// no dependency, never used for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed from the clock and the process id (for non-test use).
    pub fn from_time() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self(t ^ u64::from(std::process::id()).rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Drops, duplicates and reorders outgoing datagrams on purpose, so loss
/// handling can be shown and tested without privileges (no netem needed).
///
/// Reordering holds one datagram back and sends it right after the next
/// one. The caller must call [`FaultInjector::flush`] when it has nothing
/// more to send for a while (e.g. on a 50 ms timer), so a held datagram is
/// delayed, never lost.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    cfg: FaultConfig,
    rng: SplitMix64,
    /// The held-back datagram (and its duplicate, if one was drawn).
    held: Option<(Bytes, bool)>,
    stats: FaultStats,
}

impl FaultInjector {
    pub fn new(cfg: FaultConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: SplitMix64::new(seed),
            held: None,
            stats: FaultStats::default(),
        }
    }

    pub fn config(&self) -> FaultConfig {
        self.cfg
    }

    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// True when a datagram is held back (the caller should flush soon).
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Offer one datagram; what to send now is appended to `out`, in order.
    pub fn process(&mut self, d: Bytes, out: &mut Vec<Bytes>) {
        self.stats.offered += 1;
        if self.rng.next_f64() < self.cfg.drop {
            self.stats.dropped += 1;
            return;
        }
        let dup = self.rng.next_f64() < self.cfg.duplicate;
        if dup {
            self.stats.duplicated += 1;
        }
        if self.held.is_none() && self.rng.next_f64() < self.cfg.reorder {
            self.held = Some((d, dup));
            return;
        }
        out.push(d.clone());
        if dup {
            out.push(d);
        }
        if let Some((h, hdup)) = self.held.take() {
            self.stats.reordered += 1;
            out.push(h.clone());
            if hdup {
                out.push(h);
            }
        }
    }

    /// Release a held datagram (it goes out late but not reordered).
    pub fn flush(&mut self, out: &mut Vec<Bytes>) {
        if let Some((h, hdup)) = self.held.take() {
            out.push(h.clone());
            if hdup {
                out.push(h);
            }
        }
    }
}

// -------------------------------------------------------------- /proc/net/udp

/// The kernel's per-socket UDP table (`/proc/net/udp`, `/proc/net/udp6`):
/// queue sizes and the `drops` column, the count of datagrams the kernel
/// threw away for this socket (receive buffer full, bad checksum, ...).
/// The one place where UDP loss *inside this host* becomes visible.
pub mod procfs {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::fd::RawFd;

    /// One row of /proc/net/udp{,6}.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct UdpRow {
        pub local: SocketAddr,
        pub remote: SocketAddr,
        /// 7 = unconnected ("CLOSE"), 1 = connected ("ESTABLISHED").
        pub state: u8,
        /// Bytes queued to send / to read (kernel memory accounting).
        pub tx_queue: u64,
        pub rx_queue: u64,
        pub uid: u32,
        pub inode: u64,
        /// Datagrams the kernel dropped for this socket.
        pub drops: u64,
    }

    /// A `/proc/net/{tcp,udp}{,6}` address (`0100007F:1F90`): the same
    /// encoding in every table (the lab reads /proc/net/tcp with it).
    pub fn hex_addr(s: &str) -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // The kernel prints each 32-bit word of the address as the u32 it
        // finds in memory (host byte order), so on little-endian machines
        // 127.0.0.1 reads "0100007F": convert each word back with ne bytes.
        let ip = match ip.len() {
            8 => IpAddr::V4(Ipv4Addr::from(
                u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
            )),
            32 => {
                let mut b = [0u8; 16];
                for i in 0..4 {
                    let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                    b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
                }
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// Parse one data line; `None` for the header or a malformed line.
    pub fn parse_line(line: &str) -> Option<UdpRow> {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
        if f.len() < 13 || !f[0].ends_with(':') {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some(UdpRow {
            local: hex_addr(f[1])?,
            remote: hex_addr(f[2])?,
            state: u8::from_str_radix(f[3], 16).ok()?,
            tx_queue: u64::from_str_radix(tx, 16).ok()?,
            rx_queue: u64::from_str_radix(rx, 16).ok()?,
            uid: f[7].parse().ok()?,
            inode: f[9].parse().ok()?,
            drops: f[12].parse().ok()?,
        })
    }

    /// Parse a whole table; malformed lines are skipped.
    pub fn parse_table(text: &str) -> Vec<UdpRow> {
        text.lines().filter_map(parse_line).collect()
    }

    /// Rows of /proc/net/udp and /proc/net/udp6 (of this network namespace).
    pub fn read_tables() -> io::Result<Vec<UdpRow>> {
        let mut rows = parse_table(&std::fs::read_to_string("/proc/net/udp")?);
        // udp6 is absent when IPv6 is disabled: not an error.
        if let Ok(t) = std::fs::read_to_string("/proc/net/udp6") {
            rows.extend(parse_table(&t));
        }
        Ok(rows)
    }

    /// The inode of a socket fd (the `inode` column of its row).
    pub fn socket_inode(fd: RawFd) -> io::Result<u64> {
        // SAFETY: fstat writes one struct stat into st.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstat(fd, &mut st) };
        if rc == 0 {
            Ok(st.st_ino)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The row of our socket `fd`; `Ok(None)` if the kernel does not list it.
    pub fn row_for_fd(fd: RawFd) -> io::Result<Option<UdpRow>> {
        let inode = socket_inode(fd)?;
        Ok(read_tables()?.into_iter().find(|r| r.inode == inode))
    }

    /// Rows bound to local `port` (any address).
    pub fn rows_for_port(port: u16) -> io::Result<Vec<UdpRow>> {
        Ok(read_tables()?
            .into_iter()
            .filter(|r| r.local.port() == port)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ChatKind, ClientMsg, ServerMsg};

    const MAX: usize = DEFAULT_MAX_PAYLOAD;

    /// The notice for an oversize message tells the sender's own echo
    /// (delivered to the room) apart from what was really not delivered.
    #[test]
    fn oversize_notice_says_what_happened() {
        let chat = |from: &str, history: bool| {
            let mut b = BytesMut::new();
            codec::encode_server_payload(
                &ServerMsg::Chat {
                    room: "lobby".into(),
                    from: from.into(),
                    text: "x".into(),
                    kind: ChatKind::Say,
                    ts_ms: 0,
                    history,
                },
                &mut b,
            );
            b
        };
        let text = |p: &[u8]| match oversize_notice(p, "me", 2000, 1472) {
            ServerMsg::Notice { text } => text,
            other => panic!("{other:?}"),
        };
        let own = text(&chat("me", false));
        assert!(own.contains("was delivered to the room lobby"), "{own}");
        assert!(
            own.contains(
                "your echo did not fit in one UDP datagram (2000 bytes, the maximum is 1472)"
            ),
            "{own}"
        );
        assert!(!own.contains("not delivered"), "{own}");
        let other = text(&chat("bob", false));
        assert!(
            other.contains("from bob in lobby") && other.contains("not delivered to you"),
            "{other}"
        );
        let replay = text(&chat("me", true));
        assert!(replay.contains("not delivered to you"), "{replay}");
        let mut pm = BytesMut::new();
        codec::encode_server_payload(
            &ServerMsg::Private {
                from: "me".into(),
                to: "bob".into(),
                text: "x".into(),
                ts_ms: 0,
            },
            &mut pm,
        );
        let pm = text(&pm);
        assert!(
            pm.contains("delivered to bob; your copy did not fit"),
            "{pm}"
        );
        assert!(text(&[0xff]).contains("a server message did not fit"));
        let pm_from = |from: &str, to: &str| {
            let mut b = BytesMut::new();
            codec::encode_server_payload(
                &ServerMsg::Private {
                    from: from.into(),
                    to: to.into(),
                    text: "x".into(),
                    ts_ms: 0,
                },
                &mut b,
            );
            text(&b)
        };
        // A private message to me, or to myself (its only copy), was not
        // delivered to me.
        for (from, to) in [("bob", "me"), ("me", "me")] {
            let t = pm_from(from, to);
            assert!(
                t.starts_with(&format!("a private message from {from} did not fit"))
                    && t.contains("not delivered to you"),
                "{t}"
            );
        }
    }

    #[test]
    fn client_round_trip_and_header_bytes() {
        let msg = ClientMsg::Say {
            room: "lobby".into(),
            text: "hi".into(),
        };
        let d = encode_client(0x0102_0304, &msg, MAX).expect("fits");
        assert_eq!(&d[..8], &[b'S', b'U', 1, 0, 1, 2, 3, 4]);
        let mut payload = BytesMut::new();
        codec::encode_client_payload(&msg, &mut payload);
        assert_eq!(&d[8..], &payload[..], "payload is the TCP payload encoding");
        let got = decode_client(&d, MAX).expect("valid");
        assert_eq!(got.seq, 0x0102_0304);
        assert_eq!(got.msg, msg);
        assert_eq!(got.cookie, None);
    }

    /// The example in PROTOCOL.md.
    #[test]
    fn documented_example_bytes() {
        let d = encode_client(7, &ClientMsg::Rooms, MAX).expect("fits");
        assert_eq!(
            &d[..],
            &[0x53, 0x55, 0x01, 0x00, 0x00, 0x00, 0x00, 0x07, 0x09]
        );
    }

    #[test]
    fn server_round_trip_and_direction() {
        let msg = ServerMsg::Chat {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hello".into(),
            kind: ChatKind::Say,
            ts_ms: 1,
            history: false,
        };
        let d = encode_server(7, &msg, MAX).expect("fits");
        assert_eq!(d[3], flags::FROM_SERVER);
        assert_eq!(
            decode_server(&d, MAX).expect("valid"),
            ServerDatagram {
                seq: 7,
                body: ServerBody::Msg(msg)
            }
        );
        // A server datagram reflected at a server is rejected.
        assert_eq!(decode_client(&d, MAX), Err(DatagramError::WrongDirection));
        let c = encode_client(1, &ClientMsg::Rooms, MAX).expect("fits");
        assert_eq!(decode_server(&c, MAX), Err(DatagramError::WrongDirection));
    }

    #[test]
    fn hello_is_padded_and_retry_is_smaller() {
        let h = encode_hello(0, "al", None, MAX).expect("fits");
        assert_eq!(h.len(), MIN_HELLO_LEN);
        let got = decode_client(&h, MAX).expect("valid");
        assert_eq!(got.msg, ClientMsg::Hello { nick: "al".into() });
        let h2 = encode_hello(1, "al", Some(42), MAX).expect("fits");
        assert_eq!(h2.len(), MIN_HELLO_LEN);
        assert_eq!(decode_client(&h2, MAX).expect("valid").cookie, Some(42));
        let r = encode_retry(42);
        assert_eq!(r.len(), HEADER_LEN + COOKIE_LEN);
        assert!(r.len() < MIN_HELLO_LEN);
        assert_eq!(
            decode_server(&r, MAX).expect("valid").body,
            ServerBody::Retry { cookie: 42 }
        );
        // Non-zero padding is rejected (padding cannot smuggle data).
        let mut bad = BytesMut::from(&h[..]);
        let last = bad.len() - 1;
        bad[last] = 1;
        assert!(matches!(
            decode_client(&bad, MAX),
            Err(DatagramError::BadPadding(_))
        ));
    }

    #[test]
    fn oversize_refused_with_clear_error() {
        let msg = ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(2000),
        };
        let err = encode_client(0, &msg, MAX).expect_err("too large");
        let len = 8 + 1 + 2 + 5 + 2 + 2000;
        assert_eq!(err, EncodeError::TooLarge { len, max: MAX });
        let text = err.to_string();
        assert!(
            text.contains("2018 bytes") && text.contains("1472"),
            "{text}"
        );
        assert!(text.contains("never truncated"), "{text}");
        // Exactly at the limit is fine; one byte more is not.
        let fits = ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(MAX - 18),
        };
        assert_eq!(encode_client(0, &fits, MAX).expect("fits").len(), MAX);
        let over = ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(MAX - 17),
        };
        assert!(encode_client(0, &over, MAX).is_err());
        // Receiving side: a datagram above the maximum is rejected too.
        let big = vec![0u8; MAX + 1];
        assert_eq!(
            decode_client(&big, MAX),
            Err(DatagramError::TooLarge {
                len: MAX + 1,
                max: MAX
            })
        );
        // Server payload checked once for fan-out.
        let chat = ServerMsg::Notice {
            text: "y".repeat(MAX),
        };
        assert!(encode_server_payload(&chat, MAX).is_err());
    }

    /// Every size check is exact at its boundary: a datagram of exactly
    /// `max` bytes is sent and received, a server payload that fills `max`
    /// with its header is accepted and one byte more is refused with the
    /// real length, and the header's optional parts are refused one byte
    /// short.
    #[test]
    fn datagram_size_boundaries() {
        let fits = ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(MAX - 18),
        };
        let d = encode_client(0, &fits, MAX).expect("fits");
        assert_eq!(d.len(), MAX);
        assert_eq!(decode_client(&d, MAX).expect("exactly max").msg, fits);
        assert_eq!(
            decode_client(&d, MAX - 1),
            Err(DatagramError::TooLarge {
                len: MAX,
                max: MAX - 1
            })
        );

        let base = encode_server_payload(
            &ServerMsg::Notice {
                text: String::new(),
            },
            MAX,
        )
        .expect("fits")
        .len();
        let notice = |n: usize| ServerMsg::Notice {
            text: "y".repeat(n),
        };
        let room = MAX - HEADER_LEN - base;
        let p = encode_server_payload(&notice(room), MAX).expect("fills max");
        assert_eq!(with_server_header(7, &p).len(), MAX);
        assert_eq!(
            encode_server(7, &notice(room), MAX).expect("fits").len(),
            MAX
        );
        assert_eq!(
            encode_server_payload(&notice(room + 1), MAX),
            Err(EncodeError::TooLarge {
                len: MAX + 1,
                max: MAX
            })
        );

        // A Hello longer than the padding: no padding at all is valid.
        let nick = "n".repeat(MIN_HELLO_LEN);
        let h = encode_hello(3, &nick, Some(9), MAX).expect("fits");
        assert!(h.len() > MIN_HELLO_LEN);
        let got = decode_client(&h, MAX).expect("unpadded hello");
        assert_eq!((got.seq, got.cookie), (3, Some(9)));
        assert_eq!(got.msg, ClientMsg::Hello { nick });

        // Exactly a header: long enough, but empty.
        let hdr = [b'S', b'U', VERSION, flags::FROM_SERVER, 0, 0, 0, 5];
        assert_eq!(decode_server(&hdr, MAX), Err(DatagramError::Empty));
        // A cookie one byte short, then whole.
        let mut c = hdr.to_vec();
        c[3] |= flags::COOKIE;
        c.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            decode_server(&c, MAX),
            Err(DatagramError::Payload(DecodeError::Truncated("cookie")))
        );
        c.push(2);
        let r = decode_server(&c, MAX).expect("retry");
        assert_eq!((r.seq, r.body), (5, ServerBody::Retry { cookie: 0x102 }));
        // The padded length field one byte short, and pointing past the end.
        let mut pad = vec![b'S', b'U', VERSION, flags::PADDED, 0, 0, 0, 1, 0];
        assert_eq!(
            decode_client(&pad, MAX),
            Err(DatagramError::BadPadding("missing payload length"))
        );
        // The length field alone (no payload, no padding) is complete.
        let len_only = [&pad[..], &[0]].concat();
        let (h, rest) = decode_header(&len_only, MAX).expect("complete");
        assert_eq!((h.seq, rest.len()), (1, 0));
        pad.extend_from_slice(&[2, 0x7F]);
        assert_eq!(
            decode_client(&pad, MAX),
            Err(DatagramError::BadPadding("payload length beyond datagram"))
        );
    }

    #[test]
    fn max_payload_range() {
        assert!(check_max_payload(1472).is_ok());
        assert!(check_max_payload(548).is_ok());
        assert!(check_max_payload(65507).is_ok());
        assert!(check_max_payload(65508).is_err());
        assert!(check_max_payload(10).is_err());
        assert_eq!(check_max_payload(MIN_MAX_PAYLOAD), Ok(MIN_MAX_PAYLOAD));
        assert_eq!(check_max_payload(MAX_UDP_PAYLOAD), Ok(MAX_UDP_PAYLOAD));
        assert!(check_max_payload(MIN_MAX_PAYLOAD - 1).is_err());
    }

    #[test]
    fn header_errors() {
        assert_eq!(decode_client(b"SU", MAX), Err(DatagramError::TooShort(2)));
        assert_eq!(
            decode_client(b"XXXXXXXXX", MAX),
            Err(DatagramError::BadMagic)
        );
        assert_eq!(
            decode_client(&[b'S', b'U', 9, 0, 0, 0, 0, 0, 9], MAX),
            Err(DatagramError::BadVersion(9))
        );
        assert_eq!(
            decode_client(&[b'S', b'U', 1, 0x80, 0, 0, 0, 0, 9], MAX),
            Err(DatagramError::BadFlags(0x80))
        );
        assert_eq!(
            decode_client(&[b'S', b'U', 1, 0, 0, 0, 0, 0], MAX),
            Err(DatagramError::Empty)
        );
        assert!(matches!(
            decode_client(&[b'S', b'U', 1, 0, 0, 0, 0, 0, 0x7F], MAX),
            Err(DatagramError::Payload(DecodeError::UnknownTag(0x7F)))
        ));
    }

    #[test]
    fn cookies() {
        let jar = CookieJar::new([1, 2], 30);
        let a: std::net::SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let b: std::net::SocketAddr = "127.0.0.1:4001".parse().expect("addr");
        let c = jar.issue(&a, 1000);
        assert!(jar.verify(&a, c, 1000));
        assert!(jar.verify(&a, c, 1029), "same epoch (990..1020) or next");
        assert!(!jar.verify(&a, c, 1100), "expired after two epochs");
        assert!(!jar.verify(&b, c, 1000), "bound to the address");
        let other = CookieJar::new([3, 4], 30);
        assert!(!other.verify(&a, c, 1000), "bound to the key");
    }

    /// A cookie is valid from the first second of the epoch it was issued
    /// in to the last second of the next one, and not a second longer; in
    /// the very first epoch (no previous one) a wrong cookie is refused,
    /// never a panic; IPv4 and IPv6 peers get different cookies.
    #[test]
    fn cookie_lives_two_epochs_exactly() {
        let jar = CookieJar::new([1, 2], 30);
        let a: std::net::SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let c = jar.issue(&a, 60); // epoch 2 = 60..90
        assert_eq!(jar.issue(&a, 89), c, "one cookie per epoch");
        assert_ne!(jar.issue(&a, 90), c, "a new one the next epoch");
        assert!(!jar.verify(&a, c, 59), "not before its epoch");
        assert!(jar.verify(&a, c, 60));
        assert!(jar.verify(&a, c, 119), "the next epoch too");
        assert!(!jar.verify(&a, c, 120), "two epochs later: expired");
        let first = jar.issue(&a, 0);
        assert!(jar.verify(&a, first, 29));
        assert!(!jar.verify(&a, first ^ 1, 0), "epoch 0: no previous one");
        let v6: std::net::SocketAddr = "[::1]:4000".parse().expect("addr");
        assert!(!jar.verify(&v6, c, 60), "bound to the address family");
        assert!(jar.verify(&v6, jar.issue(&v6, 60), 60));
    }

    #[test]
    fn session_datagrams_carry_the_token() {
        let msg = ClientMsg::Ping { token: 9 };
        let d = encode_in_session(5, Some(0xDEAD_BEEF), &msg, MAX).expect("fits");
        let got = decode_client(&d, MAX).expect("decodes");
        assert_eq!(got.cookie, Some(0xDEAD_BEEF));
        assert_eq!((got.seq, got.msg), (5, msg.clone()));
        let plain = encode_client(5, &msg, MAX).expect("fits");
        assert_eq!(decode_client(&plain, MAX).expect("decodes").cookie, None);
        assert_eq!(d.len(), plain.len() + COOKIE_LEN);
    }

    /// `SESSION_HEADER_LEN` is exactly what a session datagram adds to its
    /// payload, so a payload of `max - SESSION_HEADER_LEN` bytes (what the
    /// client and the server size file chunks by) fits and one byte more
    /// does not.
    #[test]
    fn session_header_len_is_what_a_session_datagram_adds() {
        let say = |n: usize| ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(n),
        };
        let payload_len = |m: &ClientMsg| {
            let mut b = BytesMut::new();
            codec::encode_client_payload(m, &mut b);
            b.len()
        };
        let empty = payload_len(&say(0));
        let room = MAX - SESSION_HEADER_LEN - empty;
        let d = encode_in_session(1, Some(7), &say(room), MAX).expect("fills max");
        assert_eq!(d.len(), MAX);
        assert_eq!(d.len(), SESSION_HEADER_LEN + payload_len(&say(room)));
        assert_eq!(
            encode_in_session(1, Some(7), &say(room + 1), MAX),
            Err(EncodeError::TooLarge {
                len: MAX + 1,
                max: MAX
            })
        );
    }

    #[test]
    fn sequence_window() {
        let mut t = SeqTracker::expecting(0);
        assert!(t.in_window(u32::MAX), "nothing seen yet: anything goes");
        for s in 0..2000 {
            t.record(s);
        }
        assert!(t.in_window(1999 - 1023) && t.in_window(1999 + 1023));
        assert!(!t.in_window(1999 - 1024), "a replay from long ago");
        assert!(!t.in_window(1999 + 1024), "a jump far ahead");
        assert!(!t.in_window(0));
        let mut w = SeqTracker::expecting(u32::MAX - 1);
        w.record(u32::MAX - 1);
        assert!(w.in_window(3), "across the u32 wrap");
    }

    fn feed(t: &mut SeqTracker, seqs: &[u32]) -> SeqStats {
        for &s in seqs {
            t.record(s);
        }
        t.stats()
    }

    #[test]
    fn tracker_exact_counts() {
        let s = feed(&mut SeqTracker::expecting(0), &[0, 1, 2, 3, 4]);
        assert_eq!((s.unique, s.lost, s.duplicated, s.reordered), (5, 0, 0, 0));

        // 2 lost, 5 duplicated once, 4 arrives after 6.
        let s = feed(&mut SeqTracker::expecting(0), &[0, 1, 3, 5, 5, 6, 4, 7]);
        assert_eq!(s.received, 8);
        assert_eq!(s.unique, 7);
        assert_eq!(s.expected, 8);
        assert_eq!(s.lost, 1);
        assert_eq!(s.duplicated, 1);
        assert_eq!(s.reordered, 1);

        // Starting at the first received: earlier ones are not counted...
        let s = feed(&mut SeqTracker::new(), &[10, 11, 12]);
        assert_eq!((s.expected, s.lost), (3, 0));
        // ...but with `expecting(0)` they are.
        let s = feed(&mut SeqTracker::expecting(0), &[10, 11, 12]);
        assert_eq!((s.expected, s.lost), (13, 10));

        // Duplicate of the highest, and of an older one.
        let s = feed(&mut SeqTracker::expecting(0), &[0, 1, 1, 0]);
        assert_eq!((s.unique, s.duplicated, s.reordered), (2, 2, 0));
    }

    #[test]
    fn tracker_wraps_u32() {
        let start = u32::MAX - 2;
        let seqs: Vec<u32> = (0..6).map(|i| start.wrapping_add(i)).collect();
        let s = feed(&mut SeqTracker::expecting(start), &seqs);
        assert_eq!((s.unique, s.expected, s.lost), (6, 6, 0));
        // Reordered across the wrap.
        let s = feed(
            &mut SeqTracker::expecting(start),
            &[start, start + 1, 0, start + 2, 1],
        );
        assert_eq!((s.unique, s.lost, s.reordered), (5, 0, 1));
    }

    /// Each verdict with its gap, the exact counters, and the three rates
    /// as the ratios they name (0 before anything is expected, not NaN).
    #[test]
    fn tracker_verdicts_counts_and_rates() {
        let mut t = SeqTracker::expecting(5);
        let none = t.stats();
        assert_eq!(
            (none.loss_rate(), none.dup_rate(), none.reorder_rate()),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(t.record(4), SeqVerdict::Late, "before the first expected");
        assert_eq!(
            t.record(7),
            SeqVerdict::InOrder { gap: 2 },
            "5 and 6 missing"
        );
        assert_eq!(t.record(8), SeqVerdict::InOrder { gap: 0 });
        assert_eq!(t.record(11), SeqVerdict::InOrder { gap: 2 });
        assert_eq!(
            t.record(4),
            SeqVerdict::Late,
            "still before the first expected"
        );
        assert_eq!(
            t.record(5),
            SeqVerdict::Reordered,
            "the first expected, late"
        );
        assert_eq!(t.record(5), SeqVerdict::Duplicate);
        assert_eq!(t.record(11), SeqVerdict::Duplicate);
        let s = t.stats();
        assert_eq!(
            s,
            SeqStats {
                received: 8,
                unique: 4,   // 7 8 11 5
                expected: 7, // 5..=11
                lost: 3,     // 6 9 10
                duplicated: 2,
                reordered: 1,
                late: 2,
            }
        );
        assert_eq!(s.loss_rate(), 3.0 / 7.0);
        assert_eq!(s.dup_rate(), 2.0 / 8.0);
        assert_eq!(s.reorder_rate(), 1.0 / 4.0);
    }

    /// The ring is exact at its edge: a datagram exactly WINDOW behind the
    /// highest is late (its bit now belongs to the highest), one less is
    /// still judged; and a jump inside the window forgets the bits the
    /// skipped numbers held one lap ago.
    #[test]
    fn tracker_ring_edges() {
        let mut t = SeqTracker::expecting(0);
        assert_eq!(t.record(0), SeqVerdict::InOrder { gap: 0 });
        assert_eq!(t.record(1024), SeqVerdict::InOrder { gap: 1023 });
        assert_eq!(t.record(0), SeqVerdict::Late, "exactly WINDOW behind");
        assert_eq!(t.record(1), SeqVerdict::Reordered, "WINDOW - 1 behind");

        let mut t = SeqTracker::expecting(0);
        for s in 0..1024 {
            t.record(s);
        }
        assert_eq!(t.record(1030), SeqVerdict::InOrder { gap: 6 });
        assert_eq!(t.record(1025), SeqVerdict::Reordered, "seq 1's old bit");
        assert_eq!(t.record(1024), SeqVerdict::Reordered, "seq 0's old bit");
        assert_eq!(t.record(1023), SeqVerdict::Duplicate, "kept: received");
        assert_eq!(t.stats().lost, 4, "1026..=1029");
    }

    #[test]
    fn tracker_window_is_bounded() {
        let mut t = SeqTracker::expecting(0);
        t.record(0);
        t.record(5000); // jump: 4999 lost for now
        assert_eq!(t.stats().lost, 4999);
        t.record(4999); // inside the window: reordered, fills a gap
        assert_eq!(t.stats().reordered, 1);
        assert_eq!(t.stats().lost, 4998);
        t.record(1); // behind the window: late, stays lost
        assert_eq!(t.stats().late, 1);
        assert_eq!(t.stats().lost, 4998);
        t.record(5000);
        assert_eq!(t.stats().duplicated, 1);
    }

    /// `SplitMix64` is the published generator (Steele, Lea, Flood 2014;
    /// the reference sequence of seed 0), so a seed replays the same
    /// faults in every build and the mixing function is not weakened.
    #[test]
    fn splitmix64_is_the_reference_generator() {
        let mut r = SplitMix64::new(0);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
    }

    /// The injector is skipped only when all three probabilities are 0:
    /// any one of them alone keeps it on.
    #[test]
    fn faults_are_off_only_when_every_probability_is_zero() {
        assert!(FaultConfig::default().is_off());
        let one = |drop, duplicate, reorder| FaultConfig {
            drop,
            duplicate,
            reorder,
        };
        for on in [one(0.1, 0.0, 0.0), one(0.0, 0.1, 0.0), one(0.0, 0.0, 0.1)] {
            assert!(!on.is_off(), "{on:?}");
        }
    }

    /// Each probability must be a number in 0..=1 (the error names it);
    /// a valid configuration comes back unchanged.
    #[test]
    fn fault_probabilities_are_checked_in_0_to_1() {
        let ok = FaultConfig {
            drop: 0.0,
            duplicate: 0.5,
            reorder: 1.0,
        };
        assert_eq!(ok.check(), Ok(ok));
        for (bad, name) in [
            (FaultConfig { drop: -0.1, ..ok }, "drop"),
            (
                FaultConfig {
                    duplicate: 1.1,
                    ..ok
                },
                "duplicate",
            ),
            (
                FaultConfig {
                    reorder: f64::NAN,
                    ..ok
                },
                "reorder",
            ),
        ] {
            let e = bad.check().expect_err("out of range");
            assert!(e.starts_with(&format!("{name} probability")), "{e}");
        }
    }

    /// At probability 1 each fault happens to every datagram: all dropped;
    /// all sent twice; with reordering, the first is held (`holding`)
    /// and goes out after the second, and `flush` releases a held one.
    #[test]
    fn injector_at_probability_one_always_acts() {
        let d = |i: u8| Bytes::from(vec![i]);
        let only = |drop, duplicate, reorder| FaultConfig {
            drop,
            duplicate,
            reorder,
        };
        let mut out = Vec::new();
        let mut drop_all = FaultInjector::new(only(1.0, 0.0, 0.0), 7);
        assert_eq!(drop_all.config(), only(1.0, 0.0, 0.0));
        for i in 0..50 {
            drop_all.process(d(i), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(drop_all.stats().dropped, 50);

        let mut dup_all = FaultInjector::new(only(0.0, 1.0, 0.0), 7);
        for i in 0..50 {
            dup_all.process(d(i), &mut out);
        }
        let twice: Vec<Bytes> = (0..50).flat_map(|i| [d(i), d(i)]).collect();
        assert_eq!(out, twice);
        assert_eq!(dup_all.stats().duplicated, 50);

        out.clear();
        let mut swap = FaultInjector::new(only(0.0, 0.0, 1.0), 7);
        swap.process(d(1), &mut out);
        assert!(out.is_empty() && swap.holding());
        swap.process(d(2), &mut out);
        assert_eq!(out, [d(2), d(1)]);
        assert!(!swap.holding());
        swap.process(d(3), &mut out);
        assert!(swap.holding());
        swap.flush(&mut out);
        assert!(!swap.holding());
        assert_eq!(out, [d(2), d(1), d(3)]);
        assert_eq!(swap.stats().reordered, 1);
    }

    /// Two generators seeded from the clock a moment apart differ (the
    /// seed keeps the clock's nanoseconds).
    #[test]
    fn clock_seeds_differ() {
        let mut a = SplitMix64::from_time();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = SplitMix64::from_time();
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn injector_off_is_transparent() {
        let mut inj = FaultInjector::new(FaultConfig::default(), 1);
        let mut out = Vec::new();
        for i in 0..100u32 {
            inj.process(Bytes::from(i.to_be_bytes().to_vec()), &mut out);
        }
        assert_eq!(out.len(), 100);
        assert_eq!(inj.stats().dropped + inj.stats().duplicated, 0);
    }

    /// Injector output fed to a tracker: the tracker's counts equal exactly
    /// what the injector did (no network in between, so nothing else).
    #[test]
    fn injector_and_tracker_agree() {
        let cfg = FaultConfig {
            drop: 0.1,
            duplicate: 0.05,
            reorder: 0.05,
        };
        let mut inj = FaultInjector::new(cfg, 0xC0FFEE);
        let mut out = Vec::new();
        let n = 10_000u32;
        for seq in 0..n {
            let d = encode_client(seq, &ClientMsg::Ping { token: 0 }, MAX).expect("fits");
            inj.process(d, &mut out);
        }
        inj.flush(&mut out);
        let mut t = SeqTracker::expecting(0);
        for d in &out {
            t.record(decode_client(d, MAX).expect("valid").seq);
        }
        let (f, s) = (inj.stats(), t.stats());
        assert_eq!(f.offered, u64::from(n));
        // The last datagram may have been dropped: expected stops at the
        // highest received, so count the tail separately.
        let tail = u64::from(n) - s.expected;
        assert_eq!(s.lost + tail, f.dropped);
        assert_eq!(s.duplicated, f.duplicated);
        assert_eq!(s.reordered, f.reordered);
        // And the rates are near the configured probabilities.
        assert!(
            (f.dropped as f64 / f64::from(n) - 0.1).abs() < 0.02,
            "{f:?}"
        );
        assert!(f.reordered > 300, "{f:?}");
    }

    #[test]
    fn proc_net_udp_lines() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                  \x20 97: 0100007F:1EC6 0100007F:A2B4 01 00000000:00000340 00:00000000 00000000     0        0 123456 2 0000000000000000 17\n";
        let rows = procfs::parse_table(v4);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        if cfg!(target_endian = "little") {
            assert_eq!(r.local, "127.0.0.1:7878".parse().expect("addr"));
            assert_eq!(r.remote, "127.0.0.1:41652".parse().expect("addr"));
        }
        assert_eq!(r.state, 1);
        assert_eq!(r.rx_queue, 0x340);
        assert_eq!(r.inode, 123456);
        assert_eq!(r.drops, 17);
        let v6 = "  1: 00000000000000000000000001000000:1EC6 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 99 2 0000000000000000 0\n";
        let rows = procfs::parse_table(v6);
        assert_eq!(rows.len(), 1);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].local, "[::1]:7878".parse().expect("addr"));
        }
        assert_eq!(rows[0].uid, 1000);
        if cfg!(target_endian = "little") {
            // Four distinct words, each in its own place.
            assert_eq!(
                procfs::hex_addr("B80D0120010000000300020005000400:0035"),
                Some("[2001:db8:0:1:2:3:4:5]:53".parse().expect("addr"))
            );
        }
        assert!(procfs::parse_table("garbage\n1: x y\n").is_empty());
    }

    /// The real kernel table lists a socket we bind, found by inode.
    #[test]
    fn proc_net_udp_finds_our_socket() {
        use std::os::fd::AsRawFd;
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        let port = s.local_addr().expect("addr").port();
        let row = procfs::row_for_fd(s.as_raw_fd())
            .expect("read /proc/net/udp")
            .expect("our socket is listed");
        assert_eq!(row.local.port(), port);
        assert_eq!(row.drops, 0);
        assert!(
            procfs::rows_for_port(port)
                .expect("read")
                .iter()
                .any(|r| r.inode == row.inode)
        );
    }
}
