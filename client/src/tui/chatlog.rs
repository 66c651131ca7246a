//! The optional chat log (`[client] chat_log_dir`): every line a room
//! shows is appended to `DIR/ROOM.log`, one line each, as plain text
//! (`view::plain_line`: sanitised, with date and time). The app queues the
//! lines; the loop hands them here after each batch of events, so the app
//! stays free of I/O.
//!
//! A room name comes from the server: the file name keeps only letters,
//! digits, `-` and `_` (anything else becomes `_`, a leading `.` too), so a
//! hostile name can never leave the folder. At most [`OPEN_MAX`] files are
//! kept open.

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

/// The file name for a room's log: `lobby.log`, `_etc_passwd.log`.
pub fn file_name(room: &str) -> String {
    let mut name: String = room
        .chars()
        .take(NAME_MAX)
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    format!("{name}.log")
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
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(file_name(room)))?;
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
        assert!(dir.join("___up.log").is_file(), "kept inside the folder");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_stay_in_the_folder() {
        assert_eq!(file_name("lobby"), "lobby.log");
        assert_eq!(file_name("../../etc/passwd"), "______etc_passwd.log");
        assert_eq!(file_name(".hidden"), "_hidden.log");
        assert_eq!(file_name("@bob"), "_bob.log");
        assert_eq!(file_name(""), "_.log");
        assert!(file_name(&"x".repeat(1000)).len() <= NAME_MAX + 4);
    }
}
