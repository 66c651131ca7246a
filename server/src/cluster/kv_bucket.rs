//! The key-value buckets cluster mode keeps in JetStream (the presence
//! bucket, registered nicks, bans): opened, or created first. A leaf of
//! the cluster: the presence writer (`tasks.rs`) and the registry
//! (`registry.rs`) both open theirs here.

use async_nats::jetstream::{self, kv};
use tracing::warn;

use super::envelope;

/// Open (creating it if needed) the key-value bucket `bucket` (history 1;
/// `storage` "memory" or "file").
pub(super) async fn open(
    client: &async_nats::Client,
    js: &jetstream::Context,
    bucket: &str,
    storage: &str,
) -> Option<kv::Store> {
    if let Ok(s) = js.get_key_value(bucket).await {
        return Some(s);
    }
    // The bucket's stream, created with a plain JetStream API request:
    // async-nats's `create_key_value` first reads the stream's info, and
    // cannot parse nats-server 2.9's "stream not found" answer (Debian's
    // package). Creating an existing identical stream is not an error, so
    // racing nodes are fine.
    let config = serde_json::json!({
        "name": format!("KV_{bucket}"),
        "subjects": [format!("$KV.{bucket}.>")],
        "max_msgs_per_subject": 1,
        "storage": storage,
        "discard": "new",
        "allow_rollup_hdrs": true,
        "deny_delete": true,
        "allow_direct": true,
        "num_replicas": 1,
    });
    let create = client
        .request(
            format!("$JS.API.STREAM.CREATE.KV_{bucket}"),
            envelope::json(&config),
        )
        .await;
    let answer = match &create {
        Ok(m) => String::from_utf8_lossy(&m.payload).into_owned(),
        Err(e) => e.to_string(),
    };
    match js.get_key_value(bucket).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(%bucket, error = %e, %answer, "cluster: no key-value bucket (is JetStream on? nats-server -js); what it keeps is per node only");
            None
        }
    }
}
