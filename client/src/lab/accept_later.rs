//! Seed 000's handshake-before-accept: `accept()` does not take part in
//! the handshake. The listening socket's kernel completes it alone, the
//! client's `connect()` returns, the client's data is acknowledged and
//! queued, and all of that waits in the accept queue until the server
//! gets round to `accept()`, which then returns a connection with the data
//! already there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sockchat_shared::sockopt;

use super::outcome::Outcome;
use super::probe::{READ_LIMIT, accept_within, read_until_end};
use super::tcptable::{ESTABLISHED, LISTEN, rows_on_port};
use super::wire::{Kind, Pattern, Side, Wire};

const NAME: &str = "accept-later";
const EXPECTED: &str = "accepted-with-data";
const MESSAGE: &[u8] = b"hello before accept\n";
/// How long the "busy" server leaves the connection in its accept queue.
const BUSY: Duration = Duration::from_millis(200);

pub fn accept_later(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// Wait (bounded) until the kernel has no unacknowledged bytes on `fd`.
fn wait_acked(fd: std::os::fd::RawFd) -> Option<u32> {
    let deadline = Instant::now() + READ_LIMIT;
    loop {
        let q = sockopt::send_queue(fd).ok()?;
        if q == 0 || Instant::now() >= deadline {
            return Some(q);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    // The whole handshake, the data and its acknowledgement, all before
    // the server calls accept(); the test checks that order by the clock.
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .then(Side::Connect, Kind::Ack)
        .then(Side::Connect, Kind::Data)
        .then(Side::Listen, Kind::Ack)
        .never(None, Kind::Rst);
    let mut cap = wire.capture(addr.port(), ["server", "client"], pattern)?;
    cap.mark("server: listen(); not calling accept()");
    let t = Instant::now();
    let mut c = TcpStream::connect(addr)?;
    let connect_took = t.elapsed();
    cap.mark(format!("client: connect() -> ok after {connect_took:.1?}"));
    let client_state = sockopt::tcp_info(c.as_raw_fd())
        .map(|i| i.state_name().to_string())
        .unwrap_or_else(|e| format!("n/a ({e})"));
    c.write_all(MESSAGE)?;
    cap.mark(format!("client: write({} bytes) -> ok", MESSAGE.len()));
    let unacked = wait_acked(c.as_raw_fd());
    // For a LISTEN socket the rx_queue column is the accept queue; the
    // connection itself is already a row of its own, with the data.
    let rows = rows_on_port(addr.port())?;
    let queued = rows.iter().find(|r| r.state == LISTEN).map(|r| r.rx_queue);
    let client_addr = c.local_addr()?;
    let server_side = rows
        .iter()
        .find(|r| r.state == ESTABLISHED && r.remote == client_addr)
        .cloned();
    cap.mark(format!(
        "kernel: client's unacknowledged bytes (SIOCOUTQ) {}; listener's accept queue (/proc/net/tcp) {}; server side, not yet accepted: {}",
        unacked.map_or("n/a".into(), |q| q.to_string()),
        queued.map_or("n/a".into(), |q| q.to_string()),
        server_side.as_ref().map_or("not found".into(), |r| r.describe()),
    ));
    std::thread::sleep(BUSY);
    let (mut s, _) = accept_within(&l, READ_LIMIT)?;
    let waiting = sockopt::recv_queue(s.as_raw_fd())?;
    cap.mark(format!(
        "server: accept() after {BUSY:?} -> a connection with {waiting} bytes waiting (SIOCINQ)"
    ));
    let mut buf = [0u8; 64];
    s.set_read_timeout(Some(READ_LIMIT))?;
    let n = s.read(&mut buf)?;
    let got = buf.get(..n).unwrap_or_default().to_vec();
    cap.mark(format!("server: read() -> {n} bytes"));
    drop(s); // nothing unread: FIN
    let r = read_until_end(&mut c, READ_LIMIT);
    drop(c);
    let trace = cap.finish();

    let ok = got == MESSAGE
        && waiting as usize == MESSAGE.len()
        && client_state == "ESTABLISHED"
        && unacked == Some(0)
        && queued == Some(1)
        && server_side.as_ref().map(|r| r.rx_queue) == Some(MESSAGE.len() as u64)
        && r.end.is_ok();
    let observed = if waiting as usize == MESSAGE.len() {
        EXPECTED.to_string()
    } else {
        format!("accepted with {waiting} bytes waiting")
    };
    Ok(Outcome::judge(
        NAME,
        format!("client connects and writes {} bytes; the server calls accept() {BUSY:?} later", MESSAGE.len()),
        observed,
        None,
        EXPECTED,
        None,
        ok,
        "the kernel of the listening socket completes the three-way handshake by itself and puts the new connection in the accept queue; from then on it is ESTABLISHED on both ends, data is acknowledged and buffered, and accept() only hands over a connection that already exists, with whatever has arrived",
    )
    .with_details(vec![
        format!("client connect() returned after {connect_took:?}; client state {client_state} before any accept()"),
        format!(
            "before accept(): client's unacknowledged bytes {}, listener's accept queue {}",
            unacked.map_or("n/a".into(), |q| q.to_string()),
            queued.map_or("n/a".into(), |q| q.to_string())
        ),
        format!(
            "before accept(), /proc/net/tcp (ss -tan) already lists the server's end: {}",
            server_side.as_ref().map_or("not found".into(), |r| r.describe())
        ),
        format!("accept() after {BUSY:?}: {waiting} bytes already waiting; read() returned {:?}", String::from_utf8_lossy(&got)),
    ])
    .with_measured(serde_json::json!({
        "connect_us": connect_took.as_micros() as u64,
        "client_state_before_accept": client_state,
        "client_unacked_before_accept": unacked,
        "accept_queue_before_accept": queued,
        "server_side_before_accept": server_side.as_ref().map(|r| serde_json::json!({
            "state": sockopt::tcp_state_name(r.state),
            "recv_q": r.rx_queue,
        })),
        "accept_after_ms": BUSY.as_millis() as u64,
        "bytes_waiting_at_accept": waiting,
        "bytes_read": n,
    }))
    .with_wire(trace))
}
