//! Local scenarios where a real process dies: `kill -9` in the middle of
//! sending, and a server process that stops and comes back. The dying
//! process is a lab child (`child`): what the kernel does at process exit
//! is the whole point, so an in-process close() would not be the same
//! experiment. The same kill -9 against a live server is in `remote`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::child::ChildProc;
use super::outcome::{Outcome, code_of};
use super::probe::{READ_LIMIT, accept_within, read_until_end};
use super::wire::{Kind, Pattern, Side, Wire};

/// How much the parent reads from a sending child before killing it: proof
/// that the child is really in the middle of sending.
const READ_BEFORE_KILL: u64 = 256 * 1024;

pub fn kill9_sending(wire: &Wire) -> Outcome {
    kill9(wire, "kill9-sending", false)
}

pub fn kill9_unread(wire: &Wire) -> Outcome {
    kill9(wire, "kill9-unread", true)
}

fn kill9(wire: &Wire, name: &'static str, unread: bool) -> Outcome {
    let expected = if unread { "reset" } else { "eof" };
    let run = || -> anyhow::Result<Outcome> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let pattern = if unread {
            // Our unread bytes, then the dying child's RST and no FIN.
            Pattern::default()
                .then(Side::Listen, Kind::Data)
                .then(Side::Connect, Kind::Rst)
                .never(Some(Side::Connect), Kind::Fin)
        } else {
            // The child's data, then its FIN (sent by the kernel after the
            // process is gone), and no RST anywhere.
            Pattern::default()
                .then(Side::Connect, Kind::Data)
                .then(Side::Connect, Kind::Fin)
                .never(None, Kind::Rst)
        };
        let mut cap = wire.capture(addr.port(), ["peer", "child"], pattern)?;
        let mode = if unread { "sender-unread" } else { "sender" };
        let mut child = ChildProc::spawn(mode, &addr.to_string(), None)?;
        let (mut peer, _) = accept_within(&l, Duration::from_secs(5))?;
        if unread {
            peer.write_all(b"you will never read this\n")?;
        }
        let ready = child.line(Duration::from_secs(5))?;
        anyhow::ensure!(ready == "ready", "child said {ready:?}");
        // Read a good amount so the child is provably mid-send when killed.
        peer.set_read_timeout(Some(READ_LIMIT))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut before = 0u64;
        while before < READ_BEFORE_KILL {
            let n = io::Read::read(&mut peer, &mut buf).context("read from child")?;
            anyhow::ensure!(n > 0, "child stopped sending before the kill");
            before += n as u64;
        }
        let pid = child.pid();
        cap.mark(format!(
            "parent: kill -9 child (pid {pid}) after reading {before} bytes"
        ));
        let status = child.signal_and_wait(libc::SIGKILL)?;
        let r = read_until_end(&mut peer, READ_LIMIT);
        cap.mark(format!(
            "peer: read {} more bytes, then read() -> {}",
            r.bytes,
            r.end_text()
        ));
        drop(peer);
        let (obs, errno) = r.observed();
        let action = format!(
            "kill -9 while sending{}",
            if unread {
                ", with unread data"
            } else {
                ", nothing unread"
            }
        );
        let why = if unread {
            "at exit the kernel closes the socket like close(): unread data in its receive queue turns that into RST, so the peer gets ECONNRESET"
        } else {
            "at exit the kernel closes the socket like close(): nothing unread, so it still delivers the queued data and then FIN; the peer just reads EOF"
        };
        Ok(Outcome::judge(
            name,
            action,
            obs,
            errno,
            expected,
            if unread { Some(libc::ECONNRESET) } else { None },
            true,
            why,
        )
        .with_details(vec![
            format!(
                "child pid {pid} ended by {status}; peer had read {before} bytes before the kill"
            ),
            format!(
                "after the kill the peer read {} more bytes, then {} ({:?})",
                r.bytes,
                match &r.end {
                    Ok(()) => "EOF".to_string(),
                    Err(e) => e.to_string(),
                },
                r.elapsed
            ),
        ])
        .with_wire(cap.finish()))
    };
    run().unwrap_or_else(|e| Outcome::setup_failed(name, expected, &e))
}

pub fn server_restart(wire: &Wire) -> Outcome {
    const NAME: &str = "server-restart";
    let run = || -> anyhow::Result<Outcome> {
        let mut details = Vec::new();
        let mut server = ChildProc::spawn("server", "127.0.0.1:0", None)?;
        let port: u16 = server
            .line(Duration::from_secs(5))?
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .context("server child did not report its port")?;
        let addr = format!("127.0.0.1:{port}");
        // Handshake, the stopping server's FIN, a SYN refused with RST-ACK
        // while it is down, and a new handshake after the restart.
        let pattern = Pattern::default()
            .then(Side::Connect, Kind::Syn)
            .then(Side::Listen, Kind::SynAck)
            .then(Side::Listen, Kind::Fin)
            .then(Side::Connect, Kind::Syn)
            .then(Side::Listen, Kind::RstAck)
            .then(Side::Connect, Kind::Syn)
            .then(Side::Listen, Kind::SynAck);
        let cap = wire.capture(port, ["server", "client"], pattern)?;
        let mut c = TcpStream::connect(&addr)?;
        c.set_read_timeout(Some(READ_LIMIT))?;
        let mut greet = String::new();
        BufReader::new(&c).read_line(&mut greet)?;
        details.push(format!("connected; server said {:?}", greet.trim_end()));

        // Step 1: the server process stops. Nothing unread on its side, so
        // the kernel closes its sockets with FIN.
        let status = server.signal_and_wait(libc::SIGTERM)?;
        let r = read_until_end(&mut c, READ_LIMIT);
        let (step1, _) = r.observed();
        details.push(format!("server stopped ({status}); client read: {step1}"));
        drop(c);

        // Step 2: while it is down, connect is refused.
        let down = TcpStream::connect(&addr);
        let (step2, errno2) = match &down {
            Ok(_) => ("connected".to_string(), None),
            Err(e) => code_of(e),
        };
        details.push(format!(
            "connect while down: {}",
            match &down {
                Ok(_) => "connected (?)".to_string(),
                Err(e) => e.to_string(),
            }
        ));

        // Step 3: the server comes back on the same port; reconnect works.
        let t = Instant::now();
        let server2 = ChildProc::spawn("server", &addr, None)?;
        let ready = server2.line(Duration::from_secs(5))?;
        anyhow::ensure!(
            ready.starts_with("listening"),
            "restarted server said {ready:?}"
        );
        let step3 = match TcpStream::connect(&addr) {
            Ok(c2) => {
                c2.set_read_timeout(Some(READ_LIMIT))?;
                let mut g = String::new();
                BufReader::new(&c2).read_line(&mut g)?;
                details.push(format!(
                    "reconnected {:?} after restart; server said {:?}",
                    t.elapsed(),
                    g.trim_end()
                ));
                "connected".to_string()
            }
            Err(e) => code_of(&e).0,
        };
        drop(server2);
        let trace = cap.finish();
        let observed = format!("{step1} -> {step2} -> {step3}");
        Ok(Outcome::judge(
            NAME,
            "server process stopped, then started again",
            observed,
            errno2,
            "eof -> refused -> connected",
            Some(libc::ECONNREFUSED),
            true,
            "a stopping server's kernel closes its sockets with FIN (EOF for clients); while nothing listens SYNs get RST (ECONNREFUSED); a client that retries reconnects",
        )
        .with_details(details)
        .with_wire(trace))
    };
    run().unwrap_or_else(|e| Outcome::setup_failed(NAME, "eof -> refused -> connected", &e))
}
