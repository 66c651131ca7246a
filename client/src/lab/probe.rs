//! What the scenarios observe with: a loopback pair, `accept` and reads
//! with deadlines, how a read loop ended (EOF or which errno), and waits on
//! the kernel's view of a socket (receive queue, TCP state). No scenario
//! lives here.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sockchat_shared::sockopt;
use socket2::{Domain, Protocol, Socket, Type};

use super::outcome::code_of;
use super::wire::{Capture, Pattern, Wire};

/// Bound for every blocking read in the lab: loopback answers in
/// microseconds, so anything slower than this is a finding, not a wait.
pub const READ_LIMIT: Duration = Duration::from_secs(3);

/// A fresh connected pair on loopback: (client, accepted server side),
/// and the capture of its packets (from before the SYN) under `--wire`;
/// `names`: what to call the server side and the client in the trace.
pub fn pair(
    wire: &Wire,
    names: [&'static str; 2],
    pattern: Pattern,
) -> anyhow::Result<(TcpStream, TcpStream, Capture)> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let mut cap = wire.capture(addr.port(), names, pattern)?;
    cap.mark(format!("{}: connect()", names[1]));
    let c = TcpStream::connect(addr).context("connect")?;
    let (s, _) = accept_within(&l, READ_LIMIT)?;
    Ok((c, s, cap))
}

/// A listener on 127.0.0.1:`port` built with socket2, so that options
/// which must come before `bind()`/`listen()` can be set by `before`:
/// SO_RCVBUF (the window scale is chosen at the handshake and accepted
/// sockets inherit the listener's buffer), SO_REUSEADDR, SO_REUSEPORT.
pub fn listen_with(
    port: u16,
    backlog: i32,
    before: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    before(&s)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// A blocking connect to `addr` after `before` set options that must come
/// first (SO_SNDBUF).
pub fn connect_with(
    addr: SocketAddr,
    before: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    before(&s)?;
    s.connect(&addr.into())?;
    Ok(s.into())
}

/// A loopback pair with small fixed buffers, so windows and queues fill
/// within milliseconds: `rcvbuf` on the listener (before `listen()`: the
/// window scale is chosen at the handshake and the accepted socket
/// inherits it), `sndbuf` on the connecting socket (before `connect()`),
/// captured from before the SYN as `receiver` (the accepted end) and
/// `sender`. Returns (sender, receiver, capture).
pub fn buffered_pair(
    wire: &Wire,
    rcvbuf: usize,
    sndbuf: usize,
    pattern: Pattern,
) -> anyhow::Result<(TcpStream, TcpStream, Capture)> {
    let l = listen_with(0, 1, |s| s.set_recv_buffer_size(rcvbuf))?;
    let addr = l.local_addr()?;
    let cap = wire.capture(addr.port(), ["receiver", "sender"], pattern)?;
    let sender = connect_with(addr, |s| s.set_send_buffer_size(sndbuf))?;
    let (receiver, _) = accept_within(&l, READ_LIMIT)?;
    Ok((sender, receiver, cap))
}

/// `accept` with a deadline (std's accept has no timeout of its own).
pub fn accept_within(l: &TcpListener, limit: Duration) -> anyhow::Result<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    loop {
        match l.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false)?;
                l.set_nonblocking(false)?;
                return Ok((s, a));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    anyhow::bail!("nobody connected within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
}

/// How a read loop ended.
#[derive(Debug)]
pub struct ReadEnd {
    /// Payload bytes read before the end.
    pub bytes: u64,
    /// `Ok(())` = EOF (read returned 0); `Err` = the error read returned
    /// (EAGAIN when our own read timeout expired).
    pub end: io::Result<()>,
    pub elapsed: Duration,
}

impl ReadEnd {
    /// `EOF` or the errno's name (`ECONNRESET`).
    pub fn end_text(&self) -> String {
        match &self.end {
            Ok(()) => "0 (EOF)".into(),
            Err(e) => err_text(e),
        }
    }

    /// (reason code, errno) of the end.
    pub fn observed(&self) -> (String, Option<i32>) {
        match &self.end {
            Ok(()) => ("eof".into(), None),
            Err(e) => code_of(e),
        }
    }
}

/// An error as its errno's name (`ECONNRESET`), for the syscall marks
/// beside the packets.
pub fn err_text(e: &io::Error) -> String {
    code_of(e)
        .1
        .map_or_else(|| e.to_string(), sockchat_shared::errno::name)
}

/// Read until EOF or an error, each read bounded by `limit`.
pub fn read_until_end(s: &mut TcpStream, limit: Duration) -> ReadEnd {
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let end = (|| {
        s.set_read_timeout(Some(limit))?;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => bytes += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })();
    ReadEnd {
        bytes,
        end,
        elapsed: start.elapsed(),
    }
}

/// Wait until the kernel has `n` unread bytes queued on `fd` (SIOCINQ).
pub fn wait_recv_queue(fd: RawFd, n: u32, limit: Duration) -> anyhow::Result<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let q = sockopt::recv_queue(fd).context("SIOCINQ")?;
        if q >= n {
            return Ok(q);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("only {q} of {n} bytes arrived within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait until TCP_INFO reports `state` (e.g. `CLOSE_WAIT`); returns the
/// state seen last.
pub fn wait_state(fd: RawFd, state: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let st = sockopt::tcp_info(fd)
            .map(|i| i.state_name().to_string())
            .unwrap_or_else(|e| format!("n/a ({e})"));
        if st == state || Instant::now() >= deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
