//! The final report: one JSON object (`--json`, schema in DESIGN.md) or a
//! table for people, and the pass/fail thresholds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;
use sockchat_shared::DisconnectReason;

use super::parse::LossLimit;
use super::plan::Plan;
use super::stats::Stats;
use super::timeline::Row;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
                count: 0,
            };
        }
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
            count: h.len(),
        }
    }
}

/// One error reason with its errno, for people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub reason: String,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub name: String,
    pub behaviour: String,
    pub count: usize,
    pub measured: bool,
    pub connects: u64,
    pub connect_errors: u64,
    pub sent: u64,
    pub errors: BTreeMap<String, u64>,
    pub disconnects: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub closed_by_server: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub passed: bool,
    pub failed: Vec<String>,
}

/// The report. Field names are a contract (DESIGN.md): `connected`,
/// `connect_errors`, `sent`, `delivered`, `expected`, `lost`,
/// `deliveries_per_sec`, `latency_us`, `errors`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub wire: String,
    pub bots: usize,
    pub workers: usize,
    pub threads: usize,
    pub rooms: usize,
    pub duration_s: f64,
    pub connected: u64,
    pub connect_errors: u64,
    /// Connections made in total (churn and fault reconnects included).
    pub connects: u64,
    pub scheduled: u64,
    pub sent: u64,
    /// Scheduled measured messages never fully written (server not reading).
    pub unsent: u64,
    pub sent_unmeasured: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicated: u64,
    pub reordered: u64,
    pub other_deliveries: u64,
    /// UDP: messages the bots dropped on purpose (`--udp-drop`) and sends
    /// the kernel refused; both count as sent, so they show up as lost.
    pub injected_drops: u64,
    pub send_errors: u64,
    pub deliveries_per_sec: f64,
    pub sent_per_sec: f64,
    pub connects_per_sec: f64,
    pub latency_us: Percentiles,
    pub connect_us: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub errors_detail: Vec<ErrorDetail>,
    pub disconnects: BTreeMap<String, u64>,
    pub groups: Vec<GroupReport>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// CPU seconds the bots themselves used (this process and its workers):
    /// on a shared machine, the load generator's share matters.
    pub bots_cpu_s: f64,
    /// `bots_cpu_s` per delivery, in ns (ramp and drain included): when it
    /// approaches the server's, the generator is the ceiling, not the server.
    pub bots_cpu_ns_per_delivery: Option<f64>,
    /// CPU seconds the bots used in the send phase alone (from Go to the
    /// end of the drain: no ramp, settle or closing), every process summed.
    pub bots_cpu_s_send: Option<f64>,
    /// `bots_cpu_s_send` per delivery, in ns: what the generator spends on
    /// a delivery, without the connection ramp's share.
    pub bots_cpu_ns_per_delivery_send: Option<f64>,
    pub thresholds: Thresholds,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `--timeline`: latency per slice of scheduled send time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineReport>,
}

/// The report's timeline: the slice width and one row per slice.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    pub width_ms: f64,
    /// CLOCK_MONOTONIC µs at the start of the first row: lines the rows up
    /// with a capture or a `perf record -k CLOCK_MONOTONIC` of the run.
    pub start_mono_us: u64,
    pub rows: Vec<Row>,
}

/// Describe a reason code with its errno where there is one.
pub fn detail(code: &str, count: u64) -> ErrorDetail {
    let (errno, text) = match code {
        "connect-timeout" => (
            None,
            "connect timed out (no answer within --connect-timeout)".to_string(),
        ),
        "udp-unsupported" => (None, "UDP wire mode is not supported yet".to_string()),
        _ => match DisconnectReason::from_code(code) {
            Some(r) => (r.errno(), r.to_string()),
            None => (None, code.to_string()),
        },
    };
    ErrorDetail {
        reason: code.to_string(),
        count,
        errno,
        text,
    }
}

impl Report {
    /// `window_s`: send phase length (start of sending to the last delivery
    /// or the end of the phase, whichever is later).
    pub fn build(plan: &Plan, st: &Stats, window_s: f64, notes: Vec<String>) -> Report {
        let errors = st.errors();
        let errors_detail = errors.iter().map(|(k, v)| detail(k, *v)).collect();
        let lost = st.expected.saturating_sub(st.delivered);
        let cpu = cpu_seconds();
        let groups = plan
            .groups
            .iter()
            .zip(st.groups.iter())
            .map(|(g, s)| GroupReport {
                name: g.name.clone(),
                behaviour: g.behaviour.name().into(),
                count: g.count,
                measured: g.measured,
                connects: s.connects,
                connect_errors: s.connect_errors,
                sent: s.sent,
                errors: s.errors.clone(),
                disconnects: s.disconnects.clone(),
                closed_by_server: s.closed_by_server,
            })
            .collect();
        let connects: u64 = st.groups.iter().map(|g| g.connects).sum();
        let per_s = |v: u64| {
            if window_s > 0.0 {
                (v as f64 / window_s).round()
            } else {
                0.0
            }
        };
        let mut r = Report {
            server: plan
                .servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            wire: plan.wire.name().into(),
            bots: plan.total_bots(),
            workers: plan.workers,
            threads: plan.threads,
            rooms: plan.rooms.len(),
            duration_s: (window_s * 1000.0).round() / 1000.0,
            connected: st.connected,
            connect_errors: st.connect_errors,
            connects,
            scheduled: st.scheduled,
            sent: st.sent,
            unsent: st.scheduled.saturating_sub(st.sent),
            sent_unmeasured: st.sent_unmeasured,
            expected: st.expected,
            delivered: st.delivered,
            lost,
            loss_pct: if st.expected > 0 {
                (lost as f64 * 100.0 / st.expected as f64 * 1e4).round() / 1e4
            } else {
                0.0
            },
            duplicated: st.duplicated,
            reordered: st.reordered,
            other_deliveries: st.other_deliveries,
            injected_drops: st.injected_drops,
            send_errors: st.send_errors,
            deliveries_per_sec: per_s(st.delivered),
            sent_per_sec: per_s(st.sent),
            connects_per_sec: per_s(connects.saturating_sub(st.connected + st.connect_errors)),
            latency_us: Percentiles::of(&st.latency),
            connect_us: Percentiles::of(&st.connect),
            errors,
            errors_detail,
            disconnects: st.disconnects(),
            groups,
            bytes_in: st.bytes_in,
            bytes_out: st.bytes_out,
            bots_cpu_s: cpu,
            bots_cpu_ns_per_delivery: per_delivery_ns(cpu, st.delivered),
            bots_cpu_s_send: None,
            bots_cpu_ns_per_delivery_send: None,
            thresholds: Thresholds {
                passed: true,
                failed: Vec::new(),
            },
            notes,
            timeline: st.timeline.enabled().then(|| TimelineReport {
                width_ms: st.timeline.width_us as f64 / 1000.0,
                start_mono_us: st.timeline.first.saturating_mul(st.timeline.width_us),
                rows: st.timeline.rows(),
            }),
        };
        r.thresholds = r.check(plan);
        r
    }

    /// Add the send phase's CPU (`Outcome::send_cpu_s`).
    pub fn with_send_cpu(mut self, send_cpu_s: Option<f64>, delivered: u64) -> Report {
        self.bots_cpu_s_send = send_cpu_s.map(|c| (c * 1000.0).round() / 1000.0);
        self.bots_cpu_ns_per_delivery_send = send_cpu_s.and_then(|c| per_delivery_ns(c, delivered));
        self
    }

    fn check(&self, plan: &Plan) -> Thresholds {
        let t = &plan.thresholds;
        let mut failed = Vec::new();
        if let Some(max) = t.max_p99 {
            let max_us = max.as_micros() as u64;
            if self.latency_us.count == 0 {
                failed.push("max-p99: no latency samples (nothing was delivered)".to_string());
            } else if self.latency_us.p99 > max_us {
                failed.push(format!(
                    "max-p99: p99 {} > {}",
                    fmt_us(self.latency_us.p99),
                    fmt_us(max_us)
                ));
            }
        }
        match t.max_loss {
            Some(LossLimit::Count(n)) if self.lost > n => {
                failed.push(format!("max-loss: lost {} > {}", self.lost, n));
            }
            Some(LossLimit::Percent(p)) if self.loss_pct > p => {
                failed.push(format!("max-loss: lost {}% > {}%", self.loss_pct, p));
            }
            _ => {}
        }
        if let Some(min) = t.min_connected
            && (self.connected as usize) < min
        {
            failed.push(format!("min-connected: {} < {}", self.connected, min));
        }
        Thresholds {
            passed: failed.is_empty(),
            failed,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sockchat bots: {} bots ({} wire) -> {}, {} rooms, {} worker(s) x {} thread(s)",
            self.bots, self.wire, self.server, self.rooms, self.workers, self.threads
        );
        let _ = writeln!(
            s,
            "  connections   {} held, {} failed; {} connects in all",
            self.connected, self.connect_errors, self.connects
        );
        let _ = writeln!(
            s,
            "  connect time  p50 {}  p99 {}  max {}",
            fmt_us(self.connect_us.p50),
            fmt_us(self.connect_us.p99),
            fmt_us(self.connect_us.max)
        );
        let _ = writeln!(
            s,
            "  messages      {} sent of {} scheduled ({} unsent), {} unmeasured",
            self.sent, self.scheduled, self.unsent, self.sent_unmeasured
        );
        let _ = writeln!(
            s,
            "  deliveries    {} of {} expected, lost {} ({}%), duplicated {}, reordered {}",
            self.delivered,
            self.expected,
            self.lost,
            self.loss_pct,
            self.duplicated,
            self.reordered
        );
        if self.injected_drops > 0 || self.send_errors > 0 {
            let _ = writeln!(
                s,
                "  udp           {} datagrams dropped on purpose (--udp-drop), {} refused by the kernel",
                self.injected_drops, self.send_errors
            );
        }
        let mut per = self
            .bots_cpu_ns_per_delivery
            .map(|ns| format!(", {ns:.0} ns per delivery"))
            .unwrap_or_default();
        if let Some(ns) = self.bots_cpu_ns_per_delivery_send {
            per.push_str(&format!("; {ns:.0} in the send phase"));
        }
        let _ = writeln!(
            s,
            "  throughput    {:.0} deliveries/s, {:.0} sent/s over {:.2} s (bots used {:.2} CPU s{per})",
            self.deliveries_per_sec, self.sent_per_sec, self.duration_s, self.bots_cpu_s
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency       p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (from scheduled send time)",
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max)
        );
        if self.errors_detail.is_empty() {
            let _ = writeln!(s, "  errors        none");
        } else {
            let _ = writeln!(s, "  errors");
            for e in &self.errors_detail {
                let _ = writeln!(s, "    {:>8}  {}", e.count, e.text);
            }
        }
        if !self.disconnects.is_empty() {
            let list: Vec<String> = self
                .disconnects
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "  planned disconnects  {}", list.join(", "));
        }
        if self.groups.len() > 1 || self.groups.iter().any(|g| !g.disconnects.is_empty()) {
            let _ = writeln!(s, "  groups");
            for g in &self.groups {
                let errs: Vec<String> = g.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(
                    s,
                    "    {:<14} {:<11} x{:<6} connects {:<7} sent {:<8} errors [{}]{}",
                    g.name,
                    g.behaviour,
                    g.count,
                    g.connects,
                    g.sent,
                    errs.join(", "),
                    if g.closed_by_server > 0 {
                        format!(" closed-by-server {}", g.closed_by_server)
                    } else {
                        String::new()
                    }
                );
            }
        }
        if let Some(t) = &self.timeline {
            let _ = writeln!(
                s,
                "  timeline      per {} ms of scheduled send time: deliveries, mean, max, over 1 ms, over 10 ms; sent, latest write",
                t.width_ms
            );
            for r in &t.rows {
                let _ = writeln!(
                    s,
                    "    {:>9.1} ms  {:>8}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}  {:>9}",
                    r.t_ms,
                    r.n,
                    fmt_us(r.mean_us),
                    fmt_us(r.max_us),
                    r.over_1ms,
                    r.over_10ms,
                    r.sent,
                    fmt_us(r.send_late_max_us)
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        if self.thresholds.passed {
            let _ = writeln!(s, "  thresholds    passed");
        } else {
            for f in &self.thresholds.failed {
                let _ = writeln!(s, "  THRESHOLD FAILED  {f}");
            }
        }
        s
    }
}

/// CPU nanoseconds per delivery; `None` when nothing was delivered.
fn per_delivery_ns(cpu_s: f64, delivered: u64) -> Option<f64> {
    (delivered > 0).then(|| (cpu_s * 1e9 / delivered as f64).round())
}

/// User + system CPU of this process and its reaped children (workers),
/// to 10 ms.
pub fn cpu_seconds() -> f64 {
    (cpu_now() * 100.0).round() / 100.0
}

/// User + system CPU of this process and its reaped children, unrounded
/// (the send phase's share is the difference of two readings).
pub fn cpu_now() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            total += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    total
}

/// `1234` µs -> `1.23ms`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_carry_errno() {
        let d = detail("refused", 3);
        assert_eq!(d.errno, Some(111));
        assert_eq!(d.text, "connection refused (ECONNREFUSED 111)");
        let d = detail("eaddrnotavail", 1);
        assert_eq!(d.errno, Some(99));
        assert!(d.text.contains("EADDRNOTAVAIL 99"), "{}", d.text);
        assert_eq!(detail("connect-timeout", 1).errno, None);
    }

    fn plan_with(t: crate::bots::plan::Thresholds) -> Plan {
        let args = crate::bots::BotsArgs {
            count: Some("4".into()),
            workers: 1,
            ..Default::default()
        };
        let mut plan = Plan::from_args(&args).expect("plan");
        plan.thresholds = t;
        plan
    }

    fn stats_with(expected: u64, delivered: u64, latencies_us: &[u64]) -> Stats {
        let mut st = Stats::new(1, 2);
        st.connected = 4;
        st.expected = expected;
        st.delivered = delivered;
        for &v in latencies_us {
            st.latency.saturating_record(v);
        }
        st
    }

    /// Every report says what the generator spent per delivery.
    #[test]
    fn bots_cpu_per_delivery_is_reported() {
        let r = Report::build(
            &plan_with(Default::default()),
            &stats_with(10, 10, &[5]),
            1.0,
            vec![],
        );
        let ns = r.bots_cpu_ns_per_delivery.expect("delivered > 0");
        assert!((ns - r.bots_cpu_s * 1e8).abs() <= 1.0, "{ns}");
        assert!(r.table().contains("ns per delivery"), "{}", r.table());
        assert!(r.json().contains("\"bots_cpu_ns_per_delivery\":"));
        // The send phase's share, when the run measured it.
        let r = r.with_send_cpu(Some(0.25), 10);
        assert_eq!(r.bots_cpu_ns_per_delivery_send, Some(25_000_000.0));
        assert!(r.table().contains("in the send phase"), "{}", r.table());
        assert!(
            r.json()
                .contains("\"bots_cpu_ns_per_delivery_send\":25000000")
        );
        assert_eq!(per_delivery_ns(0.5, 0), None);
        assert_eq!(per_delivery_ns(0.5, 1_000_000), Some(500.0));
    }

    #[test]
    fn thresholds_pass_and_fail() {
        use crate::bots::plan::Thresholds as T;
        use std::time::Duration;
        let lat: Vec<u64> = (1..=1000).collect(); // p99 = 990 µs
        // Within limits.
        let p = plan_with(T {
            max_p99: Some(Duration::from_millis(1)),
            max_loss: Some(LossLimit::Count(0)),
            min_connected: Some(4),
        });
        let r = Report::build(&p, &stats_with(100, 100, &lat), 1.0, vec![]);
        assert!(r.thresholds.passed, "{:?}", r.thresholds);
        // p99 over, one delivery lost, too few connected.
        let p = plan_with(T {
            max_p99: Some(Duration::from_micros(500)),
            max_loss: Some(LossLimit::Count(0)),
            min_connected: Some(5),
        });
        let r = Report::build(&p, &stats_with(100, 99, &lat), 1.0, vec![]);
        assert_eq!(r.lost, 1);
        assert_eq!(r.thresholds.failed.len(), 3, "{:?}", r.thresholds);
        // A percentage: 1 of 100 is 1 %, allowed by 2 %, refused by 0.5 %.
        let p = plan_with(T {
            max_loss: Some(LossLimit::Percent(2.0)),
            ..T::default()
        });
        assert!(
            Report::build(&p, &stats_with(100, 99, &lat), 1.0, vec![])
                .thresholds
                .passed
        );
        let p = plan_with(T {
            max_loss: Some(LossLimit::Percent(0.5)),
            ..T::default()
        });
        assert!(
            !Report::build(&p, &stats_with(100, 99, &lat), 1.0, vec![])
                .thresholds
                .passed
        );
        // No samples at all cannot pass a latency threshold.
        let p = plan_with(T {
            max_p99: Some(Duration::from_secs(1)),
            ..T::default()
        });
        assert!(
            !Report::build(&p, &stats_with(0, 0, &[]), 1.0, vec![])
                .thresholds
                .passed
        );
    }

    #[test]
    fn plan_refuses_bad_flags() {
        let bad = |a: crate::bots::BotsArgs| {
            let a = crate::bots::BotsArgs { workers: 1, ..a };
            Plan::from_args(&a).expect_err("must be refused")
        };
        let e = bad(crate::bots::BotsArgs {
            count: Some("3".into()),
            senders: Some("5".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("--senders"), "{e}");
        let e = bad(crate::bots::BotsArgs {
            server: Some("192.0.2.1:7878".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("loopback"), "{e}");
        let e = bad(crate::bots::BotsArgs {
            wire: Some(crate::bots::wire::Wire::Udp),
            size: Some("2000".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("datagram"), "{e}");
        let e = bad(crate::bots::BotsArgs {
            rate: Some("lots".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("bad rate"), "{e}");
    }

    #[test]
    fn durations_print_readably() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(1234), "1.23ms");
        assert_eq!(fmt_us(2_500_000), "2.50s");
    }
}
