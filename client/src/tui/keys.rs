//! Configurable keys of the terminal UI (`[client] key_*`): a key is
//! written `F1`..`F12`, `C-x` (Ctrl+x) or `M-x` (Alt+x).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key: a code and the modifiers that must be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// Parse `F5`, `C-n`, `M-p` (case of the letter is ignored for C-/M-).
    pub fn parse(s: &str) -> Result<Key, String> {
        let bad = || format!("{s:?} is not a key: use F1..F12, C-x (Ctrl+x) or M-x (Alt+x)");
        if let Some(n) = s.strip_prefix('F').or_else(|| s.strip_prefix('f')) {
            let n: u8 = n.parse().map_err(|_| bad())?;
            if !(1..=12).contains(&n) {
                return Err(bad());
            }
            return Ok(Key {
                code: KeyCode::F(n),
                mods: KeyModifiers::NONE,
            });
        }
        let (mods, rest) = if let Some(r) = s.strip_prefix("C-") {
            (KeyModifiers::CONTROL, r)
        } else if let Some(r) = s.strip_prefix("M-") {
            (KeyModifiers::ALT, r)
        } else {
            return Err(bad());
        };
        let mut chars = rest.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphanumeric() => Ok(Key {
                code: KeyCode::Char(c.to_ascii_lowercase()),
                mods,
            }),
            _ => Err(bad()),
        }
    }

    /// Does this key event press this key?
    pub fn matches(&self, k: &KeyEvent) -> bool {
        let code = match k.code {
            KeyCode::Char(c) => KeyCode::Char(c.to_ascii_lowercase()),
            other => other,
        };
        code == self.code
            && k.modifiers
                .intersection(KeyModifiers::CONTROL | KeyModifiers::ALT)
                == self.mods
    }
}

/// The keys the user can rebind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMap {
    pub help: Key,
    pub panel: Key,
    pub log: Key,
    pub wire: Key,
    pub next_room: Key,
    pub prev_room: Key,
}

impl Default for KeyMap {
    fn default() -> Self {
        let c = sockchat_shared::config::ClientConfig::default();
        Self::from_config(&c).unwrap_or(KeyMap {
            help: Key {
                code: KeyCode::F(1),
                mods: KeyModifiers::NONE,
            },
            panel: Key {
                code: KeyCode::F(2),
                mods: KeyModifiers::NONE,
            },
            log: Key {
                code: KeyCode::F(3),
                mods: KeyModifiers::NONE,
            },
            wire: Key {
                code: KeyCode::F(4),
                mods: KeyModifiers::NONE,
            },
            next_room: Key {
                code: KeyCode::Char('n'),
                mods: KeyModifiers::CONTROL,
            },
            prev_room: Key {
                code: KeyCode::Char('p'),
                mods: KeyModifiers::CONTROL,
            },
        })
    }
}

impl KeyMap {
    /// From `[client] key_*`; the error names the setting.
    pub fn from_config(c: &sockchat_shared::config::ClientConfig) -> Result<KeyMap, String> {
        let k = |name: &str, v: &str| Key::parse(v).map_err(|e| format!("[client] {name}: {e}"));
        Ok(KeyMap {
            help: k("key_help", &c.key_help)?,
            panel: k("key_panel", &c.key_panel)?,
            log: k("key_log", &c.key_log)?,
            wire: k("key_wire", &c.key_wire)?,
            next_room: k("key_next_room", &c.key_next_room)?,
            prev_room: k("key_prev_room", &c.key_prev_room)?,
        })
    }

    /// How a key is written in help texts (`F2`, `Ctrl-N`, `Alt-P`).
    pub fn label(k: &Key) -> String {
        let base = match k.code {
            KeyCode::F(n) => return format!("F{n}"),
            KeyCode::Char(c) => c.to_ascii_uppercase().to_string(),
            _ => "?".into(),
        };
        if k.mods.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{base}")
        } else {
            format!("Alt-{base}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let k = Key::parse("C-n").expect("valid");
        assert!(k.matches(&KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL)));
        assert!(!k.matches(&KeyEvent::new(KeyCode::Char('n'), KeyModifiers::NONE)));
        let f = Key::parse("F5").expect("valid");
        assert!(f.matches(&KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE)));
        assert!(f.matches(&KeyEvent::new(KeyCode::F(5), KeyModifiers::SHIFT)));
        assert!(Key::parse("F13").is_err());
        assert!(Key::parse("x").is_err());
        assert!(Key::parse("C-").is_err());
        assert_eq!(KeyMap::label(&Key::parse("M-p").expect("valid")), "Alt-P");
        let d = KeyMap::default();
        assert_eq!(KeyMap::label(&d.panel), "F2");
        assert_eq!(KeyMap::label(&d.wire), "F4");
        assert_eq!(KeyMap::label(&d.next_room), "Ctrl-N");
    }
}
