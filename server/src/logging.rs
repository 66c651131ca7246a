//! Where the server's log lines go: stderr, written by a thread of its own.
//!
//! The runtime's workers format each line and hand it over; they never
//! write to stderr themselves. A `write` to stderr blocks when nobody reads
//! it — a terminal paused with Ctrl-S, `sockchat-server 2>&1 | less` not
//! scrolled, a stalled log collector — and a worker blocked there stops
//! every connection it serves: measured before this file existed, a server
//! whose stderr was a pipe nobody read stopped answering after ~300
//! connections (one `disconnected` line each filled the 64 KiB pipe). Now
//! at most [`BUFFERED_LINES`] lines wait for the writer thread; past that a
//! line is dropped and counted ([`dropped_lines`], shown by `/stats`, the
//! `stats` line and the metrics as `log_lines_dropped`), and serving goes on.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines that may wait for a slow stderr before new ones are dropped: ~2 MB
/// at 256 bytes a line, a few seconds of a busy server's connection churn.
pub const BUFFERED_LINES: usize = 8192;

/// Bytes the writer thread gathers before a write(2).
const WRITE_BUFFER: usize = 64 * 1024;
/// How long the writer thread lets lines gather after each batch.
const GATHER: Duration = Duration::from_millis(5);

/// The writer thread's stderr. The thread takes every queued line, writes
/// them into this buffer and flushes: one write(2) per batch, not per line
/// (a churning server logs a line per connection). After the flush it
/// pauses [`GATHER`], so the next lines wait in the queue for it instead of
/// each waking it (a futex wake per line was measured at +5-10 % of the
/// server's CPU per connection under churn); a line is at most that much
/// later on stderr.
struct Batches<W: Write>(W);

impl<W: Write> Write for Batches<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.0.flush();
        std::thread::sleep(GATHER);
        r
    }
}

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread; dropping it (at the end of `main`) writes out
/// what is still queued, waiting at most ~1 s for a stderr that does not
/// take it.
#[must_use = "the log writer stops when the guard is dropped"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Install the global subscriber: `filter` (an `EnvFilter` directive,
/// checked by `Settings`; `info` if it does not parse), JSON lines or
/// text (colours only when stderr is a terminal).
pub fn init(filter: &str, json: bool) -> LogGuard {
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("sockchat-log")
        .finish(Batches(std::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            std::io::stderr(),
        )));
    // A second init (tests in one process) keeps the first counter.
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    LogGuard { _writer: guard }
}

/// Log lines dropped so far because stderr did not take them (0 when the
/// server was started without [`init`], as in-process tests do).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}
