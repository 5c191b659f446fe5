//! What this node announces, from a snapshot of the cluster — pure.
//!
//! For every IPv4 address in a LoadBalancer Service's status: the pool it came from
//! (`metalgate.io/ip-allocated-from-pool`, else the pool holding it), the L2Advertisements that
//! cover that pool (none: the IP is not announced), the eligible live nodes, the owner by
//! election — and, when the owner is this node, the interface to answer on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::arp::Announcement;
use crate::election::{NodeState, eligible, matches, owner};

/// A pool, as far as the speaker cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Name.
    pub name: String,
    /// Labels (for `ipAddressPoolSelectors`).
    pub labels: BTreeMap<String, String>,
    /// Whether an address lies in it.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// An L2Advertisement, as far as the speaker cares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct L2Adv {
    /// Pools by name.
    pub pools: Vec<String>,
    /// Pools by label.
    pub pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce.
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on (empty: the one holding the IP's subnet).
    pub interfaces: Vec<String>,
}

/// A local interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInterface {
    /// Name.
    pub name: String,
    /// IPv4 networks on it.
    pub nets: Vec<Ipv4Net>,
}

/// One IP's outcome, for everyone to see (status, logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `namespace/name` of the Service.
    pub service: String,
    /// The IP.
    pub ip: Ipv4Addr,
    /// Who announces it (None: nobody may).
    pub owner: Option<String>,
    /// The interface, when this node owns it and has one for it.
    pub interface: Option<String>,
}

fn covers(adv: &L2Adv, pool: &PoolInfo) -> bool {
    (adv.pools.is_empty() && adv.pool_selectors.is_empty())
        || adv.pools.contains(&pool.name)
        || adv.pool_selectors.iter().any(|s| matches(s, &pool.labels))
}

/// Every decision for the cluster snapshot, and the announcements for node `me`.
pub fn plan(
    me: &str,
    services: &[&Service],
    nodes: &[NodeState],
    pools: &[PoolInfo],
    advs: &[L2Adv],
    local_endpoints: &BTreeMap<String, Vec<String>>,
    interfaces: &[LocalInterface],
) -> (Vec<Decision>, Vec<Announcement>) {
    let mut decisions = Vec::new();
    let mut mine: BTreeSet<(Ipv4Addr, String)> = BTreeSet::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let key = metalgate_k8s::reflect::key_of(&svc.metadata);
        let ips: Vec<Ipv4Addr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .map(|i| {
                i.iter()
                    .filter_map(|e| e.ip.as_deref()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let annotated = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("metalgate.io/ip-allocated-from-pool"))
            .cloned();
        let local = (spec.external_traffic_policy.as_deref() == Some("Local"))
            .then(|| local_endpoints.get(&key).cloned().unwrap_or_default());
        for ip in ips {
            let pool = pools
                .iter()
                .find(|p| {
                    Some(&p.name) == annotated.as_ref()
                        && p.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
                })
                .or_else(|| {
                    pools
                        .iter()
                        .find(|p| p.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip)))
                });
            let covering: Vec<&L2Adv> = match pool {
                Some(p) => advs.iter().filter(|a| covers(a, p)).collect(),
                None => Vec::new(),
            };
            // Nodes any covering advertisement allows, that are eligible.
            let candidates: Vec<&str> = nodes
                .iter()
                .filter(|n| {
                    covering
                        .iter()
                        .any(|a| eligible(n, &a.node_selectors, local.as_deref()))
                })
                .map(|n| n.name.as_str())
                .collect();
            let chosen = owner(IpAddr::V4(ip), candidates).map(str::to_string);
            let mut interface = None;
            if chosen.as_deref() == Some(me) {
                let wanted: BTreeSet<&str> = covering
                    .iter()
                    .filter(|a| {
                        nodes.iter().any(|n| {
                            n.name == me && eligible(n, &a.node_selectors, local.as_deref())
                        })
                    })
                    .flat_map(|a| a.interfaces.iter().map(String::as_str))
                    .collect();
                for iface in interfaces {
                    let holds_subnet = iface.nets.iter().any(|n| n.contains(&ip));
                    let named = wanted.contains(iface.name.as_str());
                    if (wanted.is_empty() && holds_subnet) || named {
                        mine.insert((ip, iface.name.clone()));
                        interface.get_or_insert_with(|| iface.name.clone());
                    }
                }
            }
            decisions.push(Decision {
                service: key.clone(),
                ip,
                owner: chosen,
                interface,
            });
        }
    }
    let announcements = mine
        .into_iter()
        .map(|(ip, interface)| Announcement {
            ip,
            interface,
            same_subnet_only: true,
        })
        .collect();
    (decisions, announcements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str, etp: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "apps", "annotations": {"metalgate.io/ip-allocated-from-pool": "lab"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp, "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }))
        .unwrap()
    }

    fn nodes() -> Vec<NodeState> {
        ["ops-demo", "node2", "node3"]
            .iter()
            .map(|n| NodeState {
                name: n.to_string(),
                alive: true,
                ..Default::default()
            })
            .collect()
    }

    fn pools() -> Vec<PoolInfo> {
        vec![PoolInfo {
            name: "lab".into(),
            labels: BTreeMap::new(),
            ranges: vec![(
                "192.168.56.200".parse().unwrap(),
                "192.168.56.220".parse().unwrap(),
            )],
        }]
    }

    fn ifaces() -> Vec<LocalInterface> {
        vec![
            LocalInterface {
                name: "eth0".into(),
                nets: vec!["10.0.2.15/24".parse().unwrap()],
            },
            LocalInterface {
                name: "eth1".into(),
                nets: vec!["192.168.56.10/24".parse().unwrap()],
            },
        ]
    }

    #[test]
    fn exactly_one_node_announces_each_ip_on_the_subnets_interface() {
        let s = svc("web", "192.168.56.200", "Cluster");
        let advs = vec![L2Adv {
            pools: vec!["lab".into()],
            ..Default::default()
        }];
        let mut owners = Vec::new();
        for me in ["ops-demo", "node2", "node3"] {
            let (decisions, ann) = plan(
                me,
                &[&s],
                &nodes(),
                &pools(),
                &advs,
                &BTreeMap::new(),
                &ifaces(),
            );
            assert_eq!(decisions.len(), 1);
            if decisions[0].owner.as_deref() == Some(me) {
                assert_eq!(
                    ann,
                    vec![Announcement {
                        ip: "192.168.56.200".parse().unwrap(),
                        interface: "eth1".into(),
                        same_subnet_only: true
                    }]
                );
                owners.push(me);
            } else {
                assert!(ann.is_empty(), "{me} announces nothing it does not own");
            }
        }
        assert_eq!(owners.len(), 1, "one owner: {owners:?}");
    }

    #[test]
    fn no_advertisement_no_announcement_and_named_interfaces() {
        let s = svc("web", "192.168.56.200", "Cluster");
        let (d, ann) = plan(
            "ops-demo",
            &[&s],
            &nodes(),
            &pools(),
            &[],
            &BTreeMap::new(),
            &ifaces(),
        );
        assert_eq!(d[0].owner, None);
        assert!(ann.is_empty());
        let only_me = vec![NodeState {
            name: "ops-demo".into(),
            alive: true,
            ..Default::default()
        }];
        let advs = vec![L2Adv {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        }];
        let (_, ann) = plan(
            "ops-demo",
            &[&s],
            &only_me,
            &pools(),
            &advs,
            &BTreeMap::new(),
            &ifaces(),
        );
        assert_eq!(
            ann[0].interface, "eth0",
            "an L2Advertisement's interfaces win"
        );
    }

    #[test]
    fn local_traffic_policy_needs_a_ready_endpoint_on_the_node() {
        let s = svc("web", "192.168.56.200", "Local");
        let advs = vec![L2Adv::default()];
        let eps: BTreeMap<String, Vec<String>> =
            [("apps/web".to_string(), vec!["node3".to_string()])].into();
        let (d, _) = plan("node3", &[&s], &nodes(), &pools(), &advs, &eps, &ifaces());
        assert_eq!(d[0].owner.as_deref(), Some("node3"));
    }
}
