//! The JSON tables of the messages `kubectl create service|ingress|poddisruptionbudget|quota`
//! and `kubectl expose` send: Services, Ingresses, PodDisruptionBudgets and ResourceQuotas.

use k8s_pb::api::{core::v1 as core, networking::v1 as net, policy::v1 as policy};
use serde_json::{Map, Value};

use super::typed::{ToJson, objects, put, to_json};
use crate::error::ApiResult;

objects!(
    core::Service,
    core::ResourceQuota,
    net::Ingress,
    policy::PodDisruptionBudget,
);

to_json!(core::ServiceSpec {
    ports: "ports",
    selector: "selector",
    cluster_ip: "clusterIP",
    cluster_ips: "clusterIPs",
    r#type: "type",
    external_ips: "externalIPs",
    session_affinity: "sessionAffinity",
    load_balancer_ip: "loadBalancerIP",
    load_balancer_source_ranges: "loadBalancerSourceRanges",
    external_name: "externalName",
    external_traffic_policy: "externalTrafficPolicy",
    health_check_node_port: "healthCheckNodePort",
    publish_not_ready_addresses: "publishNotReadyAddresses",
    ip_families: "ipFamilies",
    ip_family_policy: "ipFamilyPolicy",
    load_balancer_class: "loadBalancerClass",
    internal_traffic_policy: "internalTrafficPolicy",
    traffic_distribution: "trafficDistribution";
    exact allocate_load_balancer_node_ports: "allocateLoadBalancerNodePorts";
    refused session_affinity_config: "sessionAffinityConfig",
});

to_json!(core::ServicePort {
    name: "name",
    protocol: "protocol",
    app_protocol: "appProtocol",
    target_port: "targetPort",
    node_port: "nodePort";
    exact port: "port",
});

to_json!(core::TypedLocalObjectReference {
    api_group: "apiGroup",
    kind: "kind",
    name: "name",
});

to_json!(core::ResourceQuotaSpec {
    hard: "hard",
    scopes: "scopes";
    refused scope_selector: "scopeSelector",
});

to_json!(net::IngressSpec {
    ingress_class_name: "ingressClassName",
    default_backend: "defaultBackend",
    tls: "tls",
    rules: "rules",
});

/// A rule's value (`http`) is inlined into the rule in JSON (`json:",inline"` in Go).
impl ToJson for net::IngressRule {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        let net::IngressRule {
            host,
            ingress_rule_value,
        } = self;
        let http = ingress_rule_value.and_then(|net::IngressRuleValue { http }| http);
        let mut o = Map::new();
        put(&mut o, path, "host", host, true)?;
        put(&mut o, path, "http", http, true)?;
        Ok(Some(Value::Object(o)))
    }
}

to_json!(net::HttpIngressRuleValue { paths: "paths" });

to_json!(net::HttpIngressPath {
    path: "path",
    path_type: "pathType",
    backend: "backend",
});

to_json!(net::IngressBackend {
    service: "service",
    resource: "resource",
});

to_json!(net::IngressServiceBackend {
    name: "name",
    port: "port",
});

to_json!(net::ServiceBackendPort {
    name: "name",
    number: "number",
});

to_json!(net::IngressTls {
    hosts: "hosts",
    secret_name: "secretName",
});

to_json!(policy::PodDisruptionBudgetSpec {
    selector: "selector",
    unhealthy_pod_eviction_policy: "unhealthyPodEvictionPolicy";
    exact min_available: "minAvailable", max_unavailable: "maxUnavailable",
});
