//! sockchat's protocol crate: message types, the wire codec, the disconnect
//! vocabulary, errno classification, socket-option helpers (TCP_INFO) and
//! config types.
//!
//! **Boundary:** this crate knows nothing about tokio or terminals. The codec
//! is pure (no sockets, no clock); `sockopt` talks to the kernel through a raw
//! fd and nothing else.

pub mod ban;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod discovery;
pub mod errno;
mod fields;
pub mod fingerprint;
pub mod fold;
pub mod names;
pub mod netif;
pub mod page;
pub mod proto;
pub mod reason;
pub mod rudp;
pub mod sanitize;
pub mod secret;
pub mod sockopt;
pub mod text;
pub mod transfer;
pub mod udp;

pub use proto::{ChatKind, ClientMsg, ErrorCode, MAX_TOPIC_LEN, RoomInfo, ServerMsg};
pub use reason::{DisconnectReason, ParseReasonError};

/// Current Unix time in milliseconds (for message timestamps).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
