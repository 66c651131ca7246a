//! Reading a recording: the header, then every line decoded, before
//! anything is shown, so a damaged file is refused with the number of its
//! first bad line instead of a replay that stops halfway.
//!
//! **Invariant:** bounded: a line longer than [`LINE_MAX`] and a file of
//! more than [`ENTRIES_MAX`] entries are errors (a line is never read whole
//! past the limit), and nothing in a file can make the reader panic.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;

use super::format::{Decoded, FORMAT, Header, Stamped, VERSION, decode};

/// The longest line read (a chat line is at most a 64 KiB frame, escaped).
pub const LINE_MAX: usize = 4 << 20;
/// The most entries a recording may hold.
pub const ENTRIES_MAX: usize = 2_000_000;
/// The latest start a header may give (9999-12-31, Unix ms), and the
/// largest offset from UTC (26 h).
const START_MAX_MS: u64 = 253_402_300_799_999;
const UTC_OFFSET_MAX: i64 = 26 * 3600;
/// Kinds of skipped lines counted by name at most (the rest are "other").
const KINDS_MAX: usize = 32;

/// A recording read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub header: Header,
    /// In file order.
    pub entries: Vec<Stamped>,
    /// Lines of kinds this build does not replay, by kind.
    pub skipped: BTreeMap<String, u64>,
}

impl Recording {
    /// `3 lines skipped (transfer-offered 2, x 1)`, or `None`.
    pub fn skipped_text(&self) -> Option<String> {
        let n: u64 = self.skipped.values().sum();
        (n > 0).then(|| {
            let kinds: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, c)| format!("{k} {c}"))
                .collect();
            format!(
                "{n} line{} of kinds not replayed skipped ({})",
                if n == 1 { "" } else { "s" },
                kinds.join(", ")
            )
        })
    }
}

/// What is wrong with a recording, and on which line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("{0}")]
    Io(String),
}

fn at(line: usize, what: impl Into<String>) -> ReadError {
    ReadError::Line {
        line,
        what: what.into(),
    }
}

/// Read the recording at `path`.
pub fn read_file(path: &Path) -> Result<Recording, ReadError> {
    let f = std::fs::File::open(path).map_err(|e| ReadError::Io(e.to_string()))?;
    read(std::io::BufReader::new(f))
}

/// The next line into `buf`, without its `\n`, at most [`LINE_MAX`] long:
/// `false` at the end of the input.
fn next_line(r: &mut impl BufRead, no: usize, buf: &mut Vec<u8>) -> Result<bool, ReadError> {
    buf.clear();
    let n = r
        .by_ref()
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| at(no, format!("cannot read: {e}")))?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(true);
    }
    if buf.len() > LINE_MAX {
        return Err(at(
            no,
            format!(
                "longer than {} MiB: not a line sockchat writes",
                LINE_MAX >> 20
            ),
        ));
    }
    Err(at(
        no,
        "cut off (no end of line): the recording stopped in the middle of a write; \
         remove that line to replay the rest",
    ))
}

/// Read a recording from `r`.
pub fn read(mut r: impl BufRead) -> Result<Recording, ReadError> {
    let mut buf = Vec::new();
    if !next_line(&mut r, 1, &mut buf)? {
        return Err(at(1, "the file is empty: not a sockchat recording"));
    }
    let header = header(&buf)?;
    let mut entries = Vec::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut no = 1;
    loop {
        no += 1;
        if !next_line(&mut r, no, &mut buf)? {
            break;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_slice(&buf).map_err(|e| at(no, format!("bad JSON: {e}")))?;
        match decode(&v).map_err(|e| at(no, e))? {
            Decoded::Entry(e) => {
                if entries.len() >= ENTRIES_MAX {
                    return Err(at(no, format!("more than {ENTRIES_MAX} entries")));
                }
                entries.push(e);
            }
            Decoded::Skipped(kind) => {
                let kind = if skipped.len() < KINDS_MAX || skipped.contains_key(&kind) {
                    kind.chars().take(40).collect()
                } else {
                    "other".to_string()
                };
                *skipped.entry(kind).or_default() += 1;
            }
        }
    }
    Ok(Recording {
        header,
        entries,
        skipped,
    })
}

fn header(line: &[u8]) -> Result<Header, ReadError> {
    let not_ours = || {
        at(
            1,
            format!(
                "no header: not a sockchat recording (`sockchat --record FILE` writes one; its first line is {{\"format\":\"{FORMAT}\",...}})"
            ),
        )
    };
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|_| not_ours())?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(not_ours());
    }
    match v.get("version").and_then(|n| n.as_u64()) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            let by = v.get("sockchat").and_then(|s| s.as_str()).unwrap_or("?");
            return Err(at(
                1,
                format!(
                    "recording format version {n} (written by sockchat {by}); this sockchat ({}) reads version {VERSION} only",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        None => return Err(at(1, "the header has no format version")),
    }
    let h: Header = serde_json::from_value(v).map_err(|e| at(1, format!("bad header: {e}")))?;
    // The app's clock adds to these: keep them to what a clock can say.
    if h.start_ms > START_MAX_MS {
        return Err(at(
            1,
            format!("\"start_ms\" {} is past the year 9999", h.start_ms),
        ));
    }
    if !(-UTC_OFFSET_MAX..=UTC_OFFSET_MAX).contains(&h.utc_offset_secs) {
        return Err(at(
            1,
            format!(
                "\"utc_offset_secs\" {} is not a time zone",
                h.utc_offset_secs
            ),
        ));
    }
    Ok(h)
}
