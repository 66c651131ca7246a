//! Packets on the wire, shared by `sockchat lab --wire` and the client's
//! wire view: `capture` (an AF_PACKET socket with a kernel filter, read on
//! its own thread), `packet` (headers via etherparse into segments, in
//! tcpdump's notation), and `tap` (the client's live capture of its own
//! connection, drained into segments while the connection lives).
//!
//! Capturing needs CAP_NET_RAW; without it every user says so and how to
//! grant it ([`capture::grant_hint`]).

pub mod capture;
pub mod packet;
mod tap;

pub use packet::{Segment, Side};
pub use tap::{Tap, TapBatch, cannot_capture};
