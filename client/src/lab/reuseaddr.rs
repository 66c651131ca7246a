//! Seed 001's `SO_REUSEADDR`: a server that closed its connections first
//! leaves TIME_WAIT sockets on its port for a minute, and a restarted
//! server cannot bind that port (EADDRINUSE 98) unless it sets
//! SO_REUSEADDR. The TIME_WAIT socket has no file descriptor any more, so
//! the lab shows it from the kernel's table, as `ss -tan` would.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::outcome::{Outcome, code_of};
use super::probe::{READ_LIMIT, accept_within, err_text, listen_with, read_until_end};
use super::tcptable::{TIME_WAIT, TcpRow, wait_row};
use super::wire::{Kind, Pattern, Side, Wire};

const NAME: &str = "reuseaddr-timewait";
const EXPECTED: &str = "eaddrinuse -> bound";

pub fn reuseaddr_time_wait(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// A listening socket on 127.0.0.1:`port`, with or without SO_REUSEADDR.
fn listen_on(port: u16, reuseaddr: bool) -> io::Result<TcpListener> {
    listen_with(port, 8, |s| s.set_reuse_address(reuseaddr))
}

/// (`bound` or the errno's code, errno) of a bind attempt.
fn bind_code(r: &io::Result<TcpListener>) -> (String, Option<i32>) {
    match r {
        Ok(_) => ("bound".into(), None),
        Err(e) => code_of(e),
    }
}

fn bind_text(r: &io::Result<TcpListener>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => err_text(e),
    }
}

/// One connection to `l` that the *server* closes first, then the
/// listener closed too: the accepted socket's port is left in TIME_WAIT.
/// Returns the TIME_WAIT row.
fn leave_time_wait(l: TcpListener, cap: &mut super::wire::Capture) -> anyhow::Result<TcpRow> {
    let addr = l.local_addr()?;
    cap.mark("client: connect()");
    let mut c = TcpStream::connect(addr)?;
    let (s, _) = accept_within(&l, READ_LIMIT)?;
    cap.mark("server: accept(); close() first (the active close keeps TIME_WAIT)");
    drop(s);
    let r = read_until_end(&mut c, READ_LIMIT);
    cap.mark(format!("client: read() -> {}; close()", r.end_text()));
    drop(c);
    cap.mark("server: close() the listener (the server stops)");
    drop(l);
    wait_row(addr.port(), TIME_WAIT, READ_LIMIT)
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    // The first server sets SO_REUSEADDR, as every server should (and
    // sockchat-server does): its TIME_WAIT sockets inherit the flag.
    let l = listen_on(0, true)?;
    let port = l.local_addr()?.port();
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .then(Side::Listen, Kind::Fin)
        .then(Side::Connect, Kind::Fin)
        // The restarted server on the same port accepts a new connection.
        .then(Side::Connect, Kind::Syn)
        .then(Side::Listen, Kind::SynAck)
        .never(None, Kind::Rst);
    let mut cap = wire.capture(port, ["server", "client"], pattern)?;
    let tw = leave_time_wait(l, &mut cap)?;
    cap.mark(format!("kernel (/proc/net/tcp): {}", tw.describe()));

    // The restart: first without SO_REUSEADDR, then with it.
    let plain = listen_on(port, false);
    let (plain_code, plain_errno) = bind_code(&plain);
    cap.mark(format!(
        "new server: bind(127.0.0.1:{port}) without SO_REUSEADDR -> {}",
        bind_text(&plain)
    ));
    drop(plain);
    let reuse = listen_on(port, true);
    let (reuse_code, reuse_errno) = bind_code(&reuse);
    cap.mark(format!(
        "new server: bind(127.0.0.1:{port}) with SO_REUSEADDR -> {}",
        bind_text(&reuse)
    ));
    // It serves: a new client gets in while the old TIME_WAIT is still there.
    let served = match &reuse {
        Ok(l2) => {
            cap.mark("client: connect() to the restarted server");
            let c = TcpStream::connect(("127.0.0.1", port));
            let s = accept_within(l2, READ_LIMIT);
            c.is_ok() && s.is_ok()
        }
        Err(_) => false,
    };
    let still = super::tcptable::rows_on_port(port)?
        .into_iter()
        .find(|r| r.state == TIME_WAIT && r.remote == tw.remote);
    drop(reuse);
    let trace = cap.finish();

    // Both sockets must say so: the TIME_WAIT of a server that did *not*
    // set SO_REUSEADDR blocks even a new socket that does (the kernel's
    // bind conflict check wants the flag on both). Not captured: its own port.
    let l3 = listen_on(0, false)?;
    let port3 = l3.local_addr()?.port();
    let mut no_cap = Wire::Off.capture(port3, ["server", "client"], Pattern::default())?;
    let tw3 = leave_time_wait(l3, &mut no_cap)?;
    let old_plain = listen_on(port3, true);
    let (old_plain_code, old_plain_errno) = bind_code(&old_plain);
    drop(old_plain);

    let observed = format!("{plain_code} -> {reuse_code}");
    let ok = served && still.is_some() && old_plain_errno == Some(libc::EADDRINUSE);
    let secs = |d: Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
    Ok(Outcome::judge(
        NAME,
        "server closed first, left TIME_WAIT on its port; a new server binds that port without, then with SO_REUSEADDR",
        observed,
        plain_errno.or(reuse_errno),
        EXPECTED,
        Some(libc::EADDRINUSE),
        ok,
        "the side that closes first keeps its end in TIME_WAIT for 60 s (2 MSL, fixed in Linux) so late segments of the old connection die there; bind() refuses a port such a socket holds (EADDRINUSE 98) unless the new socket and the old one both set SO_REUSEADDR, which is why servers set it before bind()",
    )
    .with_details(vec![
        format!("after the close, /proc/net/tcp (ss -tan): {}", tw.describe()),
        format!("bind(127.0.0.1:{port}) without SO_REUSEADDR: {plain_code} {}", super::outcome::errno_cell(plain_errno)),
        format!("bind(127.0.0.1:{port}) with SO_REUSEADDR: {reuse_code}; a new client {} while the old socket was {}",
            if served { "connected and was accepted" } else { "could NOT connect" },
            still.as_ref().map_or("gone".to_string(), |r| format!("still in {}", r.describe()))),
        format!("TIME_WAIT left by a server WITHOUT SO_REUSEADDR ({}): bind with SO_REUSEADDR: {old_plain_code} {}",
            tw3.describe(), super::outcome::errno_cell(old_plain_errno)),
    ])
    .with_measured(serde_json::json!({
        "port": port,
        "time_wait": { "local": tw.local.to_string(), "remote": tw.remote.to_string(), "timer_left_s": secs(tw.timer_left) },
        "bind_without_reuseaddr": { "result": plain_code, "errno": plain_errno },
        "bind_with_reuseaddr": { "result": reuse_code, "errno": reuse_errno },
        "restarted_server_accepted": served,
        "time_wait_still_there": still.is_some(),
        "old_socket_without_reuseaddr": { "result": old_plain_code, "errno": old_plain_errno },
    }))
    .with_wire(trace))
}
