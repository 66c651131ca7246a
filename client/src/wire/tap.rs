//! The client's capture of its own TCP connection: a packet socket on
//! every interface filtered to the connection's two ports, a bounded ring
//! the capture thread fills, and a [`Tap::take`] that the net task calls
//! on its poll tick to turn what arrived into segments.
//!
//! The ports are known before the first SYN because the client binds its
//! socket (port 0: the kernel picks) before `connect` when it captures, so
//! the handshake is in the trace. The kernel filter matches the two ports;
//! the addresses are checked here too, so another connection between the
//! same ports of other addresses is never shown.

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::capture::{self, Keep, RawPacket, Sniffer};
use super::packet::{Parser, Segment};

/// Packets the ring holds between two takes (the net task takes them
/// every poll, 250 ms by default); more evict the oldest, counted.
pub const RING: usize = 1024;

/// A live capture of one connection.
pub struct Tap {
    sniffer: Sniffer,
    parser: Parser,
    local: SocketAddr,
    peer: SocketAddr,
    /// The reader's error, once reported.
    told_error: bool,
}

/// What one [`Tap::take`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TapBatch {
    pub segments: Vec<Segment>,
    /// Packets the ring evicted or the kernel dropped since the last take.
    pub lost: u64,
    /// The capture stopped with this error (reported once).
    pub error: Option<String>,
}

impl Tap {
    /// Capture the connection from `local` (its port already bound) to
    /// `peer`. `Err`: this process cannot capture (EPERM without
    /// CAP_NET_RAW) or the socket failed.
    pub fn start(local: SocketAddr, peer: SocketAddr) -> io::Result<Tap> {
        let fd = capture::open_conn(local.port(), peer.port())?;
        let lo = capture::if_index(capture::LOOPBACK).ok();
        let sniffer = Sniffer::run(fd, Keep::Last(RING), lo)?;
        Ok(Tap {
            sniffer,
            parser: Parser::new(peer.port()),
            local,
            peer,
            told_error: false,
        })
    }

    /// The local address once `connect` has chosen it (it was unspecified
    /// when only the port was bound).
    pub fn set_local(&mut self, local: SocketAddr) {
        self.local = local;
    }

    /// The segments captured since the last take, oldest first.
    pub fn take(&mut self) -> TapBatch {
        let (raw, lost, error) = self.sniffer.take();
        let mut segments = Vec::with_capacity(raw.len());
        for p in raw.iter().filter(|p| ours(self.local, self.peer, p)) {
            segments.extend(self.parser.push(p));
        }
        let error = match error {
            Some(e) if !self.told_error => {
                self.told_error = true;
                Some(e)
            }
            _ => None,
        };
        TapBatch {
            segments,
            lost,
            error,
        }
    }
}

/// Between our two addresses (either way)? An unspecified local address
/// (before `connect` chose one) matches any.
fn ours(local: SocketAddr, peer: SocketAddr, p: &RawPacket) -> bool {
    let Some((src, dst)) = addrs(&p.data) else {
        return false;
    };
    let me = |a: IpAddr| local.ip().is_unspecified() || a == local.ip();
    (me(src) && dst == peer.ip()) || (src == peer.ip() && me(dst))
}

/// Source and destination address of an IPv4 or IPv6 packet.
fn addrs(d: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match d.first().map(|b| b >> 4) {
        Some(4) if d.len() >= 20 => {
            let a: [u8; 4] = d[12..16].try_into().ok()?;
            let b: [u8; 4] = d[16..20].try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        Some(6) if d.len() >= 40 => {
            let a: [u8; 16] = d[8..24].try_into().ok()?;
            let b: [u8; 16] = d[24..40].try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        _ => None,
    }
}

/// Why the client has no packets to show, and what to run.
pub fn cannot_capture(e: &io::Error) -> String {
    format!(
        "cannot capture this connection's packets: {e}. Capturing needs CAP_NET_RAW: grant it once with `{}` (or run as root)",
        capture::grant_hint()
    )
}
