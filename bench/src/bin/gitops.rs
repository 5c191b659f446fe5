//! The GitOps module against its goals, in one run, with the same store and repository:
//!
//! 1. push → applied through the webhook (median of RUNS pushes; goal under 1 s — ArgoCD's
//!    default is a 120–180 s poll), and through the poll (`--poll 5s`);
//! 2. one Application of N objects synced from nothing ÷ N bare server-side applies of the same
//!    objects by one client (the floor; goal ≤ 1.5×);
//! 3. the module's peak RSS (VmHWM), RSS and PSS holding APPS Applications of N objects each
//!    (goal: peak under 64 MiB; ArgoCD's application controller: 0.4–1.9 GiB).
//!
//! The store (`metalgate run --components none`) and the module are separate processes, so the
//! memory is the module's alone: `metalgate gitops run`, or with a fourth argument `controller`,
//! `metalgate controller` — the LoadBalancer controller and the module in one process, as the
//! manifests deploy them (usage: `gitops RUNS N APPS [module|controller]`).
//!
//! `bench/gitops.sh [RUNS] [N] [APPS] [module|controller]` builds the release binary and runs
//! this; record the output in bench/RESULTS.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams};
use metalgate_k8s::crd::Application;
use serde_json::json;

/// A process this bench started; stopped with SIGTERM (so a leader hands its Lease back)
/// when dropped, SIGKILL after 10 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The module's `metalgate_gitops_passes_total` (0 before it leads).
fn passes(admin: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", admin)) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix("metalgate_gitops_passes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Until the module leads and has made `n` passes.
fn wait_passes(admin: u16, n: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    while passes(admin) < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the module never led"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn metalgate() -> PathBuf {
    std::env::var_os("METALGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/metalgate"))
}

/// Start `metalgate ARGS` and wait for its `metalgate ready` line (or, for `gitops run`, its
/// admin port to answer).
fn spawn(args: &[&str], wait_ready_line: bool) -> anyhow::Result<Proc> {
    let mut child = Command::new(metalgate())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if wait_ready_line {
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line)?;
        anyhow::ensure!(line.starts_with("metalgate ready"), "not ready: {line:?}");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
    }
    Ok(Proc(child))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn configmap(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"owner": "bench", "value": name}})
}

fn colour(c: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-ui\ndata:\n  PODINFO_UI_COLOR: '{c}'\n"
    )
}

fn app(name: &str, url: &str, path: &str, ns: &str) -> serde_json::Value {
    json!({"apiVersion": "metalgate.io/v1beta1", "kind": "Application",
        "metadata": {"name": name, "namespace": "metalgate-system"},
        "spec": {"source": {"repoURL": url, "targetRevision": "main", "path": path},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
                 "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                                "syncOptions": ["CreateNamespace=true"]}}})
}

/// (VmHWM, VmRSS, Pss) of `pid` in MiB.
fn memory(pid: u32) -> (f64, f64, f64) {
    let field = |file: &str, key: &str| -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (
        field("status", "VmHWM:"),
        field("status", "VmRSS:"),
        field("smaps_rollup", "Pss:"),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Until every named Application is Synced and Healthy at `sha` (bounded by `limit`).
async fn wait_synced(
    client: &kube::Client,
    names: &[String],
    sha: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let api: Api<Application> = Api::namespaced(client.clone(), "metalgate-system");
    let start = Instant::now();
    loop {
        let list = api.list(&Default::default()).await?;
        let done = names.iter().all(|n| {
            list.items.iter().any(|a| {
                a.metadata.name.as_deref() == Some(n.as_str())
                    && a.status.as_ref().is_some_and(|s| {
                        s.sync.as_ref().is_some_and(|y| {
                            y.status == "Synced" && y.revision.as_deref() == Some(sha)
                        }) && s.health.as_ref().is_some_and(|h| h.status == "Healthy")
                    })
            })
        });
        if done {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < limit, "not synced within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Until podinfo-ui in `demo` has colour `c`; how long since `since`.
async fn wait_colour(client: &kube::Client, c: &str, since: Instant) -> anyhow::Result<f64> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    loop {
        if let Some(cm) = api.get_opt("podinfo-ui").await?
            && cm
                .data
                .as_ref()
                .and_then(|d| d.get("PODINFO_UI_COLOR"))
                .map(String::as_str)
                == Some(c)
        {
            return Ok(since.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(60),
            "{c} never applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A GitHub push webhook for `url`, unsigned (no webhook Secret is set here).
fn webhook(admin: u16, url: &str) -> anyhow::Result<()> {
    let body = format!(
        r#"{{"ref":"refs/heads/main","repository":{{"clone_url":"{url}","html_url":"{url}"}}}}"#
    );
    let mut s = TcpStream::connect(("127.0.0.1", admin))?;
    write!(
        s,
        "POST /api/webhook HTTP/1.1\r\nHost: bench\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "webhook: {answer}");
    Ok(())
}

fn gitops(
    process: Process,
    kubeconfig: &Path,
    data: &Path,
    admin: u16,
    poll: &str,
) -> anyhow::Result<Proc> {
    let (command, poll_flag): (&[&str], &str) = match process {
        Process::Module => (&["gitops", "run"], "--poll"),
        Process::Controller => (&["controller"], "--gitops-poll"),
    };
    let listen = format!("127.0.0.1:{admin}");
    let mut args: Vec<&str> = command.to_vec();
    args.extend([
        "--kubeconfig",
        kubeconfig.to_str().unwrap_or_default(),
        "--data-dir",
        data.to_str().unwrap_or_default(),
        "--node-name",
        "bench",
        poll_flag,
        poll,
        "--admin-listen",
        &listen,
    ]);
    let p = spawn(&args, false)?;
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", admin)).is_err() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "gitops never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(p)
}

/// Which process runs the module.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Process {
    /// `metalgate gitops run`.
    Module,
    /// `metalgate controller` (the LoadBalancer controller and the module).
    Controller,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, d: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (runs, n, apps) = (arg(1, 5), arg(2, 1000), arg(3, 50));
    let process = match std::env::args().nth(4).as_deref() {
        None | Some("module") => Process::Module,
        Some("controller") => Process::Controller,
        Some(other) => anyhow::bail!("the fourth argument is module or controller, not {other}"),
    };
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let tmp = tempfile::tempdir()?;
    let (work, bare) = (tmp.path().join("work"), tmp.path().join("repo.git"));
    std::fs::create_dir_all(work.join("big"))?;
    git(
        tmp.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            bare.to_str().unwrap_or_default(),
        ],
    )?;
    git(&work, &["init", "-q", "-b", "main"])?;
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().unwrap_or_default()],
    )?;
    for i in 0..n {
        let name = format!("cm-{i:05}");
        std::fs::write(
            work.join(format!("big/{name}.yaml")),
            serde_json::to_string(&configmap(&name))?,
        )?;
    }
    std::fs::create_dir_all(work.join("podinfo"))?;
    std::fs::write(work.join("podinfo/ui.yaml"), colour("#000000"))?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "bench"])?;
    git(&work, &["push", "-q", "origin", "HEAD:main"])?;
    let mut sha = git(&work, &["rev-parse", "HEAD"])?;
    let url = format!("file://{}", bare.display());

    let store_dir = tmp.path().join("store");
    let port = free_port();
    let _store = spawn(
        &[
            "run",
            "--data-dir",
            store_dir.to_str().unwrap_or_default(),
            "--api-listen",
            &format!("127.0.0.1:{port}"),
            "--components",
            "none",
            "--node-name",
            "bench",
        ],
        true,
    )?;
    let kubeconfig = store_dir.join("kubeconfig");
    let client =
        metalgate_k8s::client::from_kubeconfig_str(&std::fs::read_to_string(&kubeconfig)?).await?;
    let pp = PatchParams::apply("bench").force();
    let nss: Api<Namespace> = Api::all(client.clone());
    let apps_api: Api<Application> = Api::namespaced(client.clone(), "metalgate-system");
    println!(
        "machine: {} cores; N = {n} objects, {apps} apps, {runs} runs",
        std::thread::available_parallelism()?.get()
    );

    // 2. The floor, then one app of the same N objects.
    nss.patch(
        "floor",
        &pp,
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "floor"}}),
        ),
    )
    .await?;
    let floor_api: Api<ConfigMap> = Api::namespaced(client.clone(), "floor");
    let start = Instant::now();
    for i in 0..n {
        let name = format!("cm-{i:05}");
        floor_api
            .patch(&name, &pp, &Patch::Apply(configmap(&name)))
            .await?;
    }
    let floor = start.elapsed().as_secs_f64();
    let admin = free_port();
    let data = tmp.path().join("gitops");
    let module = gitops(process, &kubeconfig, &data, admin, "10m")?;
    let start = Instant::now();
    apps_api
        .patch("big", &pp, &Patch::Apply(app("big", &url, "big", "big")))
        .await?;
    wait_synced(&client, &["big".into()], &sha, Duration::from_secs(600)).await?;
    let sync = start.elapsed().as_secs_f64();
    println!(
        "sync of one app of {n} objects: {sync:.3} s; {n} bare server-side applies by one client: {floor:.3} s; ratio {:.2} (goal <= 1.5)",
        sync / floor
    );

    // 1. Push → applied, through the webhook.
    apps_api
        .patch(
            "podinfo",
            &pp,
            &Patch::Apply(app("podinfo", &url, "podinfo", "demo")),
        )
        .await?;
    wait_synced(&client, &["podinfo".into()], &sha, Duration::from_secs(60)).await?;
    let mut hooked = Vec::new();
    for r in 0..runs {
        let c = format!("#0000{:02x}", r + 1);
        std::fs::write(work.join("podinfo/ui.yaml"), colour(&c))?;
        git(&work, &["commit", "-qam", &format!("colour {c}")])?;
        let t0 = Instant::now();
        git(&work, &["push", "-q", "origin", "HEAD:main"])?;
        webhook(admin, &url)?;
        hooked.push(wait_colour(&client, &c, t0).await?);
    }
    drop(module);
    // ... and through the poll alone (5 s).
    let module = gitops(process, &kubeconfig, &data, admin, "5s")?;
    wait_passes(admin, 2)?;
    let mut polled = Vec::new();
    for r in 0..runs {
        let c = format!("#00ff{r:02x}");
        std::fs::write(work.join("podinfo/ui.yaml"), colour(&c))?;
        git(&work, &["commit", "-qam", &format!("colour {c}")])?;
        let t0 = Instant::now();
        git(&work, &["push", "-q", "origin", "HEAD:main"])?;
        polled.push(wait_colour(&client, &c, t0).await?);
    }
    sha = git(&work, &["rev-parse", "HEAD"])?;
    println!(
        "push -> applied: webhook median {:.3} s (min {:.3}, max {:.3}; goal < 1 s); 5 s poll median {:.3} s (ArgoCD's default poll: 120-180 s)",
        median(hooked.clone()),
        hooked.iter().copied().fold(f64::INFINITY, f64::min),
        hooked.iter().copied().fold(0.0, f64::max),
        median(polled)
    );
    drop(module);

    // 3. Memory holding APPS apps of N objects (a fresh module, so its peak is theirs).
    let module = gitops(process, &kubeconfig, &data, admin, "10m")?;
    let pid = module.0.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, idle_rss, idle_pss) = memory(pid);
    let names: Vec<String> = (0..apps).map(|i| format!("m-{i:02}")).collect();
    let start = Instant::now();
    for name in &names {
        apps_api
            .patch(name, &pp, &Patch::Apply(app(name, &url, "big", name)))
            .await?;
    }
    let mut all = names.clone();
    all.extend(["big".to_string(), "podinfo".to_string()]);
    wait_synced(&client, &all, &sha, Duration::from_secs(1800)).await?;
    let took = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hwm, rss, pss) = memory(pid);
    println!(
        "memory of {}: idle RSS {idle_rss:.1} MiB, PSS {idle_pss:.1} MiB; holding {} apps ({} objects, synced in {took:.0} s): peak RSS {hwm:.1} MiB (goal < 64), RSS {rss:.1} MiB, PSS {pss:.1} MiB",
        match process {
            Process::Module => "the module (metalgate gitops run)",
            Process::Controller => "the controller with the module (metalgate controller)",
        },
        all.len(),
        (apps + 1) * n + 1
    );
    drop(module);
    Ok(())
}
