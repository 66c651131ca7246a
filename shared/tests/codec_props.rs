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

mod strategies;
use sockchat_shared::ServerMsg;
use strategies::{client_msg, server_msg};

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

    #[test]
    fn split_frame_finds_every_frame_at_any_cut(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
            wire.extend_from_slice(p);
        }
        let max = payloads.iter().map(Vec::len).max().unwrap_or(1);
        // All at once: each frame in order, nothing left over.
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((frame, used)) = codec::split_frame(&wire[at..], max).expect("valid") {
            prop_assert_eq!(used, codec::HEADER_LEN + frame.len());
            got.push(frame.to_vec());
            at += used;
        }
        prop_assert_eq!(at, wire.len());
        prop_assert_eq!(&got, &payloads);
        // Any prefix that cuts the first frame short: more bytes needed.
        let first = codec::HEADER_LEN + payloads[0].len();
        let short = cut.index(first);
        prop_assert_eq!(codec::split_frame(&wire[..short], max), Ok(None));
        // One byte under the largest payload is too small a limit.
        if max > 1 {
            let too_small = codec::split_frame(&wire, max - 1);
            let first_ok = payloads[0].len() < max;
            prop_assert!(first_ok == too_small.is_ok(), "{:?}", too_small);
        }
    }

    #[test]
    fn split_frame_on_random_bytes_agrees_with_decode_frame(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        max in 1usize..300,
    ) {
        // Random bytes never panic; a found frame is within the limit and
        // the buffer; decode_frame (the owned form) says the same.
        let split = codec::split_frame(&bytes, max);
        if let Ok(Some((frame, used))) = split {
            prop_assert!(!frame.is_empty() && frame.len() <= max);
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(frame, &bytes[codec::HEADER_LEN..used]);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let owned = codec::decode_frame(&mut buf, max);
        match (&split, owned) {
            (Ok(Some((frame, used))), Ok(Some(p))) => {
                prop_assert_eq!(&p[..], *frame);
                prop_assert_eq!(buf.len(), bytes.len() - used);
            }
            (Ok(None), Ok(None)) => prop_assert_eq!(buf.len(), bytes.len()),
            (Err(a), Err(b)) => prop_assert_eq!(a, &b),
            (a, b) => prop_assert!(false, "split {:?} vs decode {:?}", a, b),
        }
    }

    #[test]
    fn decode_chat_agrees_with_decode_server(msg in server_msg()) {
        let frame = codec::server_frame(&msg);
        let payload = &frame[codec::HEADER_LEN..];
        let chat = codec::decode_chat(payload).expect("valid");
        match (&msg, chat) {
            (ServerMsg::Chat { room, from, text, kind, ts_ms, history }, Some(c)) => {
                prop_assert_eq!((c.room, c.from, c.text), (room.as_str(), from.as_str(), text.as_str()));
                prop_assert_eq!((c.kind, c.ts_ms, c.history), (*kind, *ts_ms, *history));
            }
            (ServerMsg::Chat { .. }, None) => prop_assert!(false, "chat not seen"),
            (_, Some(c)) => prop_assert!(false, "not a chat: {:?}", c),
            (_, None) => {}
        }
    }

    #[test]
    fn decode_chat_on_random_bytes_errs_like_decode_server(
        tail in proptest::collection::vec(any::<u8>(), 0..80),
        chat_tag in any::<bool>(),
    ) {
        let mut p = vec![if chat_tag { 0x82 } else { 0x81 }];
        p.extend_from_slice(&tail);
        let chat = codec::decode_chat(&p);
        let full = codec::decode_server(&p);
        if chat_tag {
            prop_assert_eq!(chat.is_ok(), full.is_ok());
            if let (Err(a), Err(b)) = (&chat, &full) {
                prop_assert_eq!(a, b);
            }
        } else {
            prop_assert_eq!(chat, Ok(None));
        }
        prop_assert_eq!(codec::decode_chat(&[]), Err(DecodeError::EmptyFrame));
    }
}
