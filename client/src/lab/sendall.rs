//! Seed 002's `send` vs `sendall`: `send()` returns how many bytes the
//! kernel took, which for a large buffer and a peer that is not reading
//! is only what fits in the socket buffers; a non-blocking socket then
//! says EAGAIN. `sendall` is a loop around `send()` that blocks until the
//! kernel has taken every byte. Either way, "sent" means "queued in our
//! kernel", not "received".

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use sockchat_shared::sockopt;

use super::outcome::{Outcome, code_of};
use super::probe::{READ_LIMIT, buffered_pair, err_text};
use super::wire::{Kind, Pattern, Side, Wire};

const NAME: &str = "send-vs-sendall";
const EXPECTED: &str = "partial -> eagain -> all-sent";
/// The buffer handed to one send(): far more than both socket buffers.
pub const BUFFER: usize = 1024 * 1024;
/// Fixed buffer sizes (Linux doubles the request and stops autotuning)
/// so the partial count does not depend on the machine's memory.
const SNDBUF: usize = 64 * 1024;
const RCVBUF: usize = 64 * 1024;
/// How long the receiver keeps not reading once sendall has started.
const READER_LATE: Duration = Duration::from_millis(300);
/// Safety bound for sendall's blocking send()s (SO_SNDTIMEO).
const SEND_LIMIT: Duration = Duration::from_secs(5);

pub fn send_vs_sendall(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// `send(2)` with MSG_NOSIGNAL, as std does, but on a raw fd so the byte
/// count is the kernel's, call by call.
fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes for the duration of the call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// The kernel's view of both ends, one line.
fn queues(sender: RawFd, receiver: RawFd) -> (String, serde_json::Value) {
    let s = sockopt::tcp_snapshot(sender);
    let r = sockopt::tcp_snapshot(receiver);
    let peer_window = s.info.as_ref().and_then(|i| i.snd_wnd);
    let opt = |v: Option<u32>| v.map_or("n/a".to_string(), |x| x.to_string());
    (
        format!(
            "sender SIOCOUTQ {} peer window {} | receiver SIOCINQ {}",
            opt(s.send_queue),
            opt(peer_window),
            opt(r.recv_queue)
        ),
        serde_json::json!({
            "sender_siocoutq": s.send_queue,
            "peer_window": peer_window,
            "receiver_siocinq": r.recv_queue,
        }),
    )
}

/// Wait (bounded) until the sender's queue stops changing: the window is
/// closed and nothing more moves.
fn wait_still(fd: RawFd) -> u32 {
    let deadline = Instant::now() + READ_LIMIT;
    let mut last = u32::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let q = sockopt::send_queue(fd).unwrap_or(0);
        let closed = sockopt::tcp_info(fd)
            .ok()
            .and_then(|i| i.snd_wnd)
            .is_none_or(|w| w == 0);
        if (q == last && closed) || Instant::now() >= deadline {
            return q;
        }
        last = q;
    }
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Data)
        .then(Side::Listen, Kind::ZeroWindow)
        .then(Side::Connect, Kind::Data)
        .then(Side::Connect, Kind::Fin)
        .then(Side::Listen, Kind::Fin)
        .never(None, Kind::Rst);
    let (sender, mut receiver, mut cap) = buffered_pair(wire, RCVBUF, SNDBUF, pattern)?;
    let sndbuf = socket2::SockRef::from(&sender).send_buffer_size()?;
    let rcvbuf = socket2::SockRef::from(&receiver).recv_buffer_size()?;
    let (sfd, rfd) = (sender.as_raw_fd(), receiver.as_raw_fd());
    cap.mark("receiver: accept(), does not read yet");
    let buf: Vec<u8> = (0..BUFFER).map(byte).collect();

    // 1. Non-blocking send(): the kernel takes what fits.
    sender.set_nonblocking(true)?;
    let first = send(sfd, &buf);
    cap.mark(format!(
        "sender: send({BUFFER} bytes), non-blocking -> {}",
        match &first {
            Ok(n) => n.to_string(),
            Err(e) => err_text(e),
        }
    ));
    let first_n = first.as_ref().map_or(0, |n| *n);
    // The peer acknowledges what arrived, freeing our buffer until its
    // window is closed; then the same call finds no room at all.
    wait_still(sfd);
    let mut more = Vec::new();
    let mut off = first_n;
    let eagain = loop {
        match send(sfd, &buf[off..]) {
            Ok(n) if more.len() < 100 => {
                more.push(n);
                off += n;
            }
            Ok(_) => break None,
            Err(e) => break Some(e),
        }
    };
    let (at_eagain, at_eagain_json) = queues(sfd, rfd);
    cap.mark(format!(
        "sender: send({} bytes) -> {}{}; {at_eagain}",
        BUFFER - off,
        more.iter()
            .map(|n| format!("{n}; send() -> "))
            .collect::<String>(),
        eagain.as_ref().map_or("no error".to_string(), err_text)
    ));
    let (eagain_code, eagain_errno) = eagain
        .as_ref()
        .map_or(("no-eagain".to_string(), None), code_of);

    // 2. sendall: blocking send() in a loop until every byte is taken;
    // the receiver starts reading a little later.
    // The reader's delay counts from the moment the sendall starts (a
    // loaded machine may take a while to get there), so the sendall is
    // always blocked for at least READER_LATE.
    let (start_tx, start_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::Builder::new()
        .name("lab-sendall-reader".into())
        .spawn(move || -> io::Result<(usize, bool)> {
            // The sender's end dropped without a start: read at once.
            let _ = start_rx.recv_timeout(READ_LIMIT);
            std::thread::sleep(READER_LATE);
            let mut got = 0usize;
            let mut intact = true;
            let mut b = vec![0u8; 64 * 1024];
            receiver.set_read_timeout(Some(READ_LIMIT))?;
            loop {
                let n = receiver.read(&mut b)?;
                if n == 0 {
                    return Ok((got, intact));
                }
                intact &= b[..n].iter().enumerate().all(|(i, x)| *x == byte(got + i));
                got += n;
            }
        })?;
    sender.set_nonblocking(false)?;
    sender.set_write_timeout(Some(SEND_LIMIT))?;
    cap.mark(format!(
        "sender: sendall({} bytes left): blocking send() until all taken",
        BUFFER - off
    ));
    let t = Instant::now();
    let _ = start_tx.send(());
    let mut calls = Vec::new();
    let mut sendall_err = None;
    while off < BUFFER {
        match send(sfd, &buf[off..]) {
            Ok(n) => {
                calls.push((n, t.elapsed()));
                off += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                sendall_err = Some(e);
                break;
            }
        }
    }
    let blocked = t.elapsed();
    let left_in_kernel = sockopt::send_queue(sfd).unwrap_or(0);
    cap.mark(format!(
        "sender: sendall returned after {blocked:.1?}, {} send() call(s); {left_in_kernel} bytes still in our kernel (SIOCOUTQ)",
        calls.len()
    ));
    sender.shutdown(Shutdown::Write)?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    cap.mark(format!(
        "receiver: read {} bytes, then EOF; close()",
        got.as_ref().map_or(0, |g| g.0)
    ));
    // The receiver's socket closed with the thread; ours after its FIN.
    let mut rest = [0u8; 1];
    sender.set_read_timeout(Some(READ_LIMIT))?;
    let _ = (&sender).read(&mut rest);
    drop(sender);
    let trace = cap.finish();

    let (received, intact) = got.as_ref().map_or((0, false), |g| *g);
    let partial = first_n > 0 && first_n < BUFFER;
    let all_sent = sendall_err.is_none() && off == BUFFER;
    let observed = format!(
        "{} -> {eagain_code} -> {}",
        if partial { "partial" } else { "not-partial" },
        if all_sent { "all-sent" } else { "not-all-sent" }
    );
    let accepted: usize = first_n + more.iter().sum::<usize>();
    Ok(Outcome::judge(
        NAME,
        format!("send() of {BUFFER} bytes to a peer that is not reading, then sendall() of the rest"),
        observed,
        eagain_errno,
        EXPECTED,
        Some(libc::EAGAIN),
        partial && received == BUFFER && intact,
        "send() returns how many bytes the kernel took into the socket buffers (ours, and in flight to the peer's, until its window is 0); a non-blocking socket then answers EAGAIN and the caller must keep the rest and retry. sendall() is that retry loop on a blocking socket: it returns once every byte is queued in our kernel (not received: the peer may still be reading). On Linux one blocking send() already waits for room until everything is queued, unless a signal or SO_SNDTIMEO cuts it short, which is why sendall loops",
    )
    .with_details(vec![
        format!("SO_SNDBUF {sndbuf} B, receiver SO_RCVBUF {rcvbuf} B (both doubled by Linux)"),
        format!(
            "non-blocking send({BUFFER}) -> {first_n}; after the peer's window closed: send() -> {}{}",
            more.iter().map(|n| format!("{n}, then ")).collect::<String>(),
            eagain.as_ref().map_or("no error".to_string(), |e| e.to_string()),
        ),
        format!("at EAGAIN: {at_eagain}"),
        format!(
            "sendall: {} blocking send() call(s) returning {} in {blocked:.1?} (the receiver started reading after {READER_LATE:?}); {left_in_kernel} bytes still in our kernel when it returned{}",
            calls.len(),
            calls.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>().join(", "),
            sendall_err.as_ref().map_or(String::new(), |e| format!("; failed: {e}")),
        ),
        format!("receiver read {received} of {BUFFER} bytes, in order and intact: {intact}"),
    ])
    .with_measured(serde_json::json!({
        "buffer": BUFFER,
        "sndbuf": sndbuf,
        "rcvbuf": rcvbuf,
        "first_send": first_n,
        "more_sends_before_eagain": more,
        "accepted_before_eagain": accepted,
        "eagain_errno": eagain_errno,
        "at_eagain": at_eagain_json,
        "sendall": {
            "calls": calls.len(),
            "returns": calls.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "blocked_ms": (blocked.as_secs_f64() * 1e4).round() / 10.0,
            "siocoutq_at_return": left_in_kernel,
        },
        "received": received,
        "intact": intact,
    }))
    .with_wire(trace))
}
