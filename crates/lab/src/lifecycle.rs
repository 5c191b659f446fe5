//! `metalgate lab up|down|status|restart|exec`: the network of [`crate::topology`] applied with `ip`,
//! metalgate and the demo backends started on it, and everything removed again.
//!
//! `mg-ops-demo` runs `metalgate run` with the embedded store on 192.168.56.10:6443 (the VM's
//! k3s server); the other nodes join it (k3s agents). Each runs the node agent
//! (`--components agent`), which runs what [`crate::topology::MANIFESTS`] deploy — metalgate
//! itself from its manifests, podinfo, a grafana stand-in — as pods. `down` removes every
//! namespace, process and file the lab made, whatever state `up` left.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::topology::{
    API_PORT, LAPTOP_NS, MANIFESTS, METRICS_PORT, NODES, all_namespaces, laptop_hosts,
    network_plan, pod_cidr,
};

/// Where the lab keeps its state (`METALGATE_LAB_DIR`, default `/run/metalgate-lab`).
pub fn state_dir() -> PathBuf {
    std::env::var_os("METALGATE_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/metalgate-lab"))
}

fn netns_etc() -> PathBuf {
    PathBuf::from("/etc/netns").join(LAPTOP_NS)
}

fn run_cmd(argv: &[String]) -> anyhow::Result<()> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces that exist now.
pub fn existing_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The lab's namespaces that exist now.
pub fn lab_namespaces() -> Vec<String> {
    let ours = all_namespaces();
    existing_namespaces()
        .into_iter()
        .filter(|n| ours.contains(&n.as_str()))
        .collect()
}

fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("metalgate lab needs root (it creates network namespaces): run it with sudo");
    }
    Ok(())
}

/// The system tools the lab uses, and the Debian packages that have them.
pub const TOOLS: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("arping", "iputils-arping"),
    ("ping", "iputils-ping"),
    ("curl", "curl"),
    ("kubectl", "kubernetes-client"),
];

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn require_tools() -> anyhow::Result<()> {
    let missing: Vec<(&str, &str)> = TOOLS.iter().copied().filter(|(t, _)| !which(t)).collect();
    if !missing.is_empty() {
        let tools: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
        let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        bail!(
            "the lab needs {} — install with: apt-get install -y {}",
            tools.join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// What it is (`metalgate@ops-demo`, `podinfo@node2`).
    pub name: String,
    /// Its PID.
    pub pid: i32,
}

fn pids_file() -> PathBuf {
    state_dir().join("pids")
}

/// The processes recorded as started by the lab.
pub fn recorded_processes() -> Vec<Started> {
    std::fs::read_to_string(pids_file())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some(Started {
                name: name.into(),
                pid: pid.trim().parse().ok()?,
            })
        })
        .collect()
}

fn record(p: &Started) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pids_file())?;
    writeln!(f, "{} {}", p.name, p.pid)?;
    Ok(())
}

fn spawn_in(
    ns: &str,
    name: &str,
    args: &[String],
    env: &[(&str, String)],
    append: bool,
) -> anyhow::Result<Started> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let logs = state_dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(logs.join(format!("{name}.log")))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(&exe).args(args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // Its own process group: an interrupted `lab up` leaves it for `lab down` to end.
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let started = Started {
        name: name.into(),
        pid: child.id() as i32,
    };
    record(&started)?;
    Ok(started)
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// `lab up`: build the lab for `nodes` nodes (taking down one that is here), then print the
/// smoke check.
pub async fn up(nodes: usize) -> anyhow::Result<ExitCode> {
    require_root()?;
    require_tools()?;
    let running = std::fs::read_dir(state_dir())
        .map(|d| {
            d.flatten()
                .any(|e| !KEPT.contains(&e.file_name().to_string_lossy().as_ref()))
        })
        .unwrap_or(false);
    if !lab_namespaces().is_empty() || running {
        println!("a lab is already here: taking it down first");
        down()?;
    }
    match build(nodes).await {
        Ok(()) => {}
        Err(e) => {
            eprintln!("lab up failed: {e:#}\ncleaning up what was made…");
            let _ = down();
            return Err(e);
        }
    }
    println!(
        "lab is up: {nodes} node(s); `metalgate lab exec -- kubectl get nodes` runs from the laptop"
    );
    let code = smoke_in_laptop(nodes)?;
    Ok(code)
}

async fn build(nodes: usize) -> anyhow::Result<()> {
    let dir = state_dir();
    if dir.starts_with("/tmp") {
        bail!(
            "METALGATE_LAB_DIR {} is under /tmp, which the lab's pods have of their own (an emptyDir): the GitOps pod could not read the workshop repository there; use a directory under /run or /var",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("nodes"), nodes.to_string())?;
    for step in network_plan(nodes) {
        run_cmd(&step)?;
    }
    // Leave ARP for the VIP to the speaker: the kernel answers only for addresses on the NIC
    // the request came in on, and announces its own address as the source.
    for n in &NODES[..nodes] {
        for (k, v) in [
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
        ] {
            run_cmd(&[
                "ip".into(),
                "netns".into(),
                "exec".into(),
                n.ns.into(),
                "sysctl".into(),
                "-qw".into(),
                format!("{k}={v}"),
            ])?;
        }
    }
    let etc = netns_etc();
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("hosts"), laptop_hosts(nodes))?;

    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    for (name, text) in MANIFESTS {
        std::fs::write(manifests.join(name), text)?;
    }

    start_node(0, false, &[]).await?;
    for i in 1..nodes {
        start_node(i, false, &[]).await?;
    }
    // The workshop's repository, and what the seed does after bootstrap: apply apps/root.yaml.
    let clone = workshop_repo()?;
    let root = clone.join("apps/root.yaml");
    let out = laptop_command(&[
        "kubectl".into(),
        "apply".into(),
        "-f".into(),
        root.display().to_string(),
    ])
    .output()?;
    if !out.status.success() {
        bail!(
            "kubectl apply -f apps/root.yaml: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// How node `i`'s metalgate is started: the first holds the embedded store (the VM's k3s
/// server), the others join it (k3s agents), each with its data directory under the lab's.
fn node_args(i: usize) -> Vec<String> {
    let dir = state_dir();
    let n = NODES[i];
    let server = NODES[0];
    let server_data = dir.join(server.name);
    let mut args: Vec<String> = vec![
        "run".into(),
        "--data-dir".into(),
        dir.join(n.name).display().to_string(),
    ];
    if i == 0 {
        args.extend([
            "--api-listen".into(),
            format!("{}:{API_PORT}", server.ip),
            "--kubeconfig-out".into(),
            dir.join("kubeconfig").display().to_string(),
        ]);
    } else {
        args.extend([
            "--api-server".into(),
            format!("https://{}:{API_PORT}", server.ip),
            "--token-file".into(),
            server_data.join("tls/token").display().to_string(),
            "--ca-file".into(),
            server_data.join("tls/ca.crt").display().to_string(),
        ]);
    }
    args.extend([
        "--node-name".into(),
        n.name.into(),
        "--node-ip".into(),
        n.ip.into(),
        "--admin-listen".into(),
        format!("{}:{METRICS_PORT}", n.ip),
        "--components".into(),
        "agent".into(),
        "--pod-cidr".into(),
        pod_cidr(i),
    ]);
    if i == 0 {
        args.extend([
            "--manifests".into(),
            dir.join("manifests").display().to_string(),
        ]);
    }
    args
}

/// Start node `i`'s metalgate in its namespace; for the store's node, wait until it says it is
/// ready (the store up and the manifests applied). `restarted`: its log is kept, appended to.
async fn start_node(i: usize, restarted: bool, env: &[(&str, String)]) -> anyhow::Result<Started> {
    let n = NODES[i];
    let name = format!("metalgate@{}", n.name);
    let log = state_dir().join("logs").join(format!("{name}.log"));
    let before = if restarted {
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let started = spawn_in(n.ns, &name, &node_args(i), env, restarted)?;
    if i != 0 {
        return Ok(started);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read(&log).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(before as usize..).unwrap_or_default());
        if text.contains("metalgate ready") {
            for line in text.lines().filter(|l| l.starts_with("manifest error:")) {
                eprintln!("{line}");
            }
            return Ok(started);
        }
        if !alive(started.pid) || Instant::now() > deadline {
            bail!(
                "metalgate on {} did not start within 60 s; see {}",
                n.name,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--clock-offset`: a sign, a number and a unit (s, m, h or d), as libfaketime reads it.
pub fn parse_clock_offset(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?}: expected a signed offset with a unit, like +30s, -30s or +2m");
    let rest = s.strip_prefix(['+', '-']).ok_or_else(bad)?;
    let digits = rest.trim_end_matches(['s', 'm', 'h', 'd']);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || rest.len() != digits.len() + 1
    {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// Where Debian's `libfaketime` package puts libfaketime: its multi-threaded build, as the
/// node's processes are.
fn libfaketime() -> anyhow::Result<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.context(
        "--clock-offset runs the node under libfaketime, which is not installed: apt-get install libfaketime",
    )
}

/// `lab restart NODE`: stop a node's metalgate if it runs (SIGTERM, then SIGKILL after 10 s)
/// and start it again with the data it has — after a fault drill killed it, as a VM rebooted;
/// with `clock_offset`, its wall clock (and its pods') runs that far off the others'.
pub async fn restart(node: &str, clock_offset: Option<&str>) -> anyhow::Result<ExitCode> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    require_root()?;
    let nodes: usize = std::fs::read_to_string(state_dir().join("nodes"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let Some(i) = NODES[..nodes].iter().position(|n| n.name == node) else {
        bail!(
            "no node {node} in the lab (its nodes: {})",
            NODES[..nodes]
                .iter()
                .map(|n| n.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let env = match clock_offset {
        Some(offset) => vec![
            ("LD_PRELOAD", libfaketime()?.display().to_string()),
            ("FAKETIME", offset.to_string()),
        ],
        None => Vec::new(),
    };
    let name = format!("metalgate@{node}");
    let running: Vec<Started> = recorded_processes()
        .into_iter()
        .filter(|p| p.name == name && alive(p.pid))
        .collect();
    for p in &running {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.iter().any(|p| alive(p.pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in running.iter().filter(|p| alive(p.pid)) {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
    let started = start_node(i, true, &env).await?;
    match clock_offset {
        Some(offset) => println!(
            "{name} started again: pid {}, its clock {offset} off the others'",
            started.pid
        ),
        None => println!("{name} started again: pid {}", started.pid),
    }
    Ok(ExitCode::SUCCESS)
}

/// The workshop repository's URL, as the GitOps module and the laptop use it.
pub fn repo_url() -> String {
    format!("file://{}", state_dir().join("git/ops-demo.git").display())
}

/// Where the laptop's clone of the workshop repository is.
pub fn laptop_clone() -> PathBuf {
    state_dir().join("laptop/ops-demo")
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Workshop Lab")
        .env("GIT_AUTHOR_EMAIL", "lab@ops-demo.local")
        .env("GIT_COMMITTER_NAME", "Workshop Lab")
        .env("GIT_COMMITTER_EMAIL", "lab@ops-demo.local")
        .stdin(Stdio::null())
        .output()
        .context("running git (apt-get install git)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The workshop's repository from `examples/workshop/` (see [`crate::workshop`]): a bare
/// repository the GitOps module reads, with a post-receive hook that calls its webhook, and
/// the laptop's clone to change and push. Returns the clone.
fn workshop_repo() -> anyhow::Result<PathBuf> {
    let bare = state_dir().join("git/ops-demo.git");
    let clone = laptop_clone();
    if bare.join("HEAD").exists() {
        // Kept by `lab down --keep-git`: the cluster comes back from what Git holds.
        if !clone.join(".git").exists() {
            std::fs::create_dir_all(clone.parent().unwrap_or(&clone))?;
            git(
                Path::new("/"),
                &[
                    "clone",
                    "--quiet",
                    &repo_url(),
                    &clone.display().to_string(),
                ],
            )?;
        }
        println!(
            "the workshop repository is kept from before ({}): the apps come back from it",
            repo_url()
        );
        return Ok(clone);
    }
    std::fs::create_dir_all(&bare)?;
    std::fs::create_dir_all(&clone)?;
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    )?;
    git(&clone, &["init", "--quiet", "--initial-branch=main"])?;
    let url = repo_url();
    for (path, text) in crate::workshop::files(&url) {
        let file = clone.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, text)?;
    }
    git(&clone, &["add", "-A"])?;
    git(
        &clone,
        &[
            "commit",
            "--quiet",
            "-m",
            "The workshop's repository (examples/workshop/ of metalgate, for the lab)",
        ],
    )?;
    git(&clone, &["remote", "add", "origin", &url])?;
    git(&clone, &["push", "--quiet", "origin", "main"])?;
    git(
        &clone,
        &["branch", "--quiet", "--set-upstream-to=origin/main"],
    )?;
    let hook = bare.join("hooks/post-receive");
    std::fs::write(
        &hook,
        crate::workshop::post_receive_hook(
            &url,
            &format!("http://{}/api/webhook", crate::topology::HOSTS[1]),
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    Ok(clone)
}

fn laptop_command(argv: &[String]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", LAPTOP_NS])
        .args(argv)
        .env("KUBECONFIG", state_dir().join("kubeconfig"));
    cmd
}

fn smoke_in_laptop(nodes: usize) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let status = laptop_command(&[exe.display().to_string(), "lab".into(), "smoke".into()])
        .env("METALGATE_LAB_NODES", nodes.to_string())
        .status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `lab exec`: a command in the laptop namespace.
pub fn exec(argv: &[String]) -> anyhow::Result<ExitCode> {
    require_root()?;
    if !lab_namespaces().iter().any(|n| n == LAPTOP_NS) {
        bail!("no lab is up: run `metalgate lab up` first");
    }
    let status = laptop_command(argv)
        .status()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `lab status`: what runs, and the smoke check.
pub fn status() -> anyhow::Result<ExitCode> {
    require_root()?;
    let ns = lab_namespaces();
    if ns.is_empty() {
        println!("no lab is up");
        return Ok(ExitCode::SUCCESS);
    }
    println!("namespaces: {}", ns.join(" "));
    for p in recorded_processes() {
        println!(
            "  {:<22} pid {:<8} {}",
            p.name,
            p.pid,
            if alive(p.pid) {
                "running"
            } else {
                "not running"
            }
        );
    }
    let nodes = std::fs::read_to_string(state_dir().join("nodes"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    smoke_in_laptop(nodes)
}

/// What `lab down --keep-git` keeps of the state directory: the workshop's repository and the
/// laptop's clone.
const KEPT: [&str; 2] = ["git", "laptop"];

/// Remove everything the lab made. Safe to run at any point, and more than once.
pub fn down() -> anyhow::Result<()> {
    down_keeping(false)
}

/// [`down`], keeping the workshop's repository and the laptop's clone when `keep_git`.
pub fn down_keeping(keep_git: bool) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    require_root()?;
    let recorded = recorded_processes();
    for p in &recorded {
        if alive(p.pid) {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorded.iter().any(|p| alive(p.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &recorded {
        if alive(p.pid) {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
    // Anything else still inside the lab's namespaces was started there by the lab or by
    // `lab exec`: it goes with them.
    for ns in lab_namespaces() {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorded.iter().any(|p| alive(p.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut removed = Vec::new();
    for ns in lab_namespaces() {
        run_cmd(&["ip".into(), "netns".into(), "del".into(), ns.clone()])?;
        removed.push(ns);
    }
    // The pods' namespaces: each node's agent removes them when it stops; one killed leaves
    // their names behind (as empty files: it made them in its own mount namespace).
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if NODES
                .iter()
                .any(|n| name.starts_with(&format!("{}-", n.name)))
            {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let etc = netns_etc();
    if etc.exists() {
        std::fs::remove_dir_all(&etc).with_context(|| format!("removing {}", etc.display()))?;
    }
    let dir = state_dir();
    if keep_git {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if KEPT.contains(&e.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            }
            .with_context(|| format!("removing {}", p.display()))?;
        }
        println!(
            "kept the workshop repository ({}) and the laptop's clone; `lab up` syncs from them",
            repo_url()
        );
    } else if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if removed.is_empty() && recorded.is_empty() {
        println!("no lab was up; nothing left behind");
    } else {
        println!(
            "lab is down: removed {} and {} process(es)",
            removed.join(" "),
            recorded.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_offset_is_a_sign_a_number_and_a_unit() {
        for ok in ["+30s", "-30s", "+2m", "-1h", "+1d", "+0s"] {
            assert_eq!(parse_clock_offset(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "30s", "+30", "+s", "+3x", "-30ss", "+3 s", "", "+-3s", "+3.5s",
        ] {
            let e = parse_clock_offset(bad).unwrap_err();
            assert!(e.contains("+30s"), "{bad}: {e}");
        }
    }
}
