//! Make text from the network safe to print on a terminal.
//!
//! A peer must never be able to move our cursor, change colours, set the
//! window title or hide text: every control character (C0, DEL, C1) is
//! replaced, which also defuses every escape sequence (they all start with
//! ESC or a C1 byte). Bidirectional overrides are replaced too, so a line
//! cannot display in a different order than it reads ("trojan source").

use std::borrow::Cow;

/// The replacement shown instead of a control character.
pub const REPLACEMENT: char = '\u{FFFD}';

fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        // Line and paragraph separators: some terminals and viewers break
        // the line there, so one message could pose as two lines.
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Replace control characters and bidi overrides; a tab becomes one space.
/// Returns the input unchanged (borrowed) in the common case.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if is_unsafe(c) => REPLACEMENT,
                c => c,
            })
            .collect(),
    )
}

/// True when the text contains nothing [`sanitize`] would replace.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(is_unsafe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_defused() {
        let evil = "hi\x1b[2J\x1b]0;pwned\x07\u{9b}31m\r\nend";
        let clean = sanitize(evil);
        assert!(is_clean(&clean));
        assert!(!clean.contains('\x1b'));
        assert!(clean.starts_with("hi"));
        assert!(clean.ends_with("end"));
    }

    #[test]
    fn unicode_survives_and_clean_text_is_borrowed() {
        let s = "héllo 世界 👋";
        assert!(matches!(sanitize(s), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\u{202E}b"), "a\u{FFFD}b");
        assert_eq!(sanitize("a\tb"), "a b");
        assert_eq!(sanitize("a\u{2028}b\u{2029}"), "a\u{FFFD}b\u{FFFD}");
        // Invisible but harmless to a terminal: carried as sent.
        assert_eq!(sanitize("a\u{200B}b\u{FEFF}"), "a\u{200B}b\u{FEFF}");
    }
}
