//! Loopback TCP scenarios: how the connection ended decides whether the
//! kernel sends FIN (peer reads EOF) or RST (peer gets ECONNRESET), and what
//! a write into a closed connection returns. Local only: the same
//! experiments against a live server are in `remote`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use sockchat_shared::sockopt;

use super::outcome::{Outcome, code_of};
use super::probe::{READ_LIMIT, err_text, pair, read_until_end, wait_recv_queue, wait_state};
use super::wire::{Kind, Pattern, Side, Wire};

/// Trace names in these scenarios: the accepted socket is the peer, the
/// connecting one the actor.
const NAMES: [&str; 2] = ["peer", "actor"];

fn scenario(
    name: &'static str,
    expected: &str,
    f: impl FnOnce() -> anyhow::Result<Outcome>,
) -> Outcome {
    f().unwrap_or_else(|e| Outcome::setup_failed(name, expected, &e))
}

pub fn normal_close(wire: &Wire) -> Outcome {
    scenario("normal-close", "eof", || {
        // FIN both ways (the actor's first), and no RST anywhere.
        let pattern = Pattern::default()
            .then(Side::Connect, Kind::Data)
            .then(Side::Connect, Kind::Fin)
            .then(Side::Listen, Kind::Fin)
            .never(None, Kind::Rst);
        let (mut actor, mut peer, mut cap) = pair(wire, NAMES, pattern)?;
        actor.write_all(b"last words\n")?;
        cap.mark("actor: write(11 bytes)");
        let inq = sockopt::recv_queue(actor.as_raw_fd())?;
        cap.mark("actor: close()");
        drop(actor); // close(): receive queue empty, so the kernel sends FIN
        let r = read_until_end(&mut peer, READ_LIMIT);
        let (obs, errno) = r.observed();
        cap.mark(format!(
            "peer: read {} bytes, then read() -> {obs}",
            r.bytes
        ));
        cap.mark("peer: close()");
        drop(peer); // the peer's close: its FIN
        Ok(Outcome::judge(
            "normal-close",
            "close() with nothing unread",
            obs,
            errno,
            "eof",
            None,
            r.bytes == 11,
            "close() with an empty receive queue sends FIN after any queued data; the peer reads the data, then read() returns 0",
        )
        .with_details(vec![format!(
            "actor SIOCINQ at close: {inq} bytes; peer read {} bytes, then EOF after {:?}",
            r.bytes, r.elapsed
        )])
        .with_wire(cap.finish()))
    })
}

pub fn close_unread(wire: &Wire) -> Outcome {
    scenario("close-unread", "reset", || {
        let pattern = Pattern::default()
            .then(Side::Listen, Kind::Data)
            .then(Side::Connect, Kind::Rst)
            .never(Some(Side::Connect), Kind::Fin);
        let (actor, mut peer, mut cap) = pair(wire, NAMES, pattern)?;
        peer.write_all(b"unread")?;
        cap.mark("peer: write(6 bytes)");
        let inq = wait_recv_queue(actor.as_raw_fd(), 6, READ_LIMIT)?;
        cap.mark(format!("actor: close() with {inq} bytes unread"));
        drop(actor); // close() with 6 unread bytes: RFC 2525 says RST, Linux does it
        let r = read_until_end(&mut peer, READ_LIMIT);
        let (obs, errno) = r.observed();
        cap.mark(format!("peer: read() -> {}", r.end_text()));
        Ok(Outcome::judge(
            "close-unread",
            format!("close() with {inq} unread bytes"),
            obs,
            errno,
            "reset",
            Some(libc::ECONNRESET),
            true,
            "closing with data still in the receive queue means data was lost, so Linux sends RST instead of FIN (RFC 2525 2.17)",
        )
        .with_wire(cap.finish()))
    })
}

pub fn linger_zero(wire: &Wire) -> Outcome {
    scenario("linger-zero", "reset", || {
        // The abortive close: the actor's RST, and never a FIN from it.
        let pattern = Pattern::default()
            .then(Side::Connect, Kind::Rst)
            .never(Some(Side::Connect), Kind::Fin);
        let (actor, mut peer, mut cap) = pair(wire, NAMES, pattern)?;
        socket2::SockRef::from(&actor).set_linger(Some(Duration::ZERO))?;
        cap.mark("actor: SO_LINGER {on, 0}; close()");
        drop(actor);
        let r = read_until_end(&mut peer, READ_LIMIT);
        let (obs, errno) = r.observed();
        cap.mark(format!("peer: read() -> {}", r.end_text()));
        Ok(Outcome::judge(
            "linger-zero",
            "SO_LINGER {on, 0}, then close()",
            obs,
            errno,
            "reset",
            Some(libc::ECONNRESET),
            true,
            "a zero linger time asks for an abortive close: the kernel drops the send queue and sends RST, skipping FIN and TIME_WAIT",
        )
        .with_wire(cap.finish()))
    })
}

/// `ok (N)` or the errno's name, for a syscall mark.
fn result_text<T: std::fmt::Debug>(r: &io::Result<T>) -> String {
    match r {
        Ok(n) => format!("ok {n:?}"),
        Err(e) => err_text(e),
    }
}

/// `write(2)` itself, not std's `send(MSG_NOSIGNAL)`: this is the call that
/// would raise SIGPIPE if the process had not ignored it.
fn raw_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes for the duration of the call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Is SIGPIPE's disposition SIG_IGN? (The Rust runtime sets it at startup.)
pub fn sigpipe_ignored() -> bool {
    // SAFETY: querying only (act = NULL); old is a valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

pub fn write_after_close(wire: &Wire) -> Outcome {
    scenario("write-after-close", "broken-pipe", || {
        // The peer's FIN, our first write's data, the closed peer's RST.
        let pattern = Pattern::default()
            .then(Side::Listen, Kind::Fin)
            .then(Side::Connect, Kind::Data)
            .then(Side::Listen, Kind::Rst);
        let (actor, peer, mut cap) = pair(wire, NAMES, pattern)?;
        cap.mark("peer: close()");
        drop(peer); // the peer closes: FIN to us, we go to CLOSE_WAIT
        let fd = actor.as_raw_fd();
        let st0 = wait_state(fd, "CLOSE_WAIT", READ_LIMIT);
        let ign = sigpipe_ignored();
        let first = raw_write(fd, b"first");
        cap.mark(format!("actor: write(5 bytes) -> {}", result_text(&first)));
        // The closed peer answers the first write's data with RST; once it
        // lands our state goes CLOSE_WAIT -> CLOSE and sk_err is EPIPE.
        let st1 = wait_state(fd, "CLOSE", READ_LIMIT);
        let second = raw_write(fd, b"second");
        cap.mark(format!("actor: write(6 bytes) -> {}", result_text(&second)));
        let (obs, errno) = match &second {
            Ok(n) => (format!("ok ({n} bytes)"), None),
            Err(e) => code_of(e),
        };
        let first_ok = matches!(first, Ok(5));
        Ok(Outcome::judge(
            "write-after-close",
            "peer closed; we write() twice",
            obs,
            errno,
            "broken-pipe",
            Some(libc::EPIPE),
            first_ok && ign,
            "the first write succeeds (the kernel only queues it) and draws an RST from the closed peer; the second fails with EPIPE, and SIGPIPE is ignored so we live",
        )
        .with_details(vec![
            format!("SIGPIPE disposition: {}", if ign { "SIG_IGN (Rust runtime default)" } else { "NOT ignored" }),
            format!("state after peer close: {st0}"),
            format!("write #1: {}", match &first { Ok(n) => format!("ok, {n} bytes"), Err(e) => e.to_string() }),
            format!("state after write #1: {st1} (RST received)"),
            format!("write #2: {}", match &second { Ok(n) => format!("ok, {n} bytes"), Err(e) => e.to_string() }),
        ])
        .with_wire(cap.finish()))
    })
}

pub fn connect_refused(wire: &Wire) -> Outcome {
    scenario("connect-refused", "refused", || {
        // A port that was just free: bind, note it, close.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let pattern = Pattern::default()
            .then(Side::Connect, Kind::Syn)
            .then(Side::Listen, Kind::RstAck)
            .never(Some(Side::Listen), Kind::SynAck);
        let mut cap = wire.capture(addr.port(), ["closed-port", "client"], pattern)?;
        let r = TcpStream::connect_timeout(&addr, READ_LIMIT);
        cap.mark(match &r {
            Ok(_) => "client: connect() -> ok".to_string(),
            Err(e) => format!("client: connect() -> {}", err_text(e)),
        });
        let (obs, errno) = match &r {
            Ok(_) => ("connected".to_string(), None),
            Err(e) => code_of(e),
        };
        Ok(Outcome::judge(
            "connect-refused",
            format!("connect() to {addr}, where nothing listens"),
            obs,
            errno,
            "refused",
            Some(libc::ECONNREFUSED),
            true,
            "the peer's kernel answers a SYN for a port with no listener with RST; connect() returns ECONNREFUSED at once (no retries)",
        )
        .with_wire(cap.finish()))
    })
}

pub fn half_close(wire: &Wire) -> Outcome {
    scenario("half-close", "eof", || {
        // The actor's FIN, then the peer's data still flowing to it.
        let pattern = Pattern::default()
            .then(Side::Connect, Kind::Data)
            .then(Side::Connect, Kind::Fin)
            .then(Side::Listen, Kind::Data)
            .then(Side::Listen, Kind::Fin)
            .never(None, Kind::Rst);
        let (mut actor, mut peer, mut cap) = pair(wire, NAMES, pattern)?;
        actor.write_all(b"request")?;
        cap.mark("actor: write(7 bytes); shutdown(SHUT_WR)");
        actor.shutdown(Shutdown::Write)?; // FIN: "I am done sending"
        let r = read_until_end(&mut peer, READ_LIMIT);
        let (obs, errno) = r.observed();
        cap.mark(format!(
            "peer: read {} bytes, then read() -> {obs}",
            r.bytes
        ));
        // The peer can still send after reading EOF ...
        let reply = b"reply after your FIN";
        let sent = peer
            .write_all(reply)
            .and_then(|()| peer.shutdown(Shutdown::Write));
        // ... and the half-closed actor still receives it.
        let mut got = Vec::new();
        actor.set_read_timeout(Some(READ_LIMIT))?;
        cap.mark("peer: write(20 bytes); shutdown(SHUT_WR)");
        let recv = actor.read_to_end(&mut got);
        cap.mark(format!(
            "actor: read {} bytes after its own FIN, then EOF",
            got.len()
        ));
        let ok = r.bytes == 7 && sent.is_ok() && recv.is_ok() && got == reply;
        Ok(Outcome::judge(
            "half-close",
            "shutdown(Write) after sending a request",
            obs,
            errno,
            "eof",
            None,
            ok,
            "shutdown(SHUT_WR) sends FIN but keeps the socket open for reading: the peer sees EOF, and its reply still reaches us",
        )
        .with_details(vec![
            format!("peer read {} bytes then EOF", r.bytes),
            format!("peer write after EOF: {}", match &sent { Ok(()) => "ok".to_string(), Err(e) => e.to_string() }),
            format!(
                "actor received after its shutdown: {:?}",
                String::from_utf8_lossy(&got)
            ),
        ])
        .with_wire(cap.finish()))
    })
}
