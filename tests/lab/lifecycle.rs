//! `lab up`, the smoke check from the laptop, and `lab down` leaving nothing behind.

use std::process::Command;
use std::time::Duration;

use crate::*;

#[test]
fn three_node_lab_up_check_from_the_laptop_and_down() {
    let _lab = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(nix_is_root(), "the lab test needs root (CI runs as root)");
    assert!(
        lab_namespaces().is_empty(),
        "a lab is already up ({:?}); the lab test needs its fixed names — take it down first",
        lab_namespaces()
    );
    let bridges_before = bridges();
    let teardown = Teardown;

    let up = metalgate(&["lab", "up", "--nodes", "3"]);
    let out = text(&up);
    assert!(up.status.success(), "lab up failed:\n{out}");
    assert!(
        out.contains("kubectl get nodes") && out.contains("ok: 3 Ready"),
        "{out}"
    );
    assert!(
        !out.contains("manifest error"),
        "the lab's manifests apply cleanly:\n{out}"
    );
    let pids = recorded_pids();
    assert_eq!(
        pids.len(),
        3,
        "a metalgate per node; everything else runs as pods: {pids:?}"
    );

    for ip in ["192.168.56.10", "192.168.56.11", "192.168.56.12"] {
        let ping = metalgate(&["lab", "exec", "--", "ping", "-c", "1", "-W", "2", ip]);
        assert!(
            ping.status.success(),
            "ping {ip} from the laptop: {}",
            text(&ping)
        );
    }
    let nodes = metalgate(&["lab", "exec", "--", "kubectl", "get", "nodes", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout).lines().count(),
        3,
        "{}",
        text(&nodes)
    );

    // metalgate's own manifests, podinfo and the grafana stand-in run as pods: a speaker and a
    // proxy on every node (the speaker on the node's network), the rest with pod addresses
    // from each node's 10.42.i.0/24, podinfo's two replicas on two different nodes.
    let pods = metalgate(&[
        "lab", "exec", "--", "kubectl", "get", "pods", "-A", "-o", "json",
    ]);
    let pods: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap();
    let pods = pods["items"].as_array().unwrap();
    let of = |label: &str, value: &str| -> Vec<&serde_json::Value> {
        pods.iter()
            .filter(|p| p["metadata"]["labels"][label] == value)
            .collect()
    };
    for p in pods {
        assert_eq!(p["status"]["phase"], "Running", "{p}");
    }
    let speakers = of("app.kubernetes.io/component", "speaker");
    assert_eq!(speakers.len(), 3);
    let mut speaker_ips: Vec<&str> = speakers
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    speaker_ips.sort();
    assert_eq!(
        speaker_ips,
        ["192.168.56.10", "192.168.56.11", "192.168.56.12"]
    );
    assert_eq!(of("app.kubernetes.io/component", "proxy").len(), 3);
    let podinfo = of("app.kubernetes.io/name", "podinfo");
    assert_eq!(podinfo.len(), 2);
    assert_ne!(
        podinfo[0]["spec"]["nodeName"],
        podinfo[1]["spec"]["nodeName"]
    );
    for p in podinfo {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let i = ["ops-demo", "node2", "node3"]
            .iter()
            .position(|n| *n == node)
            .unwrap();
        assert!(
            p["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with(&format!("10.42.{i}.")),
            "{p}"
        );
    }
    // The laptop resolves the workshop's names to the VIP without internet.
    let resolved = metalgate(&[
        "lab",
        "exec",
        "--",
        "getent",
        "hosts",
        "grafana.192.168.56.200.nip.io",
    ]);
    assert!(
        String::from_utf8_lossy(&resolved.stdout).starts_with("192.168.56.200"),
        "{}",
        text(&resolved)
    );
    // The lab's manifests were applied: the Ingresses are there.
    let ing = metalgate(&[
        "lab", "exec", "--", "kubectl", "get", "ingress", "-A", "-o", "name",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&ing.stdout).lines().count(),
        3,
        "{}",
        text(&ing)
    );
    // The workshop's names, through the VIP and the proxy on whichever node owns it.
    for (host, want) in [
        ("podinfo.192.168.56.200.nip.io", "\"version\": \"6.7.1\""),
        (
            "argocd.192.168.56.200.nip.io",
            "<title>Applications · metalgate</title>",
        ),
        (
            "grafana.192.168.56.200.nip.io",
            "stand-in for <b>grafana</b>",
        ),
    ] {
        let url = format!("http://{host}/");
        let got = metalgate(&["lab", "exec", "--", "curl", "-sS", "--max-time", "5", &url]);
        let body = String::from_utf8_lossy(&got.stdout).to_string();
        assert!(body.contains(want), "{url}: {}", text(&got));
        if host.starts_with("podinfo") {
            assert!(body.contains("\"hostname\": \"podinfo-"), "{body}");
        }
    }
    // And in a browser, as the audience opens them: headless Chromium on the laptop, which
    // sends a browser's Accept header and gets the pages a person would see.
    for (host, want) in [
        ("podinfo.192.168.56.200.nip.io", "<h1>podinfo v6.7.1</h1>"),
        // The GitOps UI itself.
        ("argocd.192.168.56.200.nip.io", "<h1>Applications</h1>"),
        (
            "grafana.192.168.56.200.nip.io",
            "stand-in for <b>grafana</b>",
        ),
    ] {
        let dom = browser_dom(&format!("http://{host}/"));
        assert!(dom.contains(want), "{host} in a browser:\n{dom}");
        if host.starts_with("podinfo") {
            assert!(dom.contains("hostname: podinfo-"), "{dom}");
        }
    }
    // And under load, as the workshop ends: a bounded oha run from the laptop through the VIP,
    // every request answered 200.
    let load = metalgate(&[
        "lab",
        "exec",
        "--",
        "timeout",
        "60",
        "oha",
        "--no-tui",
        "--output-format",
        "json",
        "-n",
        "2000",
        "-c",
        "20",
        "http://podinfo.192.168.56.200.nip.io/",
    ]);
    assert!(load.status.success(), "oha: {}", text(&load));
    let report: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert_eq!(
        report["statusCodeDistribution"],
        serde_json::json!({"200": 2000}),
        "{report}"
    );
    assert_eq!(
        report["errorDistribution"],
        serde_json::json!({}),
        "{report}"
    );
    let unknown = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "-H",
        "Host: nobody.192.168.56.200.nip.io",
        "http://192.168.56.200/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&unknown.stdout),
        "404",
        "{}",
        text(&unknown)
    );
    // Each Ingress shows the proxy Service's address, as ArgoCD's health check wants.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "ingress",
            "-A",
            "-o",
            "jsonpath={.items[*].status.loadBalancer.ingress[0].ip}",
        ]);
        let s = String::from_utf8_lossy(&addrs.stdout).to_string();
        if s == "192.168.56.200 192.168.56.200 192.168.56.200" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Ingress status: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The workshop's pool as metalgate's manifests define it, and the lab's extra one.
    let pool = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "get",
        "ipaddresspools",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.addresses[0]} {end}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&pool.stdout),
        "lab-extra=192.168.56.201-192.168.56.220 workshop=192.168.56.200/32 ",
        "{}",
        text(&pool)
    );

    // Up twice in a row is safe.
    let again = metalgate(&["lab", "up", "--nodes", "1"]);
    assert!(again.status.success(), "{}", text(&again));
    let mut all_pids = pids.clone();
    all_pids.extend(recorded_pids());
    // The pods' processes, children of each node's metalgate, must go with the lab too.
    let parents = all_pids.clone();
    all_pids.extend(children_of(&parents));

    let down = metalgate(&["lab", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert_nothing_left(&all_pids, &bridges_before);
    drop(teardown);
}

#[test]
fn down_cleans_up_after_an_interrupted_up() {
    let _lab = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(nix_is_root(), "the lab test needs root (CI runs as root)");
    assert!(
        lab_namespaces().is_empty(),
        "a lab is already up ({:?}); the lab test needs its fixed names — take it down first",
        lab_namespaces()
    );
    let bridges_before = bridges();
    let _teardown = Teardown;
    let mut up = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["lab", "up", "--nodes", "3"])
        .env("METALGATE_LAB_DIR", lab_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt it once it has started processes of its own.
    for _ in 0..600 {
        if !recorded_pids().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = up.kill();
    let _ = up.wait();
    let pids = recorded_pids();
    assert!(
        !pids.is_empty(),
        "lab up was interrupted before it started anything"
    );
    assert!(!lab_namespaces().is_empty());

    let down = metalgate(&["lab", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert_nothing_left(&pids, &bridges_before);
}
