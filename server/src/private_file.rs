//! Rewriting a small private file (the nicks file, the bans file) whole and
//! atomically: a temporary file beside it (mode 0600), synced, then renamed
//! over the old one, so a crash leaves the old file or the new one, never
//! half of one. A leaf.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replace `path` with `contents` (creating its directory if needed).
pub(crate) fn rewrite(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // `NAME.tmp` beside it (not `with_extension`: `nicks.bans` would
    // share `nicks.tmp` with the nicks file).
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
