//! What a Service asks of the allocator, read from its spec and annotations — pure.
//!
//! Annotations are honoured under `metalgate.io/`, and under MetalLB's `metallb.io/` and older
//! `metallb.universe.tf/` so MetalLB users keep their YAML.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use metalgate_ipam::{Family, Port as IpamPort, Request, ServiceInfo};

/// The annotation prefixes honoured, ours first.
pub const PREFIXES: [&str; 3] = ["metalgate.io/", "metallb.io/", "metallb.universe.tf/"];
/// The annotation the controller writes: the pool an IP came from.
pub const ALLOCATED_FROM_POOL: &str = "metalgate.io/ip-allocated-from-pool";
/// The default load-balancer class.
pub const DEFAULT_CLASS: &str = "metalgate.io/lb";

/// What a Service wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Not a LoadBalancer Service of our class: it holds nothing from us.
    NotOurs,
    /// An allocation.
    Ips(Request),
    /// A request that cannot be satisfied as written (conflicting annotations…).
    Invalid(String),
}

fn annotation<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &str,
) -> Result<Option<(&'static str, &'a str)>, String> {
    let found: Vec<(&'static str, &str)> = PREFIXES
        .iter()
        .filter_map(|p| {
            annotations
                .get(&format!("{p}{name}"))
                .map(|v| (*p, v.as_str()))
        })
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        [(p1, v1), rest @ ..] => {
            for (p2, v2) in rest {
                if v1.trim() != v2.trim() {
                    return Err(format!(
                        "conflicting annotations {p1}{name}={v1:?} and {p2}{name}={v2:?}"
                    ));
                }
            }
            Ok(Some((p1, v1)))
        }
    }
}

/// Read a Service's wish. `class` is the load-balancer class this controller serves.
pub fn wanted(svc: &Service, namespace_labels: &BTreeMap<String, String>, class: &str) -> Wanted {
    let Some(spec) = &svc.spec else {
        return Wanted::NotOurs;
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Wanted::NotOurs;
    }
    if let Some(c) = &spec.load_balancer_class {
        if c != class {
            return Wanted::NotOurs;
        }
    }
    let empty = BTreeMap::new();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&empty);

    let mut requested: Vec<IpAddr> = Vec::new();
    match annotation(annotations, "loadBalancerIPs") {
        Err(e) => return Wanted::Invalid(e),
        Ok(Some((prefix, v))) => {
            for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match part.parse() {
                    Ok(ip) => requested.push(ip),
                    Err(_) => {
                        return Wanted::Invalid(format!(
                            "annotation {prefix}loadBalancerIPs: {part:?} is not an IP address"
                        ));
                    }
                }
            }
        }
        Ok(None) => {}
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return Wanted::Invalid(format!("spec.loadBalancerIP {ip:?} is not an IP address"));
        };
        if !requested.is_empty() && requested != [ip] {
            return Wanted::Invalid(format!(
                "spec.loadBalancerIP {ip} conflicts with the loadBalancerIPs annotation"
            ));
        }
        requested = vec![ip];
    }
    let pool = match annotation(annotations, "address-pool") {
        Err(e) => return Wanted::Invalid(e),
        Ok(p) => p.map(|(_, v)| v.trim().to_string()),
    };
    let sharing_key = match annotation(annotations, "allow-shared-ip") {
        Err(e) => return Wanted::Invalid(e),
        Ok(k) => k.map(|(_, v)| v.trim().to_string()),
    };

    let declared: Vec<Family> = spec
        .ip_families
        .as_ref()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| match f.as_str() {
                    "IPv4" => Some(Family::V4),
                    "IPv6" => Some(Family::V6),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_else(|| vec![Family::V4]);
    let mut families = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") | Some("RequireDualStack") => declared,
        _ => declared.into_iter().take(1).collect(),
    };
    if families.is_empty() {
        families = vec![Family::V4];
    }
    if !requested.is_empty() {
        let req_families: Vec<Family> = requested.iter().map(|ip| Family::of(*ip)).collect();
        if req_families.len() != families.len()
            || !req_families.iter().all(|f| families.contains(f))
        {
            return Wanted::Invalid(format!(
                "requested IPs {} do not match the Service's IP families {:?}",
                requested
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                spec.ip_families.clone().unwrap_or_default()
            ));
        }
        families = req_families;
    }
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| IpamPort {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.port.clamp(0, u16::MAX as i32) as u16,
        })
        .collect();
    Wanted::Ips(Request {
        service: ServiceInfo {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            namespace_labels: namespace_labels.clone(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
        },
        families,
        requested,
        pool,
        sharing_key,
        ports,
    })
}

/// The IPs a Service's status shows.
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|e| e.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn table_of_wishes() {
        let none = BTreeMap::new();
        let base = |extra: serde_json::Value| {
            let mut s = json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
            json_patch_merge(&mut s, &extra);
            svc(s)
        };
        assert_eq!(
            wanted(
                &base(json!({"spec": {"type": "ClusterIP"}})),
                &none,
                DEFAULT_CLASS
            ),
            Wanted::NotOurs
        );
        assert_eq!(
            wanted(
                &base(json!({"spec": {"loadBalancerClass": "other.io/lb"}})),
                &none,
                DEFAULT_CLASS
            ),
            Wanted::NotOurs
        );
        let Wanted::Ips(r) = wanted(
            &base(json!({"spec": {"loadBalancerClass": DEFAULT_CLASS}})),
            &none,
            DEFAULT_CLASS,
        ) else {
            panic!()
        };
        assert_eq!(r.families, [Family::V4]);
        assert_eq!(
            r.ports,
            [IpamPort {
                protocol: "TCP".into(),
                port: 80
            }]
        );

        let Wanted::Ips(r) = wanted(
            &base(
                json!({"metadata": {"annotations": {"metallb.universe.tf/loadBalancerIPs": "192.168.56.201", "metallb.io/address-pool": "lab", "metallb.io/allow-shared-ip": "k"}}}),
            ),
            &none,
            DEFAULT_CLASS,
        ) else {
            panic!()
        };
        assert_eq!(r.requested, ["192.168.56.201".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.pool.as_deref(), Some("lab"));
        assert_eq!(r.sharing_key.as_deref(), Some("k"));

        let Wanted::Invalid(e) = wanted(
            &base(
                json!({"metadata": {"annotations": {"metalgate.io/address-pool": "a", "metallb.io/address-pool": "b"}}}),
            ),
            &none,
            DEFAULT_CLASS,
        ) else {
            panic!()
        };
        assert!(e.contains("conflicting annotations"), "{e}");
        let Wanted::Invalid(e) = wanted(
            &base(
                json!({"spec": {"loadBalancerIP": "192.168.56.202"}, "metadata": {"annotations": {"metalgate.io/loadBalancerIPs": "192.168.56.203"}}}),
            ),
            &none,
            DEFAULT_CLASS,
        ) else {
            panic!()
        };
        assert!(e.contains("conflicts"), "{e}");
        let Wanted::Ips(r) = wanted(
            &base(
                json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
            ),
            &none,
            DEFAULT_CLASS,
        ) else {
            panic!()
        };
        assert_eq!(r.families, [Family::V4, Family::V6]);
    }

    fn json_patch_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && v.is_object() => json_patch_merge(tv, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
}
