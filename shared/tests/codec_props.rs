//! Property tests: decode(encode(x)) == x for every message, frames survive
//! any chunking, and random bytes never panic the decoders.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use bytes::BytesMut;
use proptest::prelude::*;
use sockchat_shared::codec::{self, DecodeError};
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, RoomInfo, ServerMsg};

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including control characters: the codec carries bytes;
    // sanitizing is the display layer's job.
    proptest::string::string_regex(".{0,40}").expect("regex")
}

fn reason() -> impl Strategy<Value = DisconnectReason> {
    prop_oneof![
        text().prop_map(|message| DisconnectReason::Quit { message }),
        Just(DisconnectReason::Eof),
        Just(DisconnectReason::Reset),
        Just(DisconnectReason::BrokenPipe),
        Just(DisconnectReason::TimedOut),
        Just(DisconnectReason::Refused),
        any::<u32>().prop_map(|secs| DisconnectReason::IdleTimeout { secs }),
        any::<u32>().prop_map(|frames| DisconnectReason::SlowConsumer { frames }),
        text().prop_map(|detail| DisconnectReason::ProtocolError { detail }),
        Just(DisconnectReason::RateLimited),
        Just(DisconnectReason::ServerShutdown),
        (0i32..4096).prop_map(|errno| DisconnectReason::Os { errno }),
    ]
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        text().prop_map(|nick| ClientMsg::Hello { nick }),
        text().prop_map(|nick| ClientMsg::Nick { nick }),
        text().prop_map(|room| ClientMsg::Join { room }),
        text().prop_map(|room| ClientMsg::Leave { room }),
        (text(), text()).prop_map(|(room, text)| ClientMsg::Say { room, text }),
        (text(), text()).prop_map(|(room, text)| ClientMsg::Me { room, text }),
        (text(), text()).prop_map(|(to, text)| ClientMsg::Private { to, text }),
        text().prop_map(|room| ClientMsg::Who { room }),
        Just(ClientMsg::Rooms),
        any::<u64>().prop_map(|token| ClientMsg::Ping { token }),
        any::<u64>().prop_map(|token| ClientMsg::Pong { token }),
        text().prop_map(|message| ClientMsg::Quit { message }),
        text().prop_map(|nick| ClientMsg::SockInfo { nick }),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (text(), text(), text()).prop_map(|(nick, room, server)| ServerMsg::Welcome {
            nick,
            room,
            server
        }),
        (
            text(),
            text(),
            text(),
            any::<bool>(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(room, from, text, me, ts_ms, history)| ServerMsg::Chat {
                room,
                from,
                text,
                kind: if me { ChatKind::Me } else { ChatKind::Say },
                ts_ms,
                history
            }),
        (text(), text(), text(), any::<u64>()).prop_map(|(from, to, text, ts_ms)| {
            ServerMsg::Private {
                from,
                to,
                text,
                ts_ms,
            }
        }),
        (text(), text()).prop_map(|(room, nick)| ServerMsg::Joined { room, nick }),
        (text(), text(), proptest::option::of(reason()))
            .prop_map(|(room, nick, reason)| ServerMsg::Left { room, nick, reason }),
        (text(), text()).prop_map(|(old, new)| ServerMsg::NickChanged { old, new }),
        (text(), proptest::collection::vec(text(), 0..10))
            .prop_map(|(room, nicks)| ServerMsg::Who { room, nicks }),
        proptest::collection::vec((text(), any::<u32>()), 0..10).prop_map(|v| {
            ServerMsg::Rooms {
                rooms: v
                    .into_iter()
                    .map(|(name, members)| RoomInfo { name, members })
                    .collect(),
            }
        }),
        text().prop_map(|text| ServerMsg::Notice { text }),
        (any::<u16>(), text()).prop_map(|(c, text)| ServerMsg::Error {
            code: ErrorCode::from_u16(c),
            text
        }),
        any::<u64>().prop_map(|token| ServerMsg::Ping { token }),
        any::<u64>().prop_map(|token| ServerMsg::Pong { token }),
        (text(), proptest::collection::vec((text(), text()), 0..10))
            .prop_map(|(nick, fields)| ServerMsg::SockInfo { nick, fields }),
        reason().prop_map(|reason| ServerMsg::Bye { reason }),
    ]
}

proptest! {
    #[test]
    fn client_round_trip(msgs in proptest::collection::vec(client_msg(), 1..20), cut in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        for m in &msgs {
            codec::encode_client(m, &mut wire);
        }
        let split = cut.index(wire.len() + 1);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in [&wire[..split], &wire[split..]] {
            buf.extend_from_slice(chunk);
            while let Some(p) = codec::decode_frame(&mut buf, 1 << 20).expect("valid frame") {
                out.push(codec::decode_client(&p).expect("valid message"));
            }
        }
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn server_round_trip(msg in server_msg()) {
        let frame = codec::server_frame(&msg);
        let mut buf = BytesMut::from(&frame[..]);
        let payload = codec::decode_frame(&mut buf, 1 << 20).expect("valid").expect("complete");
        prop_assert_eq!(codec::decode_server(&payload).expect("valid"), msg);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode_client(&bytes);
        let _ = codec::decode_server(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        // Either an error, or frames that are each within the limit.
        loop {
            match codec::decode_frame(&mut buf, 256) {
                Ok(Some(p)) => prop_assert!(p.len() <= 256),
                Ok(None) => break,
                Err(DecodeError::FrameTooLarge { len, .. }) => { prop_assert!(len > 256); break }
                Err(_) => break,
            }
        }
    }
}
