//! Seed 001's `SO_REUSEPORT`: two listening sockets on one port, and the
//! kernel, not the application, chooses which one each new connection
//! goes to (a hash of the connection's addresses and ports). The lab makes
//! many connections and counts where they landed.

use std::collections::BTreeMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::outcome::{Outcome, code_of, errno_cell};
use super::probe::{READ_LIMIT, err_text, listen_with};
use super::wire::{Kind, Pattern, Side, Wire};

const NAME: &str = "reuseport-spread";
const EXPECTED: &str = "spread";
/// Connections to spread: enough that "all on one listener" by chance is
/// out of the question (2 * 2^-CONNECTIONS), few enough for a fast capture.
pub const CONNECTIONS: usize = 100;
/// Each listener's accept queue must hold every connection.
const BACKLOG: i32 = 256;

pub fn reuseport_spread(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// A listener on 127.0.0.1:`port`, with or without SO_REUSEPORT.
fn listen_on(port: u16, reuseport: bool) -> io::Result<TcpListener> {
    let l = listen_with(port, BACKLOG, |s| s.set_reuse_port(reuseport))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accept everything queued on `l` now (non-blocking).
fn drain(l: &TcpListener, into: &mut Vec<TcpStream>) -> io::Result<usize> {
    let mut n = 0;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                into.push(s);
                n += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
            Err(e) => return Err(e),
        }
    }
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    let a = listen_on(0, true)?;
    let port = a.local_addr()?.port();
    let b = listen_on(port, true)?;
    // A third socket that does not ask for SO_REUSEPORT is refused.
    let third = listen_on(port, false);
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .never(None, Kind::Rst);
    let mut cap = wire.capture(port, ["listeners", "client"], pattern)?;
    cap.mark(format!(
        "listener A and listener B: SO_REUSEPORT, bind(127.0.0.1:{port}) -> ok, ok; a third without SO_REUSEPORT -> {}",
        match &third {
            Ok(_) => "ok".to_string(),
            Err(e) => err_text(e),
        }
    ));
    let (third_code, third_errno) = match &third {
        Ok(_) => ("bound".to_string(), None),
        Err(e) => code_of(e),
    };
    drop(third);

    cap.mark(format!("client: {CONNECTIONS} x connect()"));
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(TcpStream::connect(("127.0.0.1", port))?);
    }
    // The handshakes are complete (connect returned); the accepts may
    // still trail the final ACKs by a moment: drain both until all are in.
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + READ_LIMIT;
    while got_a.len() + got_b.len() < CONNECTIONS && Instant::now() < deadline {
        drain(&a, &mut got_a)?;
        drain(&b, &mut got_b)?;
        std::thread::sleep(Duration::from_millis(2));
    }
    let (na, nb) = (got_a.len(), got_b.len());
    cap.mark(format!(
        "listener A: accept() x {na}; listener B: accept() x {nb}"
    ));
    // Which client port went where: the kernel hashes the 4-tuple.
    let mut by_port = BTreeMap::new();
    for (s, which) in got_a
        .iter()
        .map(|s| (s, 'A'))
        .chain(got_b.iter().map(|s| (s, 'B')))
    {
        if let Ok(p) = s.peer_addr() {
            by_port.insert(p.port(), which);
        }
    }
    let first: Vec<String> = by_port
        .iter()
        .take(12)
        .map(|(p, w)| format!("{p}->{w}"))
        .collect();
    // Clients close first, with nothing unread: FINs only.
    drop(clients);
    drop(got_a);
    drop(got_b);
    let trace = cap.finish();

    let spread = na > 0 && nb > 0 && na + nb == CONNECTIONS;
    let observed = if na + nb != CONNECTIONS {
        format!("lost ({} of {CONNECTIONS} accepted)", na + nb)
    } else if spread {
        "spread".to_string()
    } else {
        "one-listener".to_string()
    };
    Ok(Outcome::judge(
        NAME,
        format!("two SO_REUSEPORT listeners on port {port}; {CONNECTIONS} connections"),
        observed,
        None,
        EXPECTED,
        None,
        third_errno == Some(libc::EADDRINUSE),
        "with SO_REUSEPORT on every socket, several listeners share one port and the kernel picks one for each new connection by a hash of its source and destination addresses and ports, so a client's connection always lands on the same listener while different clients spread roughly evenly; each listener has its own accept queue, and a socket without SO_REUSEPORT still gets EADDRINUSE",
    )
    .with_details(vec![
        format!("listener A accepted {na}, listener B accepted {nb} of {CONNECTIONS}"),
        format!("client port -> listener (first 12): {}", first.join(" ")),
        format!(
            "bind on the same port without SO_REUSEPORT: {third_code} {}",
            errno_cell(third_errno)
        ),
    ])
    .with_measured(serde_json::json!({
        "port": port,
        "connections": CONNECTIONS,
        "listener_a": na,
        "listener_b": nb,
        "bind_without_reuseport": { "result": third_code, "errno": third_errno },
    }))
    .with_wire(trace))
}
