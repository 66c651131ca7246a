//! What travels between nodes (PROTOCOL.md "Cluster mode"): a payload of
//! ordinary server frames (the client wire codec, encoded once per node),
//! NATS headers naming the publishing node, its incarnation and a
//! sequence number, and the de-duplication of what arrives. Pure: tested
//! without a NATS server.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sockchat_shared::{ServerMsg, codec};

/// Header: the publishing node's name.
pub const NODE: &str = "Sockchat-Node";
/// Header: the publishing process's incarnation (random at start).
pub const INC: &str = "Sockchat-Inc";
/// Header: the publication's number, per incarnation and [`Lane`], from
/// 1, in publishing order.
pub const SEQ: &str = "Sockchat-Seq";
/// Header of a private message (and of its bounce): the sender's session
/// number on its node, so a bounce finds the sender even renamed.
pub const SENDER: &str = "Sockchat-Sender";

/// Who published a message and its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub node: String,
    pub inc: u64,
    pub seq: u64,
}

impl Origin {
    /// Read the three headers; `None` if one is missing or malformed.
    pub fn from_headers(h: &async_nats::HeaderMap) -> Option<Self> {
        Some(Self {
            node: h.get(NODE)?.as_str().to_string(),
            inc: h.get(INC)?.as_str().parse().ok()?,
            seq: h.get(SEQ)?.as_str().parse().ok()?,
        })
    }

    pub fn to_headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(NODE, self.node.as_str());
        h.insert(INC, self.inc.to_string().as_str());
        h.insert(SEQ, self.seq.to_string().as_str());
        h
    }
}

/// The publications that arrive through one subscription, numbered on
/// their own: NATS keeps one publisher's order within a subscription only,
/// so a receiver reading several subscriptions sees the lanes interleaved
/// in any order (one numbering for all made it drop a `Private` read after
/// later chat as "seen").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Room chat, joins and leaves (`P.room.>`).
    Room = 0,
    /// Nick changes (`P.nick`).
    Nick = 1,
    /// Private messages to one node (`P.node.NODE.pm`).
    Pm = 2,
    /// Heartbeats (`P.hb`; never de-duplicated).
    Beat = 3,
}

/// Drops what this node published itself and anything seen before: per
/// node incarnation and lane the sequence numbers only grow, so a repeat
/// (a re-publication after a reconnect) is never delivered twice.
#[derive(Debug)]
pub struct Dedupe {
    node: String,
    inc: u64,
    last: HashMap<(String, u64, Lane), u64>,
}

impl Dedupe {
    pub fn new(node: &str, inc: u64) -> Self {
        Self {
            node: node.to_string(),
            inc,
            last: HashMap::new(),
        }
    }

    /// Whether to deliver a message from `o` that came through `lane`.
    pub fn accept(&mut self, o: &Origin, lane: Lane) -> bool {
        if o.node == self.node && o.inc == self.inc {
            return false;
        }
        let last = self.last.entry((o.node.clone(), o.inc, lane)).or_insert(0);
        if o.seq <= *last {
            return false;
        }
        *last = o.seq;
        true
    }

    /// Forget a lost node's incarnation.
    pub fn forget(&mut self, node: &str, inc: u64) {
        self.last.retain(|(n, i, _), _| !(n == node && *i == inc));
    }
}

/// Split a payload of server frames back into messages. A truncated or
/// malformed payload is refused whole.
pub fn decode_frames(mut payload: &[u8]) -> Result<Vec<ServerMsg>, String> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        match codec::split_frame(payload, payload.len()) {
            Ok(Some((p, used))) => {
                out.push(codec::decode_server(p).map_err(|e| e.to_string())?);
                payload = &payload[used..];
            }
            Ok(None) => return Err("truncated frame".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

/// A `NickChanged` and the rooms its user is in (subject `PREFIX.nick`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct NickChange {
    pub old: String,
    pub new: String,
    pub rooms: Vec<String>,
}

/// A node's heartbeat (subject `PREFIX.hb`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    pub node: String,
    pub inc: u64,
}

/// One user in the presence bucket (key: the nick key in hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Presence {
    pub nick: String,
    pub node: String,
    pub inc: u64,
    pub rooms: Vec<String>,
}

/// A `/sockinfo NICK` asked of the node holding NICK (request payload).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SockInfoAsk {
    pub nick: String,
}

/// JSON for the small control payloads.
pub fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::ChatKind;

    fn o(node: &str, inc: u64, seq: u64) -> Origin {
        Origin {
            node: node.into(),
            inc,
            seq,
        }
    }

    #[test]
    fn own_and_repeated_publications_are_dropped() {
        let mut d = Dedupe::new("a", 1);
        let r = Lane::Room;
        assert!(!d.accept(&o("a", 1, 1), r), "own");
        assert!(d.accept(&o("a", 2, 1), r), "an older self is another node");
        assert!(d.accept(&o("b", 7, 1), r));
        assert!(d.accept(&o("b", 7, 2), r));
        assert!(!d.accept(&o("b", 7, 2), r), "repeat");
        assert!(!d.accept(&o("b", 7, 1), r), "older");
        assert!(d.accept(&o("b", 8, 1), r), "new incarnation starts over");
        assert!(d.accept(&o("b", 7, 3), r));
        // Lanes are numbered apart: a private message read after later
        // chat is still new.
        assert!(d.accept(&o("b", 7, 1), Lane::Pm));
        assert!(!d.accept(&o("b", 7, 1), Lane::Pm), "repeat in its lane");
        d.forget("b", 7);
        assert!(d.accept(&o("b", 7, 1), Lane::Pm), "forgotten");
        assert!(d.accept(&o("b", 7, 1), r), "forgotten");
    }

    #[test]
    fn frames_round_trip_and_bad_payloads_are_refused() {
        let msgs = vec![
            ServerMsg::Chat {
                room: "r".into(),
                from: "a".into(),
                text: "hi".into(),
                kind: ChatKind::Say,
                ts_ms: 1,
                history: false,
            },
            ServerMsg::Joined {
                room: "r".into(),
                nick: "b".into(),
            },
        ];
        let mut b = bytes::BytesMut::new();
        for m in &msgs {
            codec::encode_server(m, &mut b);
        }
        assert_eq!(decode_frames(&b), Ok(msgs));
        assert!(decode_frames(&b[..b.len() - 1]).is_err());
        assert!(decode_frames(&[0, 0, 0, 0]).is_err());
        assert!(decode_frames(&[0, 0, 0, 1, 0xff]).is_err());
        assert_eq!(decode_frames(&[]), Ok(vec![]));
    }

    #[test]
    fn headers_round_trip() {
        let x = o("n-1", 42, 9);
        assert_eq!(Origin::from_headers(&x.to_headers()), Some(x));
        assert_eq!(Origin::from_headers(&async_nats::HeaderMap::new()), None);
    }
}
