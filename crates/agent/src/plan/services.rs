//! Services as kube-proxy (iptables mode) makes them reachable on a node: the rules, as
//! `iptables-restore` input for the `nat` table, that send a Service's ClusterIP, its
//! LoadBalancer addresses and its node ports to its ready endpoints, spread evenly
//! (`statistic --mode random`, 1/n, 1/(n-1), …, as kube-proxy does).
//!
//! - `externalTrafficPolicy: Local`: LoadBalancer and node-port traffic goes only to endpoints
//!   on this node, and keeps the client's address; with none here, it is dropped (so the
//!   speaker, which announces only from nodes with local endpoints, and the proxy agree).
//! - `Cluster` (the default): any ready endpoint; traffic from outside is masqueraded (marked
//!   0x4000 and SNATed on the way out, kube-proxy's KUBE-MARK-MASQ), so replies come back
//!   through this node.
//!
//! Everything lives in chains of our own (`MG-SERVICES`, `MG-POSTROUTING`), rewritten whole on
//! each change; the jumps into them are added once.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::endpoints::SERVICE_NAME;

/// The chain holding every Service's rules.
pub const CHAIN: &str = "MG-SERVICES";
/// The chain masquerading marked traffic.
pub const POSTROUTING: &str = "MG-POSTROUTING";
const MASQ_MARK: &str = "0x4000/0x4000";

/// A ready endpoint: address, port, node.
type Backend = (String, i32, Option<String>);

fn backends(
    svc: &Service,
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
) -> Vec<Backend> {
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for s in slices {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        if s.metadata.namespace.as_deref() != Some(ns)
            || labels.get(SERVICE_NAME).map(String::as_str) != Some(name)
        {
            continue;
        }
        let Some(port) = s.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(number) = port.port else { continue };
        for e in &s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &e.addresses {
                out.push((a.clone(), number, e.node_name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn spread(lines: &mut Vec<String>, matcher: &str, to: &[Backend]) {
    let n = to.len();
    for (i, (ip, port, _)) in to.iter().enumerate() {
        let left = n - i;
        let stat = if left > 1 {
            format!(
                " -m statistic --mode random --probability {:.5}",
                1.0 / left as f64
            )
        } else {
            String::new()
        };
        lines.push(format!(
            "-A {CHAIN} {matcher}{stat} -j DNAT --to-destination {ip}:{port}"
        ));
    }
}

/// The `nat` table input for `iptables-restore --noflush`, for node `node`.
pub fn rules(services: &[&Service], slices: &[&EndpointSlice], node: &str) -> String {
    let mut lines = vec![
        "*nat".to_string(),
        format!(":{CHAIN} - [0:0]"),
        format!(":{POSTROUTING} - [0:0]"),
        format!("-A {POSTROUTING} -m mark --mark {MASQ_MARK} -j MASQUERADE"),
    ];
    let mut sorted: Vec<&&Service> = services.iter().collect();
    sorted.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        let cluster_ip = spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None");
        let lb_ips: Vec<String> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
            .unwrap_or_default();
        let key = format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default()
        );
        for p in spec.ports.iter().flatten() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let all = backends(svc, slices, p.name.as_deref().unwrap_or_default(), &proto);
            if all.is_empty() {
                continue;
            }
            let here: Vec<Backend> = all
                .iter()
                .filter(|b| b.2.as_deref() == Some(node))
                .cloned()
                .collect();
            let external = if local { &here } else { &all };
            let proto_l = proto.to_lowercase();
            let comment = format!(
                "-m comment --comment \"{key}:{}\"",
                p.name.as_deref().unwrap_or_default()
            );
            if let Some(ip) = &cluster_ip {
                let m = format!("-d {ip}/32 -p {proto_l} --dport {} {comment}", p.port);
                spread(&mut lines, &m, &all);
            }
            for ip in &lb_ips {
                let m = format!("-d {ip}/32 -p {proto_l} --dport {} {comment}", p.port);
                if !local {
                    lines.push(format!("-A {CHAIN} {m} -j MARK --set-xmark {MASQ_MARK}"));
                }
                spread(&mut lines, &m, external);
            }
            if let Some(np) = p
                .node_port
                .filter(|_| matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")))
            {
                let m = format!("-m addrtype --dst-type LOCAL -p {proto_l} --dport {np} {comment}");
                if !local {
                    lines.push(format!("-A {CHAIN} {m} -j MARK --set-xmark {MASQ_MARK}"));
                }
                spread(&mut lines, &m, external);
            }
        }
    }
    lines.push("COMMIT".into());
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(local: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("proxy".into()),
                namespace: Some("mg".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                cluster_ip: Some("10.43.0.10".into()),
                external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    node_port: Some(30080),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some("192.168.56.200".into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
        }
    }

    fn slice(eps: &[(&str, &str, bool)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("mg".into()),
                labels: Some([(SERVICE_NAME.to_string(), "proxy".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, node, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    node_name: Some(node.to_string()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }
    }

    fn dnat(rules: &str, dest: &str) -> Vec<String> {
        rules
            .lines()
            .filter(|l| l.contains(&format!("-d {dest}/32")) && l.contains("DNAT"))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_cluster_ip_spreads_over_every_ready_endpoint() {
        let s = svc(true);
        let sl = slice(&[
            ("10.42.0.2", "a", true),
            ("10.42.1.2", "b", true),
            ("10.42.1.3", "b", false),
        ]);
        let r = rules(&[&s], &[&sl], "a");
        assert_eq!(
            dnat(&r, "10.43.0.10"),
            vec!["10.42.0.2:8080", "10.42.1.2:8080"]
        );
        assert!(
            r.contains("--probability 0.50000 -j DNAT --to-destination 10.42.0.2:8080"),
            "{r}"
        );
        assert!(r.starts_with("*nat\n") && r.ends_with("COMMIT\n"));
    }

    #[test]
    fn local_policy_keeps_external_traffic_on_this_node_unmasqueraded() {
        let s = svc(true);
        let sl = slice(&[("10.42.0.2", "a", true), ("10.42.1.2", "b", true)]);
        let on_a = rules(&[&s], &[&sl], "a");
        assert_eq!(dnat(&on_a, "192.168.56.200"), vec!["10.42.0.2:8080"]);
        assert!(
            !on_a.contains("--set-xmark"),
            "Local keeps the client's address"
        );
        let on_c = rules(&[&s], &[&sl], "c");
        assert!(
            dnat(&on_c, "192.168.56.200").is_empty(),
            "no local endpoint: nothing to send to"
        );
        assert_eq!(
            dnat(&on_c, "10.43.0.10").len(),
            2,
            "the ClusterIP works from every node"
        );
    }

    #[test]
    fn cluster_policy_masquerades_external_traffic_to_any_endpoint() {
        let s = svc(false);
        let sl = slice(&[("10.42.0.2", "a", true), ("10.42.1.2", "b", true)]);
        let r = rules(&[&s], &[&sl], "c");
        assert_eq!(dnat(&r, "192.168.56.200").len(), 2);
        assert!(r.contains("-d 192.168.56.200/32 -p tcp --dport 80 -m comment --comment \"mg/proxy:http\" -j MARK --set-xmark 0x4000/0x4000"), "{r}");
        assert!(r.contains("--dport 30080"), "node ports too");
    }

    #[test]
    fn services_without_ready_endpoints_get_no_rules() {
        let s = svc(false);
        let sl = slice(&[("10.42.0.2", "a", false)]);
        let r = rules(&[&s], &[&sl], "a");
        assert!(!r.contains("DNAT"), "{r}");
    }
}
