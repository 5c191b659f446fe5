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

/// Every namespace the lab may create.
pub fn all_namespaces() -> Vec<&'static str> {
    let mut v = vec![SWITCH_NS, LAPTOP_NS];
    v.extend(NODES.iter().map(|n| n.ns));
    v
}

/// What `lab up` applies, shipped in the binary — what the VM's `scripts/bootstrap.sh` puts in
/// place before `kubectl apply -f apps/root.yaml`: metalgate as the VM deploys it (the rendered
/// `manifests/` the workshop repository holds), and the lab's own few files from
/// `examples/lab/` (namespaces, an extra address pool for tests). Everything else comes from
/// the workshop's repository, through the GitOps module.
pub const MANIFESTS: [(&str, &str); 3] = [
    (
        "00-namespaces.yaml",
        include_str!("../../../examples/lab/00-namespaces.yaml"),
    ),
    (
        "05-metalgate.yaml",
        include_str!("../../../examples/workshop/manifests/networking/metalgate/metalgate.yaml"),
    ),
    (
        "10-address-pool.yaml",
        include_str!("../../../examples/lab/10-address-pool.yaml"),
    ),
];

/// Node `i`'s pod addresses (k3s's flannel gives node i 10.42.i.0/24).
pub fn pod_cidr(i: usize) -> String {
    format!("10.42.{i}.0/24")
}

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
    // Each node reaches the others' pods through them (flannel's host-gw does the same).
    for (i, n) in used.iter().enumerate() {
        for (j, other) in used.iter().enumerate() {
            if i != j {
                c(&format!(
                    "ip -n {} route add {} via {} dev {NODE_IF}",
                    n.ns,
                    pod_cidr(j),
                    other.ip
                ));
            }
        }
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
        assert!(
            text.contains(
                &"ip -n mg-node2 route add 10.42.2.0/24 via 192.168.56.12 dev eth1".to_string()
            ),
            "each node routes to the others' pods"
        );
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
}
