//! The pieces a plan is made of, shared by the command-line plan
//! (`plan`) and the TOML scenario file (`scenario`): a group of bots, its
//! behaviour, how a bot ends a connection on purpose, and scheduled faults.
//! Plain data, so `plan` and `scenario` both build on it without importing
//! each other in a circle.

use std::time::Duration;

use super::parse::SizeDist;

/// What a group of bots does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Joins its room and says messages at the group's rate. Measured.
    Chatter,
    /// Joins its room and only reads. Measured.
    Lurker,
    /// Reads for a while, then stops reading (the server's slow-consumer
    /// policy should deal with it without slowing anyone else).
    SlowReader,
    /// Connects, optionally chats, disconnects with a chosen method,
    /// reconnects: the churn load.
    Churner,
    /// Says messages far faster than a person could (rate limits).
    Flooder,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Chatter => "chatter",
            Behaviour::Lurker => "lurker",
            Behaviour::SlowReader => "slow-reader",
            Behaviour::Churner => "churner",
            Behaviour::Flooder => "flooder",
        }
    }
}

/// How a bot ends a connection on purpose (churners and faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Say `/quit` (or send Quit) and wait for the server to close.
    Quit,
    /// Plain close(): FIN.
    Fin,
    /// SO_LINGER 0 then close(): RST, the server sees ECONNRESET 104.
    Rst,
    /// Stop reading, let data arrive, then close(): the kernel answers the
    /// unread data with RST.
    CloseUnread,
    /// shutdown(SHUT_WR): FIN while still reading until the server closes.
    HalfClose,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Quit => "quit",
            Method::Fin => "fin",
            Method::Rst => "rst",
            Method::CloseUnread => "close-unread",
            Method::HalfClose => "half-close",
        }
    }
}

/// A group of bots with one behaviour.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub behaviour: Behaviour,
    pub count: usize,
    /// Bots of the group that send (chatters/flooders: all; churners: all).
    pub senders: usize,
    /// Messages per second for the whole group (split over its senders).
    pub rate: f64,
    pub size: SizeDist,
    /// Rooms (indices into `Plan::rooms`) the group's bots are spread over.
    pub rooms: std::ops::Range<usize>,
    /// Counted in expected/delivered/latency (chatters and lurkers that no
    /// fault touches). Other bots send unmeasured (`~U`) messages.
    pub measured: bool,
    pub stop_reading_after: Duration,
    /// Churners: how long each connection lives before it is ended.
    pub session: Duration,
    /// Churners: pause between sessions.
    pub pause: Duration,
    /// Churners: sessions per second for the whole group (0: back to back).
    pub churn_rate: f64,
    /// Churners: disconnect methods, used in turn.
    pub methods: Vec<Method>,
    /// UDP: fraction of outgoing datagrams dropped on purpose.
    pub udp_drop: f64,
    /// Join the group's room after connecting (false: connect-only churn,
    /// which measures the accept/close path without room announcements).
    pub join: bool,
}

/// A scheduled fault: every `every`, `fraction` of `group` end their
/// connection with `method` and reconnect after `reconnect_after`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub every: Duration,
    pub group: usize,
    pub fraction: f64,
    pub method: Method,
    pub reconnect_after: Duration,
}
