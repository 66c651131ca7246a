//! A UDP bot: the sockchat protocol over a *connected* UDP socket, one
//! message per datagram (`shared::udp`).
//!
//! Handshake: Hello (padded to 64 bytes) -> the server's 16-byte retry with
//! an address cookie -> Hello echoing the cookie -> Welcome. Retries are
//! rate-limited per source address by the server (anti-reflection), so
//! many UDP bots need many source addresses (`--source-ips`); a lost hello
//! or retry is simply sent again until `--connect-timeout`.
//!
//! Measurement is the same as over TCP (marker in the text), plus what only
//! UDP has: `udp_drop` drops a fraction of the bot's own outgoing datagrams
//! on purpose, and the report's loss must find them. UDP has no FIN: a bot
//! that goes away says Quit (or is timed out by the server).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use sockchat_shared::udp::{self, ServerBody};
use sockchat_shared::{ClientMsg, ServerMsg};
use tokio::net::UdpSocket;

use crate::net::udp::{HandshakeError, UdpLink, UdpOptions};

use super::bot::{BotSpec, Go, SenderMap, Shard, code, fill, on_go, record_mark};
use super::plan::Behaviour;
use super::schedule::{Schedule, mono_ns, sleep_until_ns};
use super::wake::Control;
use super::wake::Timer;

use super::wire::{self, Event, Mark};

/// Datagrams read per readiness event before yielding.
const RECVS_PER_WAKE: usize = 64;
/// Most messages sent in one wake-up.
const MAX_BATCH: u64 = 256;
/// Keepalive ping period. The server ends a session silent for 30 s by
/// default; we ping far more often so that a session the server ended
/// without our hearing it (UDP has no FIN; a Bye can be lost or stuck
/// behind a full queue) is noticed: no Pong for SILENT -> `idle-timeout`.
const KEEPALIVE: Duration = Duration::from_secs(1);
const SILENT: Duration = Duration::from_secs(5);

struct Link {
    sock: UdpSocket,
    seq: u32,
    /// The session token (the handshake's cookie), on every datagram.
    token: Option<u64>,
    max: usize,
    /// When we last received any datagram from the server.
    last_rx_ns: u64,
}

impl Link {
    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn send_msg(&mut self, msg: &ClientMsg) -> Result<(), String> {
        let seq = self.next_seq();
        let d = udp::encode_in_session(seq, self.token, msg, self.max)
            .map_err(|e| format!("udp-encode: {e}"))?;
        match self.sock.try_send(&d) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(()),
            Err(e) => Err(code(&e)),
        }
    }
}

/// Run one UDP bot to completion.
pub async fn run_udp_bot(sh: Rc<Shard>, spec: BotSpec, ramp_ns: u64) {
    let group = &sh.plan.groups[spec.group];
    tokio::select! {
        _ = sleep_until_ns(ramp_ns) => {}
        _ = sh.control.stopped(spec.slot) => {
            sh.stats.borrow_mut().attempted += 1;
            return;
        }
    }
    let mut link = match handshake(&sh, &spec, ramp_ns).await {
        Ok(l) => {
            let mut st = sh.stats.borrow_mut();
            st.attempted += 1;
            st.connected += 1;
            st.open += 1;
            st.groups[spec.group].connects += 1;
            if spec.measured {
                st.members[spec.room] += 1;
            }
            l
        }
        Err(c) => {
            let mut st = sh.stats.borrow_mut();
            st.attempted += 1;
            st.connect_errors += 1;
            let g = &mut st.groups[spec.group];
            g.connect_errors += 1;
            *g.errors.entry(c).or_default() += 1;
            return;
        }
    };
    let mut go: Option<Go> = None;
    let mut sched: Option<Schedule> = None;
    let mut trackers = SenderMap::default();
    let mut reading = true;
    let mut keepalive = mono_ns() + KEEPALIVE.as_nanos() as u64;
    // Made once, re-armed as needed (crate::bots::wake).
    let (mut stop_timer, mut send_timer, mut keepalive_timer) =
        (Timer::new(), Timer::new(), Timer::new());
    let mut seen = None;
    let end = loop {
        let generation = sh.control.generation();
        if seen != Some(generation) {
            seen = Some(generation);
            match sh.control.value() {
                Control::Stop => break None,
                Control::Go {
                    start_ns,
                    end_ns,
                    members,
                } => {
                    on_go(&sh, &spec, &mut go, &mut sched, start_ns, end_ns, members);
                }
                Control::Ramp => {}
            }
        }
        let stop_reading_at = match (&go, group.behaviour) {
            (Some(g), Behaviour::SlowReader) if reading => {
                Some(g.start_ns + group.stop_reading_after.as_nanos() as u64)
            }
            _ => None,
        };
        let send_at = sched.as_ref().and_then(|s| s.next_time());
        stop_timer.set(stop_reading_at);
        send_timer.set(send_at);
        keepalive_timer.set(Some(keepalive));
        tokio::select! {
            biased;
            _ = sh.control.changed(spec.slot, generation) => {}
            _ = stop_timer.fired(), if stop_timer.is_armed() => {
                reading = false;
            }
            r = poll_fn(|cx| link.sock.poll_recv_ready(cx)), if reading => {
                if let Err(e) = r {
                    break Some(code(&e));
                }
                if let Err(c) = recv_ready(&sh, &spec, &mut link, &mut trackers) {
                    break Some(c);
                }
            }
            _ = send_timer.fired(), if send_timer.is_armed() => {
                if let Some(s) = sched.as_mut()
                    && let Err(c) = send_due(&sh, &spec, &mut link, s, go.as_ref())
                {
                    break Some(c);
                }
            }
            _ = keepalive_timer.fired() => {
                let now = mono_ns();
                keepalive = now + KEEPALIVE.as_nanos() as u64;
                // A slow reader stops reading on purpose: it cannot hear pongs.
                if reading && now.saturating_sub(link.last_rx_ns) > SILENT.as_nanos() as u64 {
                    break Some("idle-timeout".to_string());
                }
                if let Err(c) = link.send_msg(&ClientMsg::Ping { token: keepalive }) {
                    break Some(c);
                }
            }
        }
    };
    let mut st = sh.stats.borrow_mut();
    st.open -= 1;
    match end {
        // End of run: say goodbye so the server ends the session now
        // instead of timing it out (UDP has no FIN).
        None => {
            drop(st);
            let _ = link.send_msg(&ClientMsg::Quit {
                message: "bye".into(),
            });
        }
        Some(c) => {
            *st.groups[spec.group].errors.entry(c).or_default() += 1;
        }
    }
}

/// Hello, retry with cookie, Welcome ([`UdpLink::handshake`], the client's
/// own); then Join (and leave the default room).
async fn handshake(sh: &Shard, spec: &BotSpec, sched_ns: u64) -> Result<Link, String> {
    let plan = &sh.plan;
    let server = plan.server_for(spec.n, spec.sender_k.is_some());
    let local: SocketAddr = match plan.source_ips.get(spec.n % plan.source_ips.len().max(1)) {
        Some(ip) => SocketAddr::new(*ip, 0),
        None if server.is_ipv4() => "127.0.0.1:0".parse().map_err(|_| "bad address")?,
        None => "[::1]:0".parse().map_err(|_| "bad address")?,
    };
    let room = &plan.rooms[spec.room];
    let nick = fill(&plan.nick, spec.n, room, plan.run_id);
    // The client's own link and handshake (Hello, the cookie retry,
    // Welcome), then the socket is ours for the hot path.
    let mut udp = UdpLink::connect_from(Some(local), server, UdpOptions::default())
        .await
        .map_err(|e| code(&e))?;
    udp.handshake(&nick, Duration::from_millis(100), plan.connect_timeout)
        .await
        .map_err(|e| match e {
            HandshakeError::Io(e) => code(&e),
            HandshakeError::Refused { code, .. } => super::bot::error_code_name(code),
            HandshakeError::NoAnswer { .. } => "connect-timeout".into(),
            HandshakeError::TooLarge(_) => "udp-encode".into(),
        })?;
    let max = udp.max_payload();
    let (sock, seq, token) = udp.into_parts();
    let mut link = Link {
        sock,
        seq,
        token,
        max,
        last_rx_ns: mono_ns(),
    };
    let deadline = mono_ns() + plan.connect_timeout.as_nanos() as u64;
    let mut buf = vec![0u8; 2048];
    sh.stats
        .borrow_mut()
        .connect
        .saturating_record((mono_ns().saturating_sub(sched_ns) / 1000).max(1));
    if plan.groups[spec.group].join {
        // A Join datagram can be lost like any other: wait for the server's
        // Joined for our room and send it again until then (a member that
        // silently never joined would count as loss in the report).
        let mut wait = Duration::from_millis(100);
        'join: loop {
            link.send_msg(&ClientMsg::Join { room: room.clone() })?;
            let until = (mono_ns() + wait.as_nanos() as u64).min(deadline.max(mono_ns() + 1));
            loop {
                let left = until.saturating_sub(mono_ns());
                let n = match tokio::time::timeout(
                    Duration::from_nanos(left),
                    link.sock.recv(&mut buf),
                )
                .await
                {
                    Err(_) => break,
                    Ok(Err(e)) => return Err(code(&e)),
                    Ok(Ok(n)) => n,
                };
                if let Ok(d) = udp::decode_server(&buf[..n], link.max)
                    && let ServerBody::Msg(ServerMsg::Joined { room: r, nick: who }) = d.body
                    && r == *room
                    && who == nick
                {
                    break 'join;
                }
            }
            if mono_ns() >= deadline {
                return Err("join-timeout".into());
            }
            wait = (wait * 2).min(Duration::from_secs(1));
        }
        if let Some(l) = &plan.leave_room
            && l != room
        {
            link.send_msg(&ClientMsg::Leave { room: l.clone() })?;
        }
    }
    // Only now: the join wait above reads one datagram per call.
    receive_in_batches(&link.sock);
    link.last_rx_ns = mono_ns();
    Ok(link)
}

fn send_due(
    sh: &Shard,
    spec: &BotSpec,
    link: &mut Link,
    sched: &mut Schedule,
    go: Option<&Go>,
) -> Result<(), String> {
    let plan = &sh.plan;
    let group = &plan.groups[spec.group];
    let room = &plan.rooms[spec.room];
    let now = mono_ns();
    let (first, n) = sched.due(now, MAX_BATCH);
    let per_msg = go
        .and_then(|g| g.members.get(spec.room).copied())
        .map(|m| {
            if plan.echo {
                m as u64
            } else {
                (m as u64).saturating_sub(1)
            }
        })
        .unwrap_or(0);
    let mut d = BytesMut::with_capacity(256);
    let mut st = sh.stats.borrow_mut();
    for seq in first..first + n {
        let mark = Mark {
            measured: spec.measured,
            run: plan.run_id,
            sender: spec.n as u32,
            seq,
            sched_us: sched.at(seq) / 1000,
        };
        d.clear();
        let size = group.size.pick(rand::random::<f64>());
        let dseq = link.next_seq();
        wire::write_say_datagram(&mut d, dseq, link.token, room, &mark, size);
        // The message counts as sent whether the network (or we) lose it.
        st.groups[spec.group].sent += 1;
        if spec.measured {
            st.sent += 1;
            st.expected += per_msg;
            st.timeline
                .record_send(mark.sched_us, (now / 1000).saturating_sub(mark.sched_us));
        } else {
            st.sent_unmeasured += 1;
        }
        if group.udp_drop > 0.0 && rand::random_bool(group.udp_drop) {
            st.injected_drops += 1;
            continue;
        }
        match link.sock.try_send(&d) {
            Ok(n) => st.bytes_out += n as u64,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                st.send_errors += 1;
            }
            Err(e) => return Err(code(&e)),
        }
    }
    Ok(())
}

/// The bot's receive socket for a fan-out: UDP_GRO, so that what the server
/// sent as one GSO message (a run of our datagrams) is read with one
/// `recvmsg` and cut here, and a bigger SO_RCVBUF (the default ~208 KiB
/// holds ~200 small datagrams: a burst to 1,000 bots on a busy machine
/// overflowed it, `RcvbufErrors`). Both are best effort: without them the
/// bot reads one datagram per call, as before.
fn receive_in_batches(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let _ = sockchat_shared::sockopt::setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1);
    let _ = socket2::SockRef::from(sock).set_recv_buffer_size(RCVBUF);
}

/// SO_RCVBUF of each UDP bot (the kernel doubles it, capped by rmem_max).
const RCVBUF: usize = 1 << 20;

/// A control buffer for the UDP_GRO cmsg, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// One `recvmsg`: the bytes and, when the kernel coalesced several
/// datagrams (UDP_GRO), the size they are cut by (the last may be shorter).
fn recv_gro(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut ctl = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control);
    // the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.0.as_mut_ptr().cast();
    msg.msg_controllen = ctl.0.len() as _;
    // SAFETY: msg points at `iov` (into `buf`) and `ctl`, alive for the
    // call; the kernel writes at most their lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut seg = None;
    // SAFETY: the CMSG_* walk stays inside msg_controllen, which the kernel
    // set to what it wrote into `ctl`; UDP_GRO's payload is an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                seg = usize::try_from(v).ok().filter(|&v| v > 0);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, seg))
}

fn recv_ready(
    sh: &Shard,
    spec: &BotSpec,
    link: &mut Link,
    trackers: &mut SenderMap,
) -> Result<(), String> {
    let scratch: &RefCell<Vec<u8>> = &sh.scratch;
    let mut buf = scratch.borrow_mut();
    let mut pongs = Vec::new();
    let mut bye = None;
    {
        let mut st = sh.stats.borrow_mut();
        let now = mono_ns();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&link.sock);
        for _ in 0..RECVS_PER_WAKE {
            let (n, seg) = match link
                .sock
                .try_io(tokio::io::Interest::READABLE, || recv_gro(fd, &mut buf[..]))
            {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNREFUSED here: an ICMP port-unreachable came back for
                // one of our datagrams: the server is gone.
                Err(e) => return Err(code(&e)),
            };
            st.bytes_in += n as u64;
            link.last_rx_ns = now;
            // One datagram, or several coalesced by GRO: each segment is
            // one of the server's datagrams.
            for dgram in buf[..n].chunks(seg.unwrap_or(n).max(1)) {
                let Ok((h, payload)) = udp::decode_header(dgram, link.max.max(dgram.len())) else {
                    continue;
                };
                if !h.from_server || payload.is_empty() {
                    continue;
                }
                match wire::frame_event(payload) {
                    Ok(Event::Mark { mark, history }) => {
                        let ours = !history
                            && mark.measured
                            && mark.run == sh.plan.run_id
                            && spec.measured;
                        record_mark(&mut st, trackers, &mark, ours, now);
                    }
                    Ok(Event::Ping(t)) => pongs.push(t),
                    Ok(Event::Bye(r)) => bye = Some(r),
                    Ok(Event::Other) | Err(_) => {}
                }
            }
        }
    }
    drop(buf);
    for token in pongs {
        link.send_msg(&ClientMsg::Pong { token })?;
    }
    match bye {
        Some(r) => Err(r.code()),
        None => Ok(()),
    }
}
