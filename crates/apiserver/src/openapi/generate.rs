//! Generates `builtin.json`: each built-in kind's schema from its typed k8s-openapi form, and
//! every schema those refer to, in OpenAPI 3.0 form. A test, so that the generator (and the
//! schema code of every k8s-openapi type) stays out of the binary while CI checks that the
//! shipped file is what the types say:
//!
//! ```sh
//! METALGATE_WRITE_OPENAPI=1 cargo test -p metalgate-apiserver --lib openapi::generate
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Registers `T`'s schema (and every schema it refers to) in `g`; returns its component name.
fn component<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Group, version, kind, and what registers its schema.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    fn(&mut SchemaGenerator) -> String,
);

/// Every built-in kind served, with its typed form (the one `kinds::BUILTINS` checks it by).
#[rustfmt::skip]
const TYPES: &[Row] = &[
    ("", "v1", "Namespace", component::<api::core::v1::Namespace>),
    ("", "v1", "Service", component::<api::core::v1::Service>),
    ("", "v1", "Endpoints", component::<api::core::v1::Endpoints>),
    ("", "v1", "Secret", component::<api::core::v1::Secret>),
    ("", "v1", "ConfigMap", component::<api::core::v1::ConfigMap>),
    ("", "v1", "Node", component::<api::core::v1::Node>),
    ("", "v1", "Event", component::<api::core::v1::Event>),
    ("", "v1", "Pod", component::<api::core::v1::Pod>),
    ("", "v1", "ServiceAccount", component::<api::core::v1::ServiceAccount>),
    ("", "v1", "PersistentVolumeClaim", component::<api::core::v1::PersistentVolumeClaim>),
    ("", "v1", "LimitRange", component::<api::core::v1::LimitRange>),
    ("", "v1", "ResourceQuota", component::<api::core::v1::ResourceQuota>),
    ("events.k8s.io", "v1", "Event", component::<api::core::v1::Event>),
    ("apps", "v1", "Deployment", component::<api::apps::v1::Deployment>),
    ("apps", "v1", "ReplicaSet", component::<api::apps::v1::ReplicaSet>),
    ("apps", "v1", "DaemonSet", component::<api::apps::v1::DaemonSet>),
    ("apps", "v1", "StatefulSet", component::<api::apps::v1::StatefulSet>),
    ("apps", "v1", "ControllerRevision", component::<api::apps::v1::ControllerRevision>),
    ("batch", "v1", "Job", component::<api::batch::v1::Job>),
    ("batch", "v1", "CronJob", component::<api::batch::v1::CronJob>),
    ("rbac.authorization.k8s.io", "v1", "Role", component::<api::rbac::v1::Role>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", component::<api::rbac::v1::ClusterRole>),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", component::<api::rbac::v1::RoleBinding>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", component::<api::rbac::v1::ClusterRoleBinding>),
    ("discovery.k8s.io", "v1", "EndpointSlice", component::<api::discovery::v1::EndpointSlice>),
    ("networking.k8s.io", "v1", "Ingress", component::<api::networking::v1::Ingress>),
    ("networking.k8s.io", "v1", "IngressClass", component::<api::networking::v1::IngressClass>),
    ("networking.k8s.io", "v1", "NetworkPolicy", component::<api::networking::v1::NetworkPolicy>),
    ("coordination.k8s.io", "v1", "Lease", component::<api::coordination::v1::Lease>),
    ("policy", "v1", "PodDisruptionBudget", component::<api::policy::v1::PodDisruptionBudget>),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", component::<api::autoscaling::v2::HorizontalPodAutoscaler>),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", component::<api::admissionregistration::v1::ValidatingWebhookConfiguration>),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", component::<api::admissionregistration::v1::MutatingWebhookConfiguration>),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", component::<api::authorization::v1::SelfSubjectAccessReview>),
    ("authorization.k8s.io", "v1", "SubjectAccessReview", component::<api::authorization::v1::SubjectAccessReview>),
    ("authentication.k8s.io", "v1", "SelfSubjectReview", component::<api::authentication::v1::SelfSubjectReview>),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", component::<apiext::CustomResourceDefinition>),
];

/// The text of `builtin.json`: the kinds' component names, then one schema a line (so a
/// change in k8s-openapi shows as a readable diff).
fn generate() -> String {
    let mut g = SchemaSettings::openapi3().into_generator();
    let mut kinds = Map::new();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (group, version, kind, f) in TYPES {
        let name = f(&mut g);
        kinds.insert(format!("{group}/{version}/{kind}"), json!(name));
        gvks.entry(name)
            .or_default()
            .push(json!({"group": group, "version": version, "kind": kind}));
    }
    let mut schemas = g.take_definitions(true);
    for (name, gvks) in gvks {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
            // The typed forms hold `metadata` as a plain field, so it comes out required; the
            // API fills it in (`generateName`, the name from the URL), as kube-apiserver says.
            if let Some(Value::Array(req)) = s.get_mut("required") {
                req.retain(|f| f != "metadata");
                if req.is_empty() {
                    s.remove("required");
                }
            }
        }
    }
    schemas.sort_keys();
    let lines: Vec<String> = schemas
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), v))
        .collect();
    format!(
        "{{\"kinds\": {},\n\"schemas\": {{\n{}\n}}}}\n",
        Value::Object(kinds),
        lines.join(",\n")
    )
}

#[test]
fn every_built_in_kind_has_a_typed_form_here() {
    for k in crate::kinds::BUILTINS {
        assert!(
            TYPES
                .iter()
                .any(|(g, v, kind, _)| (*g, *v, *kind) == (k.group, k.version, k.kind)),
            "{}/{} {}: no row in openapi::generate::TYPES",
            k.group,
            k.version,
            k.kind
        );
    }
}

#[test]
fn builtin_json_is_what_the_types_generate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi/builtin.json");
    let fresh = generate();
    if std::env::var_os("METALGATE_WRITE_OPENAPI").is_some() {
        std::fs::write(path, &fresh).unwrap();
    }
    let shipped = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        shipped == fresh,
        "src/openapi/builtin.json is stale: METALGATE_WRITE_OPENAPI=1 cargo test -p metalgate-apiserver --lib openapi::generate"
    );
}
