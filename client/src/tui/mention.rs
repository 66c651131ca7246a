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
}

impl Mentions {
    /// Follow our nick (a Welcome, a rename); cheap when unchanged.
    pub fn set_nick(&mut self, nick: &str) {
        if self.nick != nick {
            self.nick = nick.to_string();
            self.key = nick_key(nick);
        }
    }

    /// Whether `text` names us as a word.
    pub fn in_text(&self, text: &str) -> bool {
        if self.key.is_empty() {
            return false;
        }
        text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .map(|w| w.trim_matches(['.', '-']))
            .filter(|w| !w.is_empty())
            .any(|w| nick_key(w) == self.key)
    }
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
