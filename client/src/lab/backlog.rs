//! Seed 000's full listen backlog: a server that does not call `accept()`
//! fills its accept queue, and then its kernel *drops* further SYNs (it
//! does not refuse them: `tcp_abort_on_overflow` is 0). The client cannot
//! tell a full queue from a lost packet, so it sends its SYN again on a
//! timer: its `connect()` takes seconds, or fails with ETIMEDOUT when it
//! allows fewer retries (TCP_SYNCNT). Bounded: once the patient client's
//! retries have reached the back-off, the server accepts one connection
//! and the next SYN gets in.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use sockchat_shared::sockopt;
use socket2::{Domain, Protocol, Socket, Type};

use super::outcome::{Outcome, code_of, errno_cell};
use super::probe::{READ_LIMIT, accept_within, err_text, listen_with};
use super::tcptable::{LISTEN, rows_on_port, tcpext_counter};
use super::wire::{Kind, Pattern, Side, Wire};

const NAME: &str = "backlog-full";
const EXPECTED: &str = "timed-out -> connected";
/// listen(2)'s backlog: Linux queues backlog + 1 connections.
const BACKLOG: i32 = 1;
/// The impatient client's SYN retries (TCP_SYNCNT).
const IMPATIENT_SYNCNT: i32 = 1;
/// The whole scenario's bound (the patient client normally gets in after
/// about 3 s on kernels with exponential SYN back-off, 7 s on 6.6+).
const LIMIT: Duration = Duration::from_secs(20);
/// The server accepts one connection once the patient client's
/// retransmission timeout has grown to this: its next SYN then comes after
/// a longer gap than the ones before.
const BACKED_OFF_RTO: Duration = Duration::from_millis(1500);

pub fn backlog_full(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// A sysctl under /proc/sys/net/ipv4, as text (`n/a` if absent).
fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "n/a".into())
}

/// A client whose non-blocking connect is in flight.
struct Pending {
    sock: Socket,
    started: Instant,
    /// Set once the connect finished: its result and how long it took.
    done: Option<(io::Result<()>, Duration)>,
}

impl Pending {
    fn start(addr: SocketAddr, syncnt: Option<i32>) -> anyhow::Result<Pending> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        if let Some(n) = syncnt {
            sockopt::setsockopt_int(sock.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_SYNCNT, n)?;
        }
        sock.set_nonblocking(true)?;
        let started = Instant::now();
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Pending {
            sock,
            started,
            done: None,
        })
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Record the result if poll said the connect finished.
    fn check(&mut self, revents: libc::c_short) {
        if self.done.is_none() && revents != 0 {
            let r = match self.sock.take_error() {
                Ok(None) => Ok(()),
                Ok(Some(e)) | Err(e) => Err(e),
            };
            self.done = Some((r, self.started.elapsed()));
        }
    }

    /// SYNs sent again so far (TCP_INFO's total_retrans).
    fn syn_retransmissions(&self) -> u32 {
        sockopt::tcp_info(self.fd()).map_or(0, |i| i.total_retrans)
    }

    fn result_text(&self) -> String {
        match &self.done {
            None => "still connecting".into(),
            Some((Ok(()), t)) => format!("ok after {:.2}s", t.as_secs_f64()),
            Some((Err(e), t)) => format!("{} after {:.2}s", err_text(e), t.as_secs_f64()),
        }
    }

    /// (code, errno): `connected`, or the error's reason code.
    fn code(&self) -> (String, Option<i32>) {
        match &self.done {
            None => ("pending".into(), None),
            Some((Ok(()), _)) => ("connected".into(), None),
            Some((Err(e), _)) => code_of(e),
        }
    }

    fn secs(&self) -> Option<f64> {
        self.done
            .as_ref()
            .map(|(_, t)| (t.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// Wait up to `ms` for either connect to finish.
fn poll_both(a: &mut Pending, b: &mut Pending, ms: i32) -> io::Result<()> {
    // A finished socket is left out (fd -1): a failed connect leaves it
    // CLOSED, which polls as POLLHUP at once and would make this spin.
    let entry = |p: &Pending| libc::pollfd {
        fd: if p.done.is_none() { p.fd() } else { -1 },
        events: libc::POLLOUT,
        revents: 0,
    };
    let mut fds = [entry(a), entry(b)];
    // SAFETY: fds is a valid array of two pollfd for the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        return Ok(());
    }
    a.check(fds[0].revents);
    b.check(fds[1].revents);
    Ok(())
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    let l = listen_with(0, BACKLOG, |_| Ok(()))?;
    let addr = l.local_addr()?;
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .syn_growing_gaps(Side::Connect)
        .never(None, Kind::Rst);
    let mut cap = wire.capture(addr.port(), ["server", "client"], pattern)?;
    let overflows0 = tcpext_counter("ListenOverflows");
    cap.mark(format!(
        "server: listen(backlog {BACKLOG}); never accept() for now"
    ));

    // Fill the accept queue.
    let mut fill = Vec::new();
    for _ in 0..=BACKLOG {
        fill.push(TcpStream::connect(addr)?);
    }
    let deadline = Instant::now() + READ_LIMIT;
    let queued = loop {
        let q = rows_on_port(addr.port())?
            .into_iter()
            .find(|r| r.state == LISTEN)
            .map_or(0, |r| r.rx_queue);
        if q > BACKLOG as u64 || Instant::now() >= deadline {
            break q;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    cap.mark(format!(
        "clients 1-{}: connect() -> ok; accept queue {queued} (/proc/net/tcp)",
        BACKLOG + 1
    ));

    // Two more: one with the default SYN retries, one with TCP_SYNCNT 1.
    let mut patient = Pending::start(addr, None)?;
    let mut impatient = Pending::start(addr, Some(IMPATIENT_SYNCNT))?;
    cap.mark(format!(
        "patient client: connect() -> EINPROGRESS; impatient client (TCP_SYNCNT {IMPATIENT_SYNCNT}): connect() -> EINPROGRESS"
    ));
    let start = Instant::now();
    let mut accepted = Vec::new();
    let mut accepted_at = None;
    let mut impatient_retrans = 0;
    // The patient client's retransmission timeout as it changes: 1 s
    // while the kernel retries linearly, then doubling.
    let mut patient_rto: Vec<u32> = Vec::new();
    let mut marked = [false, false];
    while (patient.done.is_none() || impatient.done.is_none()) && start.elapsed() < LIMIT {
        poll_both(&mut patient, &mut impatient, 10)?;
        if impatient.done.is_none() {
            impatient_retrans = impatient.syn_retransmissions();
        }
        for (i, who, p) in [(0, "impatient", &impatient), (1, "patient", &patient)] {
            if p.done.is_some() && !marked[i] {
                marked[i] = true;
                cap.mark(format!("{who} client: connect() -> {}", p.result_text()));
            }
        }
        if accepted_at.is_none() && patient.done.is_none() {
            let rto = sockopt::tcp_info(patient.fd()).map_or(0, |i| i.rto_us);
            if patient_rto.last() != Some(&rto) {
                patient_rto.push(rto);
            }
            if Duration::from_micros(u64::from(rto)) >= BACKED_OFF_RTO {
                let (s, _) = accept_within(&l, READ_LIMIT)?;
                accepted.push(s);
                accepted_at = Some(start.elapsed());
                cap.mark(format!(
                    "server: accept() one (the patient client's RTO is now {:.1}s)",
                    f64::from(rto) / 1e6
                ));
            }
        }
    }
    let patient_retrans = patient.syn_retransmissions();
    // Take the rest (the second filler and the patient client), then
    // close clients first: nothing unread anywhere, FINs only.
    if patient.done.as_ref().is_some_and(|(r, _)| r.is_ok()) {
        for _ in 0..2 {
            accepted.push(accept_within(&l, READ_LIMIT)?.0);
        }
    }
    let overflows = overflows0
        .zip(tcpext_counter("ListenOverflows"))
        .map(|(a, b)| b.saturating_sub(a));
    let (imp_code, imp_errno) = impatient.code();
    let (pat_code, _) = patient.code();
    let (patient_secs, impatient_secs) = (patient.secs(), impatient.secs());
    let (patient_text, impatient_text) = (patient.result_text(), impatient.result_text());
    drop(patient);
    drop(impatient);
    drop(fill);
    drop(accepted);
    drop(l);
    let trace = cap.finish();

    let ok = queued == (BACKLOG + 1) as u64
        && patient_retrans >= 1
        && patient_secs.is_some_and(|s| s >= 0.9)
        && overflows.is_none_or(|d| d >= u64::from(patient_retrans));
    let rtos = patient_rto
        .iter()
        .map(|r| format!("{:.1}s", f64::from(*r) / 1e6))
        .collect::<Vec<_>>()
        .join(" -> ");
    Ok(Outcome::judge(
        NAME,
        format!("accept queue full (listen backlog {BACKLOG}, nobody accepts); two more clients connect"),
        format!("{imp_code} -> {pat_code}"),
        imp_errno,
        EXPECTED,
        Some(libc::ETIMEDOUT),
        ok,
        "a listener queues at most backlog + 1 connections that nobody has accepted; then its kernel silently drops new SYNs (no RST: tcp_abort_on_overflow is 0), so the client cannot tell a busy server from a lost packet and sends its SYN again on a timer: connect() takes seconds, and gives up with ETIMEDOUT when its SYN retries (TCP_SYNCNT, tcp_syn_retries) run out; the first SYN that finds room is answered at once",
    )
    .with_details(vec![
        format!(
            "sysctl net.ipv4: tcp_abort_on_overflow={} tcp_syn_retries={} tcp_syn_linear_timeouts={} tcp_syncookies={}",
            sysctl("tcp_abort_on_overflow"),
            sysctl("tcp_syn_retries"),
            sysctl("tcp_syn_linear_timeouts"),
            sysctl("tcp_syncookies"),
        ),
        format!("listen({BACKLOG}): the accept queue held {queued} connections (backlog + 1) before SYNs were dropped"),
        format!(
            "impatient client (TCP_SYNCNT {IMPATIENT_SYNCNT}): connect() -> {}, its SYN sent {} times",
            impatient_text,
            1 + impatient_retrans
        ),
        format!(
            "patient client (default retries): RTO {rtos}; server accepted one after {}; connect() -> {}, its SYN sent {} times",
            accepted_at.map_or("never".to_string(), |t| format!("{:.2}s", t.as_secs_f64())),
            patient_text,
            1 + patient_retrans
        ),
        format!(
            "TcpExt ListenOverflows (this network namespace, all sockets): {}; errno of the impatient client: {}",
            overflows.map_or("n/a".to_string(), |d| format!("+{d}")),
            errno_cell(imp_errno)
        ),
    ])
    .with_measured(serde_json::json!({
        "backlog": BACKLOG,
        "accept_queue_full_at": queued,
        "impatient": {
            "syncnt": IMPATIENT_SYNCNT,
            "result": imp_code,
            "errno": imp_errno,
            "connect_s": impatient_secs,
            "syns_sent": 1 + impatient_retrans,
        },
        "patient": {
            "result": pat_code,
            "connect_s": patient_secs,
            "syns_sent": 1 + patient_retrans,
            "rto_ms": patient_rto.iter().map(|r| r / 1000).collect::<Vec<_>>(),
        },
        "accepted_one_at_s": accepted_at.map(|t| (t.as_secs_f64() * 1000.0).round() / 1000.0),
        "listen_overflows_delta": overflows,
        "sysctl": {
            "tcp_abort_on_overflow": sysctl("tcp_abort_on_overflow"),
            "tcp_syn_retries": sysctl("tcp_syn_retries"),
            "tcp_syn_linear_timeouts": sysctl("tcp_syn_linear_timeouts"),
        },
    }))
    .with_wire(trace))
}
