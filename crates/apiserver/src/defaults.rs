//! Defaulting and allocation that kube-apiserver does on write: Service ClusterIPs (from
//! 10.43.0.0/16, like k3s) and NodePorts, Service field defaults, Namespace phase, Secret type,
//! and the status a CRD gets once its names are accepted.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Cause};

/// The ClusterIP range: 10.43.0.0/16, as in k3s.
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The NodePort range.
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn in_service_cidr(ip: Ipv4Addr) -> bool {
    let (base, len) = SERVICE_CIDR;
    let mask = u32::MAX << (32 - len);
    (u32::from(ip) & mask) == (u32::from(base) & mask)
}

/// Default a Service and allocate its ClusterIP and NodePorts. `others` are every other
/// Service in the store, this one excluded (for allocation); `old` is the Service before this write.
pub fn service(svc: &mut Value, old: Option<&Value>, others: &[Arc<Value>]) -> ApiResult<()> {
    let name = svc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = svc
        .as_object_mut()
        .expect("validated object")
        .entry("spec")
        .or_insert_with(|| json!({}));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    spec["type"] = json!(ty);
    if ty == "ExternalName" {
        return Ok(());
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") && spec["externalTrafficPolicy"].is_null()
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if ty == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].is_null() {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut() {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }

    // ClusterIP: keep the old one (immutable), honour a requested one, or allocate.
    // Who uses what is only worked out when something is allocated: an update of an existing
    // Service must not cost a scan of every other one.
    let used = || -> HashSet<Ipv4Addr> {
        others
            .iter()
            .filter_map(|o| o["spec"]["clusterIP"].as_str()?.parse().ok())
            .collect()
    };
    let old_ip = old
        .and_then(|o| o["spec"]["clusterIP"].as_str())
        .map(str::to_string);
    let requested = spec["clusterIP"].as_str().unwrap_or_default().to_string();
    let ip = match (&old_ip, requested.as_str()) {
        (Some(o), r) if !r.is_empty() && r != o => {
            return Err(ApiError::invalid(
                "Service",
                &name,
                vec![Cause::invalid(
                    "spec.clusterIP",
                    &json!(r),
                    "field is immutable",
                )],
            ));
        }
        (Some(o), _) => o.clone(),
        (None, "None") => "None".to_string(),
        (None, "") => allocate_ip(&used())
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?
            .to_string(),
        (None, r) => {
            let parsed: Ipv4Addr = r.parse().map_err(|_| {
                ApiError::invalid(
                    "Service",
                    &name,
                    vec![Cause::invalid(
                        "spec.clusterIP",
                        &json!(r),
                        "must be a valid IPv4 address",
                    )],
                )
            })?;
            if !in_service_cidr(parsed) {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![Cause::invalid(
                        "spec.clusterIP",
                        &json!(r),
                        "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16",
                    )],
                ));
            }
            if used().contains(&parsed) {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![Cause::invalid(
                        "spec.clusterIP",
                        &json!(r),
                        "failed to allocate IP: provided IP is already allocated",
                    )],
                ));
            }
            r.to_string()
        }
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if ip != "None" {
        let family = if ip.parse::<IpAddr>().map(|a| a.is_ipv6()).unwrap_or(false) {
            "IPv6"
        } else {
            "IPv4"
        };
        if spec["ipFamilies"].is_null() {
            spec["ipFamilies"] = json!([family]);
        }
    } else if spec["ipFamilies"].is_null() {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if spec["ipFamilyPolicy"].is_null() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }

    // NodePorts for NodePort and LoadBalancer Services.
    let wants_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false));
    let mut taken: Option<HashSet<i64>> = None;
    // Ports given to this Service's earlier ports in this write.
    let mut mine: HashSet<i64> = HashSet::new();
    let scan = || -> HashSet<i64> {
        others
            .iter()
            .flat_map(|o| {
                o["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["nodePort"].as_i64())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let old_ports = old
        .and_then(|o| o["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    if let Some(ports) = spec["ports"].as_array_mut() {
        for (i, p) in ports.iter_mut().enumerate() {
            if !wants_node_ports {
                if let Some(m) = p.as_object_mut() {
                    m.shift_remove("nodePort");
                }
                continue;
            }
            let requested = p["nodePort"].as_i64().filter(|n| *n != 0);
            let kept = old_ports
                .iter()
                .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                .and_then(|o| o["nodePort"].as_i64());
            let np = match requested.or(kept) {
                // The port it already had stays its own.
                Some(n) if Some(n) == kept => n,
                Some(n) => {
                    if mine.contains(&n) || taken.get_or_insert_with(scan).contains(&n) {
                        return Err(ApiError::invalid(
                            "Service",
                            &name,
                            vec![Cause::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                &json!(n),
                                "provided port is already allocated",
                            )],
                        ));
                    }
                    n
                }
                None => {
                    let start = NODE_PORTS.start() + (hash(&name) % 2768) as i64;
                    let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
                    (0..span)
                        .map(|k| NODE_PORTS.start() + (start - NODE_PORTS.start() + k) % span)
                        .find(|n| !mine.contains(n) && !taken.get_or_insert_with(scan).contains(n))
                        .ok_or_else(|| {
                            ApiError::internal("failed to allocate a nodePort: range is full")
                        })?
                }
            };
            mine.insert(np);
            p["nodePort"] = json!(np);
        }
    }
    // Status is written only through the status subresource; a new Service starts empty.
    if old.is_none() {
        svc["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

fn allocate_ip(used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (base, len) = SERVICE_CIDR;
    let size = 1u32 << (32 - len);
    let base = u32::from(base);
    // .0 is the network, .1 the `kubernetes` Service in a real cluster; the last is broadcast.
    let start = 10 + (rand::random::<u32>() % (size - 20));
    (0..size - 2)
        .map(|k| base + 2 + (start + k) % (size - 3))
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(ip))
}

/// Default a Namespace.
pub fn namespace(ns: &mut Value) {
    let name = ns["metadata"]["name"].clone();
    ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
    if ns["status"]["phase"].is_null() {
        ns["status"] = json!({"phase": "Active"});
    }
}

/// Default a Secret; `stringData` is folded into `data` as kube-apiserver does.
pub fn secret(s: &mut Value) {
    use base64::Engine;
    if s["type"].as_str().is_none_or(str::is_empty) {
        s["type"] = json!("Opaque");
    }
    if let Some(Value::Object(sd)) = s.as_object_mut().and_then(|m| m.shift_remove("stringData")) {
        for (k, v) in sd {
            let enc =
                base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            s["data"][k.as_str()] = json!(enc);
        }
    }
}

/// The status of an accepted CRD (names accepted, established).
pub fn crd_status(crd: &mut Value, now: &str) {
    let names = crd["spec"]["names"].clone();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let mut accepted = names.clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(
            names["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
        );
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!(
            "{}List",
            names["kind"].as_str().unwrap_or_default()
        ));
    }
    crd["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_are_distinct_and_kept_across_updates() {
        let other = Arc::new(
            json!({"spec": {"clusterIP": "10.43.0.10", "ports": [{"port": 80, "nodePort": 30000}]}}),
        );
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}});
        service(&mut svc, None, std::slice::from_ref(&other)).unwrap();
        let ports: Vec<i64> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["nodePort"].as_i64().unwrap())
            .collect();
        assert_ne!(ports[0], ports[1]);
        assert!(!ports.contains(&30000));
        assert!(
            svc["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .starts_with("10.43.")
        );
        let old = svc.clone();
        let mut update = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}});
        service(&mut update, Some(&old), &[other]).unwrap();
        assert_eq!(
            update["spec"]["ports"], old["spec"]["ports"],
            "an update keeps its NodePorts"
        );
        assert_eq!(update["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        let taken = Arc::new(json!({"spec": {"ports": [{"port": 1, "nodePort": 31000}]}}));
        let mut clash = json!({"metadata": {"name": "x"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}});
        let err = service(&mut clash, None, &[taken]).unwrap_err();
        assert!(
            err.message.contains("spec.ports[0].nodePort"),
            "{}",
            err.message
        );
    }
}
