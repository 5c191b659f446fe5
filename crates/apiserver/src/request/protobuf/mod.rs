//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl's typed
//! commands send: `run`, `expose`, `create namespace|configmap|secret|serviceaccount|token|
//! role|rolebinding|clusterrole|clusterrolebinding|deployment|service|ingress|job|cronjob|
//! poddisruptionbudget|quota`, `auth can-i`, `auth whoami`. The envelope (`k8s\0` +
//! `runtime.Unknown`) and each message are decoded by kube-rs's `k8s-pb` (prost); this module
//! maps the decoded message onto the JSON the rest of the store reads. Kinds not mapped here
//! are refused with 415, naming the ones that are.
//!
//! - `typed` — the table-driven mapping (field names, Go's omitempty, refused fields);
//! - `workloads` — Pods, templates, Deployments, Jobs, CronJobs;
//! - `network` — Services, Ingresses, PodDisruptionBudgets, ResourceQuotas.
//!
//! The kinds here before the tables (Namespace … ClusterRoleBinding, the reviews) are still
//! mapped by hand below.

mod network;
mod typed;
mod workloads;

use base64::Engine;
use k8s_pb::api::{
    authentication::v1 as authn, authorization::v1 as authz, core::v1 as core, rbac::v1 as rbac,
};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use self::typed::ToJson;
use crate::error::{ApiError, ApiResult};

/// The four bytes before every Kubernetes protobuf object.
const MAGIC: &[u8] = b"k8s\0";

/// What this module maps, as `apiVersion/kind`.
pub(super) const DECODED: &[&str] = &[
    "v1/Namespace",
    "v1/ConfigMap",
    "v1/Secret",
    "v1/ServiceAccount",
    "authentication.k8s.io/v1/TokenRequest",
    "authentication.k8s.io/v1/SelfSubjectReview",
    "authorization.k8s.io/v1/SelfSubjectAccessReview",
    "authorization.k8s.io/v1/SubjectAccessReview",
    "rbac.authorization.k8s.io/v1/Role",
    "rbac.authorization.k8s.io/v1/ClusterRole",
    "rbac.authorization.k8s.io/v1/RoleBinding",
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
    "v1/Pod",
    "v1/Service",
    "v1/ResourceQuota",
    "apps/v1/Deployment",
    "batch/v1/Job",
    "batch/v1/CronJob",
    "networking.k8s.io/v1/Ingress",
    "policy/v1/PodDisruptionBudget",
];

fn bad(what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf body: {what}"))
}

/// The JSON form of a protobuf body.
pub(super) fn decode(body: &[u8]) -> ApiResult<Value> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s\\0 magic"))?;
    let unknown = Unknown::decode(inner).map_err(bad)?;
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut v = match format!("{api_version}/{kind}").as_str() {
        "v1/Namespace" => {
            let m = core::Namespace::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            if let Some(spec) = m.spec.filter(|s| !s.finalizers.is_empty()) {
                o.insert("spec".into(), json!({"finalizers": spec.finalizers}));
            }
            o
        }
        "v1/ConfigMap" => {
            let m = core::ConfigMap::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            if !m.data.is_empty() {
                o.insert("data".into(), json!(m.data));
            }
            if !m.binary_data.is_empty() {
                o.insert("binaryData".into(), bytes_map(&m.binary_data));
            }
            if let Some(i) = m.immutable {
                o.insert("immutable".into(), json!(i));
            }
            o
        }
        "v1/Secret" => {
            let m = core::Secret::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            if let Some(t) = m.r#type.filter(|t| !t.is_empty()) {
                o.insert("type".into(), json!(t));
            }
            if !m.data.is_empty() {
                o.insert("data".into(), bytes_map(&m.data));
            }
            if !m.string_data.is_empty() {
                o.insert("stringData".into(), json!(m.string_data));
            }
            if let Some(i) = m.immutable {
                o.insert("immutable".into(), json!(i));
            }
            o
        }
        "v1/ServiceAccount" => {
            let m = core::ServiceAccount::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            if let Some(a) = m.automount_service_account_token {
                o.insert("automountServiceAccountToken".into(), json!(a));
            }
            let pulls: Vec<Value> = m
                .image_pull_secrets
                .into_iter()
                .map(|r| json!({"name": r.name.unwrap_or_default()}))
                .collect();
            if !pulls.is_empty() {
                o.insert("imagePullSecrets".into(), json!(pulls));
            }
            o
        }
        "authentication.k8s.io/v1/TokenRequest" => {
            let m = authn::TokenRequest::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            let spec = m.spec.unwrap_or_default();
            let mut s = json!({"audiences": spec.audiences});
            if let Some(e) = spec.expiration_seconds {
                s["expirationSeconds"] = json!(e);
            }
            o.insert("spec".into(), s);
            o
        }
        "authentication.k8s.io/v1/SelfSubjectReview" => {
            let m = authn::SelfSubjectReview::decode(&raw[..]).map_err(bad)?;
            object(m.metadata)
        }
        "authorization.k8s.io/v1/SelfSubjectAccessReview" => {
            let m = authz::SelfSubjectAccessReview::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            let spec = m.spec.unwrap_or_default();
            o.insert(
                "spec".into(),
                attributes(spec.resource_attributes, spec.non_resource_attributes),
            );
            o
        }
        "authorization.k8s.io/v1/SubjectAccessReview" => {
            let m = authz::SubjectAccessReview::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            let spec = m.spec.unwrap_or_default();
            let mut s = attributes(spec.resource_attributes, spec.non_resource_attributes);
            if let Some(u) = spec.user {
                s["user"] = json!(u);
            }
            s["groups"] = json!(spec.groups);
            o.insert("spec".into(), s);
            o
        }
        "rbac.authorization.k8s.io/v1/Role" => {
            let m = rbac::Role::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            o.insert("rules".into(), rules(m.rules));
            o
        }
        "rbac.authorization.k8s.io/v1/ClusterRole" => {
            let m = rbac::ClusterRole::decode(&raw[..]).map_err(bad)?;
            if m.aggregation_rule.is_some() {
                return Err(bad("aggregationRule is not supported"));
            }
            let mut o = object(m.metadata);
            o.insert("rules".into(), rules(m.rules));
            o
        }
        "rbac.authorization.k8s.io/v1/RoleBinding" => {
            let m = rbac::RoleBinding::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            binding(&mut o, m.role_ref, m.subjects);
            o
        }
        "rbac.authorization.k8s.io/v1/ClusterRoleBinding" => {
            let m = rbac::ClusterRoleBinding::decode(&raw[..]).map_err(bad)?;
            let mut o = object(m.metadata);
            binding(&mut o, m.role_ref, m.subjects);
            o
        }
        "v1/Pod" => typed::<core::Pod>(&raw)?,
        "v1/Service" => typed::<core::Service>(&raw)?,
        "v1/ResourceQuota" => typed::<core::ResourceQuota>(&raw)?,
        "apps/v1/Deployment" => typed::<k8s_pb::api::apps::v1::Deployment>(&raw)?,
        "batch/v1/Job" => typed::<k8s_pb::api::batch::v1::Job>(&raw)?,
        "batch/v1/CronJob" => typed::<k8s_pb::api::batch::v1::CronJob>(&raw)?,
        "networking.k8s.io/v1/Ingress" => typed::<k8s_pb::api::networking::v1::Ingress>(&raw)?,
        "policy/v1/PodDisruptionBudget" => {
            typed::<k8s_pb::api::policy::v1::PodDisruptionBudget>(&raw)?
        }
        other => {
            return Err(ApiError::unsupported_media(&format!(
                "application/vnd.kubernetes.protobuf for {other} (protobuf is decoded for {}; send JSON or YAML, as kubectl apply does)",
                DECODED.join(", ")
            )));
        }
    };
    v.insert("apiVersion".into(), json!(api_version));
    v.insert("kind".into(), json!(kind));
    Ok(Value::Object(v))
}

/// A message with a table in `typed`, as a JSON object.
fn typed<M: Message + Default + ToJson>(raw: &[u8]) -> ApiResult<Map<String, Value>> {
    match M::decode(raw).map_err(bad)?.to_json("")? {
        Some(Value::Object(o)) => Ok(o),
        _ => Ok(Map::new()),
    }
}

/// An object with the metadata a client may set on create.
fn object(meta: Option<ObjectMeta>) -> Map<String, Value> {
    let m = meta.unwrap_or_default();
    let mut meta = Map::new();
    for (k, v) in [
        ("name", m.name),
        ("generateName", m.generate_name),
        ("namespace", m.namespace),
        ("resourceVersion", m.resource_version),
        ("uid", m.uid),
    ] {
        if let Some(v) = v.filter(|s| !s.is_empty()) {
            meta.insert(k.into(), json!(v));
        }
    }
    if !m.labels.is_empty() {
        meta.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        meta.insert("annotations".into(), json!(m.annotations));
    }
    if !m.finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(m.finalizers));
    }
    let owners: Vec<Value> = m
        .owner_references
        .into_iter()
        .map(|r| {
            json!({"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid,
                   "controller": r.controller, "blockOwnerDeletion": r.block_owner_deletion})
        })
        .collect();
    if !owners.is_empty() {
        meta.insert("ownerReferences".into(), json!(owners));
    }
    let mut o = Map::new();
    o.insert("metadata".into(), Value::Object(meta));
    o
}

fn rules(rules: Vec<rbac::PolicyRule>) -> Value {
    let mut out = Vec::new();
    for r in rules {
        let mut v = json!({"verbs": r.verbs});
        for (k, list) in [
            ("apiGroups", r.api_groups),
            ("resources", r.resources),
            ("resourceNames", r.resource_names),
            ("nonResourceURLs", r.non_resource_ur_ls),
        ] {
            if !list.is_empty() {
                v[k] = json!(list);
            }
        }
        out.push(v);
    }
    Value::Array(out)
}

fn binding(
    o: &mut Map<String, Value>,
    role_ref: Option<rbac::RoleRef>,
    subjects: Vec<rbac::Subject>,
) {
    let r = role_ref.unwrap_or_default();
    o.insert(
        "roleRef".into(),
        json!({"apiGroup": r.api_group.unwrap_or_default(), "kind": r.kind.unwrap_or_default(), "name": r.name.unwrap_or_default()}),
    );
    let subjects: Vec<Value> = subjects
        .into_iter()
        .map(|s| {
            let mut v =
                json!({"kind": s.kind.unwrap_or_default(), "name": s.name.unwrap_or_default()});
            if let Some(g) = s.api_group {
                v["apiGroup"] = json!(g);
            }
            if let Some(ns) = s.namespace.filter(|n| !n.is_empty()) {
                v["namespace"] = json!(ns);
            }
            v
        })
        .collect();
    if !subjects.is_empty() {
        o.insert("subjects".into(), json!(subjects));
    }
}

fn bytes_map(m: &std::collections::BTreeMap<String, Vec<u8>>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), json!(b64.encode(v))))
            .collect(),
    )
}

fn attributes(
    r: Option<authz::ResourceAttributes>,
    n: Option<authz::NonResourceAttributes>,
) -> Value {
    let mut spec = json!({});
    if let Some(r) = r {
        spec["resourceAttributes"] = json!({
            "namespace": r.namespace.unwrap_or_default(), "verb": r.verb.unwrap_or_default(),
            "group": r.group.unwrap_or_default(), "version": r.version.unwrap_or_default(),
            "resource": r.resource.unwrap_or_default(), "subresource": r.subresource.unwrap_or_default(),
            "name": r.name.unwrap_or_default(),
        });
    }
    if let Some(n) = n {
        spec["nonResourceAttributes"] =
            json!({"path": n.path.unwrap_or_default(), "verb": n.verb.unwrap_or_default()});
    }
    spec
}

#[cfg(test)]
mod tests {
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: None,
            content_type: None,
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn a_configmap_as_kubectl_create_sends_it() {
        let cm = core::ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("podinfo-ui".into()),
                namespace: Some("apps".into()),
                ..Default::default()
            }),
            data: [("PODINFO_UI_COLOR".to_string(), "#34577c".to_string())].into(),
            binary_data: [("logo".to_string(), vec![0u8, 1, 2])].into(),
            immutable: None,
        };
        let v = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "podinfo-ui", "namespace": "apps"},
                   "data": {"PODINFO_UI_COLOR": "#34577c"}, "binaryData": {"logo": "AAEC"},
                   "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn an_access_review_keeps_its_attributes() {
        let r = authz::SelfSubjectAccessReview {
            metadata: None,
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    verb: Some("patch".into()),
                    resource: Some("services".into()),
                    subresource: Some("status".into()),
                    namespace: Some("apps".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: None,
        };
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            r.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["subresource"], "status");
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "patch");
    }

    #[test]
    fn bad_or_unmapped_bodies_are_named() {
        let e = decode(b"{\"kind\": \"ConfigMap\"}").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("magic"), "{}", e.message);
        let e = decode(&[MAGIC, &[0xff, 0xff, 0xff]].concat()).unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode(&envelope("apps/v1", "DaemonSet", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("apps/v1/DaemonSet"), "{}", e.message);
    }

    /// What `kubectl create deployment web --image=nginx --port=80 --replicas=0` sends: Go's
    /// encoder writes the empty strategy, status and resources and a zero creationTimestamp.
    fn deployment(replicas: i32) -> k8s_pb::api::apps::v1::Deployment {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        apps::Deployment {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                namespace: Some(String::new()),
                labels: labels.clone(),
                creation_timestamp: Some(meta::Time {
                    seconds: Some(-62135596800),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(replicas),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    match_expressions: vec![],
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels,
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("nginx".into()),
                            image: Some("nginx".into()),
                            working_dir: Some(String::new()),
                            ports: vec![core::ContainerPort {
                                container_port: Some(80),
                                host_port: Some(0),
                                protocol: Some(String::new()),
                                ..Default::default()
                            }],
                            resources: Some(Default::default()),
                            tty: Some(false),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                strategy: Some(Default::default()),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus {
                replicas: Some(0),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_deployment_as_kubectl_create_sends_it() {
        let d = deployment(0);
        let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "nginx", "image": "nginx",
                            "ports": [{"containerPort": 80}], "resources": {},
                        }]},
                    },
                },
            })
        );
    }

    #[test]
    fn a_field_the_store_does_not_decode_is_refused_by_path() {
        let mut d = deployment(1);
        let spec = d.spec.as_mut().unwrap().template.as_mut().unwrap();
        spec.spec.as_mut().unwrap().containers[0].liveness_probe = Some(Default::default());
        // An empty probe holds nothing to lose; a probe with a period does.
        assert!(decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).is_ok());
        let mut d = deployment(1);
        let spec = d.spec.as_mut().unwrap().template.as_mut().unwrap();
        spec.spec.as_mut().unwrap().containers[0].liveness_probe = Some(core::Probe {
            period_seconds: Some(5),
            ..Default::default()
        });
        let e = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message
                .contains("spec.template.spec.containers[0].livenessProbe"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_service_keeps_its_target_port_and_an_ingress_its_inlined_rule() {
        use k8s_pb::api::networking::v1 as net;
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let svc = core::Service {
            metadata: Some(ObjectMeta {
                name: Some("podinfo".into()),
                ..Default::default()
            }),
            spec: Some(core::ServiceSpec {
                r#type: Some("LoadBalancer".into()),
                ports: vec![core::ServicePort {
                    name: Some("80-9898".into()),
                    port: Some(80),
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(9898),
                        str_val: Some(String::new()),
                    }),
                    node_port: Some(0),
                    ..Default::default()
                }],
                cluster_ip: Some(String::new()),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        let v = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
        assert_eq!(
            v["spec"],
            json!({"type": "LoadBalancer", "ports": [{"name": "80-9898", "port": 80,
                   "protocol": "TCP", "targetPort": 9898}]})
        );
        let rule = net::IngressRule {
            host: Some("podinfo.192.168.56.200.nip.io".into()),
            ingress_rule_value: Some(net::IngressRuleValue {
                http: Some(net::HttpIngressRuleValue {
                    paths: vec![net::HttpIngressPath {
                        path: Some("/".into()),
                        path_type: Some("Prefix".into()),
                        backend: Some(net::IngressBackend {
                            service: Some(net::IngressServiceBackend {
                                name: Some("podinfo".into()),
                                port: Some(net::ServiceBackendPort {
                                    name: Some(String::new()),
                                    number: Some(9898),
                                }),
                            }),
                            resource: None,
                        }),
                    }],
                }),
            }),
        };
        let ing = net::Ingress {
            metadata: None,
            spec: Some(net::IngressSpec {
                rules: vec![rule],
                ..Default::default()
            }),
            status: None,
        };
        let v = decode(&envelope(
            "networking.k8s.io/v1",
            "Ingress",
            ing.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v["spec"]["rules"][0],
            json!({"host": "podinfo.192.168.56.200.nip.io", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}}]}})
        );
    }
}
