//! Proptest strategies for every protocol message, shared by the property
//! test files (`mod strategies;`).

#![allow(dead_code, reason = "each test file uses a different subset")]

use proptest::prelude::*;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, RoomInfo, ServerMsg};

pub fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including control characters: the codec carries bytes;
    // sanitizing is the display layer's job.
    proptest::string::string_regex(".{0,40}").expect("regex")
}

pub fn reason() -> impl Strategy<Value = DisconnectReason> {
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
        Just(DisconnectReason::ServerLost),
        (0i32..4096).prop_map(|errno| DisconnectReason::Os { errno }),
        // `by` is a nick: never ": " inside (it splits who from why).
        ("[a-z0-9._-]{0,12}", text()).prop_map(|(by, why)| DisconnectReason::Kicked { by, why }),
        ("[a-z0-9._-]{0,12}", text(), any::<u32>())
            .prop_map(|(by, why, secs)| DisconnectReason::Banned { by, why, secs }),
    ]
}

pub fn client_msg() -> impl Strategy<Value = ClientMsg> {
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
        text().prop_map(|password| ClientMsg::Pass { password }),
        text().prop_map(|password| ClientMsg::Register { password }),
        (text(), text()).prop_map(|(nick, password)| ClientMsg::Identify { nick, password }),
        text().prop_map(|password| ClientMsg::Oper { password }),
        (text(), text()).prop_map(|(nick, room)| ClientMsg::Invite { nick, room }),
        (text(), text()).prop_map(|(room, key)| ClientMsg::RoomKey { room, key }),
        (text(), any::<bool>()).prop_map(|(room, on)| ClientMsg::InviteOnly { room, on }),
        (text(), text()).prop_map(|(nick, reason)| ClientMsg::Kick { nick, reason }),
        (text(), any::<u32>(), text()).prop_map(|(target, secs, reason)| ClientMsg::Ban {
            target,
            secs,
            reason
        }),
        text().prop_map(|target| ClientMsg::Unban { target }),
        (text(), any::<u32>()).prop_map(|(nick, secs)| ClientMsg::Mute { nick, secs }),
        text().prop_map(|nick| ClientMsg::Unmute { nick }),
        (text(), text()).prop_map(|(room, key)| ClientMsg::JoinKey { room, key }),
        text().prop_map(|text| ClientMsg::Away { text }),
        Just(ClientMsg::Stats),
        (text(), proptest::option::of(text()))
            .prop_map(|(room, text)| ClientMsg::Topic { room, text }),
        Just(ClientMsg::Bans),
    ]
}

pub fn server_msg() -> impl Strategy<Value = ServerMsg> {
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
        (text(), text()).prop_map(|(nick, text)| ServerMsg::Away { nick, text }),
        proptest::collection::vec((text(), text()), 0..10)
            .prop_map(|fields| ServerMsg::Stats { fields }),
        (text(), text(), text(), any::<bool>()).prop_map(|(room, text, by, changed)| {
            ServerMsg::Topic {
                room,
                text,
                by,
                changed,
            }
        }),
    ]
}
