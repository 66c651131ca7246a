//! What one scenario found, and how the lab prints it: an aligned table for
//! people, one JSON object per line (`--json`) for scripts and tests.

use std::fmt::Write as _;

use sockchat_shared::{DisconnectReason, errno};

use super::wire::WireResult;

/// Did the kernel do what Linux is expected to do? `Skipped` is not a pass:
/// the scenario could not run here (no root, no `ip`), and the reason says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skipped(String),
}

/// The result of one scenario. `observed`/`expected` are codes of the reason
/// vocabulary (`eof`, `reset`, `timed-out`, ... see [`DisconnectReason::code`]),
/// or a short sequence of them joined by ` -> ` for multi-step scenarios.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static str,
    /// What the actor did, in one line.
    pub action: String,
    /// What the other side saw.
    pub observed: String,
    /// The errno behind `observed`, if the kernel reported one.
    pub errno: Option<i32>,
    pub expected: String,
    pub expected_errno: Option<i32>,
    pub status: Status,
    /// One line: why the kernel does this.
    pub explanation: String,
    /// Where it ran: `127.0.0.1`, a live server address, or the namespaces.
    pub target: String,
    /// Extra evidence: samples over time, byte counts, timings.
    pub details: Vec<String>,
    /// `--wire`: the scenario's packets and their pattern check.
    pub wire: Option<WireResult>,
    /// The numbers a scenario measured (counts, byte counts, seconds), as
    /// one JSON object, so scripts and tests need not parse `details`.
    pub measured: Option<serde_json::Value>,
}

impl Outcome {
    /// An outcome whose pass/fail is decided by comparing observed and
    /// expected (code and errno) plus any scenario-specific `extra_ok` check.
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        scenario: &'static str,
        action: impl Into<String>,
        observed: impl Into<String>,
        errno: Option<i32>,
        expected: impl Into<String>,
        expected_errno: Option<i32>,
        extra_ok: bool,
        explanation: impl Into<String>,
    ) -> Self {
        let observed = observed.into();
        let expected = expected.into();
        let ok = extra_ok && observed == expected && errno == expected_errno;
        Outcome {
            scenario,
            action: action.into(),
            observed,
            errno,
            expected,
            expected_errno,
            status: if ok { Status::Pass } else { Status::Fail },
            explanation: explanation.into(),
            target: "127.0.0.1".into(),
            details: Vec::new(),
            wire: None,
            measured: None,
        }
    }

    /// The scenario could not be set up (an error before the interesting
    /// part): a failure with the error as the observation.
    pub fn setup_failed(scenario: &'static str, expected: &str, err: &anyhow::Error) -> Self {
        Outcome {
            scenario,
            action: "setup".into(),
            observed: "setup-error".into(),
            errno: None,
            expected: expected.into(),
            expected_errno: DisconnectReason::from_code(expected).and_then(|r| r.errno()),
            status: Status::Fail,
            explanation: format!("{err:#}"),
            target: "127.0.0.1".into(),
            details: Vec::new(),
            wire: None,
            measured: None,
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    pub fn with_measured(mut self, measured: serde_json::Value) -> Self {
        self.measured = Some(measured);
        self
    }

    /// Attach the capture; a packet pattern that failed fails the scenario
    /// even when the errno was right.
    pub fn with_wire(mut self, wire: Option<WireResult>) -> Self {
        if wire.as_ref().is_some_and(|w| !w.ok()) && self.status == Status::Pass {
            self.status = Status::Fail;
        }
        self.wire = wire;
        self
    }

    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }

    fn result_word(&self) -> &'static str {
        match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped(_) => "SKIPPED",
        }
    }

    /// One JSON object (the DESIGN.md schema plus extra keys).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario,
            "action": self.action,
            "observed": self.observed,
            "errno": self.errno,
            "errno_name": self.errno.map(errno::name),
            "errno_windows": self.errno.and_then(errno::windows).map(|(w, c)| format!("{w} {c}")),
            "windows_note": self.errno.and_then(errno::windows_note),
            "expected": self.expected,
            "expected_errno": self.expected_errno,
            "pass": self.passed(),
            "status": self.result_word().to_ascii_lowercase(),
            "skip_reason": match &self.status { Status::Skipped(r) => Some(r.as_str()), _ => None },
            "explanation": self.explanation,
            "target": self.target,
            "details": self.details,
            "wire": self.wire.as_ref().map(WireResult::to_json),
            "measured": self.measured,
        })
    }
}

/// `104 ECONNRESET`, or `-`.
pub fn errno_cell(e: Option<i32>) -> String {
    match e {
        Some(n) => format!("{n} {}", errno::name(n)),
        None => "-".into(),
    }
}

/// The table: one row per scenario, then indented `why:` and detail lines.
pub fn render_table(outcomes: &[Outcome]) -> String {
    let headers = [
        "SCENARIO",
        "ACTOR DID",
        "PEER OBSERVED",
        "ERRNO",
        "EXPECTED",
        "RESULT",
    ];
    let rows: Vec<[String; 6]> = outcomes
        .iter()
        .map(|o| {
            [
                o.scenario.to_string(),
                o.action.clone(),
                o.observed.clone(),
                errno_cell(o.errno),
                format!("{} ({})", o.expected, errno_cell(o.expected_errno)),
                o.result_word().to_string(),
            ]
        })
        .collect();
    let mut width = headers.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                let _ = write!(s, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, &headers.map(String::from));
    line(&mut out, &width.map(|w| "-".repeat(w)));
    for (o, r) in outcomes.iter().zip(&rows) {
        line(&mut out, r);
        if let Status::Skipped(why) = &o.status {
            let _ = writeln!(out, "    skipped: {why}");
        }
        let _ = writeln!(out, "    why: {}", o.explanation);
        if let Some(e) = o
            .errno
            .filter(|&e| errno::windows(e).is_some() || errno::windows_note(e).is_some())
        {
            let _ = write!(out, "    windows: {}", errno::with_windows(e));
            match errno::windows_note(e) {
                Some(n) => {
                    let _ = writeln!(out, "; {n}");
                }
                None => out.push('\n'),
            }
        }
        if o.target != "127.0.0.1" {
            let _ = writeln!(out, "    ran on: {}", o.target);
        }
        for d in &o.details {
            let _ = writeln!(out, "      {d}");
        }
        for w in o.wire.iter().flat_map(WireResult::lines) {
            let _ = writeln!(out, "    {w}");
        }
    }
    let pass = outcomes.iter().filter(|o| o.passed()).count();
    let skip = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Skipped(_)))
        .count();
    let fail = outcomes.len() - pass - skip;
    let _ = writeln!(out, "\n{pass} passed, {fail} failed, {skip} skipped");
    out
}

/// Observed code for an I/O error or EOF, with its errno.
pub fn code_of(err: &std::io::Error) -> (String, Option<i32>) {
    let r = DisconnectReason::from_io_error(err);
    (r.code(), err.raw_os_error().or(r.errno()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_compares_code_and_errno() {
        let o = Outcome::judge("x", "a", "reset", Some(104), "reset", Some(104), true, "e");
        assert!(o.passed());
        let o = Outcome::judge("x", "a", "eof", None, "reset", Some(104), true, "e");
        assert_eq!(o.status, Status::Fail);
        let o = Outcome::judge("x", "a", "eof", None, "eof", None, false, "e");
        assert_eq!(o.status, Status::Fail);
    }

    #[test]
    fn json_has_schema_keys() {
        let o = Outcome::judge("x", "a", "reset", Some(104), "reset", Some(104), true, "e");
        let v = o.to_json();
        for k in [
            "scenario", "action", "observed", "errno", "expected", "pass",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["errno_name"], "ECONNRESET");
        assert_eq!(v["errno_windows"], "WSAECONNRESET 10054");
        let t = render_table(&[o]);
        assert!(t.contains("104 ECONNRESET"));
        assert!(
            t.contains("windows: ECONNRESET 104 — Windows: WSAECONNRESET 10054"),
            "{t}"
        );
        assert!(t.contains("1 passed, 0 failed, 0 skipped"));
    }
}
