//! Writing a recording (`--record FILE`): the header, then one JSON line per
//! entry ([`super::format`]). Lines are gathered in memory and written
//! whole by [`Recorder::flush`], which the loops call once per turn, so
//! a killed client leaves whole lines behind.
//!
//! **Invariant:** bounded and never fatal: past [`BUF_MAX`] unwritten
//! bytes the buffer is written at once; the first failed write (a full
//! disk: ENOSPC) stops the recording, drops what is buffered and is
//! reported once, as text for the event log; the chat goes on.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use sockchat_shared::errno;

use super::format::{Entry, Header, encode, socket_json, stamp};
use super::read::LINE_MAX;
use crate::net::SocketEvent;

/// Unwritten bytes kept at most before a write.
const BUF_MAX: usize = 1 << 20;

/// An open recording.
pub struct Recorder {
    /// `None` once a write failed: the recording has stopped.
    out: Option<Box<dyn Write + Send>>,
    /// The file's name, for messages.
    name: String,
    buf: Vec<u8>,
    /// `t_ms` 0, and the wall clock then.
    start: Instant,
    start_ms: u64,
    /// The failure not yet handed to the UI.
    error: Option<String>,
    lines: u64,
    /// Entries too long to write (never expected: a line is bounded by a
    /// frame), counted.
    too_long: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("name", &self.name)
            .field("lines", &self.lines)
            .field("stopped", &self.out.is_none())
            .field("too_long", &self.too_long)
            .finish()
    }
}

impl Recorder {
    /// Create (or truncate) `path`. The header is written with the first
    /// flush, so an error there is told like any other write error.
    pub fn create(path: &Path, header: &Header, start: Instant) -> std::io::Result<Recorder> {
        let f = std::fs::File::create(path)?;
        Ok(Self::with_writer(
            Box::new(f),
            &path.display().to_string(),
            header,
            start,
        ))
    }

    /// A recording into any writer (tests).
    pub fn with_writer(
        out: Box<dyn Write + Send>,
        name: &str,
        header: &Header,
        start: Instant,
    ) -> Recorder {
        let mut r = Recorder {
            out: Some(out),
            name: name.to_string(),
            buf: Vec::new(),
            start,
            start_ms: header.start_ms,
            error: None,
            lines: 0,
            too_long: 0,
        };
        if let Ok(h) = serde_json::to_value(header) {
            r.line(&h);
        }
        r
    }

    /// Lines kept so far (the header included).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Record an entry that happened at `now`.
    pub fn entry(&mut self, entry: &Entry, now: Instant) {
        if self.out.is_none() {
            return;
        }
        let t = now.saturating_duration_since(self.start);
        if let Some(v) = encode(entry, t, self.start_ms) {
            self.line(&v);
        }
    }

    /// Record a socket event (borrowed: the UI gets it next).
    pub fn socket(&mut self, ev: &SocketEvent, now: Instant) {
        if self.out.is_none() {
            return;
        }
        if let Some(mut v) = socket_json(ev) {
            stamp(
                &mut v,
                now.saturating_duration_since(self.start),
                self.start_ms,
            );
            self.line(&v);
        }
    }

    fn line(&mut self, v: &serde_json::Value) {
        let Ok(mut bytes) = serde_json::to_vec(v) else {
            return;
        };
        if bytes.len() >= LINE_MAX {
            self.too_long += 1;
            return;
        }
        bytes.push(b'\n');
        self.buf.extend_from_slice(&bytes);
        self.lines += 1;
        if self.buf.len() >= BUF_MAX {
            self.flush();
        }
    }

    /// Write what is buffered. A failure stops the recording; its message
    /// is kept for [`Recorder::take_error`].
    pub fn flush(&mut self) {
        let Some(out) = &mut self.out else {
            self.buf.clear();
            return;
        };
        if self.buf.is_empty() {
            return;
        }
        let r = out.write_all(&self.buf).and_then(|()| out.flush());
        self.buf.clear();
        if let Err(e) = r {
            self.out = None;
            let why = match e.raw_os_error() {
                Some(n) => format!("write: {} ({n}) {}", errno::name(n), errno::describe(n)),
                None => e.to_string(),
            };
            self.error = Some(format!(
                "recording stopped: {}: {why}; the chat goes on, unrecorded",
                self.name
            ));
        }
    }

    /// The write failure not yet told, once.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}
