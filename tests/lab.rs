//! The lab end to end, as root: three nodes up, what the laptop sees, and nothing left after
//! `lab down` — also after an interrupted `lab up`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

const LAB_NAMESPACES: [&str; 5] = [
    "mg-hostonly",
    "mg-laptop",
    "mg-ops-demo",
    "mg-node2",
    "mg-node3",
];

fn metalgate(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(args)
        .env("METALGATE_LAB_DIR", lab_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let out_t = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(s) => s.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("metalgate {args:?} did not finish within 180 s");
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap().into_bytes(),
        stderr: err_t.join().unwrap().into_bytes(),
    }
}

/// The page `url` shows in headless Chromium on the laptop, after its scripts ran (`--dump-dom`),
/// with the flags this closed network needs; bounded by `timeout`, with a fresh profile.
fn browser_dom(url: &str) -> String {
    assert!(
        Command::new("chromium")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the lab test opens the workshop's pages in Chromium: apt-get install chromium \
         (scripts/deps.sh does)"
    );
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let out = metalgate(&[
        "lab",
        "exec",
        "--",
        "timeout",
        "60",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &profile_arg,
        "--dump-dom",
        url,
    ]);
    assert!(out.status.success(), "chromium {url}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Not under /tmp: the lab's pods have a /tmp of their own, and the GitOps pod reads the
/// workshop repository from here.
fn lab_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/run/metalgate-lab-test")
}

fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| LAB_NAMESPACES.contains(&n.as_str()))
        .collect()
}

fn bridges() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn recorded_pids() -> Vec<i32> {
    std::fs::read_to_string(lab_dir().join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// The processes whose parent is one of `parents`.
fn children_of(parents: &[i32]) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: the comm may hold spaces, the last ')' ends it.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid.is_some_and(|p| parents.contains(&p)) {
            out.push(pid);
        }
    }
    out
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Takes the lab down when the test ends, passed or failed.
struct Teardown;
impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = metalgate(&["lab", "down"]);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_nothing_left(pids: &[i32], bridges_before: &str) {
    assert!(
        lab_namespaces().is_empty(),
        "namespaces left: {:?}",
        lab_namespaces()
    );
    let alive: Vec<&i32> = pids.iter().filter(|p| running(**p)).collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    assert!(
        !std::path::Path::new("/etc/netns/mg-laptop").exists(),
        "/etc/netns/mg-laptop left"
    );
    assert!(!lab_dir().exists(), "state dir left");
    assert_eq!(
        bridges(),
        bridges_before,
        "bridges in the host namespace changed"
    );
}

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

/// Take the lab for this test (its names are fixed, so lab tests take turns), bring it up with
/// `nodes` nodes, and take it down when the test ends, passed or failed.
fn lab_up(nodes: u8) -> (std::sync::MutexGuard<'static, ()>, Teardown) {
    let lab = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(nix_is_root(), "the lab test needs root (CI runs as root)");
    assert!(
        lab_namespaces().is_empty(),
        "a lab is already up ({:?}); the lab tests need its fixed names — take it down first",
        lab_namespaces()
    );
    let teardown = Teardown;
    let up = metalgate(&["lab", "up", "--nodes", &nodes.to_string()]);
    assert!(up.status.success(), "lab up failed:\n{}", text(&up));
    (lab, teardown)
}

/// Run `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    assert!(
        Command::new("ip").args(args).status().unwrap().success(),
        "ip {args:?}"
    );
}

/// A namespace a test adds next to the lab, deleted when the test ends.
struct ExtraNamespace(&'static str);

impl ExtraNamespace {
    /// Create it afresh (removing one a crashed run left).
    fn create(name: &'static str) -> ExtraNamespace {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        ip(&["netns", "add", name]);
        ExtraNamespace(name)
    }
}
impl Drop for ExtraNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", self.0]).status();
    }
}

/// The lab's names are fixed, so its tests take turns.
static LAB_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn macs_in(text: &str) -> Vec<String> {
    let mut macs: Vec<String> = text
        .to_lowercase()
        .split(|c: char| c == '[' || c == ']' || c.is_whitespace())
        .filter(|w| w.len() == 17 && w.matches(':').count() == 5)
        .map(str::to_string)
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

fn eth1_mac(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "eth1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split("link/ether ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_lowercase()
}

#[test]
fn arping_from_the_laptop_gets_exactly_the_owners_mac() {
    let (_lab, _teardown) = lab_up(3);

    // Who announces, as users see it: the Service's annotation.
    let owner = owner_of_vip();
    assert!(
        ["ops-demo", "node2", "node3"].contains(&owner.as_str()),
        "announcing-node: {owner:?}"
    );
    let owner_mac = eth1_mac(&format!("mg-{owner}"));

    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "5",
        "-w",
        "6",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let out = text(&arping);
    assert_eq!(
        macs_in(&out),
        vec![owner_mac.clone()],
        "exactly one MAC answers, the owner's eth1:\n{out}"
    );

    // The VIP is deliverable on its owner (the node's Service rules send its port 80 to the
    // proxy pod there, as kube-proxy does; like MetalLB with kube-proxy's iptables mode, it
    // does not answer ping), and the laptop's neighbour table agrees with arping once it
    // resolves the VIP itself.
    let http = metalgate(&[
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
        "http://192.168.56.200/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&http.stdout),
        "404",
        "the VIP: {}",
        text(&http)
    );
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&owner_mac),
        "{}",
        text(&neigh)
    );

    // Nobody answers for a pool IP that is not assigned…
    let unassigned = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "2",
        "-w",
        "3",
        "-I",
        "vboxnet0",
        "192.168.56.201",
    ]);
    assert!(
        macs_in(&String::from_utf8_lossy(&unassigned.stdout)).is_empty(),
        "{}",
        text(&unassigned)
    );
    // …nor for the VIP asked from another subnet.
    let add = Command::new("ip")
        .args([
            "-n",
            "mg-laptop",
            "addr",
            "add",
            "10.9.9.1/24",
            "dev",
            "vboxnet0",
        ])
        .status()
        .unwrap();
    assert!(add.success());
    let foreign = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "2",
        "-w",
        "3",
        "-s",
        "10.9.9.1",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let foreign_out = String::from_utf8_lossy(&foreign.stdout).to_string();
    assert!(
        foreign_out.contains("Sent 2 probes") && foreign_out.contains("Received 0"),
        "{}",
        text(&foreign)
    );

    // The owner counted what it answered and what it ignored, by reason.
    let owner_ip = match owner.as_str() {
        "ops-demo" => "192.168.56.10",
        "node2" => "192.168.56.11",
        _ => "192.168.56.12",
    };
    let metrics = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{owner_ip}:7472/metrics"),
    ]);
    let m = String::from_utf8_lossy(&metrics.stdout).to_string();
    let value = |line_start: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in:\n{m}"))
    };
    assert!(value("metalgate_speaker_arp_replies_total") >= 5, "{m}");
    assert!(
        value("metalgate_speaker_arp_dropped_total{reason=\"sender_outside_subnet\"}") >= 1,
        "{m}"
    );
    assert!(
        value("metalgate_speaker_arp_dropped_total{reason=\"not_owned\"}") >= 1,
        "{m}"
    );

    let events = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "get",
        "events",
        "-n",
        "metalgate-system",
    ]);
    assert!(
        String::from_utf8_lossy(&events.stdout).contains("nodeAssigned"),
        "{}",
        text(&events)
    );
}

fn probe(count: u32) -> std::thread::JoinHandle<serde_json::Value> {
    std::thread::spawn(move || {
        let out = metalgate(&[
            "lab",
            "exec",
            "--",
            env!("CARGO_BIN_EXE_metalgate"),
            "lab",
            "arp-probe",
            "--count",
            &count.to_string(),
            "--interval-ms",
            "20",
        ]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("probe output: {e}: {}", text(&out)))
    })
}

fn lab_pid(name: &str) -> i32 {
    std::fs::read_to_string(lab_dir().join("pids"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let (n, p) = l.split_once(' ')?;
            (n == name).then(|| p.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no pid for {name}"))
}

fn owner_of_vip() -> String {
    for _ in 0..100 {
        let o = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "svc",
            "metalgate-proxy",
            "-n",
            "metalgate-system",
            "-o",
            "jsonpath={.metadata.annotations.metalgate\\.io/announcing-node}",
        ]);
        let owner = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !owner.is_empty() {
            return owner;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nobody announces the VIP");
}

#[test]
fn failover_on_sigkill_and_lossless_handoff_on_sigterm() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_mac = eth1_mac(&format!("mg-{owner}"));
    // The laptop has a neighbour entry for the VIP, pointing at the owner.
    let _ = metalgate(&[
        "lab",
        "exec",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "192.168.56.200",
    ]);

    // SIGKILL the owner's metalgate (whichever node — the one with the API store included)
    // while the laptop asks for the VIP every 20 ms.
    let running = probe(250);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = lab_pid(&format!("metalgate@{owner}"));
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let report = running.join().unwrap();
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(
        macs.len(),
        2,
        "one owner, then exactly one successor: {report}"
    );
    assert_eq!(macs[0], owner_mac, "{report}");
    let successor = ["ops-demo", "node2", "node3"]
        .into_iter()
        .find(|n| *n != owner && eth1_mac(&format!("mg-{n}")) == macs[1])
        .unwrap_or_else(|| panic!("the new MAC is no node's eth1: {report}"));
    let gap = report["max_gap_ms"].as_u64().unwrap();
    eprintln!("failover gap after SIGKILL of {owner}: {gap} ms (to {successor})");
    assert!(gap < 1000, "failover took {gap} ms: {report}");
    // The laptop's neighbour entry followed the gratuitous ARP.
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&macs[1]),
        "{}",
        text(&neigh)
    );

    // Planned hand-off: SIGTERM the new owner; no probe goes unanswered.
    let running = probe(150);
    std::thread::sleep(Duration::from_millis(1000));
    let pid = lab_pid(&format!("metalgate@{successor}"));
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let report = running.join().unwrap();
    let gap = report["max_gap_ms"].as_u64().unwrap();
    eprintln!("hand-off gap after SIGTERM of {successor}: {gap} ms");
    assert!(
        report["replies"].as_u64().unwrap() >= report["sent"].as_u64().unwrap(),
        "a probe went unanswered: {report}"
    );
    assert!(gap < 60, "{report}");
    let last: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    let third = ["ops-demo", "node2", "node3"]
        .into_iter()
        .find(|n| *n != owner && *n != successor)
        .unwrap();
    assert_eq!(
        last.last().unwrap(),
        &eth1_mac(&format!("mg-{third}")),
        "{report}"
    );
}

#[test]
fn a_gossip_only_partition_leaves_two_speakers_answering_for_at_most_the_bound() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_mac = eth1_mac(&format!("mg-{owner}"));
    // The laptop asks every 20 ms for 7 s; after 1 s the owner's node is cut off from the
    // others' gossip (UDP 7946 dropped both ways in its namespace) while the API stays
    // reachable: the others lose it from the gossip and take the VIP over, until its presence
    // Lease, still renewed, says it is alive.
    let running = probe(350);
    std::thread::sleep(Duration::from_millis(1000));
    let ns = format!("mg-{owner}");
    for (chain, port) in [
        ("INPUT", "--dport"),
        ("INPUT", "--sport"),
        ("OUTPUT", "--dport"),
        ("OUTPUT", "--sport"),
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables", "-A", chain, "-p", "udp"])
            .args([port, "7946", "-j", "DROP"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "iptables in {ns}");
    }
    let report = running.join().unwrap();
    let span = report["double_span_ms"].as_u64().unwrap();
    let doubles = report["double_answered"].as_u64().unwrap();
    eprintln!(
        "gossip partition of {owner}: {doubles} requests answered twice, over {span} ms (bound 2000 ms)"
    );
    // Written down in speaker/src/presence.rs as PARTITION_BOUND.
    assert!(
        span <= 2000,
        "two speakers answered for {span} ms ({doubles} requests answered twice)"
    );
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(
        macs.last(),
        Some(&owner_mac),
        "the owner (alive, only its gossip cut) answers in the end: {report}"
    );
    // The last 2.5 s (well after the bound) were answered by the owner alone.
    assert!(
        report["first_of_last_mac_ms"].as_u64().unwrap() < 4500,
        "{report}"
    );
}

/// A host the test adds to the lab's network, removed when the test ends.
struct Intruder;
impl Intruder {
    fn add(address: &str) -> ExtraNamespace {
        let guard = ExtraNamespace::create("mg-intruder");
        ip(&[
            "-n",
            "mg-intruder",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "p-intruder",
            "netns",
            "mg-hostonly",
        ]);
        ip(&[
            "-n",
            "mg-hostonly",
            "link",
            "set",
            "p-intruder",
            "master",
            "br0",
        ]);
        ip(&["-n", "mg-hostonly", "link", "set", "p-intruder", "up"]);
        ip(&[
            "-n",
            "mg-intruder",
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", "mg-intruder", "link", "set", "eth0", "up"]);
        guard
    }
}

#[test]
fn an_ip_already_held_by_another_host_is_not_announced() {
    let (_lab, _teardown) = lab_up(2);
    let _intruder = Intruder::add("192.168.56.205");
    let intruder_mac = {
        let out = Command::new("ip")
            .args(["-n", "mg-intruder", "-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split("link/ether ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_lowercase()
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: clash, namespace: default}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 192.168.56.205\n  ports: [{port: 80}]\n";
    let path = lab_dir().join("clash.yaml");
    std::fs::write(&path, svc).unwrap();
    let applied = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "apply",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(applied.status.success(), "{}", text(&applied));
    let mut events = String::new();
    for _ in 0..100 {
        let o = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=clash",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ]);
        events = String::from_utf8_lossy(&o.stdout).to_string();
        if events.contains("IPConflict") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        events.contains("IPConflict") && events.contains(&intruder_mac),
        "{events}"
    );
    // Only the host that has the IP answers for it.
    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "3",
        "-w",
        "4",
        "-I",
        "vboxnet0",
        "192.168.56.205",
    ]);
    assert_eq!(
        macs_in(&text(&arping)),
        vec![intruder_mac],
        "{}",
        text(&arping)
    );
}

#[test]
fn link_loss_on_the_owners_nic_moves_the_ip_and_it_settles_on_one_mac() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_ns = format!("mg-{owner}");
    let running = probe(200);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        Command::new("ip")
            .args(["-n", &owner_ns, "link", "set", "eth1", "down"])
            .status()
            .unwrap()
            .success()
    );
    let report = running.join().unwrap();
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(macs.len(), 2, "{report}");
    assert_ne!(
        macs[1],
        eth1_mac(&owner_ns),
        "another node took over: {report}"
    );
    assert!(report["max_gap_ms"].as_u64().unwrap() < 1000, "{report}");

    // The link comes back: after the speakers hear each other again, one MAC answers.
    assert!(
        Command::new("ip")
            .args(["-n", &owner_ns, "link", "set", "eth1", "up"])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_secs(4));
    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "3",
        "-w",
        "4",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let answering = macs_in(&text(&arping));
    assert_eq!(answering.len(), 1, "{}", text(&arping));
    let _ = metalgate(&[
        "lab",
        "exec",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "192.168.56.200",
    ]);
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&answering[0]),
        "the laptop follows: {}",
        text(&neigh)
    );
}

#[test]
fn the_vip_is_not_answered_on_another_interface() {
    let (_lab, _teardown) = lab_up(1);
    assert_eq!(owner_of_vip(), "ops-demo");
    // ops-demo gets a second NIC, eth2 (10.77.0.1/24), towards a host in mg-other.
    let _other = ExtraNamespace::create("mg-other");
    ip(&[
        "-n",
        "mg-ops-demo",
        "link",
        "add",
        "eth2",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        "mg-other",
    ]);
    ip(&[
        "-n",
        "mg-ops-demo",
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        "eth2",
    ]);
    ip(&["-n", "mg-ops-demo", "link", "set", "eth2", "up"]);
    ip(&[
        "-n",
        "mg-other",
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        "eth0",
    ]);
    ip(&["-n", "mg-other", "link", "set", "eth0", "up"]);
    // The speaker picks new interfaces up within a pass or two.
    std::thread::sleep(Duration::from_secs(4));
    let arping = |ip: &str| {
        let out = Command::new("ip")
            .args([
                "netns", "exec", "mg-other", "arping", "-c", "3", "-w", "4", "-I", "eth0", ip,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        macs_in(&arping("10.77.0.1")).len(),
        1,
        "the link works: the kernel answers for eth2's own address"
    );
    let vip = arping("192.168.56.200");
    assert!(
        macs_in(&vip).is_empty(),
        "nobody answers for the VIP on eth2:\n{vip}"
    );
    let metrics = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://192.168.56.10:7472/metrics",
    ]);
    let m = String::from_utf8_lossy(&metrics.stdout).to_string();
    let wrong = m
        .lines()
        .find(|l| l.starts_with("metalgate_speaker_arp_dropped_total{reason=\"wrong_interface\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        wrong >= 3,
        "the speaker saw the requests on eth2 and dropped them as wrong_interface:\n{m}"
    );
}

/// podinfo's colour as the laptop sees it through the VIP.
fn podinfo_colour() -> Option<String> {
    let got = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "2",
        "http://podinfo.192.168.56.200.nip.io/",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).ok()?;
    v["color"].as_str().map(str::to_string)
}

/// Wait (bounded) until podinfo serves `colour`; how long it took.
fn until_colour(colour: &str, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if podinfo_colour().as_deref() == Some(colour) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// git in the laptop's clone of the workshop repository, run from the laptop.
fn laptop_git(args: &[&str]) -> Output {
    let clone = lab_dir().join("laptop/ops-demo");
    let clone = clone.to_str().unwrap();
    let mut argv = vec![
        "lab",
        "exec",
        "--",
        "git",
        "-c",
        "user.name=Attendee",
        "-c",
        "user.email=attendee@laptop",
        "-C",
        clone,
    ];
    argv.extend_from_slice(args);
    let out = metalgate(&argv);
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    out
}

/// The seed's live demo, from the laptop: change podinfo's colour in Git, commit, push — the
/// new colour is served (and shown by a browser) within 5 s, while a bounded load through the
/// rollout gets no failed request; `git revert` + push brings the old colour back; a
/// `kubectl scale` by hand is reverted and reported naming `spec.replicas`.
#[test]
fn the_workshop_live_demo_push_revert_and_drift() {
    let (_lab, _teardown) = lab_up(3);
    let before = podinfo_colour().expect("podinfo through the VIP");
    assert_eq!(before, "#34577c", "the colour in examples/workshop/");

    // Load through the rollout: bounded in count (and time), every request must succeed.
    let load = std::thread::spawn(|| {
        metalgate(&[
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
            "8000",
            "-c",
            "10",
            "http://podinfo.192.168.56.200.nip.io/",
        ])
    });
    std::thread::sleep(Duration::from_secs(1));
    let deployment = lab_dir().join("laptop/ops-demo/manifests/apps/podinfo/deployment.yaml");
    let text_before = std::fs::read_to_string(&deployment).unwrap();
    let changed = text_before.replace("value: \"#34577c\"", "value: \"#e0115f\"");
    assert_ne!(changed, text_before);
    std::fs::write(&deployment, changed).unwrap();
    laptop_git(&["commit", "-qam", "podinfo: pink for the demo"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    let took = until_colour("#e0115f", Duration::from_secs(20));
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(5)),
        "the new colour was served after {took:?} (goal: 5 s)"
    );
    let dom = browser_dom("http://podinfo.192.168.56.200.nip.io/");
    assert!(
        dom.contains("background:#e0115f"),
        "the browser shows the new colour:\n{dom}"
    );
    let load = load.join().unwrap();
    assert!(load.status.success(), "oha: {}", text(&load));
    let report: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert_eq!(
        report["statusCodeDistribution"],
        serde_json::json!({"200": 8000}),
        "every request through the rollout answered: {report}"
    );
    assert_eq!(
        report["errorDistribution"],
        serde_json::json!({}),
        "{report}"
    );

    // The commit is the audit trail, `git revert` the rollback.
    laptop_git(&["revert", "--no-edit", "HEAD"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    let took = until_colour("#34577c", Duration::from_secs(20));
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(5)),
        "the old colour came back after {took:?}"
    );

    // Drift: scaled by hand from the laptop, reverted at once and reported.
    let scale = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "scale",
        "deployment",
        "podinfo",
        "-n",
        "podinfo",
        "--replicas=5",
    ]);
    assert!(scale.status.success(), "{}", text(&scale));
    let start = std::time::Instant::now();
    let mut replicas = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        let out = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "deployment",
            "podinfo",
            "-n",
            "podinfo",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        replicas = String::from_utf8_lossy(&out.stdout).to_string();
        if replicas == "2" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = start.elapsed();
    assert_eq!(replicas, "2", "spec.replicas back to Git's value");
    assert!(took < Duration::from_secs(2), "reverted after {took:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "events",
            "-n",
            "metalgate-system",
            "--field-selector",
            "reason=DriftReverted,involvedObject.name=podinfo",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        let msgs = String::from_utf8_lossy(&events.stdout).to_string();
        if msgs.contains("spec.replicas") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no DriftReverted Event naming spec.replicas: {msgs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
