//! The controller as users meet it: `kubectl get svc` showing EXTERNAL-IP, Events, and a
//! controller killed in the middle of work that moves no IP when it comes back.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Metalgate, free_port};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};

const POOL: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: metalgate-system}
---
apiVersion: metalgate.io/v1beta1
kind: IPAddressPool
metadata: {name: lab-pool, namespace: metalgate-system}
spec:
  addresses: [192.168.56.200-192.168.56.201]
";

fn lb(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n"
    )
}

fn external_ip(mg: &Metalgate, name: &str) -> String {
    let table = mg.kubectl_ok(&["get", "svc", name]);
    table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string()
}

fn wait_external_ip(mg: &Metalgate, name: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ip = external_ip(mg, name);
        if ip == want || Instant::now() > deadline {
            return ip;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kubectl_get_svc_shows_the_external_ip_and_events_say_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start_with(&dir.path().join("data"), free_port(), "controller", &[]);
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], POOL);
    for n in ["first", "second", "third"] {
        let out = mg.kubectl_stdin(&["apply", "-f", "-"], &lb(n));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        wait_external_ip(&mg, "first", "192.168.56.200"),
        "192.168.56.200"
    );
    assert_eq!(
        wait_external_ip(&mg, "second", "192.168.56.201"),
        "192.168.56.201"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        external_ip(&mg, "third"),
        "<pending>",
        "the pool has two IPs"
    );
    let events = mg.kubectl_ok(&["get", "events"]);
    let line = events
        .lines()
        .find(|l| l.contains("service/third"))
        .unwrap_or_else(|| panic!("no event for third:\n{events}"));
    assert!(
        line.contains("AllocationFailed") && line.contains("lab-pool exhausted"),
        "{line}"
    );
    let describe = mg.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=first",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(describe.contains("IPAllocated"), "{describe}");
    let pools = mg.kubectl_ok(&["get", "ipaddresspools", "-n", "metalgate-system"]);
    let row: Vec<&str> = pools.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[4..6],
        ["2", "0"],
        "assigned and available counts: {pools}"
    );

    // Releasing one lets the pending Service have it.
    mg.kubectl_ok(&["delete", "svc", "first"]);
    assert_eq!(
        wait_external_ip(&mg, "third", "192.168.56.200"),
        "192.168.56.200"
    );
}

struct Controller(Child);
impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_controller(kubeconfig: &std::path::Path) -> Controller {
    Controller(
        Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(["controller", "--node-name", "ctl", "--kubeconfig"])
            .arg(kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn assigned(api: &Api<Service>) -> HashMap<String, String> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| {
            let ip = s.status?.load_balancer?.ingress?.first()?.ip.clone()?;
            Some((s.metadata.name?, ip))
        })
        .collect()
}

#[test]
fn sigkill_mid_way_through_500_services_moves_no_ip() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let out = mg.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &POOL.replace("192.168.56.200-192.168.56.201", "10.250.0.0/23"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = metalgate_k8s::client::from_kubeconfig(&mg.kubeconfig())
            .await
            .unwrap();
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        let mut controller = start_controller(&mg.kubeconfig());
        let creator = {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    let svc: Service = serde_json::from_str(
                        &serde_json::to_string(
                            &serde_yaml_ng::from_str::<serde_json::Value>(&lb(&format!(
                                "svc-{i:03}"
                            )))
                            .unwrap(),
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    api.create(&PostParams::default(), &svc).await.unwrap();
                }
            })
        };
        // Kill the controller (SIGKILL) once it has handed out some IPs, while creations go on.
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = loop {
            let a = assigned(&api).await;
            if a.len() >= 100 || Instant::now() > deadline {
                break a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        drop(controller);
        let before_kill_settled = assigned(&api).await;
        assert!(
            before.len() >= 100,
            "the controller assigned only {} IPs in 60 s",
            before.len()
        );
        creator.await.unwrap();
        assert!(
            before_kill_settled.len() < 500,
            "the kill came too late to test anything"
        );

        controller = start_controller(&mg.kubeconfig());
        let deadline = Instant::now() + Duration::from_secs(90);
        let after = loop {
            let a = assigned(&api).await;
            if a.len() == 500 || Instant::now() > deadline {
                break a;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        drop(controller);
        assert_eq!(after.len(), 500, "every Service ends with an IP");
        for (name, ip) in &before_kill_settled {
            assert_eq!(
                after.get(name),
                Some(ip),
                "{name} kept its IP across the restart"
            );
        }
        let distinct: HashSet<&String> = after.values().collect();
        assert_eq!(distinct.len(), 500, "no IP is held twice");
    });
}

#[test]
fn invalid_pools_are_refused_with_the_field_named_and_assignments_stay() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start_with(&dir.path().join("data"), free_port(), "controller", &[]);
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], POOL);
    mg.kubectl_stdin(&["apply", "-f", "-"], &lb("web"));
    assert_eq!(
        wait_external_ip(&mg, "web", "192.168.56.200"),
        "192.168.56.200"
    );
    let pool = |name: &str, addr: &str| {
        format!(
            "apiVersion: metalgate.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metalgate-system}}\nspec:\n  addresses: [\"{addr}\"]\n"
        )
    };
    for (name, addr, want) in [
        (
            "overlapping",
            "192.168.56.201/32",
            "overlaps IPAddressPool metalgate-system/lab-pool",
        ),
        ("bad-cidr", "192.168.57.0/33", "prefix length"),
        ("reversed", "192.168.58.20-192.168.58.10", "reversed"),
    ] {
        let out = mg.kubectl_stdin(&["apply", "-f", "-"], &pool(name, addr));
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("spec.addresses[0]") && err.contains(want),
            "{name}: {err}"
        );
    }
    // Editing the pool in use into something invalid is refused too.
    let out = mg.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &POOL.replace(
            "192.168.56.200-192.168.56.201",
            "192.168.56.201-192.168.56.200",
        ),
    );
    assert!(!out.status.success());
    let pools = mg.kubectl_ok(&["get", "ipaddresspools", "-A", "-o", "name"]);
    assert_eq!(pools.trim(), "ipaddresspool.metalgate.io/lab-pool");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        external_ip(&mg, "web"),
        "192.168.56.200",
        "the assignment stays"
    );
}

fn get_ip(mg: &Metalgate, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ip = external_ip(mg, name);
        if ip != "<pending>" || Instant::now() > deadline {
            return ip;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each of MetalLB's user-facing behaviours, as kubectl shows them.
#[test]
fn kubectl_requested_ip_sharing_metallb_annotations_class_and_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start_with(&dir.path().join("data"), free_port(), "controller", &[]);
    let pool = POOL.replace(
        "192.168.56.200-192.168.56.201",
        "192.168.56.200-192.168.56.220",
    );
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &pool);
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: requested}
spec: {type: LoadBalancer, loadBalancerIP: 192.168.56.215, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: migrated
  annotations: {metallb.universe.tf/loadBalancerIPs: 192.168.56.216}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: dns-tcp
  annotations: {metallb.io/allow-shared-ip: dns, metallb.io/loadBalancerIPs: 192.168.56.217}
spec: {type: LoadBalancer, ports: [{port: 53, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata:
  name: dns-udp
  annotations: {metallb.io/allow-shared-ip: dns, metallb.io/loadBalancerIPs: 192.168.56.217}
spec: {type: LoadBalancer, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: other-class}
spec: {type: LoadBalancer, loadBalancerClass: example.com/other, ports: [{port: 80}]}
";
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_ip(&mg, "requested"), "192.168.56.215");
    assert_eq!(get_ip(&mg, "migrated"), "192.168.56.216");
    assert_eq!(get_ip(&mg, "dns-tcp"), "192.168.56.217");
    assert_eq!(
        get_ip(&mg, "dns-udp"),
        "192.168.56.217",
        "sharing by key on distinct ports"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        external_ip(&mg, "other-class"),
        "<pending>",
        "another class is left alone"
    );
    let pool_of = mg.kubectl_ok(&[
        "get",
        "svc",
        "migrated",
        "-o",
        "jsonpath={.metadata.annotations.metalgate\\.io/ip-allocated-from-pool}",
    ]);
    assert_eq!(pool_of, "lab-pool");

    // The pool shrinks to 200-215: 216 and 217 fall outside and are cleared; 215 stays.
    let shrunk = POOL.replace(
        "192.168.56.200-192.168.56.201",
        "192.168.56.200-192.168.56.215",
    );
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &shrunk);
    let deadline = Instant::now() + Duration::from_secs(10);
    while external_ip(&mg, "migrated") != "<pending>" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(external_ip(&mg, "migrated"), "<pending>");
    assert_eq!(external_ip(&mg, "dns-tcp"), "<pending>");
    assert_eq!(
        external_ip(&mg, "requested"),
        "192.168.56.215",
        "what still fits keeps its IP"
    );
    let events = mg.kubectl_ok(&["get", "events"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains("service/migrated") && l.contains("ClearAssignment")),
        "{events}"
    );
}
