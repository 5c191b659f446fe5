//! A DaemonSet's pods, as kube-controller-manager's DaemonSet controller keeps them: one pod
//! on every node that matches its `nodeSelector` and whose taints it tolerates (with the
//! tolerations every daemon pod gets: not-ready, unreachable, unschedulable), none elsewhere;
//! a changed template replaces pods `maxUnavailable` (default 1) at a time, `OnDelete` only
//! when a pod is deleted by hand.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};

use super::schedule::tolerates;
use super::{REVISION_HASH, pod_ready, scaled, template_hash};

/// What to do for one DaemonSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The nodes that need a pod.
    pub create: Vec<String>,
    /// The pods to delete, by name.
    pub delete: Vec<String>,
    /// The template hash new pods carry as `controller-revision-hash`.
    pub hash: String,
    /// The status to write.
    pub status: DaemonSetStatus,
}

const DAEMON_TOLERATIONS: [&str; 4] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/network-unavailable",
];

fn eligible(ds: &DaemonSet, node: &Node) -> bool {
    let spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(DAEMON_TOLERATIONS.iter().map(|k| Toleration {
        key: Some((*k).into()),
        operator: Some("Exists".into()),
        ..Default::default()
    }));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerates(&tolerations, t))
}

fn hash_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The plan for `ds` given the nodes and the live pods it controls.
pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[&Pod]) -> Plan {
    let spec = ds.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template);
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        by_node.entry(node).or_default().push(p);
    }
    let wanted: Vec<String> = nodes
        .iter()
        .filter(|n| eligible(ds, n))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let mut misscheduled = 0;
    for (node, on_node) in &by_node {
        if !wanted.contains(node) {
            misscheduled += on_node.len() as i32;
            delete.extend(on_node.iter().filter_map(|p| p.metadata.name.clone()));
        }
    }
    let mut current: Vec<&Pod> = Vec::new();
    for node in &wanted {
        let mut on_node = by_node.get(node).cloned().unwrap_or_default();
        if on_node.is_empty() {
            create.push(node.clone());
            continue;
        }
        // Keep one: up to date and ready first.
        on_node.sort_by_key(|p| (hash_of(p) != Some(hash.as_str()), !pod_ready(p)));
        current.push(on_node[0]);
        delete.extend(on_node[1..].iter().filter_map(|p| p.metadata.name.clone()));
    }
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete");
    if !on_delete {
        let max_unavailable = scaled(
            spec.update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref()),
            "1",
            wanted.len() as i32,
            false,
        )
        .max(1);
        let unavailable =
            current.iter().filter(|p| !pod_ready(p)).count() as i32 + create.len() as i32;
        let mut budget = max_unavailable - unavailable;
        // Outdated pods that are not ready go first: replacing them costs nothing.
        let mut outdated: Vec<&&Pod> = current
            .iter()
            .filter(|p| hash_of(p) != Some(hash.as_str()))
            .collect();
        outdated.sort_by_key(|p| pod_ready(p));
        for p in outdated {
            if !pod_ready(p) {
                delete.extend(p.metadata.name.clone());
            } else if budget > 0 {
                delete.extend(p.metadata.name.clone());
                budget -= 1;
            }
        }
    }
    let ready = current.iter().filter(|p| pod_ready(p)).count() as i32;
    let updated = current
        .iter()
        .filter(|p| hash_of(p) == Some(hash.as_str()))
        .count() as i32;
    let status = DaemonSetStatus {
        desired_number_scheduled: wanted.len() as i32,
        current_number_scheduled: current.len() as i32,
        number_ready: ready,
        number_available: Some(ready),
        number_unavailable: Some(wanted.len() as i32 - ready),
        number_misscheduled: misscheduled,
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: None,
        conditions: None,
    };
    Plan {
        create,
        delete,
        hash,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec, PodStatus, PodTemplateSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ds(image: &str) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![k8s_openapi::api::core::v1::Container {
                            name: "s".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn node(name: &str, taint: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: taint.map(|k| {
                    vec![Taint {
                        key: k.into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(REVISION_HASH.to_string(), hash.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(crate::plan::ready_conditions(ready)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let d = ds("metalgate:1");
        let nodes = [
            node("a", None),
            node("b", Some("dedicated")),
            node("c", Some("node.kubernetes.io/not-ready")),
        ];
        let p = plan(&d, &nodes, &[]);
        assert_eq!(
            p.create,
            vec!["a", "c"],
            "an untolerated taint keeps b out, not-ready is tolerated"
        );
        assert_eq!(p.status.desired_number_scheduled, 2);
        let h = p.hash.clone();
        let (pa, pb, pa2) = (
            pod("pa", "a", &h, true),
            pod("pb", "b", &h, true),
            pod("pa2", "a", &h, false),
        );
        let p = plan(&d, &nodes, &[&pa, &pb, &pa2]);
        assert_eq!(p.create, vec!["c"]);
        assert_eq!(
            p.delete,
            vec!["pb", "pa2"],
            "the pod on an ineligible node and the extra one go"
        );
        assert_eq!(p.status.number_misscheduled, 1);
        assert_eq!(p.status.number_ready, 1);
    }

    #[test]
    fn a_new_template_replaces_one_ready_pod_at_a_time() {
        let d = ds("metalgate:2");
        let nodes = [node("a", None), node("b", None), node("c", None)];
        let (pa, pb, pc) = (
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        );
        let p = plan(&d, &nodes, &[&pa, &pb, &pc]);
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.status.updated_number_scheduled, Some(0));
        // While one node's replacement is not ready yet, nothing else goes.
        let pa_new = pod("pa-new", "a", &p.hash, false);
        let p = plan(&d, &nodes, &[&pa_new, &pb, &pc]);
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        let pa_new = pod("pa-new", "a", &p.hash, true);
        let p = plan(&d, &nodes, &[&pa_new, &pb, &pc]);
        assert_eq!(p.delete.len(), 1);
        // OnDelete: nothing is replaced by the controller.
        let mut manual = ds("metalgate:2");
        manual.spec.as_mut().unwrap().update_strategy =
            Some(k8s_openapi::api::apps::v1::DaemonSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            });
        assert!(
            plan(&manual, &nodes, &[&pa_new, &pb, &pc])
                .delete
                .is_empty()
        );
    }
}
