//! File transfer messages (PROTOCOL.md "File transfer"): offer, accept,
//! decline, cancel, chunk, ack, done, error. One [`Xfer`] type travels both
//! ways inside `ClientMsg::Transfer` (tag 0x20) and `ServerMsg::Transfer`
//! (tag 0xA0); a second byte says which of the eight it is.
//!
//! Ids: a sender picks the id of its own offer; the server gives the
//! receiver its own id for the same transfer. Each client only ever sees
//! ids in its own namespace, and the server maps one onto the other.
//!
//! Plain data and a pure codec (no I/O, no clock), like `codec.rs`.

use bytes::Bytes;

use crate::fields::{DecodeError, R, W};

/// Length of a SHA-256 digest.
pub const SHA256_LEN: usize = 32;
/// Longest file name carried in an offer (bytes).
pub const MAX_NAME_LEN: usize = 255;
/// Largest chunk over TCP (a frame is at most 64 KiB).
pub const TCP_CHUNK: usize = 32 * 1024;
/// Bytes a Chunk message adds to its data inside a datagram payload
/// (tag, kind, id, offset, length) with room to spare.
pub const CHUNK_OVERHEAD: usize = 32;
/// At most this many selective-ack ranges in one Ack.
pub const MAX_SACK: usize = 16;

/// Why a transfer ended other than with Done (u16 on the wire; unknown
/// codes from a newer peer decode as [`XferError::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XferError {
    /// Larger than the server's `transfer.max_file_size`.
    TooBig,
    /// The receiver said no.
    Declined,
    /// One side cancelled.
    Cancelled,
    /// The received bytes do not have the offered SHA-256.
    ChecksumMismatch,
    /// The other side disconnected.
    PeerGone,
    /// The receiver's disk is full (ENOSPC).
    DiskFull,
    /// No such user (or the target cannot receive files: a text user).
    NoSuchUser,
    /// Too many transfers (per user or per server).
    TooMany,
    /// A message broke the transfer rules (window overrun, bad offset...).
    Protocol,
    /// Reading or writing the file failed (other than ENOSPC).
    Io,
    Other(u16),
}

impl XferError {
    pub fn to_u16(self) -> u16 {
        match self {
            Self::TooBig => 1,
            Self::Declined => 2,
            Self::Cancelled => 3,
            Self::ChecksumMismatch => 4,
            Self::PeerGone => 5,
            Self::DiskFull => 6,
            Self::NoSuchUser => 7,
            Self::TooMany => 8,
            Self::Protocol => 9,
            Self::Io => 10,
            Self::Other(n) => n,
        }
    }

    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::TooBig,
            2 => Self::Declined,
            3 => Self::Cancelled,
            4 => Self::ChecksumMismatch,
            5 => Self::PeerGone,
            6 => Self::DiskFull,
            7 => Self::NoSuchUser,
            8 => Self::TooMany,
            9 => Self::Protocol,
            10 => Self::Io,
            other => Self::Other(other),
        }
    }

    /// The code's name as PROTOCOL.md spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooBig => "too-big",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::ChecksumMismatch => "checksum-mismatch",
            Self::PeerGone => "peer-gone",
            Self::DiskFull => "disk-full",
            Self::NoSuchUser => "no-such-user",
            Self::TooMany => "too-many",
            Self::Protocol => "protocol",
            Self::Io => "io",
            Self::Other(_) => "other",
        }
    }
}

/// One file-transfer message. `peer` in an Offer is the target nick when a
/// client sends it and the sender's nick when the server delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Xfer {
    Offer {
        id: u64,
        peer: String,
        name: String,
        size: u64,
        sha256: [u8; SHA256_LEN],
    },
    /// Receiver → sender: start at `offset` (resume: what it already has).
    /// From the server the sender also learns the window (most unacked
    /// bytes allowed), the largest chunk, and whether both legs are TCP
    /// (`lossless`: never retransmit); a receiver sends 0, 0, false.
    Accept {
        id: u64,
        offset: u64,
        window: u32,
        max_chunk: u32,
        lossless: bool,
    },
    Decline {
        id: u64,
    },
    Cancel {
        id: u64,
    },
    Chunk {
        id: u64,
        offset: u64,
        data: Bytes,
    },
    /// Receiver → sender: every byte below `offset` is written; `sack`
    /// lists ranges `[start, end)` above it that also arrived (UDP).
    Ack {
        id: u64,
        offset: u64,
        sack: Vec<(u64, u64)>,
    },
    /// Receiver → sender: all bytes arrived and the SHA-256 matched.
    Done {
        id: u64,
    },
    Error {
        id: u64,
        code: XferError,
        text: String,
    },
    /// Server → sender, answering an Offer to a room (`peer` = `#room`):
    /// member `peer` gets a copy of offer `of`, which the sender knows as
    /// transfer `id` from now on (an ordinary transfer: Accept, Ack, ...).
    /// The server picks `id` at or above [`COPY_IDS`].
    Copy {
        id: u64,
        of: u64,
        peer: String,
    },
}

/// Transfer ids from here up are picked by the server (room copies); a
/// client's own offers use ids below it.
pub const COPY_IDS: u64 = 1 << 63;

impl Xfer {
    /// The transfer id this message is about.
    pub fn id(&self) -> u64 {
        match self {
            Xfer::Offer { id, .. }
            | Xfer::Accept { id, .. }
            | Xfer::Decline { id }
            | Xfer::Cancel { id }
            | Xfer::Chunk { id, .. }
            | Xfer::Ack { id, .. }
            | Xfer::Done { id }
            | Xfer::Error { id, .. }
            | Xfer::Copy { id, .. } => *id,
        }
    }

    /// The same message about transfer `id` (the server's id mapping).
    pub fn with_id(mut self, new: u64) -> Self {
        match &mut self {
            Xfer::Offer { id, .. }
            | Xfer::Accept { id, .. }
            | Xfer::Decline { id }
            | Xfer::Cancel { id }
            | Xfer::Chunk { id, .. }
            | Xfer::Ack { id, .. }
            | Xfer::Done { id }
            | Xfer::Error { id, .. }
            | Xfer::Copy { id, .. } => *id = new,
        }
        self
    }
}

/// Tag of `ClientMsg::Transfer`.
pub const TAG_CLIENT: u8 = 0x20;
/// Tag of `ServerMsg::Transfer`.
pub const TAG_SERVER: u8 = 0xA0;

pub(crate) fn write(w: &mut W<'_>, x: &Xfer) {
    match x {
        Xfer::Offer {
            id,
            peer,
            name,
            size,
            sha256,
        } => {
            w.u8(1);
            w.u64(*id);
            w.str(peer);
            w.str(name);
            w.u64(*size);
            w.bytes(sha256);
        }
        Xfer::Accept {
            id,
            offset,
            window,
            max_chunk,
            lossless,
        } => {
            w.u8(2);
            w.u64(*id);
            w.u64(*offset);
            w.u32(*window);
            w.u32(*max_chunk);
            w.u8(u8::from(*lossless));
        }
        Xfer::Decline { id } => {
            w.u8(3);
            w.u64(*id);
        }
        Xfer::Cancel { id } => {
            w.u8(4);
            w.u64(*id);
        }
        Xfer::Chunk { id, offset, data } => {
            w.u8(5);
            w.u64(*id);
            w.u64(*offset);
            // A chunk is never near 4 GiB (frames are at most 16 MiB).
            w.u32(data.len().min(u32::MAX as usize) as u32);
            w.bytes(&data[..data.len().min(u32::MAX as usize)]);
        }
        Xfer::Ack { id, offset, sack } => {
            w.u8(6);
            w.u64(*id);
            w.u64(*offset);
            let n = sack.len().min(MAX_SACK);
            w.u8(n as u8);
            for (a, b) in &sack[..n] {
                w.u64(*a);
                w.u64(*b);
            }
        }
        Xfer::Done { id } => {
            w.u8(7);
            w.u64(*id);
        }
        Xfer::Error { id, code, text } => {
            w.u8(8);
            w.u64(*id);
            w.u16(code.to_u16());
            w.str(text);
        }
        Xfer::Copy { id, of, peer } => {
            w.u8(9);
            w.u64(*id);
            w.u64(*of);
            w.str(peer);
        }
    }
}

pub(crate) fn read(r: &mut R<'_>) -> Result<Xfer, DecodeError> {
    let kind = r.u8("transfer kind")?;
    let id = r.u64("transfer id")?;
    Ok(match kind {
        1 => {
            let peer = r.str("peer")?;
            let name = r.str("file name")?;
            if name.len() > MAX_NAME_LEN {
                return Err(DecodeError::BadValue("file name"));
            }
            let size = r.u64("size")?;
            let mut sha256 = [0u8; SHA256_LEN];
            sha256.copy_from_slice(r.take(SHA256_LEN, "sha256")?);
            Xfer::Offer {
                id,
                peer,
                name,
                size,
                sha256,
            }
        }
        2 => Xfer::Accept {
            id,
            offset: r.u64("offset")?,
            window: r.u32("window")?,
            max_chunk: r.u32("max chunk")?,
            lossless: r.bool("lossless")?,
        },
        3 => Xfer::Decline { id },
        4 => Xfer::Cancel { id },
        5 => {
            let offset = r.u64("offset")?;
            let n = r.u32("chunk length")? as usize;
            let data = Bytes::copy_from_slice(r.take(n, "chunk data")?);
            if offset.checked_add(n as u64).is_none() {
                return Err(DecodeError::BadValue("chunk offset"));
            }
            Xfer::Chunk { id, offset, data }
        }
        6 => {
            let offset = r.u64("offset")?;
            let n = r.u8("sack count")? as usize;
            if n > MAX_SACK {
                return Err(DecodeError::BadValue("sack count"));
            }
            let mut sack = Vec::with_capacity(n);
            for _ in 0..n {
                let a = r.u64("sack start")?;
                let b = r.u64("sack end")?;
                if b <= a {
                    return Err(DecodeError::BadValue("sack range"));
                }
                sack.push((a, b));
            }
            Xfer::Ack { id, offset, sack }
        }
        7 => Xfer::Done { id },
        8 => Xfer::Error {
            id,
            code: XferError::from_u16(r.u16("error code")?),
            text: r.str("error text")?,
        },
        9 => Xfer::Copy {
            id,
            of: r.u64("room offer id")?,
            peer: r.str("peer")?,
        },
        _ => return Err(DecodeError::BadValue("transfer kind")),
    })
}

/// Lowercase hex of a digest, for people and logs.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{
        decode_client, decode_server, encode_client_payload, encode_server_payload,
    };
    use crate::{ClientMsg, ServerMsg};
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn xfer() -> impl Strategy<Value = Xfer> {
        let id = any::<u64>();
        prop_oneof![
            (id, ".{0,20}", ".{0,40}", any::<u64>(), any::<[u8; 32]>()).prop_map(
                |(id, peer, name, size, sha256)| Xfer::Offer {
                    id,
                    peer,
                    name: name.chars().take(60).collect(),
                    size,
                    sha256
                }
            ),
            (id, any::<u64>(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
                |(id, offset, window, max_chunk, lossless)| Xfer::Accept {
                    id,
                    offset,
                    window,
                    max_chunk,
                    lossless
                }
            ),
            id.prop_map(|id| Xfer::Decline { id }),
            id.prop_map(|id| Xfer::Cancel { id }),
            (
                id,
                0u64..1 << 40,
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(id, offset, d)| Xfer::Chunk {
                    id,
                    offset,
                    data: Bytes::from(d)
                }),
            (
                id,
                any::<u64>(),
                proptest::collection::vec((0u64..1 << 40, 1u64..1000), 0..=MAX_SACK)
            )
                .prop_map(|(id, offset, s)| Xfer::Ack {
                    id,
                    offset,
                    sack: s.into_iter().map(|(a, l)| (a, a + l)).collect()
                }),
            id.prop_map(|id| Xfer::Done { id }),
            (id, any::<u16>(), ".{0,30}").prop_map(|(id, c, text)| Xfer::Error {
                id,
                code: XferError::from_u16(c),
                text
            }),
            (id, any::<u64>(), ".{0,20}").prop_map(|(id, of, peer)| Xfer::Copy { id, of, peer }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_both_directions(x in xfer()) {
            let mut b = BytesMut::new();
            encode_client_payload(&ClientMsg::Transfer(x.clone()), &mut b);
            prop_assert_eq!(decode_client(&b).unwrap(), ClientMsg::Transfer(x.clone()));
            let mut b = BytesMut::new();
            encode_server_payload(&ServerMsg::Transfer(x.clone()), &mut b);
            prop_assert_eq!(decode_server(&b).unwrap(), ServerMsg::Transfer(x));
        }

        /// `id` reads the id of every kind of message, and `with_id` (the
        /// server's id mapping) changes that and nothing else.
        #[test]
        fn with_id_changes_only_the_id(x in xfer(), new in any::<u64>()) {
            let moved = x.clone().with_id(new);
            prop_assert_eq!(moved.id(), new);
            prop_assert_eq!(moved.with_id(x.id()), x);
        }

        #[test]
        fn truncations_are_errors_never_panics(x in xfer(), cut in 0usize..400) {
            let mut b = BytesMut::new();
            encode_client_payload(&ClientMsg::Transfer(x), &mut b);
            if cut < b.len() {
                prop_assert!(decode_client(&b[..cut]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut p = vec![TAG_CLIENT];
            p.extend(b);
            let _ = decode_client(&p);
            p[0] = TAG_SERVER;
            let _ = decode_server(&p);
        }
    }

    #[test]
    fn error_codes_round_trip() {
        for n in 0..20u16 {
            assert_eq!(XferError::from_u16(n).to_u16(), n);
        }
    }

    /// Each code's name is the one PROTOCOL.md's table of transfer error
    /// codes gives it; a code from a newer peer is "other".
    #[test]
    fn error_names_are_protocol_md_table() {
        let doc = include_str!("../../PROTOCOL.md");
        let table = doc
            .split("Transfer error codes:")
            .nth(1)
            .expect("PROTOCOL.md has the table");
        let mut rows = 0;
        for line in table.lines().skip_while(|l| !l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(code) = cells.get(1).and_then(|c| c.parse::<u16>().ok()) else {
                if line.starts_with('|') {
                    continue; // the header and its rule
                }
                break;
            };
            assert_eq!(XferError::from_u16(code).as_str(), cells[2], "code {code}");
            rows += 1;
        }
        assert_eq!(rows, 10);
        assert_eq!(XferError::from_u16(999).as_str(), "other");
    }

    /// A TCP chunk is the largest power of two whose Chunk message fits
    /// one frame of the default maximum (64 KiB).
    #[test]
    fn tcp_chunk_is_the_largest_power_of_two_in_a_frame() {
        let payload = |n: usize| {
            let mut b = BytesMut::new();
            let x = Xfer::Chunk {
                id: u64::MAX,
                offset: u64::MAX,
                data: Bytes::from(vec![0u8; n]),
            };
            encode_client_payload(&ClientMsg::Transfer(x), &mut b);
            b.len()
        };
        assert!(TCP_CHUNK.is_power_of_two());
        assert!(payload(TCP_CHUNK) <= crate::proto::DEFAULT_MAX_FRAME);
        assert!(payload(2 * TCP_CHUNK) > crate::proto::DEFAULT_MAX_FRAME);
    }

    /// The server's ids (room copies) are the upper half of the id space,
    /// a client's offers the lower half: they never meet.
    #[test]
    fn copy_ids_are_the_upper_half() {
        assert_eq!(COPY_IDS, u64::MAX / 2 + 1);
    }

    /// The decoder's bounds are inclusive: a file name of [`MAX_NAME_LEN`]
    /// bytes and [`MAX_SACK`] ranges pass, one more is refused; a range
    /// must hold at least one byte.
    #[test]
    fn decode_bounds_are_inclusive() {
        let enc = |x: Xfer| {
            let mut b = BytesMut::new();
            encode_client_payload(&ClientMsg::Transfer(x), &mut b);
            b
        };
        let offer = |n: usize| Xfer::Offer {
            id: 1,
            peer: "bob".into(),
            name: "n".repeat(n),
            size: 9,
            sha256: [0; SHA256_LEN],
        };
        let x = offer(MAX_NAME_LEN);
        assert_eq!(decode_client(&enc(x.clone())), Ok(ClientMsg::Transfer(x)));
        let refused = Err(crate::fields::DecodeError::BadValue("file name"));
        assert_eq!(decode_client(&enc(offer(MAX_NAME_LEN + 1))), refused);
        let ack = |sack: Vec<(u64, u64)>| Xfer::Ack {
            id: 1,
            offset: 0,
            sack,
        };
        let full: Vec<(u64, u64)> = (0..MAX_SACK as u64)
            .map(|k| (10 * k + 1, 10 * k + 2))
            .collect();
        let x = ack(full.clone());
        let mut b = enc(x.clone());
        assert_eq!(decode_client(&b), Ok(ClientMsg::Transfer(x)));
        // One more range than the encoder writes: the count byte and the
        // range appended by hand (tag, kind, id, offset, count).
        b[18] = MAX_SACK as u8 + 1;
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        let refused = Err(crate::fields::DecodeError::BadValue("sack count"));
        assert_eq!(decode_client(&b), refused);
        let x = ack(vec![(5, 6)]);
        assert_eq!(decode_client(&enc(x.clone())), Ok(ClientMsg::Transfer(x)));
        let refused = Err(crate::fields::DecodeError::BadValue("sack range"));
        assert_eq!(decode_client(&enc(ack(vec![(5, 5)]))), refused);
        assert_eq!(decode_client(&enc(ack(vec![(6, 5)]))), refused);
    }

    /// A digest in hex: two lowercase digits per byte, leading zeros kept.
    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0a, 0xff, 0x5c]), "000aff5c");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_chunk_has_the_documented_bytes() {
        let mut b = BytesMut::new();
        let x = Xfer::Chunk {
            id: 7,
            offset: 0x1_0000,
            data: Bytes::from_static(b"hi"),
        };
        encode_client_payload(&ClientMsg::Transfer(x), &mut b);
        assert_eq!(
            &b[..],
            &[
                0x20, 5, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, b'h', b'i'
            ]
        );
        assert!(b.len() - 2 <= CHUNK_OVERHEAD);
    }
}
