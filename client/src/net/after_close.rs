//! After our TCP socket is closed: the last packets of the connection (the
//! RST or FIN that `close()` sent, the peer's answer) from its capture, and
//! the socket the kernel keeps for it — TIME_WAIT, FIN_WAIT2, LAST_ACK —
//! with its timer, read with sock_diag ([`super::sock_diag`]), reported
//! as it changes until it is gone.
//!
//! The first report is awaited by the driver before it goes on (so a
//! script's `--json` has it before `finished`); the rest runs on its own
//! task, bounded in time, and ends when nobody listens.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::sock_diag::{self, KernelSocket};
use super::{AfterClose, Events, SocketEvent, UiGone, WireNews, emit};
use crate::wire::Tap;

/// The segments `close()` set off arrive within this (loopback: at once;
/// a LAN: the peer's ACK of our FIN after one round trip).
const SETTLE: Duration = Duration::from_millis(60);
/// How long the capture goes on after the close (a FIN retransmitted, the
/// peer's late FIN in FIN_WAIT2 shows up in the view).
const TAP_TAIL: Duration = Duration::from_secs(1);
/// How often the watch looks.
const POLL: Duration = Duration::from_millis(250);
/// How often the kernel is asked again.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// The watch ends after this whatever the kernel keeps (TIME_WAIT lasts
/// 60 s on Linux; FIN_WAIT2 `tcp_fin_timeout`, 60 s by default).
const WATCH_AT_MOST: Duration = Duration::from_secs(130);

/// The connection `local` -> `peer` was just closed: report its last
/// segments and what the kernel keeps, then watch in the background.
pub(super) async fn report(
    local: SocketAddr,
    peer: SocketAddr,
    mut tap: Option<Tap>,
    ev: &Events,
) -> Result<(), UiGone> {
    tokio::time::sleep(SETTLE).await;
    drain(&mut tap, ev).await?;
    let first = ask(local, peer);
    let gone = first.socket.is_none();
    let last = first.socket.clone();
    emit(ev, SocketEvent::AfterClose(Box::new(first))).await?;
    if gone && tap.is_none() {
        return Ok(());
    }
    let ev = ev.clone();
    tokio::spawn(async move {
        let _ = watch(local, peer, tap, last, &ev).await;
    });
    Ok(())
}

async fn watch(
    local: SocketAddr,
    peer: SocketAddr,
    mut tap: Option<Tap>,
    mut last: Option<KernelSocket>,
    ev: &Events,
) -> Result<(), UiGone> {
    let start = Instant::now();
    let mut asked = start;
    let mut gone = last.is_none();
    while start.elapsed() < WATCH_AT_MOST && !ev.is_closed() {
        tokio::time::sleep(POLL).await;
        drain(&mut tap, ev).await?;
        if start.elapsed() >= TAP_TAIL {
            tap = None;
        }
        if gone {
            if tap.is_none() {
                return Ok(());
            }
            continue;
        }
        if asked.elapsed() < ASK_EVERY {
            continue;
        }
        asked = Instant::now();
        let now = ask(local, peer);
        // The timer counts down by itself: only a new state (or the end)
        // is news; the UI counts the timer down between reports.
        if now.socket.as_ref().map(|k| k.state) != last.as_ref().map(|k| k.state)
            || now.error.is_some()
        {
            gone = now.socket.is_none();
            last = now.socket.clone();
            emit(ev, SocketEvent::AfterClose(Box::new(now))).await?;
        }
    }
    Ok(())
}

fn ask(local: SocketAddr, peer: SocketAddr) -> AfterClose {
    let (socket, error) = match sock_diag::lookup(local, peer) {
        Ok(k) => (k, None),
        Err(e) => (None, Some(format!("sock_diag: {e}"))),
    };
    AfterClose {
        local,
        peer,
        socket,
        error,
    }
}

/// Report what the capture took since its last report.
async fn drain(tap: &mut Option<Tap>, ev: &Events) -> Result<(), UiGone> {
    if let Some(t) = tap {
        for news in tap_news(t) {
            emit(ev, SocketEvent::Wire(Box::new(news))).await?;
        }
    }
    Ok(())
}

/// What a capture has to report now: its new segments (nothing when none
/// came), then, once, the error that stopped it.
pub(super) fn tap_news(t: &mut Tap) -> Vec<WireNews> {
    let b = t.take();
    let mut v = Vec::new();
    if !b.segments.is_empty() || b.lost > 0 {
        v.push(WireNews::Packets {
            segments: b.segments,
            lost: b.lost,
        });
    }
    if let Some(e) = b.error {
        v.push(WireNews::Off(format!("the capture stopped: {e}")));
    }
    v
}
