//! A file transfer's events back from the objects `--json` prints for them
//! (`transfer-offered` ... `transfer-failed`), so a replay shows the offers,
//! the progress bars and their ends. Times come back at the precision
//! `--json` gives them (ms; the RTT in µs).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sockchat_shared::rudp::{ReceiverStats, SenderStats};

use super::fields::{Obj, T_MAX_US, ms, num, text};
use crate::net::Transport;
use crate::net::transfer::{Dir, Progress, XferEvent};

fn dir(o: &Obj) -> Result<Dir, String> {
    match text(o, "direction")?.as_str() {
        "send" => Ok(Dir::Send),
        "receive" => Ok(Dir::Receive),
        d => Err(format!("\"direction\" {d:?} is not send or receive")),
    }
}

fn progress(o: &Obj) -> Result<Progress, String> {
    let has = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    Ok(Progress {
        id: num(o, "id")?,
        dir: dir(o)?,
        peer: text(o, "peer")?,
        name: text(o, "name")?,
        size: num(o, "size")?,
        bytes: num(o, "bytes")?,
        elapsed: ms(o, "elapsed_ms")?,
        transport: match text(o, "transport")?.as_str() {
            "udp" => Transport::Udp,
            _ => Transport::Tcp,
        },
        sender: if has("datagrams_sent") {
            Some(SenderStats {
                sent: num(o, "datagrams_sent")?,
                retransmitted: num(o, "retransmitted")?,
                // Recordings before the loss probe have no "probes".
                probes: if has("probes") { num(o, "probes")? } else { 0 },
                timeouts: num(o, "timeouts")?,
                cwnd: num(o, "cwnd")?,
                srtt: match o.get("srtt_us") {
                    Some(v) if !v.is_null() => {
                        Some(Duration::from_micros(num(o, "srtt_us")?.min(T_MAX_US)))
                    }
                    _ => None,
                },
                rto: ms(o, "rto_ms")?,
            })
        } else {
            None
        },
        receiver: if has("chunks") {
            Some(ReceiverStats {
                chunks: num(o, "chunks")?,
                duplicates: num(o, "duplicates")?,
                out_of_order: num(o, "out_of_order")?,
                dropped: num(o, "dropped")?,
            })
        } else {
            None
        },
    })
}

/// The transfer event of kind `kind`; `None` for another kind.
pub fn event(kind: &str, o: &Obj) -> Result<Option<XferEvent>, String> {
    Ok(Some(match kind {
        "transfer-offered" => XferEvent::Offered {
            id: num(o, "id")?,
            from: text(o, "from")?,
            name: text(o, "name")?,
            size: num(o, "size")?,
            sha256: text(o, "sha256")?,
        },
        "transfer-offer-sent" => XferEvent::OfferSent {
            id: num(o, "id")?,
            to: text(o, "to")?,
            name: text(o, "name")?,
            size: num(o, "size")?,
            sha256: text(o, "sha256")?,
        },
        "transfer-started" => XferEvent::Started {
            id: num(o, "id")?,
            dir: dir(o)?,
            peer: text(o, "peer")?,
            name: text(o, "name")?,
            size: num(o, "size")?,
            transport: match text(o, "transport")?.as_str() {
                "udp" => Transport::Udp,
                _ => Transport::Tcp,
            },
        },
        "transfer-progress" => XferEvent::Progress(progress(o)?),
        "transfer-done" => XferEvent::Done {
            progress: progress(o)?,
            sha256: text(o, "sha256")?,
            saved: o.get("saved").and_then(Value::as_str).map(PathBuf::from),
        },
        "transfer-paused" => XferEvent::Paused {
            id: num(o, "id")?,
            dir: dir(o)?,
            peer: text(o, "peer")?,
            name: text(o, "name")?,
            bytes: num(o, "bytes")?,
            why: text(o, "why")?,
        },
        "transfer-resumed" => XferEvent::Resumed {
            id: num(o, "id")?,
            dir: dir(o)?,
            peer: text(o, "peer")?,
            name: text(o, "name")?,
            offset: num(o, "offset")?,
        },
        "transfer-failed" => XferEvent::Failed {
            id: num(o, "id")?,
            dir: dir(o)?,
            peer: text(o, "peer")?,
            name: text(o, "name")?,
            why: text(o, "why")?,
        },
        _ => return Ok(None),
    }))
}
