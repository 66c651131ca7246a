//! `known_servers`: the certificate fingerprints this user has pinned, one
//! server a line, like SSH's known_hosts:
//!
//! ```text
//! # comment
//! chat.example:7879 SHA256:AB:CD:...
//! ```
//!
//! The server is named as the user typed it (`--server`), so
//! `localhost:7879` and `127.0.0.1:7879` are pinned separately, as SSH does.
//! A line that does not parse is kept as it is and ignored.

use std::io;
use std::path::{Path, PathBuf};

use sockchat_shared::fingerprint::Fingerprint;

/// Where the file lives: `--known-servers`, else `SOCKCHAT_KNOWN_SERVERS`,
/// else `[client] known_servers`, else `$XDG_CONFIG_HOME/sockchat/known_servers`,
/// else `~/.config/sockchat/known_servers`.
pub fn default_path(flag: Option<&str>, config: &str) -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(f) = flag.filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(f));
    }
    if let Some(e) = nonempty("SOCKCHAT_KNOWN_SERVERS") {
        return Some(PathBuf::from(e));
    }
    if !config.is_empty() {
        return Some(PathBuf::from(config));
    }
    if let Some(x) = nonempty("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(x).join("sockchat/known_servers"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".config/sockchat/known_servers"))
}

/// The fingerprint pinned for `server`, if any. A missing file pins nothing.
pub fn lookup(path: &Path, server: &str) -> io::Result<Option<Fingerprint>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text.lines().find_map(|l| match parse_line(l) {
        Some((s, fp)) if s == server => Some(fp),
        _ => None,
    }))
}

fn parse_line(l: &str) -> Option<(&str, Fingerprint)> {
    let l = l.trim();
    if l.starts_with('#') {
        return None;
    }
    let mut it = l.split_whitespace();
    let server = it.next()?;
    let fp = Fingerprint::parse(it.next()?).ok()?;
    Some((server, fp))
}

/// Pin `fp` for `server`: replaces its line if there is one, else appends.
/// The directory is created if needed.
pub fn pin(path: &Path, server: &str, fp: Fingerprint) -> io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut out = String::new();
    for l in old.lines() {
        if matches!(parse_line(l), Some((s, _)) if s == server) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("{server} {fp}\n"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Write a new file and rename it over the old one: a crash never leaves
    // a half-written list.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_replaces_only_its_server() {
        let dir = std::env::temp_dir().join(format!("sockchat-ks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = dir.join("sub/known_servers");
        let a = Fingerprint::of_der(b"a");
        let b = Fingerprint::of_der(b"b");
        assert_eq!(lookup(&p, "x:1").expect("missing file"), None);
        pin(&p, "x:1", a).expect("pin");
        pin(&p, "y:2", a).expect("pin");
        pin(&p, "x:1", b).expect("re-pin");
        assert_eq!(lookup(&p, "x:1").expect("read"), Some(b));
        assert_eq!(lookup(&p, "y:2").expect("read"), Some(a));
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text.lines().count(), 2, "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
