//! Protocol messages. PROTOCOL.md at the repository root documents the bytes.
//!
//! Two directions, two enums: a client can only send [`ClientMsg`], a server
//! only [`ServerMsg`]. Both are plain data; the codec turns them into bytes.

use crate::reason::DisconnectReason;

/// First byte of the preamble. A text (nc/telnet) user never types a NUL as
/// the first byte, so this tells framed clients and text users apart.
pub const MAGIC: [u8; 4] = [0x00, b'S', b'C', b'K'];
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Preamble length: MAGIC + version byte.
pub const PREAMBLE_LEN: usize = 5;
/// Default maximum frame payload (bytes after the 4-byte length prefix).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// Longest room topic, in bytes (after sanitising; IRC servers allow
/// about as much).
pub const MAX_TOPIC_LEN: usize = 300;

/// The preamble a framed peer sends first (and the server answers with).
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION]
}

/// Kind of a room message: plain text or an action (`/me`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatKind {
    Say = 0,
    Me = 1,
}

/// Error codes the server puts in [`ServerMsg::Error`]. Unknown codes from a
/// newer server decode as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NickTaken,
    BadName,
    NoSuchRoom,
    NoSuchNick,
    TooManyRooms,
    MessageTooLong,
    RateLimited,
    NotInRoom,
    BadCommand,
    Protocol,
    VersionMismatch,
    ServerFull,
    TooManyFromAddress,
    /// The address is not allowed in (`[access]` allow/deny lists).
    Forbidden,
    /// The server needs its password (`Pass`) before `Hello` (text mode:
    /// `/pass PASSWORD` first).
    PasswordRequired,
    /// A wrong password: the server's, a registered nick's or the
    /// operators'.
    BadPassword,
    /// The nick is registered and this session has not identified for it.
    NickRegistered,
    /// Banned: the address at admission, the nick at `Hello`/`Nick`.
    Banned,
    /// An operator command from someone who is not one (server operator,
    /// or the room's operator for room settings).
    NotPermitted,
    /// Chat from a muted user.
    Muted,
    /// `Join` of a room with a key, without it or with a wrong one.
    BadRoomKey,
    /// `Join` of an invite-only room without an invitation.
    InviteOnly,
    /// `Identify` for a nick nobody registered.
    NotRegistered,
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            Self::NickTaken => 1,
            Self::BadName => 2,
            Self::NoSuchRoom => 3,
            Self::NoSuchNick => 4,
            Self::TooManyRooms => 5,
            Self::MessageTooLong => 6,
            Self::RateLimited => 7,
            Self::NotInRoom => 8,
            Self::BadCommand => 9,
            Self::Protocol => 10,
            Self::VersionMismatch => 11,
            Self::ServerFull => 12,
            Self::TooManyFromAddress => 13,
            Self::Forbidden => 14,
            Self::PasswordRequired => 15,
            Self::BadPassword => 16,
            Self::NickRegistered => 17,
            Self::Banned => 18,
            Self::NotPermitted => 19,
            Self::Muted => 20,
            Self::BadRoomKey => 21,
            Self::InviteOnly => 22,
            Self::NotRegistered => 23,
            Self::Other(n) => n,
        }
    }

    /// Does this error answer a `Hello` that was refused, leaving the
    /// connection open for another try (another nick, the password,
    /// identifying first)?
    pub fn refuses_hello(self) -> bool {
        matches!(
            self,
            Self::NickTaken
                | Self::BadName
                | Self::PasswordRequired
                | Self::BadPassword
                | Self::NickRegistered
                | Self::Banned
        )
    }

    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::NickTaken,
            2 => Self::BadName,
            3 => Self::NoSuchRoom,
            4 => Self::NoSuchNick,
            5 => Self::TooManyRooms,
            6 => Self::MessageTooLong,
            7 => Self::RateLimited,
            8 => Self::NotInRoom,
            9 => Self::BadCommand,
            10 => Self::Protocol,
            11 => Self::VersionMismatch,
            12 => Self::ServerFull,
            13 => Self::TooManyFromAddress,
            14 => Self::Forbidden,
            15 => Self::PasswordRequired,
            16 => Self::BadPassword,
            17 => Self::NickRegistered,
            18 => Self::Banned,
            19 => Self::NotPermitted,
            20 => Self::Muted,
            21 => Self::BadRoomKey,
            22 => Self::InviteOnly,
            23 => Self::NotRegistered,
            other => Self::Other(other),
        }
    }
}

/// One room in a [`ServerMsg::Rooms`] listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub name: String,
    pub members: u32,
}

/// Messages a client sends. An empty `room` means "my current room".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// First message after the preamble. Empty nick: the server picks `guestN`.
    Hello {
        nick: String,
    },
    Nick {
        nick: String,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Say {
        room: String,
        text: String,
    },
    Me {
        room: String,
        text: String,
    },
    Private {
        to: String,
        text: String,
    },
    Who {
        room: String,
    },
    Rooms,
    Ping {
        token: u64,
    },
    Pong {
        token: u64,
    },
    Quit {
        message: String,
    },
    /// Ask for the server's view of NICK's socket (TCP_INFO, queues, outbox).
    SockInfo {
        nick: String,
    },
    /// A file-transfer message (`shared::transfer`).
    Transfer(crate::transfer::Xfer),
    /// The server's password, before `Hello` (PROTOCOL.md "Who may come
    /// in").
    Pass {
        password: String,
    },
    /// Register my current nick with this password.
    Register {
        password: String,
    },
    /// Prove I own registered NICK (empty: my current nick); after `Hello`
    /// the server renames me to it.
    Identify {
        nick: String,
        password: String,
    },
    /// Become a server operator.
    Oper {
        password: String,
    },
    /// Invite NICK into ROOM (empty: my current room).
    Invite {
        nick: String,
        room: String,
    },
    /// Set ROOM's key (empty: remove it).
    RoomKey {
        room: String,
        key: String,
    },
    /// Make ROOM invite-only, or open it again.
    InviteOnly {
        room: String,
        on: bool,
    },
    /// Operator: end NICK's session (reason `kicked`).
    Kick {
        nick: String,
        reason: String,
    },
    /// Operator: ban a nick, an address or a CIDR block for `secs` (0: until
    /// unbanned); sessions it matches end (reason `banned`).
    Ban {
        target: String,
        secs: u32,
        reason: String,
    },
    /// Operator: lift a ban (the target exactly as banned).
    Unban {
        target: String,
    },
    /// Operator: NICK's chat is refused for `secs` (0: until unmuted).
    Mute {
        nick: String,
        secs: u32,
    },
    Unmute {
        nick: String,
    },
    /// Join ROOM with its key (a new room gets this key).
    JoinKey {
        room: String,
        key: String,
    },
    /// Mark yourself away with `text` (`/away TEXT`); `""`: back again.
    Away {
        text: String,
    },
    /// Server operators: the server's numbers now (`/stats`).
    Stats,
    /// ROOM's topic (`""`: my current room): `text` `None` asks for it;
    /// `Some` sets it (`Some("")` clears it).
    Topic {
        room: String,
        text: Option<String>,
    },
    /// Operator: list the bans (`/bans`; answered with `Notice` lines).
    Bans,
}

/// Messages a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// Answer to Hello: the nick we got, the room we were put in.
    Welcome {
        nick: String,
        room: String,
        server: String,
    },
    /// A room message. `ts_ms` is the server's receive time (Unix ms);
    /// `history` is true when replayed on join.
    Chat {
        room: String,
        from: String,
        text: String,
        kind: ChatKind,
        ts_ms: u64,
        history: bool,
    },
    Private {
        from: String,
        to: String,
        text: String,
        ts_ms: u64,
    },
    Joined {
        room: String,
        nick: String,
    },
    /// NICK left ROOM. `reason` is None for a voluntary `/leave`, and the
    /// connection's one disconnect reason when the connection ended.
    Left {
        room: String,
        nick: String,
        reason: Option<DisconnectReason>,
    },
    NickChanged {
        old: String,
        new: String,
    },
    Who {
        room: String,
        nicks: Vec<String>,
    },
    Rooms {
        rooms: Vec<RoomInfo>,
    },
    /// A system notice in plain words.
    Notice {
        text: String,
    },
    Error {
        code: ErrorCode,
        text: String,
    },
    Ping {
        token: u64,
    },
    Pong {
        token: u64,
    },
    /// The server's view of NICK's socket: ordered key/value pairs
    /// (`tcpi_rtt_us` = `312`, `outbox_frames` = `0`, ...).
    SockInfo {
        nick: String,
        fields: Vec<(String, String)>,
    },
    /// Sent just before the server closes this connection, with the reason.
    Bye {
        reason: DisconnectReason,
    },
    /// A file-transfer message relayed or answered by the server.
    Transfer(crate::transfer::Xfer),
    /// NICK is away with `text` (`""`: back). Sent to a user about
    /// themself in answer to `Away`, after a `Who` reply for each away
    /// member of the room, and to the sender of a `Private` to an away user.
    Away {
        nick: String,
        text: String,
    },
    /// The server's numbers for an operator's `Stats`: ordered key/value
    /// pairs (`users` = `12`, `messages_per_sec` = `3.5`, ...; PROTOCOL.md
    /// lists the keys).
    Stats {
        fields: Vec<(String, String)>,
    },
    /// ROOM's topic (`""`: none), set by BY. `changed`: BY has just set
    /// (or cleared) it, told to every member; otherwise it is what the
    /// topic is (after `Joined` to the joiner, after a `Rooms` reply for
    /// each room that has one, in answer to a `Topic` query).
    Topic {
        room: String,
        text: String,
        by: String,
        changed: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_which_refuse_a_hello() {
        for n in 0..=30u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        let refusing: Vec<u16> = (0..=30u16)
            .filter(|n| ErrorCode::from_u16(*n).refuses_hello())
            .collect();
        // NickTaken, BadName, PasswordRequired, BadPassword, NickRegistered,
        // Banned: the connection stays open for another Hello.
        assert_eq!(refusing, [1, 2, 15, 16, 17, 18]);
    }
}
