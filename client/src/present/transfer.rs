//! File-transfer events in words (plain mode, the TUI) and as JSON
//! (`--json`): offers with what to type, progress (bytes, throughput, ETA,
//! transport, and over UDP what the reliability layer did), the verified
//! end, and failures with their reason.

use serde_json::{Value, json};
use sockchat_shared::text::Severity;

use super::duration::fmt_duration;
use crate::net::transfer::{Dir, Progress, XferEvent};

/// `104,857,600`.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `45.2 MB/s` (decimal units, as network rates are).
pub fn rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} GB/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.1} MB/s", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.1} kB/s", bps / 1e3)
    } else {
        format!("{bps:.0} B/s")
    }
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

fn arrow(p: &Progress) -> String {
    match p.dir {
        Dir::Send => format!("{} -> {}", p.name, p.peer),
        Dir::Receive => format!("{} <- {}", p.name, p.peer),
    }
}

/// What the reliability layer did, for people (empty over TCP, where the
/// kernel does it).
pub fn reliability(p: &Progress) -> String {
    if let Some(s) = &p.sender
        && s.sent > 0
        && p.transport == crate::net::Transport::Udp
    {
        let rtt = s.srtt.map(fmt_duration).unwrap_or_else(|| "-".into());
        return format!(
            "; datagrams sent {}, retransmitted {} ({:.1} %), probes {}, timeouts {}, window {} B, rtt {rtt}, rto {}",
            grouped(s.sent),
            grouped(s.retransmitted),
            s.loss_rate() * 100.0,
            grouped(s.probes),
            s.timeouts,
            grouped(s.cwnd),
            fmt_duration(s.rto)
        );
    }
    if let Some(r) = &p.receiver
        && (r.duplicates > 0 || r.out_of_order > 0 || r.dropped > 0)
    {
        return format!(
            "; chunks {}, duplicates {}, out of order {}, dropped {}",
            grouped(r.chunks),
            grouped(r.duplicates),
            grouped(r.out_of_order),
            grouped(r.dropped)
        );
    }
    String::new()
}

/// The line for a transfer event (plain mode, the TUI).
pub fn line(e: &XferEvent) -> (Severity, String) {
    let (severity, text, _) = describe(e);
    (severity, text)
}

/// The JSON object for a transfer event (`--json`).
pub fn json(e: &XferEvent) -> Value {
    describe(e).2
}

/// A transfer's direction in JSON.
fn direction(d: Dir) -> &'static str {
    match d {
        Dir::Send => "send",
        Dir::Receive => "receive",
    }
}

/// `{"event": EVENT, "id", "direction", "peer", "name"}`: what most events
/// say first.
fn head(event: &str, id: u64, dir: Dir, peer: &str, name: &str) -> Value {
    json!({"event": event, "id": id, "direction": direction(dir), "peer": peer, "name": name})
}

fn progress_json(event: &str, p: &Progress) -> Value {
    let mut v = head(event, p.id, p.dir, &p.peer, &p.name);
    v["size"] = json!(p.size);
    v["bytes"] = json!(p.bytes);
    v["elapsed_ms"] = json!(p.elapsed.as_millis() as u64);
    v["bytes_per_sec"] = json!(p.rate().round() as u64);
    v["eta_ms"] = json!(p.eta().map(|d| d.as_millis() as u64));
    v["transport"] = json!(p.transport.to_string());
    if let Some(s) = &p.sender {
        v["datagrams_sent"] = json!(s.sent);
        v["retransmitted"] = json!(s.retransmitted);
        v["probes"] = json!(s.probes);
        v["timeouts"] = json!(s.timeouts);
        v["cwnd"] = json!(s.cwnd);
        v["srtt_us"] = json!(s.srtt.map(|d| d.as_micros() as u64));
        v["rto_ms"] = json!(s.rto.as_millis() as u64);
    }
    if let Some(r) = &p.receiver {
        v["chunks"] = json!(r.chunks);
        v["duplicates"] = json!(r.duplicates);
        v["out_of_order"] = json!(r.out_of_order);
        v["dropped"] = json!(r.dropped);
    }
    v
}

/// One transfer event, in words and as JSON: each event's fields are read
/// in one place, so the two forms cannot drift apart.
fn describe(e: &XferEvent) -> (Severity, String, Value) {
    use Severity::{Error, Notice};
    match e {
        XferEvent::Offered {
            id,
            from,
            name,
            size,
            sha256,
        } => (
            Notice,
            format!(
                "* {from} offers you {name} ({} B, SHA-256 {}…): /accept {id} or /decline {id}",
                grouped(*size),
                short(sha256)
            ),
            json!({"event": "transfer-offered", "id": id, "from": from, "name": name, "size": size, "sha256": sha256}),
        ),
        XferEvent::OfferSent {
            id,
            to,
            name,
            size,
            sha256,
        } => (
            Notice,
            format!(
                "* transfer {id}: offered {name} ({} B, SHA-256 {}…) to {to}; waiting for an answer (/cancel {id})",
                grouped(*size),
                short(sha256)
            ),
            json!({"event": "transfer-offer-sent", "id": id, "to": to, "name": name, "size": size, "sha256": sha256}),
        ),
        XferEvent::Started {
            id,
            dir,
            peer,
            name,
            size,
            transport,
        } => {
            let mut v = head("transfer-started", *id, *dir, peer, name);
            v["size"] = json!(size);
            v["transport"] = json!(transport.to_string());
            let text = match dir {
                Dir::Send => format!(
                    "* transfer {id}: {peer} accepted; sending {name} ({} B)",
                    grouped(*size)
                ),
                Dir::Receive => format!(
                    "* transfer {id}: receiving {name} ({} B) from {peer}",
                    grouped(*size)
                ),
            };
            (Notice, text, v)
        }
        XferEvent::Progress(p) => {
            let pct = (p.bytes as f64 * 100.0 / p.size.max(1) as f64).min(100.0);
            let eta = p.eta().map(fmt_duration).unwrap_or_else(|| "-".into());
            (
                Notice,
                format!(
                    "* transfer {} {}: {} / {} B ({pct:.0} %), {}, ETA {eta}, {}{}",
                    p.id,
                    arrow(p),
                    grouped(p.bytes),
                    grouped(p.size),
                    rate(p.rate()),
                    p.transport,
                    reliability(p)
                ),
                progress_json("transfer-progress", p),
            )
        }
        XferEvent::Done {
            progress: p,
            sha256,
            saved,
        } => {
            let how = format!(
                "{} B in {} ({}, {})",
                grouped(p.size),
                fmt_duration(p.elapsed),
                rate(p.rate()),
                p.transport
            );
            let lost = match &p.sender {
                Some(s) if s.retransmitted > 0 => format!(
                    "; lost {:.1} % of datagrams, all recovered, file intact",
                    s.loss_rate() * 100.0
                ),
                _ => String::new(),
            };
            let text = match (p.dir, saved) {
                (Dir::Receive, Some(path)) => format!(
                    "* transfer {}: received {} from {}: {how}, SHA-256 verified, saved to {}{}",
                    p.id,
                    p.name,
                    p.peer,
                    path.display(),
                    reliability(p)
                ),
                _ => format!(
                    "* transfer {}: sent {} to {}: {how}, SHA-256 verified by {}{lost}{}",
                    p.id,
                    p.name,
                    p.peer,
                    p.peer,
                    reliability(p)
                ),
            };
            let mut v = progress_json("transfer-done", p);
            v["sha256"] = json!(sha256);
            v["verified"] = json!(true);
            v["saved"] = json!(saved.as_ref().map(|p| p.display().to_string()));
            (Notice, text, v)
        }
        XferEvent::Paused {
            id,
            dir,
            peer,
            name,
            bytes,
            why,
        } => {
            let mut v = head("transfer-paused", *id, *dir, peer, name);
            v["bytes"] = json!(bytes);
            v["why"] = json!(why);
            let text = format!(
                "! transfer {id} ({name}, {peer}): paused at {} B: {why}",
                grouped(*bytes)
            );
            (Error, text, v)
        }
        XferEvent::Resumed {
            id,
            dir,
            peer,
            name,
            offset,
        } => {
            let mut v = head("transfer-resumed", *id, *dir, peer, name);
            v["offset"] = json!(offset);
            let (doing, way) = match dir {
                Dir::Send => ("sending", "to"),
                Dir::Receive => ("receiving", "from"),
            };
            let text = format!(
                "* transfer {id}: resumed {doing} {name} {way} {peer} from {} B",
                grouped(*offset)
            );
            (Notice, text, v)
        }
        XferEvent::Failed {
            id,
            dir,
            peer,
            name,
            why,
        } => {
            let mut v = head("transfer-failed", *id, *dir, peer, name);
            v["why"] = json!(why);
            let text = if *id == 0 {
                format!("! transfer: {why}")
            } else {
                format!("! transfer {id} ({name}, {peer}): {why}")
            };
            (Error, text, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(104_857_600), "104,857,600");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(rate(45_200_000.0), "45.2 MB/s");
    }
}
