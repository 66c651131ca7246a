//! Nick identity: the key under which two nicks are "the same user".
//!
//! Text users cannot tell `alice`, `ALICE`, `аlice` (Cyrillic а) and
//! `ａｌｉｃｅ` (fullwidth) apart, so the server must not let them be four
//! users. [`nick_key`] maps a nick to
//! `skeleton(NFKC(casefold(NFKC(nick))))`: compatibility normalisation
//! (fullwidth and other compatibility forms become plain letters), full
//! Unicode case folding (`ß` → `ss`, so `straße` = `STRASSE`), then the
//! Unicode confusable skeleton of UTS #39 (`а` → `a`, `0` → `O`...). Two
//! nicks with the same key are one nick; the nick *shown* stays as typed.
//!
//! The skeleton is deliberately broad (it also makes `rn` = `m` and
//! `1` = `l`): a false "taken" costs a user another nick, a false "free"
//! lets someone impersonate.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

/// The identity key of a nick (see the module doc). Pure and
/// deterministic; the result is only ever compared, never shown.
pub fn nick_key(nick: &str) -> String {
    let folded: String = nick.nfkc().default_case_fold().nfkc().collect();
    skeleton(&folded).collect()
}

/// True when `a` and `b` would be the same user.
pub fn same_nick(a: &str, b: &str) -> bool {
    nick_key(a) == nick_key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_are_one_nick() {
        for other in [
            "ALICE",
            "Alice",
            "\u{0430}lice",                             // Cyrillic а
            "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}", // fullwidth ａｌｉｃｅ
            "\u{FF21}\u{FF2C}\u{FF29}\u{FF23}\u{FF25}", // fullwidth ＡＬＩＣＥ
            "a\u{217C}ice",                             // ⅼ small roman numeral fifty
        ] {
            assert!(same_nick("alice", other), "alice vs {other:?}");
        }
        assert!(same_nick("straße", "STRASSE"));
        assert!(same_nick("strasse", "Straße"));
        // Composed and decomposed forms.
        assert!(same_nick("jos\u{e9}", "jose\u{301}"));
        assert!(same_nick("JOS\u{c9}", "jos\u{e9}"));
    }

    #[test]
    fn different_names_stay_different() {
        for (a, b) in [
            ("alice", "alicia"),
            ("bob", "bobby"),
            ("alice", "ali"),
            ("jose", "josé"),
            ("guest1", "guest2"),
        ] {
            assert!(!same_nick(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn keys_are_stable_and_total() {
        // Any string has a key (no panic on odd input), and the key of a
        // key is itself a fixed point for plain ASCII lowercase.
        for s in ["", "x", "\u{0}", "\u{202E}evil", "😀", &"a".repeat(300)] {
            let _ = nick_key(s);
        }
        assert_eq!(nick_key("bob"), nick_key(&nick_key("bob")));
    }
}
