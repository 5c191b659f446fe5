//! The cluster objects the speaker watches, read into what the election and the plan take:
//! node states, pools, the nodes with ready endpoints, the other speakers' MACs and gossip
//! addresses. Pure: no I/O but the clock for Lease ages.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use metalgate_k8s::crd::IPAddressPool;

use crate::election::NodeState;
use crate::membership;
use crate::plan::PoolInfo;

/// A node counts as alive while its Lease is younger than this.
pub const LEASE_FRESH: Duration = Duration::from_secs(25);

/// Each node as the election sees it: live (heard in the gossip, or a fresh Lease without
/// gossip), Ready, reachable, its labels.
pub fn node_states(
    nodes: &[Arc<Node>],
    leases: &[Arc<Lease>],
    me: &str,
    gossip: Option<&BTreeSet<String>>,
) -> Vec<NodeState> {
    nodes
        .iter()
        .map(|n| {
            let name = n.name_any();
            let cond = |t: &str| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == t))
                    .map(|c| c.status == "True")
            };
            // With gossip, a speaker is alive while the others hear it; without, while its
            // node's Lease is fresh.
            let fresh = match gossip {
                Some(alive) => alive.contains(&name),
                None => lease_fresh(leases, &name),
            };
            NodeState {
                // The API's Ready condition is the second signal: a node marked NotReady is
                // out even while its speaker gossips; with gossip, a Ready that the API can no
                // longer update (the store is gone) does not keep a dead node in.
                alive: match gossip {
                    Some(_) => cond("Ready") != Some(false) && (fresh || name == me),
                    None => cond("Ready") == Some(true) && (fresh || name == me),
                },
                network_unavailable: cond("NetworkUnavailable") == Some(true),
                labels: n.labels().clone(),
                name,
            }
        })
        .collect()
}

/// The annotation on a Node listing its speaker's MACs.
pub const SPEAKER_MACS: &str = "metalgate.io/speaker-macs";

/// The MACs of every speaker in the cluster, from their Nodes.
pub fn speaker_macs(nodes: &[Arc<Node>]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter_map(|n| n.annotations().get(SPEAKER_MACS).cloned())
        .flat_map(|v| {
            v.split(',')
                .map(|m| m.trim().to_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// The gossip addresses of every node (InternalIP, gossip port).
pub fn peer_addrs(nodes: &[Arc<Node>]) -> Vec<SocketAddr> {
    nodes
        .iter()
        .filter_map(|n| {
            n.status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse::<std::net::IpAddr>()
                .ok()
        })
        .map(|ip| SocketAddr::new(ip, membership::PORT))
        .collect()
}

/// Whether the node's Lease (in `kube-node-lease`) was renewed within [`LEASE_FRESH`].
pub fn lease_fresh(leases: &[Arc<Lease>], name: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    leases
        .iter()
        .find(|l| l.name_any() == name)
        .and_then(|l| {
            l.spec
                .as_ref()?
                .renew_time
                .as_ref()
                .map(|t| now - t.0.as_second() < LEASE_FRESH.as_secs() as i64)
        })
        .unwrap_or(false)
}

/// A pool as the plan reads it: its name, labels and address ranges.
pub fn pool_info(p: &IPAddressPool) -> PoolInfo {
    let ranges = p
        .spec
        .addresses
        .iter()
        .filter_map(|a| {
            if let Some((x, y)) = a.split_once('-') {
                Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
            } else {
                let net: Ipv4Net = a.parse().ok()?;
                Some((net.network(), net.broadcast()))
            }
        })
        .collect();
    PoolInfo {
        name: p.name_any(),
        labels: p.labels().clone(),
        ranges,
    }
}

/// For each Service (`namespace/name`), the nodes holding a ready endpoint.
pub fn ready_endpoint_nodes(slices: &[Arc<EndpointSlice>]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in slices {
        let Some(svc) = s.labels().get("kubernetes.io/service-name") else {
            continue;
        };
        let key = metalgate_k8s::reflect::key(&s.namespace().unwrap_or_default(), svc);
        for ep in &s.endpoints {
            if ep.conditions.as_ref().and_then(|c| c.ready) != Some(false) {
                if let Some(n) = &ep.node_name {
                    out.entry(key.clone()).or_default().push(n.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).expect("a valid object"))
    }

    #[test]
    fn peers_are_the_nodes_internal_ips_on_the_gossip_port() {
        let nodes: Vec<Arc<Node>> = vec![
            obj(
                serde_json::json!({"metadata": {"name": "a"}, "status": {"addresses": [
                {"type": "Hostname", "address": "a"},
                {"type": "InternalIP", "address": "192.168.56.10"}]}}),
            ),
            obj(serde_json::json!({"metadata": {"name": "b"}})),
        ];
        assert_eq!(
            peer_addrs(&nodes),
            vec!["192.168.56.10:7946".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn only_ready_endpoints_count_and_services_are_keyed_by_namespace() {
        let slices: Vec<Arc<EndpointSlice>> = vec![obj(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "demo",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "a", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "nodeName": "b", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "nodeName": "c"}
            ]
        }))];
        let got = ready_endpoint_nodes(&slices);
        assert_eq!(
            got.get("demo/web"),
            Some(&vec!["a".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn a_lease_is_fresh_only_when_renewed_recently() {
        let at = |secs_ago: i64| {
            let t = k8s_openapi::jiff::Timestamp::now()
                - k8s_openapi::jiff::SignedDuration::from_secs(secs_ago);
            obj::<Lease>(
                serde_json::json!({"metadata": {"name": "a"}, "spec": {"renewTime": t.to_string()}}),
            )
        };
        assert!(lease_fresh(&[at(2)], "a"));
        assert!(!lease_fresh(&[at(60)], "a"));
        assert!(!lease_fresh(&[at(2)], "b"));
    }
}
