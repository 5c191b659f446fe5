//! The lab's node agent (`metalgate run --components agent`): Deployments become ReplicaSets
//! and pods, pods run as processes in their own network namespaces with addresses from the
//! node's pod CIDR, probes decide readiness, EndpointSlices follow, a new template rolls out,
//! a crashed process restarts, and what cannot run says why.
//!
//! Everything runs in a network namespace this test creates (pod addresses are private-range);
//! the agent's pod namespaces are named after the test's node and removed at the end, with
//! any process left in them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Metalgate, Netns, eventually};
use serde_json::Value;

const NODE_IP: &str = "10.99.0.1";

/// Removes what is left of node `0`'s pod namespaces when dropped. The agent removes them
/// itself when it stops; its pods' processes die with it (`setpriv --pdeathsig`). The names
/// it made in its own mount namespace show here only as empty files.
struct PodNamespaces(String);

impl Drop for PodNamespaces {
    fn drop(&mut self) {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for e in dir.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{}-", self.0))
            {
                let _ = Command::new("ip")
                    .args(["netns", "del"])
                    .arg(e.file_name())
                    .status();
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn json(mg: &Metalgate, args: &[&str]) -> Value {
    serde_json::from_str(&mg.kubectl_ok(args)).unwrap()
}

fn podinfo(colour: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: podinfo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: podinfo, namespace: podinfo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: podinfo}}}}
  template:
    metadata: {{labels: {{app: podinfo}}}}
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.9.2
        command: [./podinfo, --port=9898, --level=info]
        env:
        - {{name: PODINFO_UI_COLOR, value: "{colour}"}}
        ports:
        - {{name: http, containerPort: 9898}}
        readinessProbe:
          httpGet: {{path: /readyz, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: podinfo, namespace: podinfo}}
spec:
  selector: {{app: podinfo}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"#
    )
}

fn ready_pods(mg: &Metalgate, ns: &str) -> Vec<Value> {
    let pods = json(mg, &["get", "pods", "-n", ns, "-o", "json"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .cloned()
        .collect()
}

fn colour_at(ns: &Netns, ip: &str) -> Option<String> {
    let out = ns.exec("curl", &["-s", "-m", "2", &format!("http://{ip}:9898/")]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["color"].as_str().map(str::to_string)
}

/// A child's output, line by line as it comes (for commands that follow: `-f`, `-w`).
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The node's admin listener: metrics, and the pods' logs for `kubectl logs`.
const AGENT_ADMIN_PORT: u16 = 10250;

/// A node of the test's own: a namespace with the node's address on loopback, and
/// `metalgate run` there with the store and the agent (pods from 10.42.0.0/24). Dropped in
/// reverse: metalgate (SIGTERM), what is left of its pod namespaces, the namespace.
fn agent_node(tag: &str) -> (tempfile::TempDir, Netns, String, PodNamespaces, Metalgate) {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Netns::new(tag);
    let node = format!("{tag}{}", std::process::id());
    let pods_ns = PodNamespaces(node.clone());
    // The node's address (on loopback: the namespace has no other interface than the pods').
    let up = ns.exec(
        "ip",
        &["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"],
    );
    assert!(up.status.success());
    let mg = Metalgate::start_in(
        &ns.0,
        NODE_IP,
        &node,
        tmp.path(),
        "agent",
        &[
            "--node-ip",
            NODE_IP,
            "--pod-cidr",
            "10.42.0.0/24",
            "--admin-listen",
            &format!("{NODE_IP}:{AGENT_ADMIN_PORT}"),
        ],
    );
    (tmp, ns, node, pods_ns, mg)
}

#[test]
fn deployments_run_as_processes_roll_out_restart_and_report() {
    let (_tmp, ns, node, _pods_ns, mg) = agent_node("agent");
    mg.kubectl_stdin(&["apply", "-f", "-"], &podinfo("#34577c"));

    // Two ready pods, each with its own address from the pod CIDR, serving the colour.
    assert!(
        eventually(Duration::from_secs(30), || ready_pods(&mg, "podinfo").len()
            == 2),
        "two ready podinfo pods:\n{}",
        mg.kubectl_ok(&["get", "pods", "-A", "-o", "wide"])
    );
    let out = mg.kubectl(&[
        "rollout",
        "status",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "--timeout=20s",
    ]);
    assert!(
        out.status.success(),
        "rollout status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = ready_pods(&mg, "podinfo");
    let ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    for (p, ip) in pods.iter().zip(&ips) {
        assert!(ip.starts_with("10.42.0."), "{ip}");
        assert_eq!(p["spec"]["nodeName"], node.as_str());
        assert_eq!(p["status"]["hostIP"], NODE_IP);
        assert_eq!(
            colour_at(&ns, ip).as_deref(),
            Some("#34577c"),
            "pod at {ip}"
        );
    }
    assert_ne!(ips[0], ips[1]);
    let wide = mg.kubectl_ok(&["get", "deploy", "podinfo", "-n", "podinfo"]);
    assert!(wide.lines().nth(1).unwrap().contains("2/2"), "{wide}");

    // The Service's EndpointSlice holds exactly those pods, ready, at the named port.
    let slices = json(
        &mg,
        &[
            "get",
            "endpointslices",
            "-n",
            "podinfo",
            "-l",
            "kubernetes.io/service-name=podinfo",
            "-o",
            "json",
        ],
    );
    let slice = &slices["items"][0];
    let mut eps: Vec<String> = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["addresses"][0].as_str().unwrap().to_string())
        .collect();
    eps.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(eps, want);
    assert_eq!(slice["ports"][0]["port"], 9898);

    // The Service's ClusterIP reaches them (the node's iptables rules, as kube-proxy's).
    let cluster_ip = json(
        &mg,
        &["get", "svc", "podinfo", "-n", "podinfo", "-o", "json"],
    )["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ns.exec("curl", &["-s", "-m", "3", &format!("http://{cluster_ip}/")]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        v["color"],
        "#34577c",
        "through the ClusterIP {cluster_ip}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A new colour rolls out: new pods, the old ReplicaSet at zero, two revisions.
    mg.kubectl_ok(&[
        "set",
        "env",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "PODINFO_UI_COLOR=#e0115f",
    ]);
    let out = mg.kubectl(&[
        "rollout",
        "status",
        "deployment/podinfo",
        "-n",
        "podinfo",
        "--timeout=30s",
    ]);
    assert!(
        out.status.success(),
        "rollout status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            let pods = ready_pods(&mg, "podinfo");
            pods.len() == 2
                && pods.iter().all(|p| {
                    colour_at(&ns, p["status"]["podIP"].as_str().unwrap()).as_deref()
                        == Some("#e0115f")
                })
        }),
        "both pods serve the new colour:\n{}",
        mg.kubectl_ok(&["get", "pods", "-n", "podinfo", "-o", "wide"])
    );
    let rs = json(&mg, &["get", "rs", "-n", "podinfo", "-o", "json"]);
    let mut counts: Vec<i64> = rs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, vec![0, 2]);
    let history = mg.kubectl_ok(&["rollout", "history", "deployment/podinfo", "-n", "podinfo"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // A process that dies is restarted, and the restart is counted; `kubectl logs` shows the
    // container's output, and `kubectl logs -f` follows it through the restart.
    let pod = &ready_pods(&mg, "podinfo")[0];
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let listening = "demo backend listening";
    let logs = mg.kubectl_ok(&["logs", "-n", "podinfo", &name]);
    assert_eq!(logs.matches(listening).count(), 1, "kubectl logs:\n{logs}");
    let tail = mg.kubectl_ok(&["logs", "-n", "podinfo", &name, "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "--tail=1:\n{tail}");
    let mut follow = Command::new("ip")
        .args(["netns", "exec", &ns.0, "kubectl", "--kubeconfig"])
        .arg(mg.kubeconfig())
        .args(["logs", "-f", "-n", "podinfo", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let followed = lines_of(&mut follow);
    // Unsigned, the agent's log endpoint refuses: only the store may ask.
    let direct = ns.exec(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "3",
            &format!("http://{NODE_IP}:{AGENT_ADMIN_PORT}/containerLogs/podinfo/{name}/podinfo"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&direct.stdout), "403");
    let pids = Command::new("pgrep")
        .args(["-f", &format!("demo-backend .*--hostname {name}$")])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .next()
        .expect("the pod's process")
        .to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            let p = json(&mg, &["get", "pod", &name, "-n", "podinfo", "-o", "json"]);
            p["status"]["containerStatuses"][0]["restartCount"] == 1
                && p["status"]["containerStatuses"][0]["ready"] == true
        }),
        "the killed container restarted:\n{}",
        mg.kubectl_ok(&["get", "pod", &name, "-n", "podinfo", "-o", "yaml"])
    );
    let mut seen = 0;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while seen < 2 && std::time::Instant::now() < until {
        if let Ok(line) = followed.recv_timeout(Duration::from_millis(200)) {
            seen += usize::from(line.contains(listening));
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(
        seen, 2,
        "kubectl logs -f showed the first run and, as it came, the restarted one"
    );

    // A deleted pod terminates as kube-apiserver and the kubelet do it: first marked
    // (Terminating, with its grace period), then — its process stopped — gone; meanwhile its
    // ReplicaSet has made a replacement.
    let mut watch = Command::new("ip")
        .args(["netns", "exec", &ns.0, "kubectl", "--kubeconfig"])
        .arg(mg.kubeconfig())
        .args([
            "get",
            "pod",
            &name,
            "-n",
            "podinfo",
            "-w",
            "--output-watch-events",
            "-o",
        ])
        .arg("jsonpath={.type} {.object.metadata.deletionGracePeriodSeconds}{\"\\n\"}")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let events = lines_of(&mut watch);
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).as_deref(),
        Ok("ADDED "),
        "the watch's first event"
    );
    mg.kubectl_ok(&["delete", "pod", &name, "-n", "podinfo", "--wait=false"]);
    let mut seen = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|e: &String| e.starts_with("DELETED"))
        && std::time::Instant::now() < until
    {
        if let Ok(line) = events.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let marked = seen.iter().position(|e| e == "MODIFIED 30");
    let gone = seen.iter().position(|e| e.starts_with("DELETED"));
    assert!(
        marked.is_some() && gone.is_some() && marked < gone,
        "marked for deletion with podinfo's grace period (30 s), then gone once stopped: {seen:?}"
    );
    assert!(
        eventually(Duration::from_secs(20), || ready_pods(&mg, "podinfo").len()
            == 2),
        "a replacement is running"
    );

    // An image the lab has no stand-in for: the pod says so.
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: podinfo}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: nginx, image: \"nginx:1.27\"}]\n",
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            let pods = json(
                &mg,
                &[
                    "get", "pods", "-n", "podinfo", "-l", "app=web", "-o", "json",
                ],
            );
            pods["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nginx:1.27") && m.contains("no stand-in"))
        }),
        "{}",
        mg.kubectl_ok(&[
            "get", "pods", "-n", "podinfo", "-l", "app=web", "-o", "yaml"
        ])
    );

    // A second hostNetwork pod wanting the same port stays Pending, with the scheduler's reason.
    let host_port = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: podinfo}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      hostNetwork: true\n      containers:\n      - name: p\n        image: stefanprodan/podinfo\n        command: [./podinfo, --port=9797]\n        ports: [{{containerPort: 9797}}]\n"
        )
    };
    mg.kubectl_stdin(&["apply", "-f", "-"], &host_port("first"));
    assert!(eventually(Duration::from_secs(15), || ready_pods(
        &mg, "podinfo"
    )
    .iter()
    .any(|p| p["metadata"]["labels"]["app"] == "first")));
    let first = ready_pods(&mg, "podinfo")
        .into_iter()
        .find(|p| p["metadata"]["labels"]["app"] == "first")
        .unwrap();
    assert_eq!(
        first["status"]["podIP"], NODE_IP,
        "a hostNetwork pod has the node's address"
    );
    mg.kubectl_stdin(&["apply", "-f", "-"], &host_port("second"));
    assert!(
        eventually(Duration::from_secs(15), || {
            let pods = json(
                &mg,
                &[
                    "get",
                    "pods",
                    "-n",
                    "podinfo",
                    "-l",
                    "app=second",
                    "-o",
                    "json",
                ],
            );
            pods["items"][0]["status"]["conditions"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("didn't have free ports"))
        }),
        "{}",
        mg.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "podinfo",
            "-l",
            "app=second",
            "-o",
            "yaml"
        ])
    );

    // A pod whose set-up fails (its ServiceAccount is not there yet, so no token) says why, and
    // starts once the ServiceAccount exists — the kubelet tries a failed set-up again.
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: podinfo, labels: {app: late}}\nspec:\n  serviceAccountName: late\n  containers:\n  - name: podinfo\n    image: stefanprodan/podinfo\n    command: [./podinfo, --port=9898]\n    env: [{name: PODINFO_UI_COLOR, value: '#fcd116'}]\n",
    );
    let waiting = |mg: &Metalgate| {
        json(mg, &["get", "pod", "late", "-n", "podinfo", "-o", "json"])["status"]
            ["containerStatuses"][0]["state"]["waiting"]
            .clone()
    };
    assert!(
        eventually(Duration::from_secs(15), || {
            let w = waiting(&mg);
            w["reason"] == "CreateContainerConfigError"
                && w["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("\"late\""))
        }),
        "the pod says its ServiceAccount is missing: {}",
        waiting(&mg)
    );
    mg.kubectl_ok(&["create", "serviceaccount", "late", "-n", "podinfo"]);
    assert!(
        eventually(Duration::from_secs(15), || {
            ready_pods(&mg, "podinfo").iter().any(|p| {
                p["metadata"]["name"] == "late"
                    && colour_at(&ns, p["status"]["podIP"].as_str().unwrap_or_default()).as_deref()
                        == Some("#fcd116")
            })
        }),
        "the pod starts once its ServiceAccount exists:\n{}",
        mg.kubectl_ok(&["get", "pod", "late", "-n", "podinfo", "-o", "yaml"])
    );
}

/// metalgate deployed as the VM deploys it — `kubectl apply -k manifests/` — runs here: the
/// speaker DaemonSet on the node's network, the controller, the GitOps module and the proxy in
/// pods of their own, each with its own ServiceAccount token and only its RBAC; the controller
/// pod gives the proxy's Service the workshop's address. Take one rule away and the component
/// says which in its log and in an Event.
#[test]
fn metalgate_runs_from_its_own_manifests_with_only_its_own_rbac() {
    let (tmp, ns, _node, _pods_ns, mg) = agent_node("mgself");
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
    mg.kubectl_ok(&["apply", "-k", manifests]);
    let components = ["speaker", "controller", "gitops", "proxy"];
    assert!(
        eventually(Duration::from_secs(45), || {
            let ready = ready_pods(&mg, "metalgate-system");
            components.iter().all(|c| {
                ready
                    .iter()
                    .any(|p| p["metadata"]["labels"]["app.kubernetes.io/component"] == *c)
            })
        }),
        "every component ready:\n{}",
        mg.kubectl_ok(&["get", "pods", "-A", "-o", "wide"])
    );
    let pods = ready_pods(&mg, "metalgate-system");
    let ip_of = |c: &str| {
        pods.iter()
            .find(|p| p["metadata"]["labels"]["app.kubernetes.io/component"] == c)
            .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        ip_of("speaker"),
        NODE_IP,
        "the speaker is on the node's network"
    );
    assert!(ip_of("controller").starts_with("10.42.0."));

    // The controller pod assigned the workshop's address.
    assert!(
        eventually(Duration::from_secs(20), || {
            let svc = json(
                &mg,
                &[
                    "get",
                    "svc",
                    "metalgate-proxy",
                    "-n",
                    "metalgate-system",
                    "-o",
                    "json",
                ],
            );
            svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.56.200"
        }),
        "{}",
        mg.kubectl_ok(&["get", "svc", "-A"])
    );
    // The proxy pod serves (nothing routed yet: 404).
    let out = ns.exec(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "3",
            &format!("http://{}:8080/", ip_of("proxy")),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    // No component was refused anything.
    let logs = |c: &str| -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(tmp.path().join("pods"))
            .unwrap()
            .flatten()
        {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("metalgate-system_metalgate-{c}-"))
            {
                text +=
                    &std::fs::read_to_string(e.path().join(format!("{c}.log"))).unwrap_or_default();
            }
        }
        text
    };
    for c in components {
        assert!(
            !logs(c).contains("Forbidden"),
            "{c} was refused something:\n{}",
            logs(c)
        );
    }

    // Without `patch services/status`, the controller cannot give a Service its address, and
    // says so.
    let rules = json(
        &mg,
        &["get", "clusterrole", "metalgate-controller", "-o", "json"],
    );
    let idx = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["resources"][0] == "services/status")
        .unwrap();
    mg.kubectl_ok(&[
        "patch",
        "clusterrole",
        "metalgate-controller",
        "--type=json",
        "-p",
        &format!(r#"[{{"op":"remove","path":"/rules/{idx}"}}]"#),
    ]);
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: metalgate.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: extra, namespace: metalgate-system}\nspec:\n  addresses: [192.168.56.201-192.168.56.202]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n",
    );
    let refused = r#"cannot patch resource \"services/status\""#;
    assert!(
        eventually(Duration::from_secs(20), || {
            let events = mg.kubectl_ok(&[
                "get",
                "events",
                "-n",
                "default",
                "--field-selector",
                "reason=StatusWriteFailed",
                "-o",
                "json",
            ]);
            events.contains(refused) && logs("controller").contains(&refused.replace('\\', ""))
        }),
        "the refusal in an Event and the controller's log:\n{}",
        mg.kubectl_ok(&["get", "events", "-A"])
    );
}
