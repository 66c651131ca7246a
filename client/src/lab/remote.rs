//! The actor side against a live sockchat-server (`sockchat lab --server`).
//!
//! Two text-mode connections (the server's nc-compatible mode) join a room
//! of their own: the *actor* ends its connection abruptly, the *observer*
//! reads the line the server announces (`* NICK left ROOM: REASON`). What
//! the server's kernel told it is thus observed through the product itself,
//! in the same vocabulary as everything else.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Context as _;
use sockchat_shared::{DisconnectReason, sockopt};

use super::child::ChildProc;
use super::outcome::Outcome;
use super::probe::wait_recv_queue;
use super::textconn::{TextConn, resolve};

/// How long the observer waits for the server's announcement.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(5);
/// Fail early, with a clear message, if the server is not there.
pub fn check_reachable(server: &str) -> anyhow::Result<()> {
    let addr = resolve(server)?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("cannot reach sockchat-server at {server}"))?;
    Ok(())
}

/// Unique names for this run: nicks must be letters, digits, `-_.`.
fn names(tag: &str) -> (String, String, String) {
    let pid = std::process::id();
    (
        format!("lab{pid}{tag}"),
        format!("obs{pid}{tag}"),
        format!("lab-{pid}"),
    )
}

/// Observer joins the room and is ready to see the actor's departure.
fn observer(server: &str, nick: &str, room: &str) -> anyhow::Result<TextConn> {
    let mut o = TextConn::connect(server)?;
    o.send(&format!("/nick {nick}"))?;
    o.send(&format!("/join {room}"))?;
    // Any mention of the room means the server processed our join.
    o.wait_for(Duration::from_secs(3), |l| l.contains(room))
        .with_context(|| format!("observer never saw itself join {room}; got {:?}", o.seen))?;
    Ok(o)
}

/// The actor's part after connecting: take a nick, join, be seen joining.
fn actor_join(a: &mut TextConn, o: &mut TextConn, nick: &str, room: &str) -> anyhow::Result<()> {
    a.send(&format!("/nick {nick}"))?;
    a.send(&format!("/join {room}"))?;
    o.wait_for(Duration::from_secs(3), |l| {
        l.contains(nick) && l.contains("joined")
    })
    .with_context(|| format!("observer never saw {nick} join; got {:?}", o.seen))?;
    Ok(())
}

/// The observer's verdict: the reason in `* NICK left ROOM: REASON`.
fn announced(o: &mut TextConn, nick: &str) -> (String, Option<i32>, String) {
    let prefix = format!("* {nick} left ");
    match o.wait_for(ANNOUNCE_LIMIT, |l| l.starts_with(&prefix)) {
        Some(line) => {
            let text = line.split_once(": ").map(|x| x.1).unwrap_or("");
            // The reason's contract text, parsed back by the shared
            // `DisconnectReason: FromStr`.
            match text.trim().parse::<DisconnectReason>() {
                Ok(r) => (r.code(), r.errno(), line),
                Err(_) => (format!("unparsed: {text}"), None, line),
            }
        }
        None => (
            "nothing announced".into(),
            None,
            format!("no '{prefix}...' line within {ANNOUNCE_LIMIT:?}"),
        ),
    }
}

pub fn normal_close(server: &str) -> Outcome {
    close_scenario(server, CloseKind::Normal)
}

pub fn close_unread(server: &str) -> Outcome {
    close_scenario(server, CloseKind::Unread)
}

pub fn linger_zero(server: &str) -> Outcome {
    close_scenario(server, CloseKind::LingerZero)
}

pub fn kill9_sending(server: &str) -> Outcome {
    kill9_scenario(server, false)
}

pub fn kill9_unread(server: &str) -> Outcome {
    kill9_scenario(server, true)
}

/// How the actor ends its connection.
#[derive(Debug, Clone, Copy)]
enum CloseKind {
    Normal,
    Unread,
    LingerZero,
}

fn close_scenario(server: &str, kind: CloseKind) -> Outcome {
    let (name, tag, expected, exp_errno) = match kind {
        CloseKind::Normal => ("normal-close", "n", "eof", None),
        CloseKind::Unread => ("close-unread", "u", "reset", Some(libc::ECONNRESET)),
        CloseKind::LingerZero => ("linger-zero", "z", "reset", Some(libc::ECONNRESET)),
    };
    let run = || -> anyhow::Result<Outcome> {
        let (nick, obs_nick, room) = names(tag);
        let mut o = observer(server, &obs_nick, &room)?;
        let mut a = TextConn::connect(server)?;
        actor_join(&mut a, &mut o, &nick, &room)?;
        a.drain(Duration::from_millis(300));
        let action = match kind {
            CloseKind::Normal => "close() with nothing unread",
            CloseKind::Unread => {
                // Ask for something the server answers, and leave it unread.
                a.send("/help")?;
                wait_recv_queue(a.stream.as_raw_fd(), 1, Duration::from_secs(3))
                    .context("the server never answered /help")?;
                "close() with the server's /help reply unread"
            }
            CloseKind::LingerZero => {
                socket2::SockRef::from(&a.stream).set_linger(Some(Duration::ZERO))?;
                "SO_LINGER {on, 0}, then close()"
            }
        };
        let inq = sockopt::recv_queue(a.stream.as_raw_fd()).unwrap_or(0);
        drop(a);
        let (obs, errno, line) = announced(&mut o, &nick);
        Ok(Outcome::judge(
            name,
            action,
            obs,
            errno,
            expected,
            exp_errno,
            true,
            why(kind),
        )
        .with_target(format!("live server {server}"))
        .with_details(vec![
            format!("actor SIOCINQ at close: {inq}"),
            format!("observer saw: {line}"),
        ]))
    };
    run().unwrap_or_else(|e| {
        Outcome::setup_failed(name, expected, &e).with_target(format!("live server {server}"))
    })
}

fn why(kind: CloseKind) -> &'static str {
    match kind {
        CloseKind::Normal => "the server's read() returned 0 after our FIN, and it announced EOF",
        CloseKind::Unread => {
            "closing with unread data sends RST; the server's read() failed with ECONNRESET"
        }
        CloseKind::LingerZero => {
            "SO_LINGER 0 makes close() abortive: RST, the server's read() failed with ECONNRESET"
        }
    }
}

/// Half-close against the server: we send `/who`, then shutdown(Write).
/// The server reads our command, then EOF (and announces it), and we still
/// receive its answer on the half that is open.
pub fn half_close(server: &str) -> Outcome {
    const NAME: &str = "half-close";
    let run = || -> anyhow::Result<Outcome> {
        let (nick, obs_nick, room) = names("h");
        let mut o = observer(server, &obs_nick, &room)?;
        let mut a = TextConn::connect(server)?;
        actor_join(&mut a, &mut o, &nick, &room)?;
        a.drain(Duration::from_millis(300));
        a.send("/who")?;
        a.stream.shutdown(std::net::Shutdown::Write)?;
        let (obs, errno, line) = announced(&mut o, &nick);
        // Our read half still works: the /who answer arrives, then the
        // server's own FIN.
        let who = format!("* {room} (");
        let mut got = Vec::new();
        while let Some(l) = a.line(Duration::from_secs(3)) {
            got.push(l);
        }
        let answered = got.iter().any(|l| l.starts_with(&who));
        Ok(Outcome::judge(
            NAME,
            "sent /who, then shutdown(Write)",
            obs,
            errno,
            "eof",
            None,
            answered,
            "shutdown(SHUT_WR) sends FIN but leaves our read half open: the server read our command, then EOF, and its answer still reached us",
        )
        .with_target(format!("live server {server}"))
        .with_details(vec![
            format!("observer saw: {line}"),
            format!(
                "after our FIN we received {} line(s){}",
                got.len(),
                if answered { ", including the /who answer" } else { ", but no /who answer" }
            ),
        ]))
    };
    run().unwrap_or_else(|e| {
        Outcome::setup_failed(NAME, "eof", &e).with_target(format!("live server {server}"))
    })
}

/// kill -9 of a real process that is chatting through the server.
fn kill9_scenario(server: &str, unread: bool) -> Outcome {
    let (name, expected, exp_errno) = if unread {
        ("kill9-unread", "reset", Some(libc::ECONNRESET))
    } else {
        ("kill9-sending", "eof", None)
    };
    let run = || -> anyhow::Result<Outcome> {
        let (nick, obs_nick, room) = names(if unread { "ku" } else { "ks" });
        let mut o = observer(server, &obs_nick, &room)?;
        let mode = if unread {
            "text-sender-unread"
        } else {
            "text-sender"
        };
        let mut child = ChildProc::spawn(mode, server, Some((&nick, &room)))?;
        let ready = child.line(Duration::from_secs(5))?;
        anyhow::ensure!(ready == "ready", "child said {ready:?}");
        // Proof the child is mid-send: its messages reach the room.
        let said = o
            .wait_for(Duration::from_secs(3), |l| l.contains(&format!("{nick}: ")))
            .with_context(|| {
                format!("child's messages never arrived; observer got {:?}", o.seen)
            })?;
        let pid = child.pid();
        let status = child.signal_and_wait(libc::SIGKILL)?;
        let (obs, errno, line) = announced(&mut o, &nick);
        Ok(Outcome::judge(
            name,
            format!("kill -9 while chatting{}", if unread { ", with unread data" } else { ", nothing unread" }),
            obs,
            errno,
            expected,
            exp_errno,
            true,
            if unread {
                "process exit closes the socket; unread data makes that an RST, so the server reads ECONNRESET"
            } else {
                "process exit closes the socket gracefully (FIN) when nothing is unread; the server just reads EOF"
            },
        )
        .with_target(format!("live server {server}"))
        .with_details(vec![
            format!("child {pid} was chatting ({said:?}), ended by {status}"),
            format!("observer saw: {line}"),
        ]))
    };
    run().unwrap_or_else(|e| {
        Outcome::setup_failed(name, expected, &e).with_target(format!("live server {server}"))
    })
}
