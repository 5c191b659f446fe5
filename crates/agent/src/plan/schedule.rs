//! Which node a pod runs on, as kube-scheduler decides for a small cluster: nodes that are
//! Ready and schedulable, match the pod's `nodeSelector`, whose taints it tolerates and whose
//! host ports are free; among those, the one with the fewest pods of the same owner, then the
//! fewest pods. When none fits, the reason is kube-scheduler's sentence
//! (`0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

/// The host ports a pod takes on its node: every container port of a `hostNetwork` pod, and
/// explicit `hostPort`s otherwise.
pub fn host_ports(p: &Pod) -> Vec<(i32, String)> {
    let Some(spec) = &p.spec else { return vec![] };
    let host_network = spec.host_network == Some(true);
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            let proto = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            match (port.host_port, host_network) {
                (Some(h), _) if h > 0 => Some((h, proto)),
                (_, true) => Some((port.container_port, proto)),
                _ => None,
            }
        })
        .collect()
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(super) fn tolerates(tolerations: &[Toleration], t: &Taint) -> bool {
    tolerations.iter().any(|tol| {
        let key_ok = match tol.key.as_deref() {
            None | Some("") => tol.operator.as_deref() == Some("Exists"),
            Some(k) => k == t.key,
        };
        let value_ok = tol.operator.as_deref() == Some("Exists")
            || tol.value.as_deref().unwrap_or_default() == t.value.as_deref().unwrap_or_default();
        let effect_ok = tol
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == t.effect);
        key_ok && value_ok && effect_ok
    })
}

fn owner_uid(p: &Pod) -> Option<&str> {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Why a node does not fit, in kube-scheduler's words.
fn unfit(pod: &Pod, node: &Node, on_node: &[&Pod]) -> Option<&'static str> {
    let spec = pod.spec.clone().unwrap_or_default();
    if !node_ready(node) {
        return Some("node(s) were not ready");
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Some("node(s) were unschedulable");
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return Some("node(s) didn't match Pod's node affinity/selector");
        }
    }
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .any(|t| !tolerates(&tolerations, t))
    {
        return Some("node(s) had untolerated taint");
    }
    let wanted = host_ports(pod);
    if !wanted.is_empty() {
        let taken: Vec<(i32, String)> = on_node.iter().flat_map(|p| host_ports(p)).collect();
        if wanted.iter().any(|w| taken.contains(w)) {
            return Some("node(s) didn't have free ports for the requested pod ports");
        }
    }
    None
}

/// The node `pod` should run on, given the nodes and the pods already placed (by node name);
/// or why none fits.
pub fn choose(
    pod: &Pod,
    nodes: &[Node],
    placed: &BTreeMap<String, Vec<&Pod>>,
) -> Result<String, String> {
    let none = Vec::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut best: Option<((usize, usize, String), String)> = None;
    let owner = owner_uid(pod);
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let on_node = placed.get(&name).unwrap_or(&none);
        if let Some(r) = unfit(pod, n, on_node) {
            *reasons.entry(r).or_default() += 1;
            continue;
        }
        let siblings = on_node
            .iter()
            .filter(|p| owner.is_some() && owner_uid(p) == owner)
            .count();
        let score = (siblings, on_node.len(), name.clone());
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, name));
        }
    }
    match best {
        Some((_, name)) => Ok(name),
        None => {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            Err(format!(
                "0/{} nodes are available: {}.",
                nodes.len(),
                if parts.is_empty() {
                    "no nodes registered".to_string()
                } else {
                    parts.join(", ")
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, NodeCondition, NodeSpec, NodeStatus, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn node(name: &str, ready: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pod(owner: &str, host_network: bool, port: i32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: owner.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                host_network: Some(host_network),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn spreads_replicas_of_one_owner_over_nodes() {
        let nodes = [node("a", true), node("b", true), node("c", true)];
        let (p1, p2, other) = (
            pod("rs", false, 9898),
            pod("rs", false, 9898),
            pod("x", false, 1),
        );
        let mut placed: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        placed.entry("a".into()).or_default().push(&p1);
        placed.entry("b".into()).or_default().push(&other);
        assert_eq!(choose(&p2, &nodes, &placed).unwrap(), "c");
        placed.entry("c".into()).or_default().push(&p2);
        // Each has one sibling now except b; b has another owner's pod but no sibling.
        assert_eq!(
            choose(&pod("rs", false, 9898), &nodes, &placed).unwrap(),
            "b"
        );
    }

    #[test]
    fn a_taken_host_port_makes_the_pod_pending_with_the_reason() {
        let nodes = [node("a", true), node("b", false)];
        let taken = pod("ds", true, 7946);
        let placed: BTreeMap<String, Vec<&Pod>> = [("a".to_string(), vec![&taken])].into();
        let err = choose(&pod("other", true, 7946), &nodes, &placed).unwrap_err();
        assert_eq!(
            err,
            "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) were not ready."
        );
        // Pods with their own IP do not compete for the node's ports.
        assert_eq!(
            choose(&pod("other", false, 7946), &nodes, &placed).unwrap(),
            "a"
        );
    }

    #[test]
    fn node_selectors_and_taints_filter() {
        let mut tainted = node("cp", true);
        tainted.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]);
        let nodes = [tainted, node("w", true)];
        let mut p = pod("x", false, 80);
        assert_eq!(choose(&p, &nodes, &BTreeMap::new()).unwrap(), "w");
        p.spec.as_mut().unwrap().node_selector =
            Some([("kubernetes.io/hostname".to_string(), "cp".to_string())].into());
        let err = choose(&p, &nodes, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("1 node(s) had untolerated taint"), "{err}");
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("node-role.kubernetes.io/control-plane".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(choose(&p, &nodes, &BTreeMap::new()).unwrap(), "cp");
    }
}
