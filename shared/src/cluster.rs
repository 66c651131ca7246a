//! The cluster notices a client reads (PROTOCOL.md "Cluster mode"): the
//! server writes them with [`describe`], [`LINK_LOST`] and [`LINK_BACK`];
//! clients read them back with [`parse`] to show the node and the link
//! state in the socket panel. One rule, both sides.

/// Told to every local user when its node loses NATS.
pub const LINK_LOST: &str = "cluster link lost: local rooms only";
/// Told to every local user when the link is back.
pub const LINK_BACK: &str = "cluster link restored: rooms span the cluster again";

/// What a client knows about the node it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// The node's name, once its after-Welcome notice came.
    pub node: Option<String>,
    pub up: bool,
}

/// The notice after `Welcome`: node, link state and how many other nodes
/// it hears.
pub fn describe(node: &str, up: bool, others: usize) -> String {
    if up {
        format!("cluster node {node}: link up, {others} other node(s)")
    } else {
        format!("cluster node {node}: link down, local rooms only")
    }
}

/// Update `state` from a notice; false when the notice is not about the
/// cluster.
pub fn parse(text: &str, state: &mut Option<ClusterState>) -> bool {
    if let Some(rest) = text.strip_prefix("cluster node ")
        && let Some((node, link)) = rest.split_once(": link ")
    {
        *state = Some(ClusterState {
            node: Some(node.to_string()),
            up: link.starts_with("up"),
        });
        return true;
    }
    let up = match text {
        LINK_LOST => false,
        LINK_BACK => true,
        _ => return false,
    };
    state.get_or_insert(ClusterState { node: None, up }).up = up;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        let mut s = None;
        assert!(parse(&describe("n1", true, 2), &mut s));
        assert_eq!(
            s,
            Some(ClusterState {
                node: Some("n1".into()),
                up: true
            })
        );
        assert!(parse(LINK_LOST, &mut s));
        assert_eq!(s.as_ref().map(|s| s.up), Some(false));
        assert!(parse(LINK_BACK, &mut s));
        assert_eq!(s.as_ref().map(|s| s.up), Some(true));
        assert!(!parse("now talking in lobby", &mut s));
        let mut d = None;
        assert!(parse(&describe("n-2", false, 0), &mut d));
        assert_eq!(d.map(|s| (s.node, s.up)), Some((Some("n-2".into()), false)));
    }
}
