//! The decisions of the workload controllers, pure: each takes what the store holds and says
//! what to create, change or delete, and which status to write. The I/O lives in
//! `controllers`.
//!
//! - `replicaset` — a ReplicaSet's pods: how many to create, which to delete;
//! - `deployment` — a Deployment's ReplicaSets: the rolling update and `Recreate`, revisions;
//! - `daemonset` — one pod per eligible node, replaced one at a time;
//! - `schedule` — which node a pod goes to (spread, host ports), or why none fits;
//! - `endpoints` — a Service with a selector as an EndpointSlice of its ready pods;
//! - `services` — the iptables rules that make Services reachable on a node (kube-proxy).

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod replicaset;
pub mod schedule;
pub mod services;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label a ReplicaSet and its pods carry: the hash of the Deployment's pod template.
pub const TEMPLATE_HASH: &str = "pod-template-hash";
/// The label a DaemonSet's pods carry: the hash of its pod template.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// The annotation holding a Deployment's (and its ReplicaSets') revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The owner reference a controller puts on what it creates.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a pod is on its way out (being deleted, or finished).
pub fn pod_gone(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        || p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

pub use metalgate_k8s::selector::matches as selects;

/// An int-or-percent field (`maxSurge: 25%`) resolved against `total`, rounding up or down as
/// the Deployment controller does; `None` takes `default`.
pub fn scaled(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let resolve = |s: &str| -> i32 {
        match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let num = p * i64::from(total);
                let v = if round_up {
                    (num + 99) / 100
                } else {
                    num / 100
                };
                v as i32
            }
            None => s.parse().unwrap_or(0),
        }
    };
    match v {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => resolve(s),
        None => resolve(default),
    }
}

/// A name for a new object: `prefix` and five characters from Kubernetes' alphabet, as
/// `metadata.generateName` produces.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// A stable hash of a pod template, spelled with Kubernetes' alphabet (FNV-1a over the
/// template's JSON): the `pod-template-hash` of a Deployment's ReplicaSet.
pub fn template_hash(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut t = template.clone();
    // The hash label itself is not part of what is hashed.
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(TEMPLATE_HASH);
        l.remove(REVISION_HASH);
    }
    // Absent and empty are the same template.
    if let Some(m) = t.metadata.as_mut() {
        if m.labels.as_ref().is_some_and(|l| l.is_empty()) {
            m.labels = None;
        }
        if *m == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut n = u64::from(h);
    let mut out = String::new();
    loop {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
        if n == 0 {
            break;
        }
    }
    out
}

/// A pod for `template`, named `name` in `namespace`, controlled by `owner`.
pub fn pod_from_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    namespace: &str,
    name: String,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.into()),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// A pod's conditions saying whether it is Ready (for the plans' tests).
#[cfg(test)]
pub(crate) fn ready_conditions(ready: bool) -> Vec<k8s_openapi::api::core::v1::PodCondition> {
    vec![k8s_openapi::api::core::v1::PodCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_the_deployment_controller_does() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled(None, "25%", 3, true), 1);
        assert_eq!(scaled(None, "25%", 3, false), 0);
        assert_eq!(scaled(Some(&pct("50%")), "25%", 3, false), 1);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), "25%", 3, false), 2);
        assert_eq!(scaled(None, "25%", 4, true), 1);
        assert_eq!(scaled(None, "25%", 0, true), 0);
    }

    #[test]
    fn the_template_hash_follows_the_template_and_ignores_its_own_label() {
        let mut t = k8s_openapi::api::core::v1::PodTemplateSpec::default();
        let a = template_hash(&t);
        t.metadata = Some(ObjectMeta {
            labels: Some([(TEMPLATE_HASH.to_string(), "x".to_string())].into()),
            ..Default::default()
        });
        assert_eq!(template_hash(&t), a, "its own label is not hashed");
        t.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("app".into(), "a".into());
        assert_ne!(template_hash(&t), a);
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
