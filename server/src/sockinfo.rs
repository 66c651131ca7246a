//! `/sockinfo`: the server's view of a member's TCP socket (TCP_INFO, kernel
//! queues, buffer sizes, keepalive), read straight from the kernel on request.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use sockchat_shared::sockopt;
use tokio::net::TcpStream;

use crate::hub::SocketView;

/// A member's TCP socket. Holding the `Arc` keeps the fd open, so the fd
/// cannot be closed and reused by another connection while we query it.
pub struct TcpView(pub Arc<TcpStream>);

impl SocketView for TcpView {
    fn fields(&self) -> Vec<(String, String)> {
        sockopt::tcp_snapshot(self.0.as_raw_fd()).to_fields()
    }
}
