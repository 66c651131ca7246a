//! Captured bytes as TCP segments (headers parsed by `etherparse`), with
//! the tcpdump notation the seed's traces use: relative time, who sent it,
//! flags `[S] [S.] [.] [P.] [F.] [R] [R.]`, sequence and acknowledgement
//! numbers relative to each direction's first sequence number, the raw
//! window field, the payload length, and the options where they matter
//! (on SYNs). Zero-window probes and zero windows are marked.

use std::collections::HashMap;
use std::fmt::Write as _;

use etherparse::{Ipv4Header, Ipv6Header, TcpHeader, TcpOptionElement};

use super::capture::RawPacket;

/// Which end of the scenario's connection(s) sent a segment: the socket on
/// the scenario's port (`Listen`) or the other end (`Connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Listen,
    Connect,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Listen => Side::Connect,
            Side::Connect => Side::Listen,
        }
    }
}

/// One TCP segment as the lab and the client's wire view show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Seconds since the capture started.
    pub t: f64,
    pub from: Side,
    pub src_port: u16,
    pub dst_port: u16,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    /// Relative to this direction's first sequence number.
    pub seq: u32,
    /// Relative to the other direction's first sequence number.
    pub ack_no: u32,
    /// The raw window field (scaled by the handshake's wscale, like tcpdump).
    pub win: u16,
    pub len: u32,
    /// tcpdump's options text, SYNs only (`mss 65495,sackOK,TS,nop,wscale 7`).
    pub options: Option<String>,
    /// A zero-window probe: an empty ACK one byte below what the peer acked.
    pub probe: bool,
    /// The same empty ACK into an open window: a keepalive probe.
    pub keepalive: bool,
    /// Data this direction had already sent, or its SYN again (a
    /// retransmission).
    pub retransmit: bool,
}

impl Segment {
    /// tcpdump's flag letters in its order, `.` for ACK: `[S.]`, `[FP.]`.
    pub fn flags(&self) -> String {
        let mut f = String::from("[");
        for (on, c) in [
            (self.fin, 'F'),
            (self.syn, 'S'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, '.'),
        ] {
            if on {
                f.push(c);
            }
        }
        f.push(']');
        f
    }

    /// One tcpdump-style line, with `names` for the two sides.
    pub fn line(&self, names: [&str; 2]) -> String {
        let name = |s: Side| {
            if s == Side::Listen {
                names[0]
            } else {
                names[1]
            }
        };
        let mut l = format!(
            "{:>9.6} {}.{} > {}.{}: Flags {}, seq {}",
            self.t,
            name(self.from),
            self.src_port,
            name(self.from.other()),
            self.dst_port,
            self.flags(),
            self.seq
        );
        if self.len > 0 {
            let _ = write!(l, ":{}", self.seq.wrapping_add(self.len));
        }
        if self.ack {
            let _ = write!(l, ", ack {}", self.ack_no);
        }
        let _ = write!(l, ", win {}", self.win);
        if let Some(o) = &self.options {
            let _ = write!(l, ", options [{o}]");
        }
        let _ = write!(l, ", length {}", self.len);
        if self.probe {
            l.push_str("   <- window probe");
        } else if self.keepalive {
            l.push_str("   <- keepalive probe");
        } else if self.retransmit {
            l.push_str("   <- retransmission");
        } else if self.win == 0 && !self.rst {
            l.push_str("   <- zero window");
        }
        l
    }

    pub fn to_json(&self, names: [&str; 2]) -> serde_json::Value {
        let name = |s: Side| {
            if s == Side::Listen {
                names[0]
            } else {
                names[1]
            }
        };
        serde_json::json!({
            "t": self.t,
            "from": name(self.from),
            "to": name(self.from.other()),
            "src_port": self.src_port,
            "dst_port": self.dst_port,
            "flags": self.flags(),
            "seq": self.seq,
            "ack": if self.ack { Some(self.ack_no) } else { None },
            "win": self.win,
            "len": self.len,
            "options": self.options,
            "window_probe": self.probe,
            "keepalive": self.keepalive,
            "retransmission": self.retransmit,
        })
    }
}

fn options_text(tcp: &TcpHeader) -> String {
    let mut parts = Vec::new();
    for o in tcp.options_iterator() {
        parts.push(match o {
            Ok(TcpOptionElement::Noop) => "nop".to_string(),
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => format!("mss {m}"),
            Ok(TcpOptionElement::WindowScale(w)) => format!("wscale {w}"),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => "sackOK".to_string(),
            Ok(TcpOptionElement::SelectiveAcknowledgement(..)) => "sack".to_string(),
            Ok(TcpOptionElement::Timestamp(v, e)) => format!("TS val {v} ecr {e}"),
            Err(_) => "bad-option".to_string(),
        });
    }
    parts.join(",")
}

/// Per-direction state for relative numbers and probe detection.
#[derive(Debug, Default, Clone, Copy)]
struct Dir {
    isn: Option<u32>,
    /// The last ack number and window this direction sent.
    last_ack: Option<u32>,
    last_win: Option<u16>,
    /// The end of the data sent so far, relative.
    sent_end: u32,
}

/// The TCP header and payload length of an IPv4 or IPv6 packet (the
/// client's capture sees either; TCP right after the fixed IPv6 header, as
/// the filter asks). `None`: not that, or cut short.
fn ip_tcp(data: &[u8]) -> Option<(TcpHeader, u32)> {
    let (ip_payload_len, rest) = match data.first().map(|b| b >> 4) {
        Some(4) => {
            let (ip, rest) = Ipv4Header::from_slice(data).ok()?;
            let len = u32::from(ip.total_len).saturating_sub(ip.header_len() as u32);
            (len, rest)
        }
        Some(6) => {
            let (ip, rest) = Ipv6Header::from_slice(data).ok()?;
            (u32::from(ip.payload_length), rest)
        }
        _ => return None,
    };
    let (tcp, _) = TcpHeader::from_slice(rest).ok()?;
    let len = ip_payload_len.saturating_sub(tcp.header_len() as u32);
    Some((tcp, len))
}

/// Segments from packets one at a time, keeping what relative numbers
/// and probe detection need (each direction's first sequence number, last
/// ack and window). Times are relative to the first packet pushed.
#[derive(Debug, Clone)]
pub struct Parser {
    /// The port of the [`Side::Listen`] end.
    port: u16,
    t0: Option<std::time::Duration>,
    dirs: HashMap<(u16, u16), Dir>,
}

impl Parser {
    /// `port`: the listening end's port (the lab's scenario port, the
    /// server's port for the client).
    pub fn new(port: u16) -> Parser {
        Parser {
            port,
            t0: None,
            dirs: HashMap::new(),
        }
    }

    /// The segment in `p`; `None` if it is not IPv4/IPv6 TCP or is cut
    /// short (the filters let none through).
    pub fn push(&mut self, p: &RawPacket) -> Option<Segment> {
        let t0 = *self.t0.get_or_insert(p.ts);
        let (tcp, len) = ip_tcp(&p.data)?;
        let (sp, dp) = (tcp.source_port, tcp.destination_port);
        let back = self.dirs.get(&(dp, sp)).copied().unwrap_or_default();
        let d = self.dirs.entry((sp, dp)).or_default();
        // The same SYN again (same initial sequence number): no answer came.
        let syn_again = tcp.syn && !tcp.ack && d.isn == Some(tcp.sequence_number);
        if tcp.syn || d.isn.is_none() {
            // A new SYN starts a new connection on this 4-tuple.
            *d = Dir {
                isn: Some(tcp.sequence_number),
                ..Dir::default()
            };
        }
        let isn = d.isn.unwrap_or(0);
        // An empty bare ACK one below what the other side acked, into its
        // closed window: the kernel's zero-window probe
        // (tcp_xmit_probe_skb); into an open window it is a keepalive.
        let below_ack = len == 0
            && tcp.ack
            && !(tcp.syn || tcp.fin || tcp.rst || tcp.psh)
            && back.last_ack == Some(tcp.sequence_number.wrapping_add(1));
        let probe = below_ack && back.last_win == Some(0);
        let keepalive = below_ack && !probe;
        let rel = tcp.sequence_number.wrapping_sub(isn);
        let retransmit = syn_again || (len > 0 && rel.wrapping_add(len) <= d.sent_end);
        d.sent_end = d.sent_end.max(rel.wrapping_add(len));
        d.last_ack = tcp.ack.then_some(tcp.acknowledgment_number);
        if !tcp.rst {
            d.last_win = Some(tcp.window_size);
        }
        Some(Segment {
            t: p.ts.saturating_sub(t0).as_secs_f64(),
            from: if sp == self.port {
                Side::Listen
            } else {
                Side::Connect
            },
            src_port: sp,
            dst_port: dp,
            syn: tcp.syn,
            ack: tcp.ack,
            fin: tcp.fin,
            rst: tcp.rst,
            psh: tcp.psh,
            seq: rel,
            ack_no: tcp
                .acknowledgment_number
                .wrapping_sub(back.isn.unwrap_or(0)),
            win: tcp.window_size,
            len,
            options: tcp.syn.then(|| options_text(&tcp)),
            probe,
            keepalive,
            retransmit,
        })
    }
}

/// Parse what the capture of `port` kept into segments, in capture order.
/// Packets that are not TCP (the filter lets none through) or that are
/// cut short are skipped and counted in the second value.
pub fn parse(raw: &[RawPacket], port: u16) -> (Vec<Segment>, usize) {
    let mut parser = Parser::new(port);
    let mut out = Vec::new();
    let mut bad = 0;
    for p in raw {
        match parser.push(p) {
            Some(s) => out.push(s),
            None => bad += 1,
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use std::time::Duration;

    fn pkt(
        sp: u16,
        dp: u16,
        seq: u32,
        f: impl FnOnce(
            etherparse::PacketBuilderStep<TcpHeader>,
        ) -> etherparse::PacketBuilderStep<TcpHeader>,
        payload: &[u8],
        ms: u64,
    ) -> RawPacket {
        let b = f(PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64).tcp(sp, dp, seq, 512));
        let mut data = Vec::new();
        b.write(&mut data, payload).expect("build");
        RawPacket {
            ts: Duration::from_millis(1000 + ms),
            orig_len: data.len() as u32,
            data,
        }
    }

    #[test]
    fn handshake_data_and_close_in_tcpdump_notation() {
        let raw = vec![
            pkt(40000, 5555, 1000, |b| b.syn(), b"", 0),
            pkt(5555, 40000, 9000, |b| b.syn().ack(1001), b"", 1),
            pkt(40000, 5555, 1001, |b| b.ack(9001), b"", 2),
            pkt(40000, 5555, 1001, |b| b.psh().ack(9001), b"hello", 3),
            pkt(40000, 5555, 1006, |b| b.fin().ack(9001), b"", 4),
        ];
        let (s, bad) = parse(&raw, 5555);
        assert_eq!(bad, 0);
        let names = ["peer", "actor"];
        assert_eq!(s[0].flags(), "[S]");
        assert_eq!(s[1].flags(), "[S.]");
        assert_eq!(s[2].flags(), "[.]");
        assert_eq!(
            s[3].line(names),
            " 0.003000 actor.40000 > peer.5555: Flags [P.], seq 1:6, ack 1, win 512, length 5"
        );
        assert_eq!(s[4].flags(), "[F.]");
        assert_eq!(s[4].seq, 6);
        assert_eq!(s[1].from, Side::Listen);
    }

    #[test]
    fn zero_window_probe_is_marked() {
        let raw = vec![
            pkt(5555, 40000, 1, |b| b.ack(5001), b"", 0).with_win(0),
            pkt(40000, 5555, 5000, |b| b.ack(2), b"", 200),
        ];
        let (s, _) = parse(&raw, 5555);
        assert!(s[0].line(["r", "s"]).ends_with("<- zero window"));
        assert!(s[1].probe, "{:?}", s[1]);
    }

    trait WithWin {
        fn with_win(self, w: u16) -> Self;
    }
    impl WithWin for RawPacket {
        /// Rewrites the TCP window field (IP header of 20 bytes, window at 14).
        fn with_win(mut self, w: u16) -> Self {
            self.data[20 + 14..20 + 16].copy_from_slice(&w.to_be_bytes());
            self
        }
    }
}
