//! `metalgate lab up|down|status|exec`: the network of [`crate::topology`] applied with `ip`,
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
    env: &[(&str, &str)],
) -> anyhow::Result<Started> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let logs = state_dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(&exe).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
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

    let server = NODES[0];
    let data = dir.join(server.name);
    let kubeconfig = dir.join("kubeconfig");
    spawn_in(
        server.ns,
        &format!("metalgate@{}", server.name),
        &[
            "run".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api-listen".into(),
            format!("{}:{API_PORT}", server.ip),
            "--kubeconfig-out".into(),
            kubeconfig.display().to_string(),
            "--node-name".into(),
            server.name.into(),
            "--node-ip".into(),
            server.ip.into(),
            "--admin-listen".into(),
            format!("{}:{METRICS_PORT}", server.ip),
            "--components".into(),
            "agent".into(),
            "--pod-cidr".into(),
            pod_cidr(0),
            "--manifests".into(),
            manifests.display().to_string(),
        ],
        &[],
    )?;
    // The store is up, and the manifests applied, once it says it is ready.
    let log = dir
        .join("logs")
        .join(format!("metalgate@{}.log", server.name));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("metalgate ready") {
            for line in text.lines().filter(|l| l.starts_with("manifest error:")) {
                eprintln!("{line}");
            }
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "metalgate on {} did not start within 60 s; see {}",
                server.name,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, n) in NODES.iter().enumerate().take(nodes).skip(1) {
        spawn_in(
            n.ns,
            &format!("metalgate@{}", n.name),
            &[
                "run".into(),
                "--data-dir".into(),
                dir.join(n.name).display().to_string(),
                "--api-server".into(),
                format!("https://{}:{API_PORT}", server.ip),
                "--token-file".into(),
                data.join("tls/token").display().to_string(),
                "--ca-file".into(),
                data.join("tls/ca.crt").display().to_string(),
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
            ],
            &[],
        )?;
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
