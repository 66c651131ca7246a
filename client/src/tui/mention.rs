//! Does a line mention us? A word of the text whose identity key
//! (`shared::fold::nick_key`: NFKC, case fold, look-alike skeleton, the
//! key the server compares nicks by) equals our nick's key. Words are
//! runs of the characters a nick may hold (letters, digits, `-_.`), with
//! `.` and `-` trimmed at their ends, so `alice:`, `@alice`, `ALICE!` and
//! `alice.` mention alice, and `malice` or `alice_2` do not.

use sockchat_shared::fold::nick_key;

/// Our nick's key, kept so a line costs one key per word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    nick: String,
    key: String,
    /// Words longer than this (in chars) cannot fold to our key and are
    /// not folded at all: a flood of long words costs a length check each.
    longest: usize,
}

impl Mentions {
    /// Follow our nick (a Welcome, a rename); cheap when unchanged.
    pub fn set_nick(&mut self, nick: &str) {
        if self.nick != nick {
            self.nick = nick.to_string();
            self.key = nick_key(nick);
            // Folding shrinks a word at most a few times (composition of
            // combining marks); far longer words are never our nick.
            self.longest = 4 * self.key.chars().count().max(nick.chars().count()) + 16;
        }
    }

    /// Whether `text` names us as a word. One pass over the text; only
    /// words of a length that could fold to our key are folded.
    pub fn in_text(&self, text: &str) -> bool {
        if self.key.is_empty() {
            return false;
        }
        // By bytes, decoding only non-ASCII characters: a plain indexed
        // loop stays cheap even in a debug build (a flood of 4,000-byte
        // lines must not slow the UI down).
        let b = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < b.len() {
            let c = b[i];
            if c < 0x80 && ASCII_WORD[c as usize] {
                // The common case in one table load.
                i += 1;
                continue;
            }
            let (word, len) = if c < 0x80 {
                (false, 1)
            } else {
                match text.get(i..).and_then(|t| t.chars().next()) {
                    Some(c) => (is_word_char(c), c.len_utf8()),
                    None => (true, 1),
                }
            };
            if !word {
                if self.is_us(text.get(start..i).unwrap_or("")) {
                    return true;
                }
                start = i + len;
            }
            i += len;
        }
        self.is_us(text.get(start..).unwrap_or(""))
    }

    fn is_us(&self, word: &str) -> bool {
        let w = word.trim_matches(['.', '-']);
        !w.is_empty()
            && w.len() <= 4 * self.longest
            && w.chars().count() <= self.longest
            && nick_key(w) == self.key
    }
}

/// The ASCII bytes a nick may hold (letters, digits, `-_.`).
static ASCII_WORD: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
        i += 1;
    }
    t
};

/// A character a nick may hold (letters, digits, `-_.`).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_boundaries_and_case_folding() {
        let mut m = Mentions::default();
        assert!(!m.in_text("alice"), "no nick yet: nothing mentions us");
        m.set_nick("alice");
        for yes in [
            "alice",
            "alice: hi",
            "hi @alice!",
            "ALICE?",
            "hey Alice.",
            "thanks, alice-",
            "ａｌｉｃｅ look",
            "(alice)",
        ] {
            assert!(m.in_text(yes), "{yes:?}");
        }
        for no in ["malice", "alice_2 hi", "alicebob", "ali ce", "", "bob"] {
            assert!(!m.in_text(no), "{no:?}");
        }
        m.set_nick("Straße");
        assert!(m.in_text("ask STRASSE"));
    }
}
