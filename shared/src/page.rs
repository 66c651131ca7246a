//! Paging of list replies (`Who`, `Rooms`, `SockInfo`): a reply too large
//! for one frame (TCP: [`MAX_SERVER_FRAME`]) or one datagram (UDP:
//! `udp.max_payload` minus the header) is sent as several frames of the same
//! type, each complete on its own, so an old client that knows nothing of
//! pages still decodes every one. PROTOCOL.md ("Paged replies") has the
//! continuation rule a client uses to put the pages back together:
//! [`continues`].
//!
//! Pure: sizes are computed from the codec's encoding, nothing is sent here.

use crate::proto::{RoomInfo, ServerMsg};

/// The largest frame payload a server ever sends over TCP, and so the
/// largest a client must accept: 64 KiB, the default `limits.max_frame`.
pub const MAX_SERVER_FRAME: usize = crate::proto::DEFAULT_MAX_FRAME;

/// Encoded size of a `str` field: u16 length + bytes.
fn str_len(s: &str) -> usize {
    2 + s.len().min(u16::MAX as usize)
}

/// Split `msg` into pages whose encoded payload (tag + fields) is at most
/// `max` bytes each. `Who`, `Rooms` and `SockInfo` are split between items
/// (never inside one), keep their order, and every page holds at least one
/// item (an item that alone does not fit still gets its own page: the
/// caller's size rule then applies to it). No page holds more than
/// `u16::MAX` items, so the count field can never overflow. Any other
/// message, and a list that fits, comes back as the one element.
pub fn paginate(msg: ServerMsg, max: usize) -> Vec<ServerMsg> {
    match msg {
        ServerMsg::Who { room, nicks } => {
            let head = 1 + str_len(&room) + 2;
            split(nicks, head, max, |n| str_len(n))
                .into_iter()
                .map(|nicks| ServerMsg::Who {
                    room: room.clone(),
                    nicks,
                })
                .collect()
        }
        ServerMsg::Rooms { rooms } => {
            let head = 1 + 2;
            split(rooms, head, max, |r: &RoomInfo| str_len(&r.name) + 4)
                .into_iter()
                .map(|rooms| ServerMsg::Rooms { rooms })
                .collect()
        }
        ServerMsg::SockInfo { nick, fields } => {
            let head = 1 + str_len(&nick) + 2;
            split(fields, head, max, |(k, v)| str_len(k) + str_len(v))
                .into_iter()
                .map(|fields| ServerMsg::SockInfo {
                    nick: nick.clone(),
                    fields,
                })
                .collect()
        }
        other => vec![other],
    }
}

/// Greedy split of `items` into runs whose `head + sum(size)` is at most
/// `max` (a run has at least one item, at most `u16::MAX`). An empty list
/// gives one empty run: the reply still says "nobody".
fn split<T>(items: Vec<T>, head: usize, max: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut used = head;
    for item in items {
        let n = size(&item);
        if !page.is_empty() && (used + n > max || page.len() == u16::MAX as usize) {
            pages.push(std::mem::take(&mut page));
            used = head;
        }
        used += n;
        page.push(item);
    }
    if !page.is_empty() || pages.is_empty() {
        pages.push(page);
    }
    pages
}

/// The continuation rule of PROTOCOL.md, for a client that assembles
/// pages: does `next` continue `reply`, the reply assembled so far (its
/// pages merged with [`merge`]) from the frame received just before `next`?
/// Yes when both are the same kind of list for the same room (Who) or nick
/// (SockInfo), and `next`'s first item is new to the reply: for `Who` and
/// `Rooms`, whose items are sorted, it sorts after the reply's last item;
/// for `SockInfo`, its first key is not among the reply's keys. Anything
/// else starts a new reply.
pub fn continues(reply: &ServerMsg, next: &ServerMsg) -> bool {
    match (reply, next) {
        (ServerMsg::Who { room: a, nicks: p }, ServerMsg::Who { room: b, nicks: n }) => {
            a == b && matches!((p.last(), n.first()), (Some(l), Some(f)) if f > l)
        }
        (ServerMsg::Rooms { rooms: p }, ServerMsg::Rooms { rooms: n }) => {
            matches!((p.last(), n.first()), (Some(l), Some(f)) if f.name > l.name)
        }
        (
            ServerMsg::SockInfo { nick: a, fields: p },
            ServerMsg::SockInfo { nick: b, fields: n },
        ) => {
            a == b
                && n.first()
                    .is_some_and(|(k, _)| p.iter().all(|(pk, _)| pk != k))
        }
        _ => false,
    }
}

/// Fold `next` into `reply` when it [`continues`] it (its items are
/// appended; returns true); otherwise leave both alone and return false
/// (`next` is a new reply).
pub fn merge(reply: &mut ServerMsg, next: &ServerMsg) -> bool {
    if !continues(reply, next) {
        return false;
    }
    match (reply, next) {
        (ServerMsg::Who { nicks, .. }, ServerMsg::Who { nicks: more, .. }) => {
            nicks.extend(more.iter().cloned())
        }
        (ServerMsg::Rooms { rooms }, ServerMsg::Rooms { rooms: more }) => {
            rooms.extend(more.iter().cloned())
        }
        (ServerMsg::SockInfo { fields, .. }, ServerMsg::SockInfo { fields: more, .. }) => {
            fields.extend(more.iter().cloned())
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn payload_len(m: &ServerMsg) -> usize {
        let mut b = bytes::BytesMut::new();
        codec::encode_server_payload(m, &mut b);
        b.len()
    }

    fn who(n: usize, len: usize) -> ServerMsg {
        ServerMsg::Who {
            room: "lobby".into(),
            nicks: (0..n).map(|i| format!("{i:0len$}")).collect(),
        }
    }

    /// The case: 2,600 members with 24-byte nicks are a 67,610-byte
    /// frame; paged, every page fits and the pages hold every nick in order.
    #[test]
    fn a_big_who_is_paged_within_the_limit() {
        let m = who(2600, 24);
        assert_eq!(payload_len(&m), 67_610);
        let pages = paginate(m.clone(), MAX_SERVER_FRAME);
        assert_eq!(pages.len(), 2);
        let mut all = Vec::new();
        for p in &pages {
            assert!(payload_len(p) <= MAX_SERVER_FRAME, "{}", payload_len(p));
            let ServerMsg::Who { nicks, .. } = p else {
                panic!("not a Who")
            };
            all.extend(nicks.clone());
        }
        let ServerMsg::Who { nicks, .. } = m else {
            panic!()
        };
        assert_eq!(all, nicks);
        let mut reply = pages[0].clone();
        assert!(merge(&mut reply, &pages[1]));
        assert_eq!(reply, who(2600, 24));
        // The same reply again starts over.
        assert!(!continues(&reply, &pages[0]));
    }

    /// Exactly full pages: the limit is inclusive, and one byte less moves
    /// the last item to a new page.
    #[test]
    fn the_limit_is_exact() {
        let m = who(10, 8);
        let exact = payload_len(&m);
        assert_eq!(paginate(m.clone(), exact).len(), 1);
        let pages = paginate(m, exact - 1);
        assert_eq!(pages.len(), 2);
        assert!(pages.iter().all(|p| payload_len(p) < exact));
    }

    /// More than u16::MAX tiny items never overflow the count.
    #[test]
    fn counts_never_overflow() {
        let m = ServerMsg::Who {
            room: String::new(),
            nicks: vec![String::new(); 70_000],
        };
        let pages = paginate(m, usize::MAX);
        assert_eq!(pages.len(), 2);
        let sizes: Vec<usize> = pages
            .iter()
            .map(|p| match p {
                ServerMsg::Who { nicks, .. } => nicks.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![65_535, 4_465]);
    }

    #[test]
    fn empty_lists_and_other_messages_are_one_frame() {
        assert_eq!(paginate(who(0, 1), 10).len(), 1);
        let n = ServerMsg::Notice {
            text: "x".repeat(100),
        };
        assert_eq!(paginate(n.clone(), 10), vec![n]);
    }

    #[test]
    fn rooms_and_sockinfo_are_paged_and_continue() {
        let rooms = ServerMsg::Rooms {
            rooms: (0..100)
                .map(|i| RoomInfo {
                    name: format!("room{i:03}"),
                    members: i,
                })
                .collect(),
        };
        let pages = paginate(rooms.clone(), 548 - crate::udp::HEADER_LEN);
        assert!(pages.len() > 1);
        assert!(pages.iter().all(|p| payload_len(p) <= 540));
        assert_eq!(assemble(&pages), vec![rooms]);
        let info = ServerMsg::SockInfo {
            nick: "me".into(),
            fields: (0..40)
                .map(|i| (format!("key{i}"), "v".repeat(20)))
                .collect(),
        };
        let mut pages = paginate(info.clone(), 540);
        assert!(pages.len() > 2);
        // Two replies back to back come apart again: the second one's first
        // key was already seen, although not on the page just before it.
        pages.extend(pages.clone());
        assert_eq!(assemble(&pages), vec![info.clone(), info]);
    }

    /// The first item of `page` alone, as a message of the same kind.
    fn first_of(page: &ServerMsg) -> ServerMsg {
        match page {
            ServerMsg::Who { room, nicks } => ServerMsg::Who {
                room: room.clone(),
                nicks: nicks[..1].to_vec(),
            },
            ServerMsg::Rooms { rooms } => ServerMsg::Rooms {
                rooms: rooms[..1].to_vec(),
            },
            ServerMsg::SockInfo { nick, fields } => ServerMsg::SockInfo {
                nick: nick.clone(),
                fields: fields[..1].to_vec(),
            },
            other => other.clone(),
        }
    }

    /// Pages are as full as the limit allows: each fits, and the next
    /// page's first item would not have fitted on it (sizes computed
    /// exactly, neither over- nor underestimated).
    #[test]
    fn pages_are_exactly_as_full_as_the_limit_allows() {
        let empty = |m: &ServerMsg| match m {
            ServerMsg::Who { room, .. } => ServerMsg::Who {
                room: room.clone(),
                nicks: vec![],
            },
            ServerMsg::Rooms { .. } => ServerMsg::Rooms { rooms: vec![] },
            ServerMsg::SockInfo { nick, .. } => ServerMsg::SockInfo {
                nick: nick.clone(),
                fields: vec![],
            },
            other => other.clone(),
        };
        let lists = [
            who(300, 7),
            ServerMsg::Rooms {
                rooms: (0..300)
                    .map(|i| RoomInfo {
                        name: format!("r{i:05}"),
                        members: i,
                    })
                    .collect(),
            },
            ServerMsg::SockInfo {
                nick: "someone".into(),
                fields: (0..300)
                    .map(|i| (format!("k{i:04}"), format!("v{i}")))
                    .collect(),
            },
        ];
        // 98 = 3 + 12 x 8 - 1: a Rooms page head counted one byte short would overflow it.
        for max in [97, 98, 200, 541] {
            for list in &lists {
                let pages = paginate(list.clone(), max);
                assert!(pages.len() > 2, "{max}");
                for w in pages.windows(2) {
                    let used = payload_len(&w[0]);
                    assert!(used <= max, "{used} > {max}");
                    // One more item: its size is what it adds to an empty list.
                    let item = payload_len(&first_of(&w[1])) - payload_len(&empty(&w[1]));
                    assert!(
                        used + item > max,
                        "{list:?}: {used} + {item} still fits {max}"
                    );
                }
            }
        }
    }

    /// What a client does: merge while pages continue.
    fn assemble(frames: &[ServerMsg]) -> Vec<ServerMsg> {
        let mut out: Vec<ServerMsg> = Vec::new();
        for f in frames {
            if !out.last_mut().is_some_and(|r| merge(r, f)) {
                out.push(f.clone());
            }
        }
        out
    }
}
