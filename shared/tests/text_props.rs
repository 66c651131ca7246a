//! Property tests of text mode (`shared::text`): every rendered line is
//! clean, a `Bye` line gives its reason back, reason texts parse back to the
//! reason, typed commands survive print-then-parse, and random input never
//! panics the parsers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use proptest::prelude::*;
use sockchat_shared::sanitize::is_clean;
use sockchat_shared::text::{self, Command};
use sockchat_shared::{DisconnectReason, ServerMsg};

mod strategies;
use strategies::{reason, server_msg};

/// The canonical form of a reason (an errno with a variant of its own is
/// that variant), which is what its text parses back to.
fn canonical(r: DisconnectReason) -> DisconnectReason {
    match r {
        DisconnectReason::Os { errno } => DisconnectReason::from_errno(errno),
        other => other,
    }
}

/// A word a person can type as one argument.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.#-]{1,12}"
}

/// Free text as a command argument (trimmed, as the parser keeps it).
fn words() -> impl Strategy<Value = String> {
    "[^\\s/][^\r\n]{0,30}".prop_map(|s| s.trim().to_string())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        words().prop_map(Command::Me),
        word().prop_map(Command::Nick),
        word().prop_map(Command::Join),
        proptest::option::of(word()).prop_map(Command::Leave),
        (word(), words()).prop_map(|(to, text)| Command::Msg { to, text }),
        proptest::option::of(word()).prop_map(Command::Who),
        Just(Command::Rooms),
        proptest::option::of(word()).prop_map(Command::SockInfo),
        "[^\r\n]{0,20}".prop_map(|s| Command::Quit(s.trim().to_string())),
        Just(Command::Help),
        word().prop_map(Command::Pass),
        word().prop_map(Command::Register),
        (proptest::option::of(word()), word())
            .prop_map(|(nick, password)| Command::Identify { nick, password }),
        word().prop_map(Command::Oper),
        (word(), word()).prop_map(|(room, key)| Command::JoinKey { room, key }),
        (word(), proptest::option::of(word()))
            .prop_map(|(nick, room)| Command::Invite { nick, room }),
        (word(), proptest::option::of(word()))
            .prop_map(|(room, key)| Command::RoomKey { room, key }),
        (word(), any::<bool>()).prop_map(|(room, on)| Command::InviteOnly { room, on }),
        (word(), proptest::option::of(words())).prop_map(|(nick, reason)| Command::Kick {
            nick,
            reason: reason.unwrap_or_default()
        }),
        // A reason never starts with a digit here: it would be read as a
        // duration (the documented rule).
        (word(), 0..=text::MAX_SECS, "([a-z][a-z ]{0,12})?").prop_map(|(target, secs, r)| {
            Command::Ban {
                target,
                secs,
                reason: r.trim().to_string(),
            }
        }),
        word().prop_map(Command::Unban),
        Just(Command::Bans),
        (word(), 0..=text::MAX_SECS).prop_map(|(nick, secs)| Command::Mute { nick, secs }),
        word().prop_map(Command::Unmute),
        "[^\r\n]{0,20}".prop_map(|s| Command::Away(s.trim().to_string())),
        word().prop_map(Command::Query),
        Just(Command::Stats),
        (
            proptest::option::of(word().prop_map(|w| format!("#{w}"))),
            proptest::option::of("([a-z][a-z ]{0,12})?")
        )
            .prop_map(|(room, text)| Command::Topic {
                room,
                text: text.map(|t| t.trim().to_string()),
            }),
    ]
}

/// How a person types `c`.
fn typed(c: &Command) -> String {
    let opt = |cmd: &str, a: &Option<String>| match a {
        Some(a) => format!("{cmd} {a}"),
        None => cmd.to_string(),
    };
    match c {
        Command::Say(t) => t.clone(),
        Command::Me(t) => format!("/me {t}"),
        Command::Nick(n) => format!("/nick {n}"),
        Command::Join(r) => format!("/join {r}"),
        Command::Leave(r) => opt("/leave", r),
        Command::Msg { to, text } => format!("/msg {to} {text}"),
        Command::Who(r) => opt("/who", r),
        Command::Rooms => "/rooms".into(),
        Command::SockInfo(n) => opt("/sockinfo", n),
        Command::Quit(m) => format!("/quit {m}"),
        Command::Help => "/help".into(),
        Command::Away(t) => format!("/away {t}"),
        Command::Query(n) => format!("/query {n}"),
        Command::Other { name, rest } => format!("/{name} {rest}"),
        Command::Pass(p) => format!("/pass {p}"),
        Command::Register(p) => format!("/register {p}"),
        Command::Identify {
            nick: Some(n),
            password,
        } => format!("/identify {n} {password}"),
        Command::Identify {
            nick: None,
            password,
        } => format!("/identify {password}"),
        Command::Oper(p) => format!("/oper {p}"),
        Command::JoinKey { room, key } => format!("/join {room} {key}"),
        Command::Invite { nick, room } => opt(&format!("/invite {nick}"), room),
        Command::RoomKey { room, key } => opt(&format!("/key {room}"), key),
        Command::InviteOnly { room, on } => {
            format!("/inviteonly {room} {}", if *on { "on" } else { "off" })
        }
        Command::Kick { nick, reason } => format!("/kick {nick} {reason}"),
        Command::Ban {
            target,
            secs,
            reason,
        } => {
            let d = if *secs == 0 {
                String::new()
            } else {
                format!(" {secs}")
            };
            format!("/ban {target}{d} {reason}")
        }
        Command::Unban(t) => format!("/unban {t}"),
        Command::Bans => "/bans".into(),
        Command::Mute { nick, secs: 0 } => format!("/mute {nick}"),
        Command::Mute { nick, secs } => format!("/mute {nick} {secs}s"),
        Command::Unmute(n) => format!("/unmute {n}"),
        Command::Stats => "/stats".into(),
        Command::Topic { room, text } => {
            let head = opt("/topic", room);
            match text.as_deref() {
                None => head,
                Some("") => format!("{head} -delete"),
                Some(t) => format!("{head} {t}"),
            }
        }
    }
}

proptest! {
    #[test]
    fn rendered_lines_are_clean_single_lines(msg in server_msg(), me in "[a-z]{0,5}") {
        if let Some(line) = text::render(&msg, &me) {
            prop_assert!(is_clean(&line.text), "{:?}", line.text);
            prop_assert!(!line.text.contains('\n'));
            let prefix_ok = line.text.starts_with('[')
                || line.text.starts_with("* ")
                || line.text.starts_with("! ");
            prop_assert!(prefix_ok, "{:?}", line.text);
            prop_assert_eq!(
                line.severity == text::Severity::Error,
                line.text.starts_with("! ")
            );
        } else {
            let chatter = matches!(msg, ServerMsg::Ping { .. } | ServerMsg::Pong { .. });
            prop_assert!(chatter, "only ping/pong render to nothing");
        }
    }

    #[test]
    fn reason_text_round_trip(r in reason()) {
        let r = canonical(r);
        // A detail with control characters is shown sanitized, so only a
        // clean one can come back exactly through a rendered line.
        prop_assert_eq!(r.to_string().parse::<DisconnectReason>(), Ok(r.clone()));
        let line = text::render(&ServerMsg::Bye { reason: r.clone() }, "me").expect("bye line");
        match &r {
            // The quitter's own message is not shown back to it.
            DisconnectReason::Quit { .. } => {
                prop_assert_eq!(text::bye_reason(&line.text), Some(DisconnectReason::quit()));
            }
            DisconnectReason::ProtocolError { detail } if !is_clean(detail) => {}
            DisconnectReason::Kicked { why, .. } | DisconnectReason::Banned { why, .. }
                if !is_clean(why) => {}
            _ => prop_assert_eq!(text::bye_reason(&line.text), Some(r)),
        }
    }

    #[test]
    fn typed_commands_parse_back(c in command()) {
        let line = typed(&c);
        prop_assert_eq!(text::parse_command(&line), Ok(Some(c)), "{:?}", line);
    }

    #[test]
    fn plain_text_is_said_as_typed(t in "[^/\r\n][^\r\n]{0,40}") {
        let got = text::parse_command(&t);
        if t.trim().is_empty() {
            prop_assert_eq!(got, Ok(None));
        } else {
            prop_assert_eq!(got, Ok(Some(Command::Say(t))));
        }
    }

    #[test]
    fn random_input_never_panics(s in "\\PC{0,60}|/[a-z]{0,8} .{0,40}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let lim = text::InputLimits::default();
        if let Ok(Some(c)) = text::parse_command(&s) {
            let _ = c.to_client_msg("lobby");
            let _ = c.check(&lim);
        }
        let _ = s.parse::<DisconnectReason>();
        let _ = text::bye_reason(&s);
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = text::parse_command(&lossy);
        let _ = lossy.parse::<DisconnectReason>();
    }
}
