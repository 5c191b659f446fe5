//! A ReplicaSet's pods, as kube-controller-manager's ReplicaSet controller keeps them: create
//! what is missing, delete the surplus in the order that hurts least (unscheduled, then not
//! ready, then the youngest), and report how many are there, ready and available.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::pod_ready;

/// What to do for one ReplicaSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How many pods to create from the template.
    pub create: usize,
    /// Which pods to delete, by name.
    pub delete: Vec<String>,
    /// The status to write.
    pub status: ReplicaSetStatus,
}

/// The plan for `rs` given the live pods it controls (none being deleted).
pub fn plan(rs: &ReplicaSet, pods: &[&Pod]) -> Plan {
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let mut create = 0;
    let mut delete = Vec::new();
    if pods.len() < want {
        create = want - pods.len();
    } else if pods.len() > want {
        let mut ranked: Vec<&&Pod> = pods.iter().collect();
        // Least valuable first: unscheduled, not ready, youngest.
        ranked.sort_by_key(|p| {
            let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (scheduled, pod_ready(p), std::cmp::Reverse(created))
        });
        delete = ranked
            .iter()
            .take(pods.len() - want)
            .filter_map(|p| p.metadata.name.clone())
            .collect();
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i32;
    let status = ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(pods.len() as i32),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        observed_generation: rs.metadata.generation,
        conditions: None,
        terminating_replicas: None,
    };
    Plan {
        create,
        delete,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, node: Option<&str>, ready: bool, age: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_700_000_000 - age).unwrap(),
                )),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(crate::plan::ready_conditions(ready)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn creates_what_is_missing_and_counts_ready() {
        let a = pod("a", Some("n1"), true, 10);
        let p = plan(&rs(3), &[&a]);
        assert_eq!(p.create, 2);
        assert!(p.delete.is_empty());
        assert_eq!(p.status.replicas, 1);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(3));
    }

    #[test]
    fn deletes_unscheduled_then_unready_then_youngest() {
        let old_ready = pod("old-ready", Some("n1"), true, 100);
        let young_ready = pod("young-ready", Some("n1"), true, 1);
        let unready = pod("unready", Some("n2"), false, 200);
        let pending = pod("pending", None, false, 300);
        let all = [&old_ready, &young_ready, &unready, &pending];
        assert_eq!(plan(&rs(3), &all).delete, vec!["pending"]);
        assert_eq!(plan(&rs(2), &all).delete, vec!["pending", "unready"]);
        assert_eq!(
            plan(&rs(1), &all).delete,
            vec!["pending", "unready", "young-ready"]
        );
        assert_eq!(plan(&rs(0), &all).delete.len(), 4);
        assert_eq!(
            plan(&rs(4), &all),
            Plan {
                create: 0,
                delete: vec![],
                ..plan(&rs(4), &all)
            }
        );
    }
}
