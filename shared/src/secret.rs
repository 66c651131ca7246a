//! Passwords and room keys as typed: the one rule for what a password or a
//! key may be (checked by the client before sending and by the server
//! again), and which typed lines carry one, so a client never echoes,
//! stores in its input history or shows in its scrollback a line like
//! `/identify hunter2` (PROTOCOL.md "Who may come in").

/// Longest password or room key, in bytes.
pub const MAX_SECRET_LEN: usize = 128;

/// What is wrong with a password or key; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes", max = MAX_SECRET_LEN)]
    TooLong { what: &'static str },
    #[error("{what} may not contain spaces or control characters")]
    BadChar { what: &'static str },
}

fn check(s: &str, what: &'static str) -> Result<(), SecretError> {
    if s.is_empty() {
        return Err(SecretError::Empty { what });
    }
    if s.len() > MAX_SECRET_LEN {
        return Err(SecretError::TooLong { what });
    }
    // One word: text mode splits arguments at whitespace, so a password
    // with a space could be registered over the framed protocol and never
    // typed in text mode.
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SecretError::BadChar { what });
    }
    Ok(())
}

/// A password (server, nick registration, operator): 1..=128 bytes, one
/// word, no control characters.
pub fn check_password(pw: &str) -> Result<(), SecretError> {
    check(pw, "password")
}

/// A room key: the same rule as a password.
pub fn check_room_key(key: &str) -> Result<(), SecretError> {
    check(key, "room key")
}

/// The commands whose arguments include a secret (names without the `/`,
/// aliases included).
const SECRET_COMMANDS: [&str; 6] = ["pass", "register", "identify", "oper", "key", "join"];

/// True when a typed line carries a password or key: a client must not
/// echo it, keep it in its input history or show it in its scrollback.
/// (`/join ROOM` alone carries none; `/join ROOM KEY` does.)
pub fn carries_secret(line: &str) -> bool {
    let Some(cmd) = line.trim_start().strip_prefix('/') else {
        return false;
    };
    if cmd.starts_with('/') {
        return false; // `//text` is said, not run
    }
    let mut words = cmd.split_whitespace();
    let name = words.next().unwrap_or("").to_lowercase();
    let name = if name == "j" {
        "join".to_string()
    } else {
        name
    };
    if !SECRET_COMMANDS.contains(&name.as_str()) {
        return false;
    }
    match name.as_str() {
        // Only with a second word (the key).
        "join" | "key" => words.nth(1).is_some(),
        _ => true,
    }
}

/// The line as it may be shown or kept: the command name and its first
/// word for `/identify NICK` / `/join ROOM` / `/key ROOM`, every secret
/// replaced by `***` (`/identify alice ***`). Lines without a secret come
/// back unchanged.
pub fn redact(line: &str) -> String {
    if !carries_secret(line) {
        return line.to_string();
    }
    let cmd = line.trim_start();
    let mut words = cmd.split_whitespace();
    let name = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let keep = match name.to_lowercase().trim_start_matches('/') {
        // The nick (when two words), the room: not secret.
        "identify" if rest.len() >= 2 => 1,
        "join" | "j" | "key" => 1,
        _ => 0,
    };
    let mut out = vec![name.to_string()];
    out.extend(rest.iter().take(keep).map(|w| w.to_string()));
    if rest.len() > keep {
        out.push("***".into());
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        assert_eq!(check_password("hunter2"), Ok(()));
        assert_eq!(check_password(&"x".repeat(128)), Ok(()));
        assert_eq!(
            check_password(""),
            Err(SecretError::Empty { what: "password" })
        );
        assert_eq!(
            check_password(&"x".repeat(129)),
            Err(SecretError::TooLong { what: "password" })
        );
        for bad in ["a b", "a\tb", "a\u{7f}", "\u{1b}[2J", "a\u{a0}b"] {
            assert_eq!(
                check_password(bad),
                Err(SecretError::BadChar { what: "password" }),
                "{bad:?}"
            );
        }
        assert_eq!(check_password("pässwörd€"), Ok(()));
        assert_eq!(
            check_room_key("a b"),
            Err(SecretError::BadChar { what: "room key" })
        );
        assert_eq!(
            SecretError::TooLong { what: "password" }.to_string(),
            "password is longer than 128 bytes"
        );
    }

    #[test]
    fn which_lines_carry_a_secret() {
        for yes in [
            "/pass pw",
            "/PASS pw",
            "/register pw",
            "/identify pw",
            "/identify alice pw",
            "/oper pw",
            "/join dev key",
            "/j dev key",
            "/key dev k",
            "  /oper pw",
            "/identify",
        ] {
            assert!(carries_secret(yes), "{yes:?}");
        }
        for no in [
            "hello",
            "/join dev",
            "/key dev",
            "//pass pw",
            "/passx pw",
            "/msg bob /pass pw",
            "pass pw",
            "/nick bob",
            "",
        ] {
            assert!(!carries_secret(no), "{no:?}");
        }
    }

    #[test]
    fn redaction_keeps_only_what_is_not_secret() {
        assert_eq!(redact("/identify hunter2"), "/identify ***");
        assert_eq!(redact("/identify alice hunter2"), "/identify alice ***");
        assert_eq!(redact("/pass s3cret"), "/pass ***");
        assert_eq!(redact("/oper a"), "/oper ***");
        assert_eq!(redact("/register a"), "/register ***");
        assert_eq!(redact("/join dev k"), "/join dev ***");
        assert_eq!(redact("/key dev k"), "/key dev ***");
        assert_eq!(redact("/join dev"), "/join dev");
        assert_eq!(redact("hello hunter2"), "hello hunter2");
        assert_eq!(redact("/identify"), "/identify");
        for line in [
            "/identify alice hunter2",
            "/pass hunter2",
            "/join dev hunter2",
        ] {
            assert!(!redact(line).contains("hunter2"), "{line}");
        }
    }
}
