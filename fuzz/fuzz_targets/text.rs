//! Fuzz target: text mode, both ways. A line a user typed (from `nc` or
//! the client's input line) goes through `text::parse_command`, the local
//! checks and `to_client_msg`, as the server's text mode and the client
//! do; the same bytes read as a server payload go through
//! `text::render`, which writes what a text user's terminal shows.
//!
//! Checked beyond "no panic": a command that passes the checks encodes to
//! a message that decodes back to itself; a rendered line and a name the
//! checks accept never hold a control character or a bidi override; a
//! disconnect reason read back from its text gives the same text; the
//! nick key is deterministic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockchat_shared::text::{self, InputLimits};
use sockchat_shared::{DisconnectReason, codec, fold, names, sanitize};

fuzz_target!(|data: &[u8]| {
    // The server reads a text line as lossy UTF-8 (invalid bytes: U+FFFD).
    let line = String::from_utf8_lossy(data);
    let lim = InputLimits::default();

    if let Ok(Some(cmd)) = text::parse_command(&line)
        && let Ok(cmd) = cmd.check(&lim)
    {
        for room in ["", "lobby"] {
            if let Some(msg) = cmd.to_client_msg(room) {
                let mut b = BytesMut::new();
                codec::encode_client_payload(&msg, &mut b);
                assert_eq!(codec::decode_client(&b), Ok(msg));
            }
        }
    }

    let clean = sanitize::sanitize(&line);
    assert!(sanitize::is_clean(&clean), "sanitize left something unsafe");
    if names::check_nick(&line, lim.max_nick_len).is_ok() {
        assert!(sanitize::is_clean(&line), "a nick with control characters");
        assert_eq!(fold::nick_key(&line), fold::nick_key(&line));
    }
    if names::check_room(names::normalize_room(&line), lim.max_room_len).is_ok() {
        assert!(
            sanitize::is_clean(&line),
            "a room name with control characters"
        );
    }

    if let Ok(r) = line.parse::<DisconnectReason>() {
        let again = r.to_string();
        assert_eq!(
            again.parse::<DisconnectReason>().map(|x| x.to_string()),
            Ok(again)
        );
    }
    let _ = text::bye_reason(&line);

    if let Ok(msg) = codec::decode_server(data) {
        for me in ["me", ""] {
            if let Some(l) = text::render(&msg, me) {
                assert!(
                    sanitize::is_clean(&l.text),
                    "rendered line not clean: {:?}",
                    l.text
                );
                assert!(!l.text.contains('\n'), "a rendered line holds a newline");
            }
        }
    }
});
