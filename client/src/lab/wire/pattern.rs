//! The packet pattern a scenario must show, and the check of a capture
//! against it: an ordered sequence of segments (each found after the one
//! before) plus segments that must not appear at all.

use super::packet::{Segment, Side};

/// A kind of segment a pattern names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `[S]`: a connection request.
    Syn,
    /// `[S.]`: the listener's answer.
    SynAck,
    /// A bare `[.]`: no payload, no SYN, FIN or RST (the handshake's
    /// third segment, the acknowledgement of data).
    Ack,
    /// Any segment carrying payload (not a window probe).
    Data,
    /// `[F.]`, alone or with data.
    Fin,
    /// `[R]` or `[R.]`.
    Rst,
    /// `[R.]`: a reset that acknowledges (the answer to a SYN on a closed port).
    RstAck,
    /// A segment advertising window 0.
    ZeroWindow,
    /// A zero-window probe.
    Probe,
    /// A keepalive probe.
    KeepAlive,
    /// Data, or a SYN, sent again.
    Retransmit,
}

impl Kind {
    fn matches(self, s: &Segment) -> bool {
        match self {
            Kind::Syn => s.syn && !s.ack,
            Kind::SynAck => s.syn && s.ack,
            Kind::Ack => s.ack && s.len == 0 && !(s.syn || s.fin || s.rst),
            Kind::Data => s.len > 0 && !s.probe,
            Kind::Fin => s.fin,
            Kind::Rst => s.rst,
            Kind::RstAck => s.rst && s.ack,
            Kind::ZeroWindow => s.win == 0 && !s.rst && !s.syn,
            Kind::Probe => s.probe,
            Kind::KeepAlive => s.keepalive,
            Kind::Retransmit => s.retransmit,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Syn => "SYN [S]",
            Kind::SynAck => "SYN-ACK [S.]",
            Kind::Ack => "ACK [.]",
            Kind::Data => "data",
            Kind::Fin => "FIN",
            Kind::Rst => "RST",
            Kind::RstAck => "RST-ACK [R.]",
            Kind::ZeroWindow => "win 0",
            Kind::Probe => "window probe",
            Kind::KeepAlive => "keepalive probe",
            Kind::Retransmit => "retransmission",
        }
    }
}

/// What a scenario's capture must show. `Side` names come from the capture.
#[derive(Debug, Clone, Default)]
pub struct Pattern {
    /// In this order (other segments may come between).
    pub seq: Vec<(Side, Kind)>,
    /// Never, from this side (`None`: from either side).
    pub never: Vec<(Option<Side>, Kind)>,
    /// Nothing at all from the other side after the first segment of
    /// this kind from this side (a dead path).
    pub silent_after: Option<(Side, Kind)>,
    /// This side's last data segment was sent again and again with each
    /// gap longer than the one before (exponential back-off).
    pub growing_gaps: Option<Side>,
    /// A connection request from this side that went unanswered and was
    /// sent again with gaps that do not shrink and end longer than they
    /// began (the SYN of the source port that sent the most).
    pub syn_growing_gaps: Option<Side>,
}

impl Pattern {
    pub fn then(mut self, side: Side, kind: Kind) -> Self {
        self.seq.push((side, kind));
        self
    }

    pub fn never(mut self, side: Option<Side>, kind: Kind) -> Self {
        self.never.push((side, kind));
        self
    }

    pub fn silent_after(mut self, side: Side, kind: Kind) -> Self {
        self.silent_after = Some((side, kind));
        self
    }

    pub fn growing_gaps(mut self, side: Side) -> Self {
        self.growing_gaps = Some(side);
        self
    }

    pub fn syn_growing_gaps(mut self, side: Side) -> Self {
        self.syn_growing_gaps = Some(side);
        self
    }

    /// Have all the ordered segments been seen (so the capture can stop)?
    pub fn seen(&self, segs: &[Segment]) -> bool {
        self.check(segs, ["", ""])
            .iter()
            .take(self.seq.len())
            .all(|c| c.ok)
    }

    /// One check line per expectation.
    pub fn check(&self, segs: &[Segment], names: [&str; 2]) -> Vec<Check> {
        let name = |s: Side| {
            if s == Side::Listen {
                names[0]
            } else {
                names[1]
            }
        };
        let mut out = Vec::new();
        let mut from = 0usize;
        let mut lost = false;
        for (i, &(side, kind)) in self.seq.iter().enumerate() {
            let what = format!("{}: {} from {}", i + 1, kind.label(), name(side));
            let found = (!lost)
                .then(|| {
                    segs[from..]
                        .iter()
                        .position(|s| s.from == side && kind.matches(s))
                })
                .flatten();
            match found {
                Some(k) => {
                    out.push(Check {
                        what,
                        ok: true,
                        saw: format!("at {:.6}", segs[from + k].t),
                    });
                    from += k + 1;
                }
                None => {
                    lost = true;
                    out.push(Check {
                        what,
                        ok: false,
                        saw: "not seen (in this order)".into(),
                    });
                }
            }
        }
        for &(side, kind) in &self.never {
            let who = side.map_or("either side".to_string(), |s| name(s).to_string());
            let hits: Vec<&Segment> = segs
                .iter()
                .filter(|s| side.is_none_or(|x| s.from == x) && kind.matches(s))
                .collect();
            out.push(Check {
                what: format!("no {} from {who}", kind.label()),
                ok: hits.is_empty(),
                saw: match hits.first() {
                    None => "none".into(),
                    Some(s) => format!("{} (first at {:.6})", hits.len(), s.t),
                },
            });
        }
        if let Some((side, kind)) = self.silent_after {
            let first = segs.iter().position(|s| s.from == side && kind.matches(s));
            let replies = first.map_or(0, |i| segs[i..].iter().filter(|s| s.from != side).count());
            out.push(Check {
                what: format!(
                    "nothing from {} after the first {} from {}",
                    name(side.other()),
                    kind.label(),
                    name(side)
                ),
                ok: first.is_some() && replies == 0,
                saw: match first {
                    None => format!("no {} at all", kind.label()),
                    Some(_) => format!("{replies} segments"),
                },
            });
        }
        if let Some(side) = self.growing_gaps {
            let last = segs.iter().rev().find(|s| s.from == side && s.len > 0);
            let times: Vec<f64> = last.map_or(Vec::new(), |l| {
                segs.iter()
                    .filter(|s| s.from == side && s.len > 0 && s.seq == l.seq)
                    .map(|s| s.t)
                    .collect()
            });
            let (ok, gaps) = gaps_check(&times);
            out.push(Check {
                what: format!("{}'s last data sent again with growing gaps", name(side)),
                ok,
                saw: format!("gaps {gaps}"),
            });
        }
        if let Some(side) = self.syn_growing_gaps {
            let mut by_port: std::collections::BTreeMap<u16, Vec<f64>> = Default::default();
            for s in segs.iter().filter(|s| s.from == side && s.syn && !s.ack) {
                by_port.entry(s.src_port).or_default().push(s.t);
            }
            let (port, times) = by_port
                .into_iter()
                .max_by_key(|(_, t)| t.len())
                .unwrap_or_default();
            let (ok, gaps) = gaps_check(&times);
            out.push(Check {
                what: format!("{}'s SYN sent again with growing gaps", name(side)),
                ok,
                saw: format!("{} SYNs from port {port}, gaps {gaps}", times.len()),
            });
        }
        out
    }
}

/// The gaps between transmission times: backing off?, and as text.
fn gaps_check(times: &[f64]) -> (bool, String) {
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let text = gaps
        .iter()
        .map(|g| format!("{g:.3}s"))
        .collect::<Vec<_>>()
        .join(", ");
    (backing_off(&gaps), text)
}

/// Exponential back-off seen in the gaps between transmissions: at least
/// two gaps, none clearly shorter than the one before (a tail-loss probe
/// and the first timeout can be about equal, and timers jitter under load),
/// and the last at least 1.5 times the first.
fn backing_off(gaps: &[f64]) -> bool {
    gaps.len() >= 2
        && gaps.windows(2).all(|g| g[1] >= 0.8 * g[0])
        && gaps
            .last()
            .zip(gaps.first())
            .is_some_and(|(l, f)| *l >= 1.5 * f)
}

/// One expectation and what the capture showed.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub saw: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from: Side, f: &str, len: u32) -> Segment {
        Segment {
            t: 0.0,
            from,
            src_port: 1,
            dst_port: 2,
            syn: f.contains('S'),
            ack: f.contains('.'),
            fin: f.contains('F'),
            rst: f.contains('R'),
            psh: f.contains('P'),
            seq: 0,
            ack_no: 0,
            win: 100,
            len,
            options: None,
            probe: false,
            keepalive: false,
            retransmit: false,
        }
    }

    #[test]
    fn back_off_means_gaps_that_grow() {
        assert!(backing_off(&[0.205, 0.208, 0.424, 0.832]));
        assert!(!backing_off(&[0.2, 0.2, 0.2]));
        assert!(!backing_off(&[0.4, 0.1, 0.8]));
        assert!(!backing_off(&[0.2]));
    }

    #[test]
    fn order_matters_and_never_is_checked() {
        let p = Pattern::default()
            .then(Side::Connect, Kind::Fin)
            .then(Side::Listen, Kind::Fin)
            .never(None, Kind::Rst);
        let good = [seg(Side::Connect, "F.", 0), seg(Side::Listen, "F.", 0)];
        assert!(p.check(&good, ["l", "c"]).iter().all(|c| c.ok));
        let wrong_order = [seg(Side::Listen, "F.", 0), seg(Side::Connect, "F.", 0)];
        assert!(!p.seen(&wrong_order));
        let reset = [
            seg(Side::Connect, "F.", 0),
            seg(Side::Listen, "F.", 0),
            seg(Side::Listen, "R", 0),
        ];
        let c = p.check(&reset, ["l", "c"]);
        assert!(p.seen(&reset));
        assert!(!c[2].ok, "{c:?}");
    }
}
