//! Objects for the route-table tests, from YAML: Services with their EndpointSlice, Ingresses,
//! snapshots, and PEM indented into a Secret's YAML.
#![allow(dead_code)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use metalgate_proxy::table::Snapshot;

pub fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> Arc<T> {
    Arc::new(serde_yaml_ng::from_str(s).unwrap_or_else(|e| panic!("{e}\n{s}")))
}

/// A Service `name` in `ns` with port 80, and a slice with one ready endpoint per address.
pub fn service(ns: &str, name: &str, addrs: &[&str]) -> (Arc<Service>, Arc<EndpointSlice>) {
    let svc = yaml(&format!(
        "metadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}"
    ));
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("- addresses: [\"{a}\"]\n  conditions: {{ready: true}}"))
        .collect();
    let slice = yaml(&format!(
        "metadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n{}",
        if eps.is_empty() {
            "[]".to_string()
        } else {
            eps.join("\n")
        }
    ));
    (svc, slice)
}

/// An Ingress with one rule for `host` and `(pathType, path, service)` paths.
pub fn ingress(
    name: &str,
    created: &str,
    host: &str,
    paths: &[(&str, &str, &str)],
) -> Arc<Ingress> {
    let ps: Vec<String> = paths
        .iter()
        .map(|(t, p, s)| {
            format!("      - {{path: \"{p}\", pathType: {t}, backend: {{service: {{name: {s}, port: {{number: 80}}}}}}}}")
        })
        .collect();
    let host_part = if host.is_empty() {
        String::new()
    } else {
        format!("host: \"{host}\"\n    ")
    };
    yaml(&format!(
        "metadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}\nspec:\n  ingressClassName: metalgate\n  rules:\n  - {host_part}http:\n      paths:\n{}",
        ps.join("\n")
    ))
}

pub fn snapshot(ings: Vec<Arc<Ingress>>, services: &[&str]) -> Snapshot {
    let mut s = Snapshot {
        ingresses: ings,
        ..Default::default()
    };
    for (i, name) in services.iter().enumerate() {
        let (svc, slice) = service("default", name, &[&format!("10.0.0.{}", i + 1)]);
        s.services.push(svc);
        s.slices.push(slice);
    }
    s
}

pub fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
