//! Services: the rules kube-apiserver applies (types, IPs, ports, names, selectors) and the
//! columns `kubectl get svc` prints (EXTERNAL-IP `<pending>` until one is assigned).

use serde_json::{Value, json};

use super::print::{age, lb_addresses, or_none, strs};
use super::{Printer, col, wide};
use super::{check_one_of, ip_ok, port_ok};
use crate::error::Cause;
use crate::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, is_qualified_name,
};

/// The rules kube-apiserver applies to a Service.
pub fn rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    check_one_of(
        &spec["type"],
        "spec.type",
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        c,
    );
    check_one_of(
        &spec["externalTrafficPolicy"],
        "spec.externalTrafficPolicy",
        &["Cluster", "Local"],
        c,
    );
    check_one_of(
        &spec["internalTrafficPolicy"],
        "spec.internalTrafficPolicy",
        &["Cluster", "Local"],
        c,
    );
    check_one_of(
        &spec["sessionAffinity"],
        "spec.sessionAffinity",
        &["None", "ClientIP"],
        c,
    );
    check_one_of(
        &spec["ipFamilyPolicy"],
        "spec.ipFamilyPolicy",
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
        c,
    );
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if let Some(ip) = spec.get("clusterIP") {
        if ip.as_str().is_some_and(|s| !s.is_empty() && s != "None") && !ip_ok(ip) {
            c.push(Cause::invalid(
                "spec.clusterIP",
                ip,
                "must be empty, 'None', or a valid IP address",
            ));
        }
    }
    for (i, ip) in spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if ip.as_str() != Some("None") && !ip_ok(ip) {
            c.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip,
                "must be 'None' or a valid IP address",
            ));
        }
    }
    if let Some(ip) = spec.get("loadBalancerIP") {
        if ip.as_str().is_some_and(|s| !s.is_empty()) && !ip_ok(ip) {
            c.push(Cause::invalid(
                "spec.loadBalancerIP",
                ip,
                "must be a valid IP address",
            ));
        }
    }
    for (i, ip) in spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !ip_ok(ip) {
            c.push(Cause::invalid(
                format!("spec.externalIPs[{i}]"),
                ip,
                "must be a valid IP address",
            ));
        }
    }
    for (i, r) in spec["loadBalancerSourceRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if r.as_str()
            .and_then(|s| s.parse::<ipnet::IpNet>().ok())
            .is_none()
        {
            c.push(Cause::invalid(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                r,
                "must be a valid CIDR",
            ));
        }
    }
    if ty == "ExternalName" {
        if !spec["externalName"]
            .as_str()
            .is_some_and(is_dns1123_subdomain)
        {
            c.push(Cause::required("spec.externalName"));
        }
        return;
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && !headless {
        c.push(Cause::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        if !port_ok(&p["port"]) {
            c.push(Cause::invalid(
                format!("{f}.port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        check_one_of(
            &p["protocol"],
            &format!("{f}.protocol"),
            &["TCP", "UDP", "SCTP"],
            c,
        );
        match &p["targetPort"] {
            Value::Number(_) if !port_ok(&p["targetPort"]) => c.push(Cause::invalid(format!("{f}.targetPort"), &p["targetPort"], "must be between 1 and 65535, inclusive")),
            Value::String(s) if !is_dns1123_label(s) || s.len() > 15 => c.push(Cause::invalid(format!("{f}.targetPort"), &p["targetPort"], "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15")),
            _ => {}
        }
        if let Some(np) = p.get("nodePort").filter(|v| !v.is_null()) {
            if !np.as_i64().is_some_and(|n| (30000..=32767).contains(&n)) && np.as_i64() != Some(0)
            {
                c.push(Cause::invalid(format!("{f}.nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            }
        }
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            c.push(Cause::required(format!("{f}.name")));
        } else if !name.is_empty() {
            if !is_dns1123_label(name) {
                c.push(Cause::invalid(format!("{f}.name"), &p["name"], "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"));
            }
            if names.contains(&name) {
                c.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    field: format!("{f}.name"),
                    message: format!("Duplicate value: {name:?}"),
                });
            }
            names.push(name);
        }
    }
    if let Some(sel) = spec["selector"].as_object() {
        for (k, v) in sel {
            if !is_qualified_name(k) || !v.as_str().is_some_and(is_label_value) {
                c.push(Cause::invalid(
                    format!("spec.selector.{k}"),
                    v,
                    "must be a valid label selector entry",
                ));
            }
        }
    }
}

/// TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE; wide: SELECTOR.
pub const PRINTER: Printer = Printer {
    named: true,
    columns: &[
        col("Type"),
        col("Cluster-IP"),
        col("External-IP"),
        col("Port(s)"),
        col("Age"),
        wide("Selector"),
    ],
    row: service_row,
};

fn service_row(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or("<none>").to_string();
    let ingress = lb_addresses(o);
    let mut external: Vec<String> = strs(&spec["externalIPs"]);
    let external_ip = match ty {
        "LoadBalancer" => {
            external.extend(ingress);
            if external.is_empty() {
                "<pending>".into()
            } else {
                external.join(",")
            }
        }
        "ExternalName" => spec["externalName"]
            .as_str()
            .unwrap_or("<none>")
            .to_string(),
        _ => or_none(external.join(",")),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                _ => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector = spec["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        json!(ty),
        json!(cluster_ip),
        json!(external_ip),
        json!(or_none(ports.join(","))),
        json!(age(&o["metadata"]["creationTimestamp"])),
        json!(or_none(selector)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(spec: Value) -> Vec<String> {
        let mut c = Vec::new();
        rules(&json!({"spec": spec}), &mut c);
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn each_bad_field_is_named() {
        for (spec, want) in [
            (json!({"ports": [{"port": 80}]}), vec![]),
            (
                json!({"type": "Balanced", "ports": [{"port": 80}]}),
                vec!["spec.type"],
            ),
            (json!({"ports": []}), vec!["spec.ports"]),
            (json!({"clusterIP": "None"}), vec![]),
            (json!({"ports": [{"port": 0}]}), vec!["spec.ports[0].port"]),
            (
                json!({"ports": [{"port": 80}, {"port": 81}]}),
                vec!["spec.ports[0].name", "spec.ports[1].name"],
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
                vec!["spec.ports[1].name"],
            ),
            (
                json!({"ports": [{"port": 80, "targetPort": "a-very-long-port-name"}]}),
                vec!["spec.ports[0].targetPort"],
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
                vec!["spec.ports[0].nodePort"],
            ),
            (
                json!({"loadBalancerIP": "192.168.56.300", "ports": [{"port": 80}]}),
                vec!["spec.loadBalancerIP"],
            ),
            (
                json!({"loadBalancerSourceRanges": ["10.0.0.0/33"], "ports": [{"port": 80}]}),
                vec!["spec.loadBalancerSourceRanges[0]"],
            ),
            (json!({"type": "ExternalName"}), vec!["spec.externalName"]),
            (
                json!({"selector": {"app": "a b"}, "ports": [{"port": 80}]}),
                vec!["spec.selector.app"],
            ),
        ] {
            assert_eq!(fields(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn columns_show_pending_and_ports() {
        let o = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}, "status": {"loadBalancer": {}}});
        let r = service_row(&o);
        assert_eq!(r[2], json!("<pending>"));
        assert_eq!(r[3], json!("80:30080/TCP"));
        let o2 = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}});
        assert_eq!(service_row(&o2)[2], json!("192.168.56.200"));
    }
}
