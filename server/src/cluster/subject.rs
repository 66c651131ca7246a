//! The NATS names cluster mode uses (PROTOCOL.md "Cluster mode"): two
//! subjects per room (chat, kept in the history stream; joins and leaves),
//! the heartbeat subject, each node's own subjects, the presence bucket
//! and the history stream. Pure: tested without a NATS server.

/// The subjects of one cluster (`cluster.subject_prefix`) as seen by one
/// node (`cluster.node`).
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
    node: String,
}

impl Subjects {
    pub fn new(prefix: &str, node: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            node: node.to_string(),
        }
    }

    /// `PREFIX.room.TOKEN`: a room's chat (what the history stream keeps).
    pub fn room(&self, room: &str) -> String {
        format!("{}.room.{}", self.prefix, room_token(room))
    }

    /// `PREFIX.room.TOKEN.presence`: a room's joins and leaves (under the
    /// room's subject, so one subscription keeps a sender's joins, chat and
    /// leaves in order, and outside the history stream).
    pub fn presence(&self, room: &str) -> String {
        format!("{}.room.{}.presence", self.prefix, room_token(room))
    }

    /// Every room subject, chat and presence (one subscription per node).
    pub fn all_rooms(&self) -> String {
        format!("{}.room.>", self.prefix)
    }

    /// The history stream's subjects: every room's chat, no presence.
    pub fn history_subjects(&self) -> String {
        format!("{}.room.*", self.prefix)
    }

    /// The JetStream stream that keeps each room's last messages.
    pub fn history_stream(&self) -> String {
        format!("{}_history", self.prefix)
    }

    /// `PREFIX.nick`: a member's `NickChanged` and the rooms it is in.
    pub fn nick(&self) -> String {
        format!("{}.nick", self.prefix)
    }

    /// `PREFIX.hb`: every node's heartbeat.
    pub fn heartbeat(&self) -> String {
        format!("{}.hb", self.prefix)
    }

    /// `PREFIX.node.NODE.pm`: private messages to a nick on `node`.
    pub fn pm(&self, node: &str) -> String {
        format!("{}.node.{node}.pm", self.prefix)
    }

    /// `PREFIX.node.NODE.pmfail`: a private message `node` sent whose nick
    /// was gone when it arrived, sent back (the sender is told).
    pub fn pm_bounce(&self, node: &str) -> String {
        format!("{}.node.{node}.pmfail", self.prefix)
    }

    /// `PREFIX.node.NODE.sockinfo`: `/sockinfo NICK` asked of `node`
    /// (request/reply).
    pub fn sockinfo(&self, node: &str) -> String {
        format!("{}.node.{node}.sockinfo", self.prefix)
    }

    /// Everything addressed to this node.
    pub fn mine(&self) -> String {
        format!("{}.node.{}.*", self.prefix, self.node)
    }

    /// The JetStream key-value bucket of nick claims and presence.
    pub fn bucket(&self) -> String {
        format!("{}_presence", self.prefix)
    }

    /// The key-value bucket of registered nicks.
    pub fn nicks_bucket(&self) -> String {
        format!("{}_nicks", self.prefix)
    }

    /// The key-value bucket of operators' bans.
    pub fn bans_bucket(&self) -> String {
        format!("{}_bans", self.prefix)
    }
}

/// A room name as one subject token: letters, digits, `-` and `_` as they
/// are, every other byte as `%XX` (room names may hold `.`, which NATS
/// reads as a token separator). Injective, so two rooms never share a
/// subject.
pub fn room_token(room: &str) -> String {
    let mut t = String::with_capacity(room.len());
    for b in room.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            t.push(b as char);
        } else {
            t.push_str(&format!("%{b:02X}"));
        }
    }
    t
}

/// A KV key for a nick key ([`sockchat_shared::fold::nick_key`]): its
/// bytes in hex (KV keys allow few characters; nick keys are Unicode).
pub fn nick_kv_key(nick_key: &str) -> String {
    nick_key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The text a [`nick_kv_key`] was made of (`None`: not such a key).
pub fn from_kv_key(key: &str) -> Option<String> {
    let b = key.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let bytes = b
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// A node name, a subject prefix: a subject token NATS and a KV bucket
/// accept (`A-Z a-z 0-9 - _`, 1..=64).
pub fn check_token(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 64 {
        return Err(format!("{t:?} must be 1..=64 characters"));
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("{t:?} may only hold letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// The default node name: `HOSTNAME-PID`, made a valid token.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_tokens_are_safe_and_distinct() {
        assert_eq!(room_token("lobby"), "lobby");
        assert_eq!(room_token("dev.ops"), "dev%2Eops");
        assert_eq!(room_token("a%2Eb"), "a%252Eb");
        assert_ne!(room_token("a.b"), room_token("a%2Eb"));
        assert_eq!(room_token("é"), "%C3%A9");
        let s = Subjects::new("sc", "n1");
        assert_eq!(s.room("x.y"), "sc.room.x%2Ey");
        assert_eq!(s.presence("x.y"), "sc.room.x%2Ey.presence");
        assert_eq!(s.history_stream(), "sc_history");
        assert_eq!(s.mine(), "sc.node.n1.*");
    }

    #[test]
    fn tokens() {
        assert!(check_token("node-1_a").is_ok());
        assert!(check_token("").is_err());
        assert!(check_token("a.b").is_err());
        assert!(check_token("a*").is_err());
        assert!(check_token(&default_node_name()).is_ok());
        assert_eq!(nick_kv_key("ab"), "6162");
        assert_eq!(from_kv_key(&nick_kv_key("é/8")).as_deref(), Some("é/8"));
        assert_eq!(from_kv_key("6"), None);
        assert_eq!(from_kv_key("zz"), None);
    }
}
