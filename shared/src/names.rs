//! Nick and room name rules, shared so a client can check before sending.

/// Why a name was refused; the text is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may only contain letters, digits, '-', '_' and '.'")]
    BadChar { what: &'static str },
}

fn check(name: &str, what: &'static str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { what, max });
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(NameError::BadChar { what });
    }
    Ok(())
}

/// A nick: 1..=max letters/digits/`-_.`.
pub fn check_nick(nick: &str, max: usize) -> Result<(), NameError> {
    check(nick, "nick", max)
}

/// A room name: 1..=max letters/digits/`-_.`; a leading `#` is ignored by
/// [`normalize_room`] before checking.
pub fn check_room(room: &str, max: usize) -> Result<(), NameError> {
    check(room, "room name", max)
}

/// Strip one leading `#` (IRC habit) so `#lobby` and `lobby` are one room.
pub fn normalize_room(room: &str) -> &str {
    room.strip_prefix('#').unwrap_or(room)
}

/// A nick the server hands out (`guest` and digits, in any case or
/// look-alike, e.g. `GUEST1` or `guestl`): it cannot be registered, or the
/// server could hand a registered nick to a new user. Compared on folded
/// keys (`fold::nick_key`), like every nick.
pub fn is_guest_nick(nick: &str) -> bool {
    let key = crate::fold::nick_key(nick);
    let Some(rest) = key.strip_prefix(crate::fold::nick_key("guest").as_str()) else {
        return false;
    };
    let digits: Vec<String> = (0..10)
        .map(|d| crate::fold::nick_key(&d.to_string()))
        .collect();
    // `rest` must be one or more digits' keys, end to end.
    fn digits_only(rest: &str, digits: &[String]) -> bool {
        rest.is_empty()
            || digits.iter().any(|d| {
                !d.is_empty()
                    && rest
                        .strip_prefix(d.as_str())
                        .is_some_and(|r| digits_only(r, digits))
            })
    }
    !rest.is_empty() && digits_only(rest, &digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check_nick("alice", 24).is_ok());
        assert!(check_nick("ælfrida_2", 24).is_ok());
        assert_eq!(check_nick("", 24), Err(NameError::Empty { what: "nick" }));
        assert!(check_nick("a b", 24).is_err());
        assert!(check_nick("a\x1b", 24).is_err());
        assert!(check_nick(&"x".repeat(25), 24).is_err());
        assert_eq!(normalize_room("#lobby"), "lobby");
        assert!(check_room("dev-ops", 32).is_ok());
    }

    /// The length limit is inclusive and counts characters, not bytes;
    /// each of `-`, `_`, `.` is allowed on its own.
    #[test]
    fn max_is_inclusive_and_counts_characters() {
        assert_eq!(check_nick(&"x".repeat(24), 24), Ok(()));
        assert_eq!(check_nick(&"é".repeat(24), 24), Ok(()));
        assert_eq!(
            check_room(&"r".repeat(33), 32),
            Err(NameError::TooLong {
                what: "room name",
                max: 32
            })
        );
        for ok in ["a-b", "a_b", "a.b"] {
            assert_eq!(check_room(ok, 32), Ok(()), "{ok}");
        }
        assert_eq!(
            check_room("a#b", 32),
            Err(NameError::BadChar { what: "room name" })
        );
        assert_eq!(normalize_room("lobby"), "lobby");
    }

    #[test]
    fn guest_nicks() {
        for g in ["guest1", "GUEST42", "guest007", "guestl", "gu\u{0435}st7"] {
            assert!(is_guest_nick(g), "{g}");
        }
        for n in ["guest", "guestx", "alice", "guest1a", "myguest1"] {
            assert!(!is_guest_nick(n), "{n}");
        }
    }
}
