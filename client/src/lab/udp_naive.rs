//! Seed 004's naive UDP file sender: 8,000-byte datagrams fired as fast
//! as `send()` returns, into a receiver that does not keep up. Every
//! `send()` succeeds; the receiving kernel queues datagrams until the
//! socket's receive buffer is full and then drops each new one, counting it
//! in the socket's `drops` column of `/proc/net/udp`. Nothing tells the
//! sender. Two rounds: the seed's setup (default buffer, a receiver that
//! only stores what it reads) and a small buffer with a slow reader.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sockchat_shared::udp::procfs;

use super::outcome::Outcome;
use super::tcptable::snmp_counter;

const NAME: &str = "udp-naive-sender";
const EXPECTED: &str = "all-sent -> dropped";
/// The seed's datagram size (its file read size).
pub const DATAGRAM: usize = 8000;
/// 8 MB in all: at most `netdev_max_backlog` (1000) datagrams, so
/// loopback's own input queue cannot drop any; only the socket can.
pub const COUNT: u32 = 1000;
/// The slow round's SO_RCVBUF request (Linux doubles it for overhead).
const SMALL_RCVBUF: usize = 32 * 1024;
/// The slow reader's work per datagram (a disk write, say).
const SLOW_READ: Duration = Duration::from_micros(200);
/// The receiver stops after this long without a datagram.
const QUIET: Duration = Duration::from_millis(300);
/// Bound for one round's reader.
const ROUND_LIMIT: Duration = Duration::from_secs(5);

pub fn naive_sender() -> Outcome {
    run().unwrap_or_else(|e| Outcome::setup_failed(NAME, EXPECTED, &e))
}

/// What one round found.
struct Round {
    label: &'static str,
    rcvbuf: usize,
    sent_ok: u32,
    send_errors: u32,
    send_time: Duration,
    received: u32,
    drops: Option<u64>,
    /// Runs of missing sequence numbers, `(first, last)`.
    lost: Vec<(u32, u32)>,
}

impl Round {
    fn fraction(&self) -> f64 {
        f64::from(self.received) / f64::from(COUNT)
    }

    /// Every datagram is accounted for: read, or counted as dropped by
    /// the receiving socket.
    fn accounted(&self) -> bool {
        self.drops == Some(u64::from(COUNT - self.received)) && self.sent_ok == COUNT
    }

    fn line(&self) -> String {
        let ranges: Vec<String> = self
            .lost
            .iter()
            .take(6)
            .map(|(a, b)| {
                if a == b {
                    format!("{a}")
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        format!(
            "{}: SO_RCVBUF {} B; sent {}/{COUNT} datagrams of {DATAGRAM} B in {:.1?} (every send() ok: {}); received {} = {:.1} %; /proc/net/udp drops {}; lost in {} runs{}{}",
            self.label,
            self.rcvbuf,
            self.sent_ok,
            self.send_time,
            self.send_errors == 0,
            self.received,
            100.0 * self.fraction(),
            self.drops.map_or("n/a".into(), |d| d.to_string()),
            self.lost.len(),
            if ranges.is_empty() {
                String::new()
            } else {
                format!(": {}", ranges.join(", "))
            },
            if self.lost.len() > 6 { ", ..." } else { "" },
        )
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rcvbuf": self.rcvbuf,
            "sent": self.sent_ok,
            "send_errors": self.send_errors,
            "send_ms": (self.send_time.as_secs_f64() * 1e4).round() / 10.0,
            "received": self.received,
            "fraction": (self.fraction() * 1e4).round() / 1e4,
            "drops": self.drops,
            "lost_runs": self.lost.len(),
        })
    }
}

/// Runs of `false` in `got`.
fn missing_runs(got: &[bool]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &g) in got.iter().enumerate() {
        let i = i as u32;
        match (g, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, got.len() as u32 - 1));
    }
    out
}

fn round(
    label: &'static str,
    rcvbuf: Option<usize>,
    per_datagram: Duration,
) -> anyhow::Result<Round> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    if let Some(b) = rcvbuf {
        socket2::SockRef::from(&rx).set_recv_buffer_size(b)?;
    }
    let rcvbuf = socket2::SockRef::from(&rx).recv_buffer_size()?;
    rx.set_read_timeout(Some(QUIET))?;
    let to = rx.local_addr()?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(to)?;
    let reader = {
        let rx = rx.try_clone()?;
        std::thread::Builder::new()
            .name("lab-udp-reader".into())
            .spawn(move || {
                let mut got = vec![false; COUNT as usize];
                let mut buf = vec![0u8; DATAGRAM + 64];
                let start = Instant::now();
                while start.elapsed() < ROUND_LIMIT {
                    match rx.recv(&mut buf) {
                        Ok(n) if n >= 4 => {
                            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                            if let Some(g) = got.get_mut(seq as usize) {
                                *g = true;
                            }
                            if !per_datagram.is_zero() {
                                std::thread::sleep(per_datagram);
                            }
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // Quiet for QUIET: the sender is done.
                        Err(_) => break,
                    }
                }
                got
            })?
    };
    // Fire and forget, as the seed does: no pacing, no acknowledgement.
    let mut buf = vec![b'f'; DATAGRAM];
    let (mut sent_ok, mut send_errors) = (0, 0);
    let t = Instant::now();
    for seq in 0..COUNT {
        buf[..4].copy_from_slice(&seq.to_be_bytes());
        match tx.send(&buf) {
            Ok(n) if n == DATAGRAM => sent_ok += 1,
            _ => send_errors += 1,
        }
    }
    let send_time = t.elapsed();
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    // Read while the socket still exists: the row goes with it.
    let drops = procfs::row_for_fd(rx.as_raw_fd())?.map(|r| r.drops);
    Ok(Round {
        label,
        rcvbuf,
        sent_ok,
        send_errors,
        send_time,
        received: got.iter().filter(|g| **g).count() as u32,
        drops,
        lost: missing_runs(&got),
    })
}

/// How much receive buffer one datagram costs: fire `n` datagrams at a
/// default socket nobody reads and compare what the kernel queued with
/// what it charged (`/proc/net/udp` rx_queue is the charged memory).
/// (queued, charged bytes, dropped).
fn buffer_cost(n: u32) -> anyhow::Result<(u64, u64, u64)> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    let buf = vec![b'c'; DATAGRAM];
    for _ in 0..n {
        tx.send(&buf)?;
    }
    let row = procfs::row_for_fd(rx.as_raw_fd())?
        .ok_or_else(|| anyhow::anyhow!("our UDP socket is not in /proc/net/udp"))?;
    Ok((
        u64::from(n).saturating_sub(row.drops),
        row.rx_queue,
        row.drops,
    ))
}

fn run() -> anyhow::Result<Outcome> {
    let (queued, charged, _) = buffer_cost(100)?;
    let per = charged.checked_div(queued).unwrap_or(0);
    let errors0 = snmp_counter("Udp", "RcvbufErrors");
    let seed = round(
        "seed's receiver (default buffer, stores what it reads)",
        None,
        Duration::ZERO,
    )?;
    let slow = round(
        "slow receiver (small buffer, 200 µs per datagram)",
        Some(SMALL_RCVBUF),
        SLOW_READ,
    )?;
    let errors = errors0
        .zip(snmp_counter("Udp", "RcvbufErrors"))
        .map(|(a, b)| b.saturating_sub(a));
    let sender = if seed.send_errors + slow.send_errors == 0 {
        "all-sent"
    } else {
        "send-errors"
    };
    let receiver = if slow.received < COUNT && slow.accounted() {
        "dropped".to_string()
    } else if slow.received == COUNT {
        "all-received".to_string()
    } else {
        format!(
            "unaccounted ({} received + {} dropped != {COUNT})",
            slow.received,
            slow.drops.map_or("n/a".into(), |d| d.to_string())
        )
    };
    Ok(Outcome::judge(
        NAME,
        format!("{COUNT} datagrams of {DATAGRAM} B fired at a receiver, twice: the seed's setup, then a small buffer and a slow reader"),
        format!("{sender} -> {receiver}"),
        None,
        EXPECTED,
        None,
        seed.accounted() && per > DATAGRAM as u64,
        "UDP has no flow control: send() only hands the datagram to the kernel, which on loopback delivers it at once, and the receiving socket queues it only while its receive buffer (SO_RCVBUF, charged with each datagram's whole buffer, not just its payload) has room; every further datagram is dropped and counted in /proc/net/udp's drops column, and the sender is never told. The seed's receiver lost the tail for the same reason. sockchat's reliable UDP (shared/src/rudp.rs) numbers each chunk, the receiver acknowledges what it holds (cumulative plus selective ranges), and the sender keeps no more than a window in flight (AIMD congestion window under the window the receiver grants) and retransmits what is not acknowledged in time: a slow receiver slows the sender instead of losing data",
    )
    .with_details(vec![
        format!(
            "a socket nobody reads (default SO_RCVBUF {} B): {queued} of 100 datagrams queued, {charged} B charged = {per} B of buffer per {DATAGRAM}-B datagram",
            seed.rcvbuf
        ),
        seed.line(),
        slow.line(),
        format!(
            "Udp RcvbufErrors (this network namespace, all sockets): {}",
            errors.map_or("n/a".to_string(), |d| format!("+{d}"))
        ),
    ])
    .with_measured(serde_json::json!({
        "datagram": DATAGRAM,
        "count": COUNT,
        "seed": seed.to_json(),
        "slow": slow.to_json(),
        "rcvbuf_errors_delta": errors,
        "unread_socket": { "queued": queued, "charged": charged, "per_datagram": per },
    })))
}

#[cfg(test)]
mod tests {
    use super::missing_runs;

    #[test]
    fn runs_of_missing_numbers() {
        assert_eq!(
            missing_runs(&[true, false, false, true, false]),
            [(1, 2), (4, 4)]
        );
        assert!(missing_runs(&[true, true]).is_empty());
    }
}
