//! Telling a refused client why: the bytes it reads (our preamble and an
//! Error frame, or an error line) and the bounded slots for the short tasks
//! that write them. Shared by the plain accept loop (`listener.rs`) and the
//! TLS one (`tls.rs`), which writes the same bytes inside TLS.

use std::sync::Arc;

use sockchat_shared::{ErrorCode, ServerMsg, codec};
use tokio::sync::Semaphore;

use crate::ctx::Ctx;

/// Shared by every accept loop.
pub(crate) struct AcceptCtx {
    pub ctx: Arc<Ctx>,
    /// Bounds the short tasks that tell a refused client why.
    pub reject_slots: Arc<Semaphore>,
}

/// What a refused client reads, in its format: our preamble and an Error
/// frame, or an error line.
pub(crate) fn refusal_bytes(framed: bool, code: ErrorCode, text: String) -> Vec<u8> {
    let msg = ServerMsg::Error { code, text };
    let mut bytes = Vec::new();
    if framed {
        bytes.extend_from_slice(&sockchat_shared::proto::preamble());
        bytes.extend_from_slice(&codec::server_frame(&msg));
    } else if let Some(line) = crate::text::render(&msg) {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    bytes
}
