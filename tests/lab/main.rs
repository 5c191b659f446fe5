//! The lab end to end, as root: three nodes up, what the laptop sees, and nothing left after
//! `lab down` — also after an interrupted `lab up` (`lifecycle`); ARP ownership, failover,
//! partitions, conflicts and link loss (`network`); the workshop's live demo and disaster recovery
//! (`workshop`); the GitOps UI in a browser driven over WebDriver from the laptop (`ui`).
//! The lab's names are fixed, so the tests take turns (`lab_up` holds a lock).

#[path = "../common/browser.rs"]
mod browser;
mod faults;
mod lifecycle;
mod network;
mod ui;
mod workshop;

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

/// `kubectl` from the laptop's namespace, against the lab's cluster.
fn kubectl(args: &[&str]) -> Output {
    let mut argv = vec!["lab", "exec", "--", "kubectl"];
    argv.extend_from_slice(args);
    metalgate(&argv)
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
        // A failed test's output is all a CI run keeps: the end of each of the lab's logs goes
        // with it, before `lab down` removes them (what each process did, with its times).
        if std::thread::panicking() {
            eprint!("{}", log_tails(&lab_dir(), 40));
        }
        let _ = metalgate(&["lab", "down"]);
    }
}

/// The last `lines` lines of the lab's logs under `lab`: each process's (`logs/`) and each
/// metalgate pod's (`NODE/pods/metalgate-system_*/`), by path; colours taken out, a line cut at
/// 400 characters.
fn log_tails(lab: &std::path::Path, lines: usize) -> String {
    let files = |dir: std::path::PathBuf| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let mut logs = files(lab.join("logs"));
    for node in files(lab.to_path_buf()) {
        for pod in files(node.join("pods")) {
            if pod
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("metalgate-system_"))
            {
                logs.extend(
                    files(pod)
                        .into_iter()
                        .filter(|f| f.extension().is_some_and(|e| e == "log")),
                );
            }
        }
    }
    logs.sort();
    let mut out = String::new();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let name = log.strip_prefix(lab).unwrap_or(&log).display();
        out += &format!(
            "--- lab log {name}, its last {} lines ---\n",
            lines.min(all.len())
        );
        for line in &all[all.len().saturating_sub(lines)..] {
            out += &plain(line, 400);
            out.push('\n');
        }
    }
    out
}

/// `line` without its terminal colour codes (`ESC [ … m`), at most `max` characters.
fn plain(line: &str, max: usize) -> String {
    let (mut out, mut kept) = (String::new(), 0);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else if kept < max {
            out.push(c);
            kept += 1;
        } else {
            break;
        }
    }
    out
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

/// `lab arp-probe` from the laptop for `count` requests 20 ms apart, in a thread: its JSON report.
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

/// The PID the lab recorded for `name` (`metalgate@node2`), the latest if it was restarted.
fn lab_pid(name: &str) -> i32 {
    std::fs::read_to_string(lab_dir().join("pids"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (n, p) = l.split_once(' ')?;
            (n == name).then(|| p.trim().parse().ok())?
        })
        .next_back()
        .unwrap_or_else(|| panic!("no pid for {name}"))
}

/// The node the Service says announces the VIP (`metalgate.io/announcing-node`).
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

/// The laptop asks for the VIP's MAC (one ping; the VIP answers ARP, not ping), so it has a
/// neighbour entry for it.
fn laptop_resolves_the_vip() {
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
}
