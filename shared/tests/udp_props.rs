//! Property tests of the UDP datagram layer: random bytes never panic the
//! decoders, messages survive encode/decode with any sequence number, and
//! the sequence tracker's counts equal an unbounded reference model for any
//! arrival order inside its window.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::collections::HashSet;

use proptest::prelude::*;
use sockchat_shared::udp::{self, SeqTracker};
use sockchat_shared::{ClientMsg, ServerMsg};

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(".{0,40}").expect("regex")
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        text().prop_map(|nick| ClientMsg::Hello { nick }),
        (text(), text()).prop_map(|(room, text)| ClientMsg::Say { room, text }),
        (text(), text()).prop_map(|(to, text)| ClientMsg::Private { to, text }),
        any::<u64>().prop_map(|token| ClientMsg::Ping { token }),
        text().prop_map(|message| ClientMsg::Quit { message }),
        Just(ClientMsg::Rooms),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 64usize..300) {
        let _ = udp::decode_client(&bytes, max);
        let _ = udp::decode_server(&bytes, max);
        let _ = udp::decode_header(&bytes, max);
    }

    /// Random bytes behind a valid header reach the payload decoder.
    #[test]
    fn random_payload_never_panics(flags in 0u8..8, seq in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = vec![b'S', b'U', 1, flags];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&tail);
        let _ = udp::decode_client(&d, 1472);
        let _ = udp::decode_server(&d, 1472);
    }

    #[test]
    fn client_round_trip(msg in client_msg(), seq in any::<u32>()) {
        let d = udp::encode_client(seq, &msg, 1472).expect("small message fits");
        let got = udp::decode_client(&d, 1472).expect("valid");
        prop_assert_eq!(got.seq, seq);
        prop_assert_eq!(got.msg, msg);
    }

    #[test]
    fn hello_round_trip(nick in text(), seq in any::<u32>(), cookie in proptest::option::of(any::<u64>())) {
        let d = udp::encode_hello(seq, &nick, cookie, 1472).expect("fits");
        prop_assert!(d.len() >= udp::MIN_HELLO_LEN);
        let got = udp::decode_client(&d, 1472).expect("valid");
        prop_assert_eq!(got.cookie, cookie);
        prop_assert_eq!(got.msg, ClientMsg::Hello { nick });
    }

    #[test]
    fn server_round_trip(text in text(), seq in any::<u32>()) {
        let msg = ServerMsg::Notice { text };
        let d = udp::encode_server(seq, &msg, 1472).expect("fits");
        let got = udp::decode_server(&d, 1472).expect("valid");
        prop_assert_eq!(got, udp::ServerDatagram { seq, body: udp::ServerBody::Msg(msg) });
    }

    /// Any encoded datagram is either within the limit or refused: never
    /// silently cut.
    #[test]
    fn never_truncated(len in 0usize..3000, max in 64usize..2000) {
        let msg = ClientMsg::Say { room: "r".into(), text: "x".repeat(len) };
        match udp::encode_client(0, &msg, max) {
            Ok(d) => {
                prop_assert!(d.len() <= max);
                prop_assert_eq!(udp::decode_client(&d, max).expect("valid").msg, msg);
            }
            Err(udp::EncodeError::TooLarge { len: l, max: m }) => {
                prop_assert!(l > m);
                prop_assert_eq!(l, 8 + 1 + 2 + 1 + 2 + len);
            }
        }
    }

    /// Arbitrary arrival orders (with repeats) of sequence numbers within
    /// the window, starting anywhere (including across the u32 wrap): the
    /// tracker equals a reference model that remembers everything.
    #[test]
    fn tracker_matches_reference(start in any::<u32>(), offsets in proptest::collection::vec(0u32..500, 1..400)) {
        let mut t = SeqTracker::expecting(start);
        let mut seen = HashSet::new();
        let mut highest: Option<u32> = None;
        let (mut dup, mut reord) = (0u64, 0u64);
        for &o in &offsets {
            t.record(start.wrapping_add(o));
            if !seen.insert(o) {
                dup += 1;
            } else if highest.is_some_and(|h| o < h) {
                reord += 1;
            }
            highest = Some(highest.map_or(o, |h| h.max(o)));
        }
        let s = t.stats();
        let expected = u64::from(highest.expect("non-empty")) + 1;
        prop_assert_eq!(s.received, offsets.len() as u64);
        prop_assert_eq!(s.unique, seen.len() as u64);
        prop_assert_eq!(s.expected, expected);
        prop_assert_eq!(s.lost, expected - seen.len() as u64);
        prop_assert_eq!(s.duplicated, dup);
        prop_assert_eq!(s.reordered, reord);
        prop_assert_eq!(s.late, 0);
    }
}
