//! The built-in kinds the store serves, one table entry each: how kubectl names a kind, which
//! subresources it has, how an object is checked (its typed k8s-openapi form, then the rules the
//! API documents for it), what kube-apiserver defaults, and the columns `kubectl get` prints.
//! Serving a new built-in kind is adding an entry to [`BUILTINS`].
//!
//! - `print` — cell helpers every kind's columns use (AGE, `<none>`, container lists).
//! - `pod` — the pod spec and template rules and defaults that Pods and workloads share.
//! - `service`, `networking`, `core` — Services; Ingress, IngressClass, EndpointSlice; the rest
//!   of core/v1.
//! - `workloads` — apps/v1 and batch/v1.
//! - `rbac` — Roles, ClusterRoles and their bindings.
//! - `cluster` — Leases, CRDs, PodDisruptionBudgets, HPAs and webhook configurations.

mod cluster;
mod core;
mod networking;
mod pod;
pub mod print;
mod rbac;
mod service;
mod workloads;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use serde_json::Value;

use crate::defaults;
use crate::error::Cause;
use crate::validation::{Findings, typed};

/// A column `kubectl get` prints (after NAME, which every kind but Event leads with).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Header, as kube-apiserver spells it (`Cluster-IP`).
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `date`.
    pub ty: &'static str,
    /// 0 = always shown, 1 = only with `-o wide`.
    pub priority: i64,
}

const fn col(name: &'static str) -> Col {
    Col {
        name,
        ty: "string",
        priority: 0,
    }
}

const fn wide(name: &'static str) -> Col {
    Col {
        name,
        ty: "string",
        priority: 1,
    }
}

/// How `kubectl get` prints a kind: its columns and the cells of one object's row.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Whether the row starts with NAME (every kind but core Event).
    pub named: bool,
    /// The columns after NAME.
    pub columns: &'static [Col],
    /// The cells of those columns for one object.
    pub row: fn(&Value) -> Vec<Value>,
}

/// One built-in kind.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// API group, empty for core.
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// kubectl's short names.
    pub short: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether `kubectl get all` lists it.
    pub in_all: bool,
    /// Whether `/status` is a subresource (spec and status written apart).
    pub status: bool,
    /// Whether `/scale` is a subresource (`spec.replicas`, `status.replicas`,
    /// `spec.selector`).
    pub scale: bool,
    /// Whether the kind has a spec, so that `metadata.generation` counts its changes.
    pub spec: bool,
    /// Whether objects are only created and answered, never stored (access reviews).
    pub answered: bool,
    /// Structure: types and unknown fields, from the typed form.
    pub structure: fn(&Value, &mut Findings),
    /// The rules the API documents for the kind, each cause naming its field.
    pub rules: fn(&Value, &mut Vec<Cause>),
    /// What kube-apiserver fills in when a field is left out.
    pub defaults: fn(&mut Value),
    /// Columns for `kubectl get`; `None` prints NAME and AGE.
    pub printer: Option<Printer>,
}

fn no_rules(_: &Value, _: &mut Vec<Cause>) {}

fn ip_ok(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
}

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

fn check_one_of(v: &Value, field: &str, allowed: &[&str], causes: &mut Vec<Cause>) {
    if let Some(s) = v.as_str() {
        if !allowed.contains(&s) {
            causes.push(Cause::not_supported(field, v, allowed));
        }
    }
}
fn no_defaults(_: &mut Value) {}
fn no_structure(_: &Value, _: &mut Findings) {}

const BASE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "",
    plural: "",
    short: &[],
    namespaced: true,
    in_all: false,
    status: false,
    scale: false,
    spec: true,
    answered: false,
    structure: no_structure,
    rules: no_rules,
    defaults: no_defaults,
    printer: None,
};

/// Every built-in kind the store serves.
pub static BUILTINS: &[Kind] = &[
    // core/v1
    Kind {
        kind: "Namespace",
        plural: "namespaces",
        short: &["ns"],
        namespaced: false,
        status: true,
        structure: typed::<api::core::v1::Namespace>,
        defaults: defaults::namespace,
        printer: Some(core::NAMESPACE),
        ..BASE
    },
    Kind {
        kind: "Service",
        plural: "services",
        short: &["svc"],
        in_all: true,
        status: true,
        structure: typed::<api::core::v1::Service>,
        rules: service::rules,
        printer: Some(service::PRINTER),
        ..BASE
    },
    Kind {
        kind: "Endpoints",
        plural: "endpoints",
        short: &["ep"],
        spec: false,
        structure: typed::<api::core::v1::Endpoints>,
        printer: Some(core::ENDPOINTS),
        ..BASE
    },
    Kind {
        kind: "Secret",
        plural: "secrets",
        spec: false,
        structure: typed::<api::core::v1::Secret>,
        rules: core::secret_rules,
        defaults: defaults::secret,
        printer: Some(core::SECRET),
        ..BASE
    },
    Kind {
        kind: "ConfigMap",
        plural: "configmaps",
        short: &["cm"],
        spec: false,
        structure: typed::<api::core::v1::ConfigMap>,
        printer: Some(core::CONFIG_MAP),
        ..BASE
    },
    Kind {
        kind: "Node",
        plural: "nodes",
        short: &["no"],
        namespaced: false,
        status: true,
        structure: typed::<api::core::v1::Node>,
        rules: core::node_rules,
        printer: Some(core::NODE),
        ..BASE
    },
    Kind {
        kind: "Event",
        plural: "events",
        short: &["ev"],
        spec: false,
        structure: typed::<api::core::v1::Event>,
        printer: Some(core::EVENT),
        ..BASE
    },
    Kind {
        kind: "Pod",
        plural: "pods",
        short: &["po"],
        in_all: true,
        status: true,
        structure: typed::<api::core::v1::Pod>,
        rules: pod::pod_rules,
        defaults: pod::pod_defaults,
        printer: Some(pod::PRINTER),
        ..BASE
    },
    Kind {
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        short: &["sa"],
        spec: false,
        structure: typed::<api::core::v1::ServiceAccount>,
        printer: Some(core::SERVICE_ACCOUNT),
        ..BASE
    },
    Kind {
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        short: &["pvc"],
        status: true,
        structure: typed::<api::core::v1::PersistentVolumeClaim>,
        rules: core::pvc_rules,
        defaults: core::pvc_defaults,
        printer: Some(core::PVC),
        ..BASE
    },
    Kind {
        kind: "LimitRange",
        plural: "limitranges",
        short: &["limits"],
        structure: typed::<api::core::v1::LimitRange>,
        printer: Some(print::CREATED_AT),
        ..BASE
    },
    Kind {
        kind: "ResourceQuota",
        plural: "resourcequotas",
        short: &["quota"],
        status: true,
        structure: typed::<api::core::v1::ResourceQuota>,
        printer: Some(core::RESOURCE_QUOTA),
        ..BASE
    },
    // events.k8s.io: stored, and so checked, in the core form.
    Kind {
        group: "events.k8s.io",
        kind: "Event",
        plural: "events",
        short: &["ev"],
        spec: false,
        structure: typed::<api::core::v1::Event>,
        printer: Some(core::EVENT_V1),
        ..BASE
    },
    // apps/v1
    Kind {
        group: "apps",
        kind: "Deployment",
        plural: "deployments",
        short: &["deploy"],
        in_all: true,
        status: true,
        scale: true,
        structure: typed::<api::apps::v1::Deployment>,
        rules: workloads::deployment_rules,
        defaults: workloads::deployment_defaults,
        printer: Some(workloads::DEPLOYMENT),
        ..BASE
    },
    Kind {
        group: "apps",
        kind: "ReplicaSet",
        plural: "replicasets",
        short: &["rs"],
        in_all: true,
        status: true,
        scale: true,
        structure: typed::<api::apps::v1::ReplicaSet>,
        rules: workloads::replica_set_rules,
        defaults: workloads::replica_set_defaults,
        printer: Some(workloads::REPLICA_SET),
        ..BASE
    },
    Kind {
        group: "apps",
        kind: "DaemonSet",
        plural: "daemonsets",
        short: &["ds"],
        in_all: true,
        status: true,
        structure: typed::<api::apps::v1::DaemonSet>,
        rules: workloads::daemon_set_rules,
        defaults: workloads::daemon_set_defaults,
        printer: Some(workloads::DAEMON_SET),
        ..BASE
    },
    Kind {
        group: "apps",
        kind: "StatefulSet",
        plural: "statefulsets",
        short: &["sts"],
        in_all: true,
        status: true,
        scale: true,
        structure: typed::<api::apps::v1::StatefulSet>,
        rules: workloads::stateful_set_rules,
        defaults: workloads::stateful_set_defaults,
        printer: Some(workloads::STATEFUL_SET),
        ..BASE
    },
    Kind {
        group: "apps",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        spec: false,
        structure: typed::<api::apps::v1::ControllerRevision>,
        printer: Some(workloads::CONTROLLER_REVISION),
        ..BASE
    },
    // batch/v1
    Kind {
        group: "batch",
        kind: "Job",
        plural: "jobs",
        in_all: true,
        status: true,
        structure: typed::<api::batch::v1::Job>,
        rules: workloads::job_rules,
        defaults: workloads::job_defaults,
        printer: Some(workloads::JOB),
        ..BASE
    },
    Kind {
        group: "batch",
        kind: "CronJob",
        plural: "cronjobs",
        short: &["cj"],
        in_all: true,
        status: true,
        structure: typed::<api::batch::v1::CronJob>,
        rules: workloads::cron_job_rules,
        defaults: workloads::cron_job_defaults,
        printer: Some(workloads::CRON_JOB),
        ..BASE
    },
    // rbac.authorization.k8s.io/v1
    Kind {
        group: "rbac.authorization.k8s.io",
        kind: "Role",
        plural: "roles",
        spec: false,
        structure: typed::<api::rbac::v1::Role>,
        rules: rbac::role_rules,
        printer: Some(print::CREATED_AT),
        ..BASE
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        spec: false,
        structure: typed::<api::rbac::v1::ClusterRole>,
        rules: rbac::cluster_role_rules,
        printer: Some(print::CREATED_AT),
        ..BASE
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        kind: "RoleBinding",
        plural: "rolebindings",
        spec: false,
        structure: typed::<api::rbac::v1::RoleBinding>,
        rules: rbac::role_binding_rules,
        defaults: rbac::binding_defaults,
        printer: Some(rbac::BINDING),
        ..BASE
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        spec: false,
        structure: typed::<api::rbac::v1::ClusterRoleBinding>,
        rules: rbac::cluster_role_binding_rules,
        defaults: rbac::binding_defaults,
        printer: Some(rbac::BINDING),
        ..BASE
    },
    // discovery, networking, coordination
    Kind {
        group: "discovery.k8s.io",
        kind: "EndpointSlice",
        plural: "endpointslices",
        spec: false,
        structure: typed::<api::discovery::v1::EndpointSlice>,
        rules: networking::endpoint_slice_rules,
        printer: Some(networking::ENDPOINT_SLICE),
        ..BASE
    },
    Kind {
        group: "networking.k8s.io",
        kind: "Ingress",
        plural: "ingresses",
        short: &["ing"],
        status: true,
        structure: typed::<api::networking::v1::Ingress>,
        rules: networking::ingress_rules,
        printer: Some(networking::INGRESS),
        ..BASE
    },
    Kind {
        group: "networking.k8s.io",
        kind: "IngressClass",
        plural: "ingressclasses",
        namespaced: false,
        structure: typed::<api::networking::v1::IngressClass>,
        printer: Some(networking::INGRESS_CLASS),
        ..BASE
    },
    Kind {
        group: "networking.k8s.io",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        short: &["netpol"],
        structure: typed::<api::networking::v1::NetworkPolicy>,
        printer: Some(networking::NETWORK_POLICY),
        ..BASE
    },
    Kind {
        group: "coordination.k8s.io",
        kind: "Lease",
        plural: "leases",
        structure: typed::<api::coordination::v1::Lease>,
        printer: Some(cluster::LEASE),
        ..BASE
    },
    // policy, autoscaling, admission, CRDs
    Kind {
        group: "policy",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        short: &["pdb"],
        status: true,
        structure: typed::<api::policy::v1::PodDisruptionBudget>,
        rules: cluster::pdb_rules,
        printer: Some(cluster::PDB),
        ..BASE
    },
    Kind {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        short: &["hpa"],
        in_all: true,
        status: true,
        structure: typed::<api::autoscaling::v2::HorizontalPodAutoscaler>,
        rules: cluster::hpa_rules,
        defaults: cluster::hpa_defaults,
        printer: Some(cluster::HPA),
        ..BASE
    },
    Kind {
        group: "admissionregistration.k8s.io",
        kind: "ValidatingWebhookConfiguration",
        plural: "validatingwebhookconfigurations",
        namespaced: false,
        spec: false,
        structure: typed::<api::admissionregistration::v1::ValidatingWebhookConfiguration>,
        printer: Some(cluster::WEBHOOKS),
        ..BASE
    },
    Kind {
        group: "admissionregistration.k8s.io",
        kind: "MutatingWebhookConfiguration",
        plural: "mutatingwebhookconfigurations",
        namespaced: false,
        spec: false,
        structure: typed::<api::admissionregistration::v1::MutatingWebhookConfiguration>,
        printer: Some(cluster::WEBHOOKS),
        ..BASE
    },
    // Asked, answered, never stored.
    Kind {
        group: "authorization.k8s.io",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        namespaced: false,
        answered: true,
        structure: typed::<api::authorization::v1::SelfSubjectAccessReview>,
        ..BASE
    },
    Kind {
        group: "authorization.k8s.io",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        namespaced: false,
        answered: true,
        structure: typed::<api::authorization::v1::SubjectAccessReview>,
        ..BASE
    },
    Kind {
        group: "authentication.k8s.io",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        namespaced: false,
        answered: true,
        structure: typed::<api::authentication::v1::SelfSubjectReview>,
        ..BASE
    },
    Kind {
        group: "apiextensions.k8s.io",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        short: &["crd", "crds"],
        namespaced: false,
        status: true,
        structure: typed::<apiext::CustomResourceDefinition>,
        rules: cluster::crd_rules,
        printer: Some(print::CREATED_AT),
        ..BASE
    },
];

/// The built-in kind `group`/`kind`, if the store serves it.
pub fn find(group: &str, kind: &str) -> Option<&'static Kind> {
    BUILTINS.iter().find(|k| k.group == group && k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_served_once_with_a_plural_and_a_typed_check() {
        for (i, k) in BUILTINS.iter().enumerate() {
            assert!(!k.plural.is_empty() && !k.kind.is_empty());
            assert!(
                BUILTINS[..i]
                    .iter()
                    .all(|o| (o.group, o.plural) != (k.group, k.plural)),
                "{} served twice",
                k.plural
            );
            let mut f = Findings::default();
            (k.structure)(&serde_json::json!({"metadata": {"name": 1}}), &mut f);
            assert!(
                !f.causes.is_empty(),
                "{}: a name of the wrong type passes its structure check",
                k.kind
            );
        }
    }

    #[test]
    fn each_printer_fills_every_column() {
        let o = serde_json::json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        for k in BUILTINS {
            if let Some(p) = k.printer {
                assert_eq!(
                    (p.row)(&o).len(),
                    p.columns.len(),
                    "{}: cells and columns differ",
                    k.kind
                );
            }
        }
    }
}
