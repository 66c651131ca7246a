//! Recording a session (`--record FILE`) and reading it back for
//! `sockchat replay`: `format.rs` (an entry as a JSON line and back),
//! `write.rs` (the buffered, never-fatal writer), `read.rs` (the bounded
//! reader that names the bad line), `transfer.rs` (file transfers' events
//! back from their objects), `fields.rs` (checked field readers). The
//! TUI's side of it (what is recorded where the app receives events, and
//! the replay) is `tui/replay.rs`.

mod fields;
pub mod format;
pub mod read;
mod transfer;
pub mod write;

use std::path::Path;
use std::time::Instant;

/// Open `--record FILE` for a session of `mode` (`tui`, `plain`) starting
/// at `start` (wall clock `start_ms`).
pub fn open(
    path: &Path,
    mode: &str,
    settings: &crate::cli::ChatSettings,
    start: Instant,
    start_ms: u64,
) -> anyhow::Result<write::Recorder> {
    let c = &settings.client;
    let header = format::Header::new(
        mode,
        &c.server,
        &c.nick,
        &c.room,
        start_ms,
        crate::tui::clock::local_utc_offset(),
    );
    write::Recorder::create(path, &header, start)
        .map_err(|e| anyhow::anyhow!("--record {}: {e}", path.display()))
}
