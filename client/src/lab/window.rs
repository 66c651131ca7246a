//! Receiver stops reading: flow control, not an error. The receiver's
//! buffer fills, it advertises a zero window, the sender's send queue fills,
//! and then a write blocks; only our own send timeout turns that into an
//! error (EAGAIN). The connection itself stays healthy.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sockchat_shared::sockopt;

use super::outcome::{Outcome, code_of};
use super::probe::buffered_pair;
use super::wire::{Kind, Pattern, Side, Wire};

/// Small buffers make the window close within milliseconds on loopback.
const RCVBUF: usize = 16 * 1024;
const SNDBUF: usize = 16 * 1024;
const SAMPLES: usize = 8;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

pub fn zero_window(wire: &Wire) -> Outcome {
    run(wire).unwrap_or_else(|e| Outcome::setup_failed("zero-window", "eagain", &e))
}

fn run(wire: &Wire) -> anyhow::Result<Outcome> {
    // Data until the receiver's window is 0, then the sender's probes into
    // the closed window (each answered with win 0 again).
    let pattern = Pattern::default()
        .then(Side::Connect, Kind::Data)
        .then(Side::Listen, Kind::ZeroWindow)
        .then(Side::Connect, Kind::Probe)
        .then(Side::Connect, Kind::Probe)
        .never(None, Kind::Rst);
    let (mut sender, receiver, mut cap) = buffered_pair(wire, RCVBUF, SNDBUF, pattern)?;
    // The receiver never reads from here on.
    cap.mark("receiver: accept(), then never read()");

    sender.set_nonblocking(true)?;
    let chunk = vec![b'w'; 16 * 1024];
    let mut written = 0u64;
    let mut details = Vec::new();
    let mut zero_seen = false;
    let mut outq_hist = Vec::new();
    let start = Instant::now();
    for _ in 0..SAMPLES {
        // Fill whatever room there is, then look at both kernels' view.
        loop {
            match sender.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let s = sockopt::tcp_snapshot(sender.as_raw_fd());
        let r = sockopt::tcp_snapshot(receiver.as_raw_fd());
        let si = s.info.clone().unwrap_or_default();
        let ri = r.info.clone().unwrap_or_default();
        let peer_wnd = s.info.as_ref().and_then(|i| i.snd_wnd);
        zero_seen |= peer_wnd == Some(0);
        outq_hist.push(s.send_queue.unwrap_or(0));
        let opt = |v: Option<u32>| v.map_or("n/a".to_string(), |x| x.to_string());
        details.push(format!(
            "t={:.1}s written={written} sender: SIOCOUTQ={} peer_window={} probes={} backoff={} | receiver: SIOCINQ={} our_window={}",
            start.elapsed().as_secs_f32(),
            opt(s.send_queue),
            opt(peer_wnd),
            si.probes,
            si.backoff,
            opt(r.recv_queue),
            opt(ri.rcv_wnd),
        ));
        std::thread::sleep(SAMPLE_EVERY);
    }
    // Kernels before 6.2 do not report the peer's window: fall back to the
    // send queue standing still over the last samples.
    let stalled = outq_hist.len() >= 3
        && outq_hist[outq_hist.len() - 3..]
            .windows(2)
            .all(|w| w[0] == w[1] && w[0] > 0);
    let have_wnd = sockopt::tcp_info(sender.as_raw_fd())
        .ok()
        .and_then(|i| i.snd_wnd)
        .is_some();
    let window_closed = if have_wnd { zero_seen } else { stalled };

    sender.set_nonblocking(false)?;
    sender.set_write_timeout(Some(WRITE_TIMEOUT))?; // SO_SNDTIMEO
    let t = Instant::now();
    let res = sender.write(&chunk);
    let took = t.elapsed();
    cap.mark(format!(
        "sender: blocking write() -> {} after {took:.1?}",
        match &res {
            Ok(n) => format!("ok {n}"),
            Err(e) => super::probe::err_text(e),
        }
    ));
    let (obs, errno) = match &res {
        Ok(n) => (format!("ok ({n} bytes)"), None),
        Err(e) => code_of(e),
    };
    details.push(format!(
        "blocking write with SO_SNDTIMEO={WRITE_TIMEOUT:?}: {} after {took:?}; state still {}",
        match &res {
            Ok(n) => format!("wrote {n}"),
            Err(e) => e.to_string(),
        },
        sockopt::tcp_info(sender.as_raw_fd())
            .map(|i| i.state_name())
            .unwrap_or("n/a"),
    ));
    // Still open while the capture waits for the probes.
    let trace = cap.finish();
    drop(receiver);
    Ok(Outcome::judge(
        "zero-window",
        "receiver stops reading; sender keeps writing",
        obs,
        errno,
        "eagain",
        Some(libc::EAGAIN),
        window_closed,
        "a full receive buffer advertises window 0 and the sender's queue fills; write() then blocks forever unless a send timeout turns it into EAGAIN; nothing is broken, the kernel keeps probing the window",
    )
    .with_details(details)
    .with_wire(trace))
}
