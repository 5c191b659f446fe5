//! Who announces an IP: the first eligible live node, ordered by `sha256(node + "#" + ip)`.
//! Every speaker computes the same answer from the same inputs, without a central lock.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest, Sha256};

/// What the election needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    /// Node name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it is up: Ready, and its speaker alive.
    pub alive: bool,
    /// `NetworkUnavailable` is True.
    pub network_unavailable: bool,
}

/// The label that keeps a node out of load balancing.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

pub use metalgate_k8s::selector::matches;

/// Whether a node may announce, given the L2Advertisement's node selectors (any of them; none
/// means every node) and, for `externalTrafficPolicy: Local`, the nodes with ready endpoints.
pub fn eligible(
    node: &NodeState,
    node_selectors: &[LabelSelector],
    local_endpoints: Option<&[String]>,
) -> bool {
    node.alive
        && !node.network_unavailable
        && !node.labels.contains_key(EXCLUDE_LABEL)
        && (node_selectors.is_empty() || node_selectors.iter().any(|s| matches(s, &node.labels)))
        && local_endpoints.is_none_or(|eps| eps.contains(&node.name))
}

fn rank(node: &str, ip: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.to_string().as_bytes());
    h.finalize().into()
}

/// The owner of `ip` among `candidates` (already filtered by [`eligible`]).
pub fn owner<'a>(ip: IpAddr, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates.into_iter().min_by_key(|n| (rank(n, ip), *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)], alive: bool) -> NodeState {
        NodeState {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            alive,
            network_unavailable: false,
        }
    }

    fn sel(k: &str, v: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            match_expressions: None,
        }
    }

    #[test]
    fn table_nodes_selectors_readiness_to_owner() {
        let vip: IpAddr = "192.168.56.200".parse().unwrap();
        let nodes = vec![
            node("ops-demo", &[("zone", "a")], true),
            node("node2", &[("zone", "b")], true),
            node("node3", &[("zone", "b"), (EXCLUDE_LABEL, "")], true),
        ];
        let pick = |selectors: &[LabelSelector],
                    local: Option<&[String]>,
                    nodes: &[NodeState]|
         -> Option<String> {
            let c: Vec<&str> = nodes
                .iter()
                .filter(|n| eligible(n, selectors, local))
                .map(|n| n.name.as_str())
                .collect();
            owner(vip, c).map(str::to_string)
        };
        let all = pick(&[], None, &nodes).unwrap();
        assert!(
            all == "ops-demo" || all == "node2",
            "node3 is excluded by its label"
        );
        // The label decides, not the hash: for an IP node3 would own, labelled node3 is passed
        // over, and unlabelled it owns it.
        assert!(!eligible(&nodes[2], &[], None));
        let ip3 = (200..=254u8)
            .map(|i| IpAddr::from([192, 168, 56, i]))
            .find(|ip| owner(*ip, ["ops-demo", "node2", "node3"]) == Some("node3"))
            .expect("some IP hashes to node3");
        let candidates = |ns: &[NodeState]| -> Vec<String> {
            ns.iter()
                .filter(|n| eligible(n, &[], None))
                .map(|n| n.name.clone())
                .collect()
        };
        let labelled = candidates(&nodes);
        assert_ne!(
            owner(ip3, labelled.iter().map(String::as_str)),
            Some("node3")
        );
        let mut unlabelled = nodes.clone();
        unlabelled[2].labels.remove(EXCLUDE_LABEL);
        let all3 = candidates(&unlabelled);
        assert_eq!(owner(ip3, all3.iter().map(String::as_str)), Some("node3"));
        // The same inputs give the same owner, in any order.
        let mut reversed = nodes.clone();
        reversed.reverse();
        assert_eq!(pick(&[], None, &reversed).unwrap(), all);
        assert_eq!(
            pick(&[sel("zone", "a")], None, &nodes).as_deref(),
            Some("ops-demo")
        );
        assert_eq!(
            pick(&[sel("zone", "b")], None, &nodes).as_deref(),
            Some("node2")
        );
        assert_eq!(pick(&[sel("zone", "c")], None, &nodes), None);
        // A dead owner hands over to the next in the order.
        let mut down = nodes.clone();
        down.iter_mut().find(|n| n.name == all).unwrap().alive = false;
        let next = pick(&[], None, &down).unwrap();
        assert_ne!(next, all);
        // externalTrafficPolicy: Local picks among nodes with ready endpoints.
        assert_eq!(
            pick(&[], Some(&["node2".to_string()]), &nodes).as_deref(),
            Some("node2")
        );
        assert_eq!(pick(&[], Some(&[]), &nodes), None);
        let mut unavailable = nodes.clone();
        for n in unavailable.iter_mut() {
            n.network_unavailable = true;
        }
        assert_eq!(pick(&[], None, &unavailable), None);
    }

    #[test]
    fn owners_spread_over_nodes() {
        let names = ["ops-demo", "node2", "node3"];
        let mut counts = BTreeMap::new();
        for i in 200..=220u8 {
            let ip: IpAddr = format!("192.168.56.{i}").parse().unwrap();
            *counts.entry(owner(ip, names).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3, "21 IPs land on every node: {counts:?}");
    }
}
