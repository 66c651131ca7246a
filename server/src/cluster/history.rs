//! Room history across the cluster (PROTOCOL.md "Cluster mode"): the
//! JetStream stream `P_history` keeps each room's chat subject's last
//! `server.history` publications; a node that creates a room (its first
//! local member joins it) reads them back and hands them to the hub
//! ([`crate::hub::Hub::seed_history`]), so a user joining on any node is
//! replayed what was said there on every node, in the order NATS stored it.
//!
//! One reader task with its own queue: reads never hold up a room, the
//! publisher or the presence writer; a room created while the link is down
//! (or before the stream exists) is read when the link is up again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use bytes::Bytes;
use sockchat_shared::ServerMsg;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::Link;
use super::envelope::{self, Origin};
use crate::owed;

/// Most stored publications read for one room: the stream keeps
/// `server.history` per room (or what the node that created it set), so
/// this only bounds a stream made by hand with a huge limit.
const MAX_READS: usize = 10_000;

/// Most bytes the stream keeps over all rooms (the oldest go first).
const MAX_BYTES: u64 = 256 << 20;

/// Rooms waiting for the stream at most (more are not read: their
/// history is this node's own).
const MAX_WAITING: usize = 4096;

/// Work for the reader.
#[derive(Debug)]
pub enum Job {
    /// The link is (back) up: make sure the stream exists, then read the
    /// rooms that waited.
    Ready,
    /// `room` was created on this node: read its history.
    Room(String),
}

/// The stream's configuration: memory storage (like the presence bucket),
/// `per_room` publications kept per room chat subject, the oldest dropped.
pub fn stream_config(name: &str, subjects: &str, per_room: usize) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "subjects": [subjects],
        "retention": "limits",
        "max_msgs_per_subject": per_room,
        "max_bytes": MAX_BYTES,
        "discard": "old",
        "storage": "memory",
        "num_replicas": 1,
        "allow_direct": true,
    })
}

/// The chat of `room` in stored publications (oldest first): a repeated
/// publication (same origin) counts once, anything else (a bad payload,
/// another room) is skipped; the last `cap` messages.
pub fn chats(
    room: &str,
    stored: impl IntoIterator<Item = (Option<Origin>, Bytes)>,
    cap: usize,
) -> Vec<ServerMsg> {
    let mut seen = HashSet::new();
    let mut out = VecDeque::new();
    for (origin, payload) in stored {
        if let Some(o) = origin
            && !seen.insert((o.node, o.inc, o.seq))
        {
            continue;
        }
        let Ok(msgs) = envelope::decode_frames(&payload) else {
            continue;
        };
        for m in msgs {
            if matches!(&m, ServerMsg::Chat { room: r, history: false, .. } if r == room) {
                out.push_back(m);
                if out.len() > cap {
                    out.pop_front();
                }
            }
        }
    }
    out.into()
}

/// The reader: one job at a time.
pub(super) async fn reader(link: Arc<Link>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let Some(cap) = link.hub.upgrade().map(|h| h.config().history) else {
        return;
    };
    let js = jetstream::new(link.client.clone());
    let mut ready = false;
    let mut waiting: HashSet<String> = HashSet::new();
    while let Some(job) = jobs.recv().await {
        if cap == 0 {
            continue;
        }
        let rooms: Vec<String> = match job {
            Job::Ready => {
                ready = create_stream(&link, cap).await;
                if !ready {
                    continue;
                }
                waiting.drain().collect()
            }
            Job::Room(r) if ready => vec![r],
            Job::Room(r) => {
                if waiting.len() < MAX_WAITING {
                    waiting.insert(r);
                }
                continue;
            }
        };
        for room in rooms {
            let Some(hub) = link.hub.upgrade() else {
                return;
            };
            if hub.room(&room).is_none() {
                continue;
            }
            match read(&js, &link, &room, cap).await {
                Ok(msgs) => {
                    let _in = owed::scope();
                    hub.seed_history(&room, msgs);
                }
                Err(e) => {
                    // The link went down (most likely): read again when it
                    // is back.
                    debug!(%room, error = %e, "cluster: history read failed");
                    ready = false;
                    if waiting.len() < MAX_WAITING {
                        waiting.insert(room);
                    }
                }
            }
        }
    }
}

/// Create the stream (a plain JetStream API request, like the presence
/// bucket's: async-nats cannot parse nats-server 2.9's "stream not found"
/// answer). One that exists already, with this configuration or another
/// node's, is used as it is.
async fn create_stream(link: &Link, per_room: usize) -> bool {
    let name = link.subjects.history_stream();
    let config = stream_config(&name, &link.subjects.history_subjects(), per_room);
    let answer = match link
        .client
        .request(
            format!("$JS.API.STREAM.CREATE.{name}"),
            envelope::json(&config),
        )
        .await
    {
        Ok(m) => m,
        Err(e) => {
            debug!(error = %e, "cluster: history stream not created (link down?)");
            return false;
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap_or_default();
    match v.get("error") {
        None => true,
        // 10058: the stream exists with another configuration (another
        // node's `server.history`): fine, it keeps that many.
        Some(e) if e.get("err_code").and_then(|c| c.as_u64()) == Some(10058) => {
            info!(stream = %name, "cluster: history stream exists with another node's limits");
            true
        }
        Some(e) => {
            warn!(stream = %name, error = %e, "cluster: no history stream (is JetStream on? nats-server -js); history is per node");
            false
        }
    }
}

/// Read `room`'s stored publications in order (each the first one after
/// the last read), the chat of the last `cap` messages.
async fn read(
    js: &jetstream::Context,
    link: &Link,
    room: &str,
    cap: usize,
) -> Result<Vec<ServerMsg>, String> {
    let stream = js
        .get_stream_no_info(link.subjects.history_stream())
        .await
        .map_err(|e| e.to_string())?;
    let subject = link.subjects.room(room);
    let mut stored = Vec::new();
    let mut next: Option<u64> = None;
    for _ in 0..MAX_READS {
        match stream.direct_get_next_for_subject(&subject, next).await {
            Ok(m) => {
                next = Some(m.sequence + 1);
                stored.push((Origin::from_headers(&m.headers), m.payload));
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(chats(room, stored, cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::{ChatKind, codec};

    fn chat(room: &str, text: &str) -> ServerMsg {
        ServerMsg::Chat {
            room: room.into(),
            from: "a".into(),
            text: text.into(),
            kind: ChatKind::Say,
            ts_ms: 1,
            history: false,
        }
    }

    fn payload(msgs: &[ServerMsg]) -> Bytes {
        let mut b = bytes::BytesMut::new();
        for m in msgs {
            codec::encode_server(m, &mut b);
        }
        b.freeze()
    }

    fn origin(seq: u64) -> Option<Origin> {
        Some(Origin {
            node: "n".into(),
            inc: 1,
            seq,
        })
    }

    #[test]
    fn the_last_messages_in_order_once() {
        let stored = vec![
            (origin(1), payload(&[chat("r", "1"), chat("r", "2")])),
            (origin(1), payload(&[chat("r", "1"), chat("r", "2")])),
            (origin(2), payload(&[chat("other", "x")])),
            (None, Bytes::from_static(&[0, 0, 0, 9, 1])),
            (origin(3), payload(&[chat("r", "3")])),
            (origin(4), payload(&[chat("r", "4")])),
        ];
        assert_eq!(
            chats("r", stored.clone(), 3),
            vec![chat("r", "2"), chat("r", "3"), chat("r", "4")]
        );
        assert_eq!(chats("r", stored.clone(), 10).len(), 4);
        assert!(chats("r", stored, 0).is_empty());
    }

    #[test]
    fn the_stream_keeps_chat_subjects_only() {
        let c = stream_config("sc_history", "sc.room.*", 50);
        assert_eq!(c["max_msgs_per_subject"], 50);
        assert_eq!(c["subjects"][0], "sc.room.*");
        assert_eq!(c["discard"], "old");
    }
}
