//! Presentation shared by the TUI and plain mode: what a typed line means
//! ([`command`]) and how events read ([`text`], [`transfer`] for files,
//! [`wire`] for our packets and the kernel socket left after our close,
//! [`duration`], [`discover`] for servers found on the LAN). Built on `shared::text`
//! (the one `/command` parser and the one renderer of server messages);
//! nothing here touches a socket or a terminal.

pub mod command;
pub mod discover;
pub mod duration;
pub mod text;
pub mod transfer;
pub mod wire;
