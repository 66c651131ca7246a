//! The optional chat log (`[client] chat_log_dir`): every line a room
//! shows is appended to `DIR/ROOM.log`, one line each, as plain text
//! (`view::plain_line`: sanitised, with date and time). The app queues the
//! lines; the loop hands them here after each batch of events, so the app
//! stays free of I/O.
//!
//! A private view (`@NICK`, the app's name for it) logs to
//! `DIR/private/NICK.log`, so a private chat with `bob` and a room called
//! `_bob` or `bob` never share a file.
//!
//! A room name comes from the server: the file name keeps letters, digits,
//! `-`, `_` and `.` (not first) and writes any other character as `%XX`
//! per UTF-8 byte (`%` too), so a hostile name can never leave the folder
//! and two names never share a file (`a.b` and `a_b` stay apart); a name
//! longer than [`NAME_MAX`] bytes is cut and ends with a hash of the whole.
//! At most [`OPEN_MAX`] files are kept open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files kept open at once; past it, all are closed and reopened as needed.
const OPEN_MAX: usize = 64;
/// The longest file name made from a room name (before `.log`).
const NAME_MAX: usize = 100;

/// The open log files by room.
#[derive(Debug)]
pub struct ChatLog {
    dir: PathBuf,
    open: HashMap<String, File>,
    /// The first error, told once (a full disk must not flood the chat).
    failed: bool,
}

/// The folder (inside the log folder) of private views' logs.
pub const PRIVATE_DIR: &str = "private";

/// The file (relative to the log folder) for a room's log: `lobby.log`,
/// `..%2F..%2Fetc%2Fpasswd.log` (one name, inside the folder), and for a
/// private view `@bob`: `private/bob.log`.
pub fn file_name(room: &str) -> PathBuf {
    match room.strip_prefix('@') {
        Some(nick) => Path::new(PRIVATE_DIR).join(format!("{}.log", escape(nick))),
        None => PathBuf::from(format!("{}.log", escape(room))),
    }
}

/// `name` as one safe file name, different for different names.
fn escape(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_alphanumeric() || c == '-' || c == '_' || (c == '.' && i > 0) {
            out.push(c);
        } else {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    if out.len() > NAME_MAX {
        use std::hash::{DefaultHasher, Hash, Hasher};
        // SipHash with fixed keys: the same name gets the same file every
        // run.
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        let mut cut = NAME_MAX - 17;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&format!("~{:016x}", h.finish()));
    }
    out
}

impl ChatLog {
    /// Logs into `dir`, created if missing.
    pub fn new(dir: &Path) -> std::io::Result<ChatLog> {
        std::fs::create_dir_all(dir)?;
        Ok(ChatLog {
            dir: dir.to_path_buf(),
            open: HashMap::new(),
            failed: false,
        })
    }

    /// Append lines `(room, text)`. The first failure is returned (to be
    /// shown once); later ones are dropped silently.
    pub fn write(&mut self, lines: Vec<(String, String)>) -> Option<String> {
        let mut err = None;
        for (room, text) in lines {
            if let Err(e) = self.append(&room, &text)
                && !self.failed
            {
                self.failed = true;
                err = Some(format!(
                    "chat log: {}: {e} (no more chat log errors are shown)",
                    self.dir.join(file_name(&room)).display()
                ));
            }
        }
        err
    }

    fn append(&mut self, room: &str, text: &str) -> std::io::Result<()> {
        if !self.open.contains_key(room) {
            if self.open.len() >= OPEN_MAX {
                self.open.clear();
            }
            let path = self.dir.join(file_name(room));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let f = OpenOptions::new().create(true).append(true).open(path)?;
            self.open.insert(room.to_string(), f);
        }
        match self.open.get_mut(room) {
            Some(f) => writeln!(f, "{text}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_per_room() {
        let dir = std::env::temp_dir().join(format!("sockchat-chatlog-{}", std::process::id()));
        let mut log = ChatLog::new(&dir).expect("dir");
        let none = log.write(vec![
            ("lobby".into(), "2026-12-06 10:00:00 bob: hi".into()),
            ("../up".into(), "2026-12-06 10:00:01 bob: there".into()),
            ("lobby".into(), "2026-12-06 10:00:02 bob: again".into()),
        ]);
        assert_eq!(none, None);
        drop(log);
        let lobby = std::fs::read_to_string(dir.join("lobby.log")).expect("lobby.log");
        assert_eq!(
            lobby,
            "2026-12-06 10:00:00 bob: hi\n2026-12-06 10:00:02 bob: again\n"
        );
        assert!(
            dir.join("%2E.%2Fup.log").is_file(),
            "kept inside the folder"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_stay_in_the_folder() {
        let f = |r: &str| file_name(r).to_string_lossy().into_owned();
        assert_eq!(f("lobby"), "lobby.log");
        assert_eq!(f("../../etc/passwd"), "%2E.%2F..%2Fetc%2Fpasswd.log");
        assert_eq!(f(".hidden"), "%2Ehidden.log");
        assert_eq!(f("@bob"), "private/bob.log");
        assert_eq!(f("@../x"), "private/%2E.%2Fx.log");
        assert_eq!(f(""), "%.log");
        assert!(f(&"x".repeat(1000)).len() <= NAME_MAX + 4);
        for name in ["../up", "@a/b", "a\u{0}b", &"é".repeat(300)] {
            let p = file_name(name);
            assert!(
                p.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{p:?}"
            );
            assert!(p.components().count() <= 2, "{p:?}");
        }
    }

    /// The clash of the first version: a private view with `bob` and a
    /// room `_bob` (or `a.b` and `a_b`, or two long names) shared a file.
    #[test]
    fn different_names_different_files() {
        let names = [
            "@bob".to_string(),
            "_bob".to_string(),
            "bob".to_string(),
            "a.b".to_string(),
            "a_b".to_string(),
            "a%2Eb".to_string(),
            format!("{}1", "x".repeat(200)),
            format!("{}2", "x".repeat(200)),
        ];
        let files: std::collections::HashSet<PathBuf> =
            names.iter().map(|n| file_name(n)).collect();
        assert_eq!(files.len(), names.len(), "{files:?}");
    }
}
