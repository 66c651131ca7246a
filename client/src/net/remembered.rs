//! The secrets a reconnect needs to restore the session: the key of each
//! keyed room we joined (`/join ROOM KEY`, or `/key ROOM KEY` we set) and
//! the password of the nick we identified or registered (`/identify`,
//! `/register`). After a reconnect the driver identifies again (the server
//! renames the session to the registered nick) and rejoins keyed rooms with
//! their key.
//!
//! **Invariant:** kept in this process's memory only: never written to a
//! file, never logged, never in an event (`Debug` shows no secret).

use std::collections::HashMap;

use sockchat_shared::{ClientMsg, fold};

use super::lines::room_key;

/// Most room keys kept (a key per room joined; more replace none).
const MAX_KEYS: usize = 256;

/// Room keys and the nick password, for the next session.
#[derive(Default)]
pub(super) struct Remembered {
    /// Room (its key as the server files it) -> its key.
    room_keys: HashMap<String, String>,
    /// The nick we proved we own, and its password.
    identify: Option<(String, String)>,
}

impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("room_keys", &self.room_keys.len())
            .field("identify", &self.identify.as_ref().map(|(n, _)| n))
            .finish()
    }
}

impl Remembered {
    /// Note what `msg`, about to be sent while our nick is `own_nick`,
    /// will need again after a reconnect.
    pub(super) fn note(&mut self, msg: &ClientMsg, own_nick: &str) {
        match msg {
            ClientMsg::JoinKey { room, key } => self.keep_key(room, key),
            ClientMsg::RoomKey { room, key } if key.is_empty() => {
                self.room_keys.remove(&room_key(room));
            }
            ClientMsg::RoomKey { room, key } => self.keep_key(room, key),
            ClientMsg::Identify { nick, password } => {
                let nick = if nick.is_empty() { own_nick } else { nick };
                self.identify = Some((nick.to_string(), password.clone()));
            }
            ClientMsg::Register { password } => {
                self.identify = Some((own_nick.to_string(), password.clone()));
            }
            _ => {}
        }
    }

    fn keep_key(&mut self, room: &str, key: &str) {
        let room = room_key(room);
        if self.room_keys.len() < MAX_KEYS || self.room_keys.contains_key(&room) {
            self.room_keys.insert(room, key.to_string());
        }
    }

    /// How to join `room` again: with its key if we know one.
    pub(super) fn rejoin(&self, room: &str) -> ClientMsg {
        match self.room_keys.get(&room_key(room)) {
            Some(key) => ClientMsg::JoinKey {
                room: room.to_string(),
                key: key.clone(),
            },
            None => ClientMsg::Join {
                room: room.to_string(),
            },
        }
    }

    /// The `Identify` that restores our registered nick, if we have one.
    pub(super) fn identify(&self) -> Option<ClientMsg> {
        self.identify
            .as_ref()
            .map(|(nick, password)| ClientMsg::Identify {
                nick: nick.clone(),
                password: password.clone(),
            })
    }

    /// Do we have the password of `nick` (folded)?
    pub(super) fn identifies(&self, nick: &str) -> bool {
        self.identify
            .as_ref()
            .is_some_and(|(n, _)| fold::nick_key(n) == fold::nick_key(nick))
    }

    /// The nick password we sent was refused: do not send it again.
    pub(super) fn forget_identify(&mut self, nick: &str) {
        if self.identifies(nick) {
            self.identify = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_the_nick_password_are_kept_for_the_next_session() {
        let mut r = Remembered::default();
        assert_eq!(r.rejoin("dev"), ClientMsg::Join { room: "dev".into() });
        assert_eq!(r.identify(), None);
        r.note(
            &ClientMsg::JoinKey {
                room: "#vault".into(),
                key: "k1".into(),
            },
            "alice",
        );
        assert_eq!(
            r.rejoin("vault"),
            ClientMsg::JoinKey {
                room: "vault".into(),
                key: "k1".into()
            },
            "the room as the server files it"
        );
        r.note(
            &ClientMsg::RoomKey {
                room: "vault".into(),
                key: String::new(),
            },
            "alice",
        );
        assert_eq!(
            r.rejoin("vault"),
            ClientMsg::Join {
                room: "vault".into()
            }
        );
        r.note(
            &ClientMsg::Register {
                password: "pw".into(),
            },
            "alice",
        );
        assert_eq!(
            r.identify(),
            Some(ClientMsg::Identify {
                nick: "alice".into(),
                password: "pw".into()
            })
        );
        r.note(
            &ClientMsg::Identify {
                nick: String::new(),
                password: "pw2".into(),
            },
            "bob",
        );
        assert!(r.identifies("BOB") && !r.identifies("alice"));
        r.forget_identify("ALICE");
        assert!(r.identify().is_some(), "bob's is not alice's");
        r.forget_identify("bob");
        assert_eq!(r.identify(), None);
        assert!(!format!("{r:?}").contains("pw"), "{r:?}");
    }
}
