//! Edges of the codec that random inputs rarely reach: every disconnect
//! reason on the wire, the preamble's exact length, the buffer reserved for
//! a frame announced by a (possibly hostile) header, and the clock.
//! Each test pins one rule a mutation of the codec would break.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use bytes::BytesMut;
use sockchat_shared::codec::{self, DecodeError, HEADER_LEN};
use sockchat_shared::proto::{MAGIC, PREAMBLE_LEN, VERSION, preamble};
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ServerMsg};

/// One of each reason (the proptest draws them among dozens of messages, so
/// a single code's arm can go unsampled for many runs).
fn every_reason() -> Vec<DisconnectReason> {
    vec![
        DisconnectReason::Quit {
            message: "bye all".into(),
        },
        DisconnectReason::Eof,
        DisconnectReason::Reset,
        DisconnectReason::BrokenPipe,
        DisconnectReason::TimedOut,
        DisconnectReason::Refused,
        DisconnectReason::IdleTimeout { secs: 300 },
        DisconnectReason::SlowConsumer { frames: 4096 },
        DisconnectReason::ProtocolError {
            detail: "frame too large".into(),
        },
        DisconnectReason::RateLimited,
        DisconnectReason::ServerShutdown,
        DisconnectReason::Os { errno: 113 },
        DisconnectReason::Kicked {
            by: "op".into(),
            why: "spam".into(),
        },
        DisconnectReason::Banned {
            by: "op".into(),
            why: "flood".into(),
            secs: 600,
        },
        DisconnectReason::ServerLost,
    ]
}

#[test]
fn every_reason_survives_bye_and_left() {
    for reason in every_reason() {
        for msg in [
            ServerMsg::Bye {
                reason: reason.clone(),
            },
            ServerMsg::Left {
                room: "lobby".into(),
                nick: "bob".into(),
                reason: Some(reason.clone()),
            },
        ] {
            let frame = codec::server_frame(&msg);
            let mut buf = BytesMut::from(&frame[..]);
            let payload = codec::decode_frame(&mut buf, 1 << 16)
                .expect("valid frame")
                .expect("a whole frame");
            assert_eq!(codec::decode_server(&payload).expect("decodes"), msg);
            assert!(buf.is_empty());
        }
    }
}

/// Both chat kinds (`say` and `/me`) survive the wire, through
/// `decode_server` and the allocation-free `decode_chat` alike.
#[test]
fn every_chat_kind_survives_both_decoders() {
    for kind in [ChatKind::Say, ChatKind::Me] {
        let msg = ServerMsg::Chat {
            room: "lobby".into(),
            from: "bob".into(),
            text: "waves".into(),
            kind,
            ts_ms: 1_700_000_000_000,
            history: true,
        };
        let frame = codec::server_frame(&msg);
        let payload = &frame[HEADER_LEN..];
        assert_eq!(codec::decode_server(payload), Ok(msg), "{kind:?}");
        let chat = codec::decode_chat(payload)
            .expect("decodes")
            .expect("a chat");
        assert_eq!((chat.kind, chat.history), (kind, true));
    }
}

#[test]
fn client_frame_is_a_whole_decodable_frame() {
    let msg = ClientMsg::Join {
        room: "lobby".into(),
    };
    let frame = codec::client_frame(&msg);
    assert!(frame.len() > HEADER_LEN, "a header and a payload");
    let mut buf = BytesMut::from(&frame[..]);
    let payload = codec::decode_frame(&mut buf, 1 << 16)
        .expect("valid frame")
        .expect("a whole frame");
    assert_eq!(codec::decode_client(&payload).expect("decodes"), msg);
}

#[test]
fn preamble_of_exactly_five_bytes_is_accepted_and_a_longer_read_too() {
    let p = preamble();
    assert_eq!(p.len(), PREAMBLE_LEN);
    assert_eq!(codec::check_preamble(&p), Ok(VERSION));
    // A read that brought the preamble and the first frame together.
    let mut longer = p.to_vec();
    longer.extend_from_slice(&[0, 0, 0, 1, 7]);
    assert_eq!(codec::check_preamble(&longer), Ok(VERSION));
}

#[test]
fn a_short_preamble_is_truncated_never_a_panic() {
    let p = preamble();
    for n in 0..PREAMBLE_LEN {
        assert_eq!(
            codec::check_preamble(&p[..n]),
            Err(DecodeError::Truncated("preamble")),
            "{n} bytes"
        );
    }
    let mut wrong_magic = p;
    wrong_magic[1] = b'X';
    assert_eq!(
        codec::check_preamble(&wrong_magic),
        Err(DecodeError::BadMagic)
    );
    let mut wrong_version = MAGIC.to_vec();
    wrong_version.push(VERSION.wrapping_add(1));
    assert_eq!(
        codec::check_preamble(&wrong_version),
        Err(DecodeError::BadVersion(VERSION.wrapping_add(1)))
    );
}

/// A header alone makes the decoder reserve room for that frame — and no
/// more: a peer announcing 60,000 bytes must not make us allocate a
/// multiple of it before it has sent them.
#[test]
fn a_header_reserves_what_its_frame_needs_and_no_more() {
    let announced: u32 = 60_000;
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&announced.to_be_bytes());
    assert_eq!(codec::decode_frame(&mut buf, 1 << 16), Ok(None));
    let need = HEADER_LEN + announced as usize;
    assert!(buf.capacity() >= need, "reserved {}", buf.capacity());
    assert!(
        buf.capacity() < 2 * need,
        "reserved {} for a {need}-byte frame",
        buf.capacity()
    );
    assert_eq!(&buf[..], &announced.to_be_bytes(), "the header stays put");
}

#[test]
fn now_ms_is_the_wall_clock_in_milliseconds() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let now = sockchat_shared::now_ms();
    // Not 0, not 1, not seconds: within a minute of the system clock in ms.
    assert!(now >= before, "{now} < {before}");
    assert!(now - before < 60_000, "{now} vs {before}");
}
