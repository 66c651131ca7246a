//! Fuzz target: the frame splitter and the message decoders, the bytes a
//! TCP peer controls. Arbitrary bytes go through `codec::split_frame` (the
//! one splitter the server, the client and the bots call) and every payload
//! it yields through `decode_client` and `decode_server`.
//!
//! Checked beyond "no panic": a frame is never longer than the maximum;
//! `decode_frame` fed the same bytes in pieces yields the same frames; a
//! client payload that decodes re-encodes to the very same bytes (the
//! encoding is canonical, so what a peer sent is what every reader sees), a
//! server payload to one that decodes the same; the borrowed chat decoder
//! agrees with the full one.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockchat_shared::codec::{self, HEADER_LEN};
use sockchat_shared::{ClientMsg, ServerMsg};

/// Frame maxima to try: the boundaries matter more than the value. The
/// largest is the most `limits.max_frame` may be (server/src/config.rs):
/// `decode_frame` reserves up to the checked maximum, by design.
const MAXES: [usize; 4] = [1, 16, 65_536, 16 << 20];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let max = MAXES[usize::from(sel & 3)];
    // The read size the incremental decoder is fed with (1..=64 bytes).
    let step = usize::from(sel >> 2) + 1;

    let _ = codec::check_preamble(bytes);

    // Split the whole buffer, as a reader that got it in one read.
    let mut whole: Vec<&[u8]> = Vec::new();
    let mut rest = bytes;
    let mut end_err = None;
    loop {
        match codec::split_frame(rest, max) {
            Ok(Some((payload, used))) => {
                assert!(payload.len() <= max, "frame over the maximum");
                assert!(!payload.is_empty(), "empty frame accepted");
                assert_eq!(used, HEADER_LEN + payload.len());
                whole.push(payload);
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(e) => {
                end_err = Some(e);
                break;
            }
        }
    }

    // The same bytes in reads of `step` bytes through the owned decoder.
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut piece_err = None;
    'feed: for chunk in bytes.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match codec::decode_frame(&mut buf, max) {
                Ok(Some(p)) => pieces.push(p),
                Ok(None) => break,
                Err(e) => {
                    piece_err = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(pieces.len(), whole.len(), "split in pieces differs");
    for (a, b) in pieces.iter().zip(&whole) {
        assert_eq!(&a[..], *b);
    }
    assert_eq!(piece_err, end_err);

    for payload in whole {
        check_client(payload);
        check_server(payload);
    }
});

fn check_client(payload: &[u8]) {
    let Ok(msg) = codec::decode_client(payload) else {
        return;
    };
    let mut again = BytesMut::new();
    codec::encode_client_payload(&msg, &mut again);
    assert_eq!(
        &again[..],
        payload,
        "client encoding not canonical: {msg:?}"
    );
    assert_eq!(codec::decode_client(&again), Ok::<ClientMsg, _>(msg));
}

fn check_server(payload: &[u8]) {
    let full = codec::decode_server(payload);
    match (codec::decode_chat(payload), &full) {
        (
            Ok(Some(c)),
            Ok(ServerMsg::Chat {
                room, from, text, ..
            }),
        ) => {
            assert_eq!(
                (c.room, c.from, c.text),
                (room.as_str(), from.as_str(), text.as_str())
            );
        }
        (Ok(Some(_)), other) => panic!("decode_chat accepted what decode_server made {other:?}"),
        (Err(e), _) => assert_eq!(full.as_ref().err(), Some(&e), "chat decoders disagree"),
        _ => {}
    }
    let Ok(msg) = full else {
        return;
    };
    // Not byte for byte: a disconnect reason's `param` and `detail` are
    // ignored by the decoder where the reason has none (a `reset` with
    // param 512 reads as `reset`), so only the meaning must survive.
    let mut again = BytesMut::new();
    codec::encode_server_payload(&msg, &mut again);
    assert_eq!(codec::decode_server(&again), Ok(msg));
}
