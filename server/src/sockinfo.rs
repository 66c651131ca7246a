//! `/sockinfo`: the server's view of a member's TCP socket (TCP_INFO, kernel
//! queues, buffer sizes, keepalive), read straight from the kernel on request.

use std::os::fd::AsRawFd;

use sockchat_shared::sockopt;
use tokio::net::TcpStream;

use crate::hub::SocketView;

/// A member's TCP socket, viewed through the same `Arc` the connection
/// uses: holding it keeps the fd open, so the fd cannot be closed and reused
/// by another connection while we query it (and no extra allocation per
/// connection is needed).
impl SocketView for TcpStream {
    fn fields(&self) -> Vec<(String, String)> {
        sockopt::tcp_snapshot(self.as_raw_fd()).to_fields()
    }

    /// [`crate::outbox::try_send`]: one `send`/`sendmsg` if the socket is
    /// known writable, else `WouldBlock` without a syscall (the writer task
    /// then waits for readiness as usual).
    fn try_writev_now(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        crate::outbox::try_send(self, bufs)
    }
}
