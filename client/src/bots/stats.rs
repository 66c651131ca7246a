//! Counters and histograms. Each shard (one thread, many bots) owns one
//! [`Stats`] with no locking on the hot path; the coordinator merges them at
//! the end, and worker processes ship theirs to the parent as JSON.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::timeline::Timeline;

/// Highest latency the histograms hold (µs): one hour. Larger values are
/// clamped (saturating) rather than lost.
const MAX_US: u64 = 3_600_000_000;

#[allow(
    clippy::expect_used,
    reason = "constant bounds 1 <= MAX_US with 3 sigfig are valid"
)]
pub fn new_hist() -> Histogram<u64> {
    // 3 significant figures: p99.9 of 1.234 ms is reported as 1.23x ms.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant, valid histogram bounds")
}

/// Per-group outcome counters (the report lists them per group).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupStats {
    pub connects: u64,
    pub connect_errors: u64,
    /// Connections that ended without the bot meaning to, by reason code.
    pub errors: BTreeMap<String, u64>,
    /// Connections the bot ended on purpose, by method (churn and faults).
    pub disconnects: BTreeMap<String, u64>,
    pub sent: u64,
    /// Slow readers found closed by the server at the end (socket in
    /// CLOSE_WAIT: the server gave up on them).
    pub closed_by_server: u64,
}

/// One shard's (or worker's, or the whole run's) numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    #[serde(skip, default = "new_hist")]
    pub latency: Histogram<u64>,
    #[serde(skip, default = "new_hist")]
    pub connect: Histogram<u64>,
    /// Bots whose first connection succeeded.
    pub connected: u64,
    /// Bots whose first connection failed.
    pub connect_errors: u64,
    /// Bots that finished their first connection attempt (ramp progress).
    pub attempted: u64,
    /// Connections open right now.
    pub open: i64,
    /// Measured messages fully written to the socket.
    pub sent: u64,
    /// Unmeasured messages written (churners, flooders, faulted groups).
    pub sent_unmeasured: u64,
    /// Measured messages the schedules called for.
    pub scheduled: u64,
    /// Deliveries the sent messages should have produced.
    pub expected: u64,
    /// Unique measured deliveries received.
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Deliveries from unmeasured senders or another run (history replays).
    pub other_deliveries: u64,
    /// Bytes written by senders that are still waiting in their buffers.
    pub pending_out: u64,
    /// UDP: datagrams the bots dropped on purpose (`udp_drop`), counted
    /// as sent: the loss report should find them.
    pub injected_drops: u64,
    /// UDP: sends the kernel refused (EAGAIN/ENOBUFS), counted as sent.
    pub send_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Measured members per room at the start of the send phase.
    pub members: Vec<u32>,
    /// Monotonic ns of the last measured delivery.
    pub last_delivery_ns: u64,
    /// Live view: when the oldest of the merged snapshots was published
    /// (0 = unknown). A busy shard thread publishes late; the drain must
    /// not mistake a stale snapshot for "nothing is arriving any more".
    pub published_ns: u64,
    pub groups: Vec<GroupStats>,
    /// `--timeline`: latency per slice of scheduled time (empty without).
    #[serde(default)]
    pub timeline: Timeline,
}

impl Stats {
    pub fn new(rooms: usize, groups: usize) -> Stats {
        Stats {
            latency: new_hist(),
            connect: new_hist(),
            connected: 0,
            connect_errors: 0,
            attempted: 0,
            open: 0,
            sent: 0,
            sent_unmeasured: 0,
            scheduled: 0,
            expected: 0,
            delivered: 0,
            duplicated: 0,
            reordered: 0,
            other_deliveries: 0,
            pending_out: 0,
            injected_drops: 0,
            send_errors: 0,
            bytes_in: 0,
            bytes_out: 0,
            members: vec![0; rooms],
            last_delivery_ns: 0,
            published_ns: 0,
            groups: vec![GroupStats::default(); groups],
            timeline: Timeline::default(),
        }
    }

    /// The counters without the histograms (for the live view).
    pub fn counters(&self) -> Stats {
        let mut c = self.clone_counts();
        c.members = self.members.clone();
        c
    }

    fn clone_counts(&self) -> Stats {
        Stats {
            latency: new_hist(),
            connect: new_hist(),
            connected: self.connected,
            connect_errors: self.connect_errors,
            attempted: self.attempted,
            open: self.open,
            sent: self.sent,
            sent_unmeasured: self.sent_unmeasured,
            scheduled: self.scheduled,
            expected: self.expected,
            delivered: self.delivered,
            duplicated: self.duplicated,
            reordered: self.reordered,
            other_deliveries: self.other_deliveries,
            pending_out: self.pending_out,
            injected_drops: self.injected_drops,
            send_errors: self.send_errors,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            members: Vec::new(),
            last_delivery_ns: self.last_delivery_ns,
            published_ns: self.published_ns,
            groups: Vec::new(),
            timeline: Timeline::default(),
        }
    }

    /// Add another shard's numbers into this one.
    pub fn merge(&mut self, o: &Stats) {
        // Histograms with identical bounds always add; a failure would mean a
        // bug in new_hist, and is then visible as missing samples.
        let _ = self.latency.add(&o.latency);
        let _ = self.connect.add(&o.connect);
        self.connected += o.connected;
        self.connect_errors += o.connect_errors;
        self.attempted += o.attempted;
        self.open += o.open;
        self.sent += o.sent;
        self.sent_unmeasured += o.sent_unmeasured;
        self.scheduled += o.scheduled;
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.other_deliveries += o.other_deliveries;
        self.pending_out += o.pending_out;
        self.injected_drops += o.injected_drops;
        self.send_errors += o.send_errors;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        if self.members.len() < o.members.len() {
            self.members.resize(o.members.len(), 0);
        }
        for (a, b) in self.members.iter_mut().zip(&o.members) {
            *a += b;
        }
        self.timeline.merge(&o.timeline);
        self.last_delivery_ns = self.last_delivery_ns.max(o.last_delivery_ns);
        self.published_ns = match (self.published_ns, o.published_ns) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        if self.groups.len() < o.groups.len() {
            self.groups.resize(o.groups.len(), GroupStats::default());
        }
        for (a, b) in self.groups.iter_mut().zip(&o.groups) {
            a.connects += b.connects;
            a.connect_errors += b.connect_errors;
            a.sent += b.sent;
            a.closed_by_server += b.closed_by_server;
            for (k, v) in &b.errors {
                *a.errors.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &b.disconnects {
                *a.disconnects.entry(k.clone()).or_default() += v;
            }
        }
    }

    /// Errors summed over groups, by reason code.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for g in &self.groups {
            for (k, v) in &g.errors {
                *m.entry(k.clone()).or_default() += v;
            }
        }
        m
    }

    pub fn disconnects(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for g in &self.groups {
            for (k, v) in &g.disconnects {
                *m.entry(k.clone()).or_default() += v;
            }
        }
        m
    }
}

/// Serialize a histogram for shipping between processes (HdrHistogram V2
/// format, base64): the parent merges exact histograms, not percentiles.
pub fn hist_to_string(h: &Histogram<u64>) -> String {
    use hdrhistogram::serialization::{Serializer, V2Serializer};
    let mut buf = Vec::new();
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    base64_encode(&buf)
}

pub fn hist_from_string(s: &str) -> Option<Histogram<u64>> {
    use hdrhistogram::serialization::Deserializer;
    let bytes = base64_decode(s)?;
    Deserializer::new().deserialize(&mut &bytes[..]).ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = B64.iter().position(|&x| x == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_trip() {
        let mut h = new_hist();
        for v in [1u64, 50, 999, 12_345, 5_000_000] {
            h.saturating_record(v);
        }
        let back = hist_from_string(&hist_to_string(&h)).expect("decodes");
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..20 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)), Some(data));
        }
    }

    #[test]
    fn merge_adds() {
        let mut a = Stats::new(2, 1);
        let mut b = Stats::new(2, 1);
        a.sent = 3;
        b.sent = 4;
        b.members = vec![1, 2];
        b.groups[0].errors.insert("reset".into(), 2);
        b.latency.saturating_record(10);
        a.merge(&b);
        assert_eq!(a.sent, 7);
        assert_eq!(a.members, vec![1, 2]);
        assert_eq!(a.errors().get("reset"), Some(&2));
        assert_eq!(a.latency.len(), 1);
    }
}
