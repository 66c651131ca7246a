//! The input line: a small line editor with a cursor, history (Up/Down) and
//! Tab completion. Positions are in chars, widths in terminal cells
//! (unicode-width), so wide and combining text never breaks the layout.

use unicode_width::UnicodeWidthChar;

/// Most lines kept in the input history.
const HISTORY_MAX: usize = 500;
/// Most characters the line holds: far above any message the server
/// accepts (those get a clear "too long" error on Enter), but a pasted
/// file cannot grow the editor without bound.
pub const LINE_MAX_CHARS: usize = 64 * 1024;

/// An in-progress Tab completion: repeated Tab cycles the candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Completion {
    /// Char index where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    idx: usize,
    /// The text after the cursor when Tab was first pressed (kept as is).
    tail: Vec<char>,
}

/// The editable line plus its history.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    chars: Vec<char>,
    /// Cursor position, 0..=chars.len().
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history (None: editing a fresh line).
    hist_pos: Option<usize>,
    /// The unfinished line saved when history browsing started.
    draft: String,
    completion: Option<Completion>,
    /// What the last Ctrl-U / Ctrl-W / Ctrl-K / Alt-d cut (Ctrl-Y yanks it).
    killed: String,
}

impl LineEditor {
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }
    pub fn cursor(&self) -> usize {
        self.cursor
    }
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    pub fn history(&self) -> &[String] {
        &self.history
    }

    fn edited(&mut self) {
        self.completion = None;
    }

    pub fn set(&mut self, s: &str) {
        self.chars = s.chars().collect();
        self.cursor = self.chars.len();
        self.edited();
    }

    /// What a typed or pasted character becomes in the line: tab and line
    /// breaks a space, other control characters nothing (a paste may carry
    /// them).
    fn admit(c: char) -> Option<char> {
        match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        }
    }

    pub fn insert(&mut self, c: char) {
        self.insert_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Insert at the cursor, up to [`LINE_MAX_CHARS`] in all, in one splice
    /// (a large paste costs its length, not its length times the line's).
    pub fn insert_str(&mut self, s: &str) {
        let room = LINE_MAX_CHARS.saturating_sub(self.chars.len());
        let add: Vec<char> = s.chars().filter_map(Self::admit).take(room).collect();
        if add.is_empty() {
            return;
        }
        let n = add.len();
        self.chars.splice(self.cursor..self.cursor, add);
        self.cursor += n;
        self.edited();
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
        self.edited();
    }

    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
        self.edited();
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
        self.edited();
    }
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
        self.edited();
    }
    pub fn home(&mut self) {
        self.cursor = 0;
        self.edited();
    }
    pub fn end(&mut self) {
        self.cursor = self.chars.len();
        self.edited();
    }

    /// Move to the start of the previous word.
    pub fn word_left(&mut self) {
        while self.cursor > 0 && self.chars[self.cursor - 1].is_whitespace() {
            self.cursor -= 1;
        }
        while self.cursor > 0 && !self.chars[self.cursor - 1].is_whitespace() {
            self.cursor -= 1;
        }
        self.edited();
    }

    /// Move past the end of the next word.
    pub fn word_right(&mut self) {
        let n = self.chars.len();
        while self.cursor < n && self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
        while self.cursor < n && !self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
        self.edited();
    }

    /// Cut `from..to` into the kill buffer (empty cuts keep the old one).
    fn kill(&mut self, from: usize, to: usize) {
        if from < to {
            self.killed = self.chars.drain(from..to).collect();
        }
        self.cursor = from;
        self.edited();
    }

    /// Ctrl-W: cut the word before the cursor.
    pub fn delete_word(&mut self) {
        let end = self.cursor;
        self.word_left();
        self.kill(self.cursor, end);
    }

    /// Alt-d: cut from the cursor to the end of the word after it.
    pub fn delete_word_forward(&mut self) {
        let start = self.cursor;
        self.word_right();
        let end = self.cursor;
        self.kill(start, end);
    }

    /// Ctrl-U: cut everything before the cursor.
    pub fn kill_to_start(&mut self) {
        self.kill(0, self.cursor);
    }

    /// Ctrl-K: cut everything from the cursor on.
    pub fn kill_to_end(&mut self) {
        self.kill(self.cursor, self.chars.len());
    }

    /// Ctrl-Y: insert what was cut last.
    pub fn yank(&mut self) {
        let k = self.killed.clone();
        self.insert_str(&k);
    }

    /// Ctrl-C on a half-typed line: drop it (it stays yankable), as shells do.
    pub fn clear(&mut self) {
        self.kill(0, self.chars.len());
        self.hist_pos = None;
    }

    /// Enter: take the line, remember it in the history, clear. A line
    /// with a password or key (`/identify pw`, `/join room key`:
    /// `secret::carries_secret`) is never kept.
    pub fn submit(&mut self) -> String {
        let line = self.text();
        if !line.trim().is_empty()
            && self.history.last() != Some(&line)
            && !sockchat_shared::secret::carries_secret(&line)
        {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_MAX {
                self.history.remove(0);
            }
        }
        self.chars.clear();
        self.cursor = 0;
        self.hist_pos = None;
        self.draft.clear();
        self.edited();
        line
    }

    /// Up: the previous history entry (the unfinished line is kept).
    pub fn history_prev(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = match self.hist_pos {
            None => {
                self.draft = self.text();
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(p) => p - 1,
        };
        self.hist_pos = Some(pos);
        let s = self.history[pos].clone();
        self.set(&s);
    }

    /// Down: the next history entry, then back to the unfinished line.
    pub fn history_next(&mut self) {
        let Some(p) = self.hist_pos else { return };
        if p + 1 < self.history.len() {
            self.hist_pos = Some(p + 1);
            let s = self.history[p + 1].clone();
            self.set(&s);
        } else {
            self.hist_pos = None;
            let d = std::mem::take(&mut self.draft);
            self.set(&d);
        }
    }

    /// Tab: complete the word before the cursor. A word starting with `/`
    /// at the start of the line completes commands (`commands`), the
    /// argument of `/fault` completes fault names, anything else completes
    /// nicks (`nicks`); a nick completed at the start of the line gets `: `.
    /// Repeated Tab cycles through the candidates.
    pub fn complete(
        &mut self,
        commands: &[&str],
        faults: &[&str],
        rooms: &[String],
        nicks: &[String],
    ) {
        if let Some(c) = &mut self.completion {
            if c.candidates.is_empty() {
                return;
            }
            c.idx = (c.idx + 1) % c.candidates.len();
            let (start, word, tail) = (c.start, c.candidates[c.idx].clone(), c.tail.clone());
            self.replace_word(start, &word, &tail);
            return;
        }
        let mut start = self.cursor;
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        let prefix: String = self.chars[start..self.cursor].iter().collect();
        let before: String = self.chars[..start].iter().collect();
        let mut candidates: Vec<String> = if start == 0 && prefix.starts_with('/') {
            commands
                .iter()
                .filter(|c| c.starts_with(&prefix))
                .map(|c| format!("{c} "))
                .collect()
        } else if before.trim_end() == "/fault" {
            faults
                .iter()
                .filter(|f| f.starts_with(&prefix))
                .map(|f| f.to_string())
                .collect()
        } else if matches!(
            before.trim_end(),
            "/join" | "/j" | "/leave" | "/part" | "/who" | "/names"
        ) {
            // A room name (the `#` is optional when typed).
            let p = prefix.trim_start_matches('#').to_lowercase();
            rooms
                .iter()
                .filter(|r| r.to_lowercase().starts_with(&p))
                .map(|r| format!("{r} "))
                .collect()
        } else if prefix.is_empty() {
            Vec::new()
        } else {
            let lower = prefix.to_lowercase();
            let suffix = if start == 0 { ": " } else { " " };
            nicks
                .iter()
                .filter(|n| n.to_lowercase().starts_with(&lower))
                .map(|n| format!("{n}{suffix}"))
                .collect()
        };
        candidates.sort();
        candidates.dedup();
        let tail = self.chars[self.cursor..].to_vec();
        if let Some(first) = candidates.first().cloned() {
            self.replace_word(start, &first, &tail);
        }
        self.completion = Some(Completion {
            start,
            candidates,
            idx: 0,
            tail,
        });
    }

    fn replace_word(&mut self, start: usize, word: &str, tail: &[char]) {
        self.chars.truncate(start);
        self.chars.extend(word.chars());
        self.cursor = self.chars.len();
        self.chars.extend_from_slice(tail);
    }

    /// What to draw in `width` cells: the visible slice of the line and the
    /// cursor's cell offset within it. Scrolls horizontally so the cursor
    /// is always visible.
    pub fn view(&self, width: usize) -> (String, usize) {
        if width == 0 {
            return (String::new(), 0);
        }
        let w = |c: &char| c.width().unwrap_or(0);
        // Start so that the cells from start to cursor fit in width - 1
        // (one cell for the cursor itself).
        let mut start = self.cursor;
        let mut used = 0;
        while start > 0 && used + w(&self.chars[start - 1]) < width {
            used += w(&self.chars[start - 1]);
            start -= 1;
        }
        let mut out = String::new();
        let mut cells = 0;
        let mut cursor_cell = 0;
        for (i, c) in self.chars.iter().enumerate().skip(start) {
            if i == self.cursor {
                cursor_cell = cells;
            }
            let cw = w(c);
            if cells + cw > width {
                break;
            }
            out.push(*c);
            cells += cw;
        }
        if self.cursor >= self.chars.len() {
            cursor_cell = cells.min(width.saturating_sub(1));
        }
        (out, cursor_cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_the_history() {
        let mut e = LineEditor::default();
        for line in [
            "/identify hunter2",
            "/join dev k3y",
            "hello",
            "/oper hunter2",
        ] {
            e.insert_str(line);
            assert_eq!(e.submit(), line);
        }
        assert_eq!(e.history(), ["hello".to_string()]);
    }

    #[test]
    fn edit_and_history() {
        let mut e = LineEditor::default();
        e.insert_str("helo");
        e.left();
        e.insert('l');
        assert_eq!(e.text(), "hello");
        e.home();
        e.insert('>');
        assert_eq!(e.text(), ">hello");
        e.end();
        e.insert_str(" world");
        e.delete_word();
        assert_eq!(e.text(), ">hello ");
        assert_eq!(e.submit(), ">hello ");
        e.insert_str("second");
        e.submit();
        e.insert_str("draft");
        e.history_prev();
        assert_eq!(e.text(), "second");
        e.history_prev();
        assert_eq!(e.text(), ">hello ");
        e.history_next();
        e.history_next();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn completion_cycles() {
        let mut e = LineEditor::default();
        let nicks = vec!["alice".to_string(), "albert".to_string(), "bob".into()];
        e.insert_str("al");
        e.complete(&["/join"], &[], &[], &nicks);
        assert_eq!(e.text(), "albert: ");
        e.complete(&["/join"], &[], &[], &nicks);
        assert_eq!(e.text(), "alice: ");
        e.set("/jo");
        e.complete(&["/join", "/quit"], &[], &[], &nicks);
        assert_eq!(e.text(), "/join ");
        e.set("/fault cl");
        e.complete(&["/fault"], &["fin", "close-unread"], &[], &nicks);
        assert_eq!(e.text(), "/fault close-unread");
        let rooms = vec!["lobby".to_string(), "projects".into(), "python".into()];
        e.set("/join p");
        e.complete(&["/join"], &[], &rooms, &nicks);
        assert_eq!(e.text(), "/join projects ");
        e.complete(&["/join"], &[], &rooms, &nicks);
        assert_eq!(e.text(), "/join python ");
    }

    #[test]
    fn readline_words_kill_and_yank() {
        let mut e = LineEditor::default();
        e.insert_str("one two three");
        e.word_left();
        e.word_left();
        assert_eq!(e.cursor(), 4, "Alt-b: to the start of the word before");
        e.delete_word_forward();
        assert_eq!(e.text(), "one  three", "Alt-d cut the word after");
        e.end();
        e.yank();
        assert_eq!(e.text(), "one  threetwo", "Ctrl-Y yanks what Alt-d cut");
        e.kill_to_start();
        assert_eq!(e.text(), "");
        e.yank();
        e.yank();
        assert_eq!(e.text(), "one  threetwoone  threetwo", "Ctrl-U's cut");
        e.set("hello world");
        e.delete_word();
        e.home();
        e.yank();
        assert_eq!(e.text(), "worldhello ", "Ctrl-W's cut");
        e.clear();
        assert!(e.is_empty());
        e.yank();
        assert_eq!(e.text(), "worldhello ", "a cleared line can be yanked back");
    }

    #[test]
    fn a_huge_paste_is_capped() {
        let mut e = LineEditor::default();
        e.insert_str(&"y".repeat(LINE_MAX_CHARS + 1000));
        assert_eq!(e.text().len(), LINE_MAX_CHARS);
        // Control characters from a paste never enter the line.
        let mut e = LineEditor::default();
        e.insert_str("a\x1b[2Jb\tc");
        assert_eq!(e.text(), "a[2Jb c");
    }

    #[test]
    fn wide_view_keeps_cursor_visible() {
        let mut e = LineEditor::default();
        e.insert_str("世界世界世界世界");
        let (s, cur) = e.view(6);
        assert!(unicode_width::UnicodeWidthStr::width(s.as_str()) <= 6);
        assert!(cur <= 5);
        e.home();
        let (s, cur) = e.view(6);
        assert_eq!(s, "世界世");
        assert_eq!(cur, 0);
    }
}
