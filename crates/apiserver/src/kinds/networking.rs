//! networking.k8s.io and discovery.k8s.io: Ingresses, IngressClasses, NetworkPolicies and
//! EndpointSlices — their rules and their columns.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::core::first_three;
use super::print::{age, created, lb_addresses, or_none, selector, strs};
use super::{Printer, col};
use super::{check_one_of, port_ok};
use crate::error::Cause;
use crate::validation::is_dns1123_subdomain;

/// An EndpointSlice's addresses match its address type; ports are in range.
pub fn endpoint_slice_rules(obj: &Value, c: &mut Vec<Cause>) {
    let at = &obj["addressType"];
    if at.is_null() {
        c.push(Cause::required("addressType"));
    }
    check_one_of(at, "addressType", &["IPv4", "IPv6", "FQDN"], c);
    for (i, ep) in obj["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let addrs = ep["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() {
            c.push(Cause::required(format!("endpoints[{i}].addresses")));
        }
        for (j, a) in addrs.iter().enumerate() {
            let ok = match at.as_str() {
                Some("IPv4") => a
                    .as_str()
                    .is_some_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok()),
                Some("IPv6") => a
                    .as_str()
                    .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
                _ => a.as_str().is_some_and(is_dns1123_subdomain),
            };
            if !ok {
                c.push(Cause::invalid(
                    format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    format!("must be a valid {} address", at.as_str().unwrap_or("FQDN")),
                ));
            }
        }
    }
    for (i, p) in obj["ports"].as_array().into_iter().flatten().enumerate() {
        if !p["port"].is_null() && !port_ok(&p["port"]) {
            c.push(Cause::invalid(
                format!("ports[{i}].port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

/// The rules kube-apiserver applies to an Ingress: backends, hosts, paths and TLS hosts.
pub fn ingress_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let backend = |b: &Value, f: &str, c: &mut Vec<Cause>| {
        let svc = &b["service"];
        match (svc.is_object(), b["resource"].is_object()) {
            (true, true) => c.push(Cause::invalid(
                f,
                b,
                "cannot set both service and resource backends",
            )),
            (false, false) => c.push(Cause::required(format!("{f}.service"))),
            (true, false) => {
                if svc["name"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(format!("{f}.service.name")));
                }
                let port = &svc["port"];
                match (&port["number"], &port["name"]) {
                    (Value::Null, Value::Null) => {
                        c.push(Cause::required(format!("{f}.service.port")))
                    }
                    (n, Value::Null) if !port_ok(n) => c.push(Cause::invalid(
                        format!("{f}.service.port.number"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    )),
                    (Value::Null, _) => {}
                    (_, Value::Null) => {}
                    _ => c.push(Cause::invalid(
                        format!("{f}.service.port"),
                        port,
                        "cannot set both port name & port number",
                    )),
                }
            }
            (false, true) => {}
        }
    };
    if spec["defaultBackend"].is_object() {
        backend(&spec["defaultBackend"], "spec.defaultBackend", c);
    }
    for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        if let Some(h) = r["host"].as_str() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if h.parse::<IpAddr>().is_ok() {
                c.push(Cause::invalid(
                    format!("spec.rules[{i}].host"),
                    &r["host"],
                    "must be a DNS name, not an IP address",
                ));
            } else if !is_dns1123_subdomain(bare) {
                c.push(Cause::invalid(format!("spec.rules[{i}].host"), &r["host"], "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.' (a wildcard '*.' may lead)"));
            }
        }
        for (j, p) in r["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = format!("spec.rules[{i}].http.paths[{j}]");
            match p["pathType"].as_str() {
                None => c.push(Cause::required(format!("{f}.pathType"))),
                Some(_) => check_one_of(
                    &p["pathType"],
                    &format!("{f}.pathType"),
                    &["Exact", "Prefix", "ImplementationSpecific"],
                    c,
                ),
            }
            if let Some(path) = p["path"].as_str() {
                if !path.starts_with('/') {
                    c.push(Cause::invalid(
                        format!("{f}.path"),
                        &p["path"],
                        "must be an absolute path",
                    ));
                }
            } else if p["pathType"].as_str() != Some("ImplementationSpecific") {
                c.push(Cause::required(format!("{f}.path")));
            }
            backend(&p["backend"], &format!("{f}.backend"), c);
        }
    }
    for (i, t) in spec["tls"].as_array().into_iter().flatten().enumerate() {
        for (j, h) in t["hosts"].as_array().into_iter().flatten().enumerate() {
            let bare = h.as_str().map(|s| s.strip_prefix("*.").unwrap_or(s));
            if !bare.is_some_and(is_dns1123_subdomain) {
                c.push(Cause::invalid(
                    format!("spec.tls[{i}].hosts[{j}]"),
                    h,
                    "must be a DNS name",
                ));
            }
        }
    }
}

/// CLASS, HOSTS, ADDRESS, PORTS, AGE.
pub const INGRESS: Printer = Printer {
    named: true,
    columns: &[
        col("Class"),
        col("Hosts"),
        col("Address"),
        col("Ports"),
        col("Age"),
    ],
    row: ingress_row,
};

fn ingress_row(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> = o["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["host"].as_str().unwrap_or("*").to_string())
        .collect();
    let addrs = lb_addresses(o);
    let ports = if o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>")),
        json!(or_none(hosts.join(","))),
        json!(addrs.join(",")),
        json!(ports),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

/// CONTROLLER, PARAMETERS, AGE.
pub const INGRESS_CLASS: Printer = Printer {
    named: true,
    columns: &[col("Controller"), col("Parameters"), col("Age")],
    row: |o| {
        let p = &o["spec"]["parameters"];
        let params = if p.is_object() {
            format!(
                "{}/{}",
                p["kind"].as_str().unwrap_or_default(),
                p["name"].as_str().unwrap_or_default()
            )
        } else {
            "<none>".into()
        };
        vec![
            json!(o["spec"]["controller"].as_str().unwrap_or_default()),
            json!(params),
            created(o),
        ]
    },
};

/// POD-SELECTOR, AGE.
pub const NETWORK_POLICY: Printer = Printer {
    named: true,
    columns: &[col("Pod-Selector"), col("Age")],
    row: |o| {
        let s = selector(&o["spec"]["podSelector"]);
        vec![
            json!(if s == "<none>" { String::new() } else { s }),
            created(o),
        ]
    },
};

/// ADDRESSTYPE, PORTS, ENDPOINTS, AGE.
pub const ENDPOINT_SLICE: Printer = Printer {
    named: true,
    columns: &[
        col("AddressType"),
        col("Ports"),
        col("Endpoints"),
        col("Age"),
    ],
    row: slice_row,
};

fn slice_row(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["port"].to_string())
        .collect();
    let eps: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| strs(&e["addresses"]))
        .collect();
    let shown = first_three(&eps);
    vec![
        json!(o["addressType"].as_str().unwrap_or_default()),
        json!(or_none(ports.join(","))),
        json!(or_none(shown)),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress_fields(spec: Value) -> Vec<String> {
        let mut c = Vec::new();
        ingress_rules(&json!({"spec": spec}), &mut c);
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn ingress_rules_name_each_bad_field() {
        let ok_backend = json!({"service": {"name": "podinfo", "port": {"number": 9898}}});
        for (spec, want) in [
            (
                json!({"rules": [{"host": "podinfo.192.168.56.200.nip.io", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": ok_backend}]}}]}),
                vec![],
            ),
            (
                json!({"rules": [{"host": "192.168.56.200", "http": {"paths": []}}]}),
                vec!["spec.rules[0].host"],
            ),
            (
                json!({"rules": [{"host": "*.nip.io", "http": {"paths": [{"path": "/", "backend": ok_backend}]}}]}),
                vec!["spec.rules[0].http.paths[0].pathType"],
            ),
            (
                json!({"rules": [{"http": {"paths": [{"path": "api", "pathType": "Prefix", "backend": ok_backend}]}}]}),
                vec!["spec.rules[0].http.paths[0].path"],
            ),
            (
                json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 0}}}}]}}]}),
                vec!["spec.rules[0].http.paths[0].backend.service.port.number"],
            ),
            (
                json!({"defaultBackend": {}}),
                vec!["spec.defaultBackend.service"],
            ),
            (
                json!({"tls": [{"hosts": ["bad host"]}]}),
                vec!["spec.tls[0].hosts[0]"],
            ),
        ] {
            assert_eq!(ingress_fields(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn slice_addresses_match_their_type() {
        let mut c = Vec::new();
        endpoint_slice_rules(
            &json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1", "fe80::1"]}, {"addresses": []}], "ports": [{"port": 70000}]}),
            &mut c,
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "endpoints[0].addresses[1]",
                "endpoints[1].addresses",
                "ports[0].port"
            ]
        );
    }
}
