//! The lab's shape, as data: the workshop's VirtualBox host-only network rebuilt with network
//! namespaces on any Linux box, its names and addresses, and the `ip` commands that build it.
//!
//! ```text
//!   mg-laptop: vboxnet0 192.168.56.1/24 ──┐
//!   mg-ops-demo: eth1 192.168.56.10/24 ───┤  bridge br0 in mg-hostonly
//!   mg-node2:    eth1 192.168.56.11/24 ───┤  (the host-only network)
//!   mg-node3:    eth1 192.168.56.12/24 ───┘
//! ```
//!
//! Nothing is added to the host's own network namespace.

/// The laptop's namespace.
pub const LAPTOP_NS: &str = "mg-laptop";
/// The namespace holding the bridge that stands in for the host-only network.
pub const SWITCH_NS: &str = "mg-hostonly";
/// The laptop's address and interface.
pub const LAPTOP_IP: &str = "192.168.56.1";
/// The laptop's interface name (VirtualBox's host-only adapter).
pub const LAPTOP_IF: &str = "vboxnet0";
/// Each node's host-only NIC.
pub const NODE_IF: &str = "eth1";
/// The LoadBalancer IP of the workshop.
pub const VIP: &str = "192.168.56.200";
/// The hostnames the workshop uses, all on the VIP.
pub const HOSTS: [&str; 3] = [
    "podinfo.192.168.56.200.nip.io",
    "argocd.192.168.56.200.nip.io",
    "grafana.192.168.56.200.nip.io",
];
/// Where the embedded store listens.
pub const API_PORT: u16 = 6443;
/// Where each node's metalgate serves `/metrics`.
pub const METRICS_PORT: u16 = 9464;

/// One lab node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabNode {
    /// Namespace.
    pub ns: &'static str,
    /// Node name.
    pub name: &'static str,
    /// Address on the host-only network.
    pub ip: &'static str,
}

/// The lab's nodes, in order.
pub const NODES: [LabNode; 3] = [
    LabNode {
        ns: "mg-ops-demo",
        name: "ops-demo",
        ip: "192.168.56.10",
    },
    LabNode {
        ns: "mg-node2",
        name: "node2",
        ip: "192.168.56.11",
    },
    LabNode {
        ns: "mg-node3",
        name: "node3",
        ip: "192.168.56.12",
    },
];

/// The demo backends: (node index, kind, port).
pub const BACKENDS: [(usize, crate::demo::Kind, u16); 4] = [
    (0, crate::demo::Kind::Podinfo, 9898),
    (0, crate::demo::Kind::Grafana, 3000),
    (1, crate::demo::Kind::Podinfo, 9898),
    (2, crate::demo::Kind::Podinfo, 9898),
];

/// Every namespace the lab may create.
pub fn all_namespaces() -> Vec<&'static str> {
    let mut v = vec![SWITCH_NS, LAPTOP_NS];
    v.extend(NODES.iter().map(|n| n.ns));
    v
}

/// The lab's manifests, shipped in the binary (they live in `examples/lab/`).
pub const MANIFESTS: [(&str, &str); 7] = [
    (
        "00-namespaces.yaml",
        include_str!("../../../examples/lab/00-namespaces.yaml"),
    ),
    (
        "10-address-pool.yaml",
        include_str!("../../../examples/lab/10-address-pool.yaml"),
    ),
    (
        "20-podinfo.yaml",
        include_str!("../../../examples/lab/20-podinfo.yaml"),
    ),
    (
        "30-argocd.yaml",
        include_str!("../../../examples/lab/30-argocd.yaml"),
    ),
    (
        "40-grafana.yaml",
        include_str!("../../../examples/lab/40-grafana.yaml"),
    ),
    (
        "50-ingresses.yaml",
        include_str!("../../../examples/lab/50-ingresses.yaml"),
    ),
    (
        "60-proxy-service.yaml",
        include_str!("../../../examples/lab/60-proxy-service.yaml"),
    ),
];

/// The `ip` commands that build the network for `nodes` nodes.
pub fn network_plan(nodes: usize) -> Vec<Vec<String>> {
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut c = |s: &str| cmds.push(s.split_whitespace().map(str::to_string).collect());
    let used = &NODES[..nodes];
    let mut namespaces = vec![SWITCH_NS, LAPTOP_NS];
    namespaces.extend(used.iter().map(|n| n.ns));
    for ns in &namespaces {
        c(&format!("ip netns add {ns}"));
        c(&format!("ip -n {ns} link set lo up"));
    }
    c(&format!("ip -n {SWITCH_NS} link add br0 type bridge"));
    c(&format!("ip -n {SWITCH_NS} link set br0 up"));
    let mut hosts: Vec<(&str, &str, &str, &str)> =
        vec![(LAPTOP_NS, LAPTOP_IF, LAPTOP_IP, "p-laptop")];
    let ports = ["p-ops-demo", "p-node2", "p-node3"];
    for (i, n) in used.iter().enumerate() {
        hosts.push((n.ns, NODE_IF, n.ip, ports[i]));
    }
    for (ns, ifname, ip, port) in hosts {
        // Created inside the namespaces directly: nothing appears in the host's namespace.
        c(&format!(
            "ip -n {ns} link add {ifname} type veth peer name {port} netns {SWITCH_NS}"
        ));
        c(&format!("ip -n {SWITCH_NS} link set {port} master br0"));
        c(&format!("ip -n {SWITCH_NS} link set {port} up"));
        c(&format!("ip -n {ns} addr add {ip}/24 dev {ifname}"));
        c(&format!("ip -n {ns} link set {ifname} up"));
    }
    cmds
}

/// The laptop's `/etc/hosts`: nip.io's rule (`*.192.168.56.200.nip.io` → 192.168.56.200),
/// done locally for the workshop's names, plus the nodes by name.
pub fn laptop_hosts(nodes: usize) -> String {
    let mut s = String::from("127.0.0.1 localhost\n::1 localhost\n");
    s.push_str(&format!("{LAPTOP_IP} laptop\n"));
    for n in &NODES[..nodes] {
        s.push_str(&format!("{} {}\n", n.ip, n.name));
    }
    s.push_str(&format!("{VIP} {}\n", HOSTS.join(" ")));
    s
}

/// The EndpointSlice listing the podinfo stand-ins on the nodes that run.
pub fn podinfo_endpoints(nodes: usize) -> String {
    let mut s = String::from(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: podinfo-lab\n  namespace: podinfo\n  labels:\n    kubernetes.io/service-name: podinfo\naddressType: IPv4\nports:\n- name: http\n  port: 9898\n  protocol: TCP\nendpoints:\n",
    );
    for n in &NODES[..nodes] {
        s.push_str(&format!(
            "- addresses: [{}]\n  conditions: {{ready: true}}\n  nodeName: {}\n",
            n.ip, n.name
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_touches_only_lab_namespaces() {
        let plan = network_plan(3);
        for step in &plan {
            let joined = step.join(" ");
            assert_eq!(step[0], "ip");
            assert!(
                step[1] == "netns"
                    || (step[1] == "-n" && all_namespaces().contains(&step[2].as_str())),
                "{joined}"
            );
        }
        let text: Vec<String> = plan.iter().map(|s| s.join(" ")).collect();
        assert!(
            text.contains(&"ip -n mg-laptop addr add 192.168.56.1/24 dev vboxnet0".to_string())
        );
        assert!(text.contains(&"ip -n mg-node3 addr add 192.168.56.12/24 dev eth1".to_string()));
        assert_eq!(
            network_plan(1)
                .iter()
                .filter(|s| s.join(" ").contains("type veth"))
                .count(),
            2
        );
    }

    #[test]
    fn laptop_names_resolve_to_the_vip_and_nodes() {
        let hosts = laptop_hosts(2);
        assert!(hosts.contains("192.168.56.200 podinfo.192.168.56.200.nip.io argocd.192.168.56.200.nip.io grafana.192.168.56.200.nip.io"));
        assert!(hosts.contains("192.168.56.11 node2"));
        assert!(!hosts.contains("node3"));
    }

    #[test]
    fn podinfo_endpoints_follow_the_node_count() {
        let y = podinfo_endpoints(3);
        let v: serde_json::Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(v["endpoints"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["metadata"]["labels"]["kubernetes.io/service-name"],
            "podinfo"
        );
    }
}
