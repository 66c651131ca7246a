//! Where a received file goes and under which name: the download folder
//! (`--download-dir`, `[client] download_dir`, `$XDG_DOWNLOAD_DIR`,
//! `~/Downloads`, else the current folder), a safe base name made from the
//! name a (possibly hostile) sender offered, a temporary file while bytes
//! arrive, and the final name taken only once the checksum matched —
//! never overwriting anything (` (1)`, ` (2)`... are added).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Names Windows reserves whatever the extension (`CON`, `con.txt`...):
/// refused too, so a file received here can be copied anywhere.
const WINDOWS_RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Longest name we make (bytes), below every common file system's 255.
const MAX_NAME: usize = 200;

/// A safe base name for `offered`: the part after the last `/` or `\`, with
/// control characters, bidi controls and characters Windows forbids
/// (`<>:"|?*`) replaced by `_`, leading dots and trailing dots and spaces
/// removed (no hidden files, no `..`), Windows-reserved names prefixed with
/// `_`, cut to 200 bytes; `file` if nothing is left.
pub fn safe_name(offered: &str) -> String {
    let base = offered.rsplit(['/', '\\']).next().unwrap_or("");
    let mut s: String = base
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
            if c.is_control() || bidi || "<>:\"|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    s = s.trim_start_matches(['.', ' ']).to_string();
    s = s.trim_end_matches(['.', ' ']).to_string();
    if s.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    let stem = s
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_ascii_uppercase();
    if WINDOWS_RESERVED.contains(&stem.as_str()) {
        s.insert(0, '_');
    }
    if s.is_empty() {
        s = "file".into();
    }
    s
}

/// The download folder: the configured one if not empty, else
/// `$XDG_DOWNLOAD_DIR`, else `~/Downloads` if it exists, else `.`.
pub fn download_dir(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Some(d) = std::env::var_os("XDG_DOWNLOAD_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let d = Path::new(&home).join("Downloads");
        if d.is_dir() {
            return d;
        }
    }
    PathBuf::from(".")
}

/// `name`, `name (1)`, `name (2)`... keeping the extension last.
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// A new, empty temporary file in `dir` for transfer `id` (created
/// exclusively: never an existing file, never through a symlink).
pub fn create_temp(dir: &Path, name: &str, id: u64) -> io::Result<(File, PathBuf)> {
    for n in 0..100u32 {
        let p = dir.join(format!(".{name}.{id}.{n}.sockchat-part"));
        match File::options().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// Give the finished temporary file `tmp` its final name in `dir`: `name`,
/// or `name (1)`... whichever does not exist yet. A hard link fails when
/// the name exists, so nothing is ever overwritten, even by a race; where
/// links are not supported, a rename after checking.
pub fn place(tmp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    for n in 0..10_000u32 {
        let dest = dir.join(numbered(name, n));
        match std::fs::hard_link(tmp, &dest) {
            Ok(()) => {
                std::fs::remove_file(tmp)?;
                return Ok(dest);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                if dest.symlink_metadata().is_ok() {
                    continue;
                }
                std::fs::rename(tmp, &dest)?;
                return Ok(dest);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name}: 10,000 files of that name already"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_safe_base_names() {
        for (offered, want) in [
            ("../../etc/passwd", "passwd"),
            ("..", "file"),
            ("", "file"),
            ("/", "file"),
            ("a\\b\\..\\c.txt", "c.txt"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("lpt1", "_lpt1"),
            ("COM10", "COM10"),
            (".bashrc", "bashrc"),
            ("evil\u{1b}[2Jname", "evil_[2Jname"),
            ("gpj.\u{202E}exe", "gpj._exe"),
            ("a:b?.txt", "a_b_.txt"),
            ("trailing. . ", "trailing"),
            ("ok file (2).tar.gz", "ok file (2).tar.gz"),
        ] {
            assert_eq!(safe_name(offered), want, "{offered:?}");
        }
        assert!(safe_name(&"é".repeat(300)).len() <= MAX_NAME);
    }

    #[test]
    fn numbered_keeps_the_extension() {
        assert_eq!(numbered("a.txt", 0), "a.txt");
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
        assert_eq!(numbered("README", 1), "README (1)");
    }

    #[test]
    fn place_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("sockchat-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.txt"), b"old").unwrap();
        let (_, t1) = create_temp(&dir, "x.txt", 1).unwrap();
        std::fs::write(&t1, b"new").unwrap();
        let p = place(&t1, &dir, "x.txt").unwrap();
        assert_eq!(p, dir.join("x (1).txt"));
        assert_eq!(std::fs::read(dir.join("x.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert!(!t1.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
