//! Latency over time (`--timeline WIDTH`): deliveries counted per slice of
//! *scheduled send time*, with their worst and mean latency and how many
//! were late (over 1 ms, over 10 ms).
//!
//! One histogram for the whole run says how bad the tail is; it cannot say
//! when. A p99 made of one 40 ms stall in a 5 s run and one made of many
//! small delays look the same in it. The slices tell them apart: a stall
//! shows as a slice whose `max_us` reaches back to the slice where the
//! stalled messages were scheduled, and its position (the first moments
//! of the send phase, once a second, at random) points at the cause.
//!
//! Slices are keyed by absolute CLOCK_MONOTONIC time (the clock every
//! shard and worker process shares), so shards and workers merge by
//! adding slice to slice. Recording is one division and four adds per
//! delivery, and nothing at all without `--timeline`.

use serde::{Deserialize, Serialize};

/// Most slices kept (an hour of 100 ms slices); deliveries scheduled past
/// the last slot are not counted in the timeline (the histogram has them).
pub const MAX_SLICES: usize = 36_000;

/// One slice of scheduled time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// Deliveries of messages scheduled in this slice.
    pub n: u64,
    /// Their latencies summed (µs), for the mean.
    pub sum_us: u64,
    pub max_us: u64,
    /// Deliveries later than 1 ms, and than 10 ms.
    pub over_1ms: u64,
    pub over_10ms: u64,
    /// Measured messages scheduled in this slice that the bots generated
    /// (queued to their socket; over UDP, sent), and the latest of them (µs
    /// after its scheduled time): that delay is the generator's, not the
    /// server's, and the latency includes it. (A message the socket does
    /// not take at once waits on: the report's `unsent` counts those.)
    #[serde(default)]
    pub sent: u64,
    #[serde(default)]
    pub send_late_max_us: u64,
}

/// The slices of one shard, worker or run. Empty and inert when
/// `width_us` is 0 (no `--timeline`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub width_us: u64,
    /// Absolute index (scheduled µs / width) of `slices[0]`.
    pub first: u64,
    pub slices: Vec<Slice>,
}

/// One row of the report: a slice, its start relative to the first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub t_ms: f64,
    pub n: u64,
    pub mean_us: u64,
    pub max_us: u64,
    pub over_1ms: u64,
    pub over_10ms: u64,
    pub sent: u64,
    pub send_late_max_us: u64,
}

impl Timeline {
    pub fn new(width_us: u64) -> Timeline {
        Timeline {
            width_us,
            first: 0,
            slices: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.width_us > 0
    }

    /// Count one delivery of a message scheduled at `sched_us` that took
    /// `lat_us`.
    pub fn record(&mut self, sched_us: u64, lat_us: u64) {
        let Some(s) = self.slice_of(sched_us) else {
            return;
        };
        s.n += 1;
        s.sum_us = s.sum_us.saturating_add(lat_us);
        s.max_us = s.max_us.max(lat_us);
        s.over_1ms += u64::from(lat_us > 1_000);
        s.over_10ms += u64::from(lat_us > 10_000);
    }

    /// Count one measured message scheduled at `sched_us` and written to
    /// the socket `late_us` after that.
    pub fn record_send(&mut self, sched_us: u64, late_us: u64) {
        let Some(s) = self.slice_of(sched_us) else {
            return;
        };
        s.sent += 1;
        s.send_late_max_us = s.send_late_max_us.max(late_us);
    }

    /// The slice holding scheduled time `sched_us`; `None` without
    /// `--timeline` or past [`MAX_SLICES`].
    fn slice_of(&mut self, sched_us: u64) -> Option<&mut Slice> {
        let at = sched_us.checked_div(self.width_us)?;
        self.slot(at)
    }

    /// The slice for absolute index `at`, growing the vector either way
    /// (deliveries arrive in rough but not exact schedule order); `None`
    /// past [`MAX_SLICES`].
    fn slot(&mut self, at: u64) -> Option<&mut Slice> {
        if self.slices.is_empty() {
            self.first = at;
        }
        if at < self.first {
            let grow = usize::try_from(self.first - at).ok()?;
            if grow + self.slices.len() > MAX_SLICES {
                return None;
            }
            self.slices
                .splice(0..0, std::iter::repeat_n(Slice::default(), grow));
            self.first = at;
        }
        let i = usize::try_from(at - self.first).ok()?;
        if i >= MAX_SLICES {
            return None;
        }
        if i >= self.slices.len() {
            self.slices.resize(i + 1, Slice::default());
        }
        self.slices.get_mut(i)
    }

    /// Add another timeline of the same width, slice by slice.
    pub fn merge(&mut self, o: &Timeline) {
        if o.slices.is_empty() {
            return;
        }
        if self.width_us == 0 {
            self.width_us = o.width_us;
        }
        if o.width_us != self.width_us {
            return;
        }
        for (k, s) in o.slices.iter().enumerate() {
            if s.n == 0 && s.sent == 0 {
                continue;
            }
            let Some(d) = self.slot(o.first + k as u64) else {
                continue;
            };
            d.n += s.n;
            d.sum_us = d.sum_us.saturating_add(s.sum_us);
            d.max_us = d.max_us.max(s.max_us);
            d.over_1ms += s.over_1ms;
            d.over_10ms += s.over_10ms;
            d.sent += s.sent;
            d.send_late_max_us = d.send_late_max_us.max(s.send_late_max_us);
        }
    }

    /// The report's rows: every slice from the first with a delivery to
    /// the last, times relative to the first.
    pub fn rows(&self) -> Vec<Row> {
        let w_ms = self.width_us as f64 / 1000.0;
        self.slices
            .iter()
            .enumerate()
            .map(|(k, s)| Row {
                t_ms: k as f64 * w_ms,
                n: s.n,
                mean_us: s.sum_us.checked_div(s.n).unwrap_or(0),
                max_us: s.max_us,
                over_1ms: s.over_1ms,
                over_10ms: s.over_10ms,
                sent: s.sent,
                send_late_max_us: s.send_late_max_us,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery lands in the slice of its *scheduled* time, whatever its
    /// latency, and the slice keeps the count, mean, max and late counts.
    #[test]
    fn deliveries_land_in_the_slice_they_were_scheduled_in() {
        let mut t = Timeline::new(100_000);
        t.record(1_000_050_000, 500);
        t.record(1_000_099_999, 20_000);
        t.record(1_000_100_000, 1_000);
        t.record(1_000_300_000, 1_001);
        let r = t.rows();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            Row {
                t_ms: 0.0,
                n: 2,
                mean_us: 10_250,
                max_us: 20_000,
                over_1ms: 1,
                over_10ms: 1,
                sent: 0,
                send_late_max_us: 0,
            }
        );
        // Exactly 1 ms is not "over 1 ms".
        assert_eq!((r[1].n, r[1].over_1ms, r[1].t_ms), (1, 0, 100.0));
        assert_eq!((r[2].n, r[2].mean_us), (0, 0));
        assert_eq!((r[3].n, r[3].over_1ms, r[3].over_10ms), (1, 1, 0));
        assert_eq!(r[3].t_ms, 300.0);
    }

    /// "Over" is strictly over, at both thresholds; the mean rounds down.
    #[test]
    fn thresholds_are_strict() {
        let mut t = Timeline::new(1_000);
        t.record(0, 10_000);
        t.record(1, 1_000);
        t.record(2, 10_001);
        let r = t.rows();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].over_1ms, r[0].over_10ms), (2, 1));
        assert_eq!((r[0].mean_us, r[0].max_us), (7_000, 10_001));
        t.record_send(3, 5);
        t.record_send(4, 2);
        assert_eq!((t.rows()[0].sent, t.rows()[0].send_late_max_us), (2, 5));
    }

    /// Deliveries out of schedule order (an earlier slice after a later
    /// one) grow the timeline at the front.
    #[test]
    fn an_earlier_slice_after_a_later_one_is_kept() {
        let mut t = Timeline::new(10);
        t.record(105, 7);
        t.record(80, 10_001);
        assert_eq!(t.first, 8);
        let r = t.rows();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].n, r[0].over_10ms, r[2].n, r[2].max_us), (1, 1, 1, 7));
    }

    /// Two shards' timelines add slice by slice on the shared clock.
    #[test]
    fn merge_adds_slices_on_the_shared_clock() {
        let mut a = Timeline::new(10);
        a.record(100, 5);
        let mut b = Timeline::new(10);
        b.record(90, 50);
        b.record(101, 9);
        b.record(120, 2_000);
        let mut sum = Timeline::default();
        sum.merge(&a);
        sum.merge(&b);
        assert_eq!(sum.first, 9);
        let r = sum.rows();
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].n, r[0].max_us), (1, 50));
        assert_eq!((r[1].n, r[1].max_us, r[1].mean_us), (2, 9, 7));
        assert_eq!((r[3].n, r[3].over_1ms), (1, 1));
        // Sends merge too: counted, and the latest wins.
        let mut s1 = Timeline::new(10);
        s1.record_send(100, 40);
        let mut s2 = Timeline::new(10);
        s2.record_send(105, 700);
        s2.record_send(130, 1);
        sum.merge(&s1);
        sum.merge(&s2);
        let r = sum.rows();
        assert_eq!((r[1].sent, r[1].send_late_max_us, r[1].n), (2, 700, 2));
        assert_eq!((r[4].sent, r[4].n), (1, 0));
        // A timeline of another width is not mixed in.
        let mut c = Timeline::new(20);
        c.record(100, 1);
        sum.merge(&c);
        assert_eq!(sum.rows().iter().map(|r| r.n).sum::<u64>(), 4);
    }

    /// Without --timeline nothing is recorded; the slice count is bounded.
    #[test]
    fn disabled_records_nothing_and_slices_are_bounded() {
        let mut t = Timeline::default();
        t.record(5, 5);
        assert!(t.slices.is_empty() && !t.enabled());
        let mut t = Timeline::new(1);
        t.record(0, 1);
        t.record(MAX_SLICES as u64 + 5, 1);
        t.record(u64::MAX, 1);
        assert_eq!(t.slices.len(), 1);
        t.record(MAX_SLICES as u64 - 1, 1);
        assert_eq!(t.slices.len(), MAX_SLICES);
    }
}
