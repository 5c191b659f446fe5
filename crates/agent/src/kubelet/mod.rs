//! A stand-in kubelet: runs the pods bound to this node as processes and reports them.
//!
//! Every pod with `spec.nodeName` = this node gets its network (`sandbox`), its
//! ServiceAccount token (a TokenRequest, mounted where kube-rs looks), its environment (values,
//! the downward API, ConfigMap and Secret keys) and one process per container (`image` says
//! which); a process that exits is restarted by the pod's `restartPolicy` with back-off
//! (1 s doubling to 60 s: the kubelet's 10 s to 5 min, shortened so a demo recovers quickly);
//! readiness probes drive the Ready condition, liveness probes restart the container; output
//! goes to `DATA_DIR/pods/NS_NAME_UID/CONTAINER.log`, which `kubectl logs` reads through the
//! store (`logs`); what a container gets before it starts is `inputs`. A pod that is deleted
//! gets SIGTERM, then SIGKILL after its grace period (at most 30 s). Status (`status`) is
//! written by server-side apply whenever it changes.

mod inputs;
pub mod logs;
pub mod probe;
pub mod sandbox;
pub mod status;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use metalgate_k8s::reflect::Watches;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::controllers::MANAGER;
use inputs::{environment, service_account, volumes};
use status::State;

/// How the kubelet runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name.
    pub node: String,
    /// This node's IP (hostNetwork pods', and every pod's without a pod CIDR).
    pub node_ip: String,
    /// Addresses for pods with their own network namespace; `None`: pods share the node's.
    pub pod_cidr: Option<ipnet::Ipv4Net>,
    /// Where pods' logs and tokens are kept.
    pub data_dir: PathBuf,
    /// This build's `metalgate`.
    pub exe: PathBuf,
    /// The API server as pods reach it (`KUBERNETES_SERVICE_HOST`, `…_PORT`).
    pub api: Option<(String, u16)>,
    /// The API server's CA certificate, given to pods as `ca.crt`.
    pub ca_file: Option<PathBuf>,
}

type Shared = Arc<Mutex<status::Container>>;

struct Run {
    ip: String,
    netns: Option<String>,
    start: Time,
    containers: Vec<Shared>,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    /// Set up failed before any container started (the pod's network, its directory, its
    /// ServiceAccount token): tried again from scratch after this, as the kubelet retries a
    /// sandbox. A leftover from a node that died mid-run must not keep a pod pending for good.
    retry_at: Option<tokio::time::Instant>,
}

/// How long a pod whose set-up failed waits before it is set up again.
const SETUP_RETRY: Duration = Duration::from_secs(2);

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn set(c: &Shared, f: impl FnOnce(&mut status::Container)) {
    if let Ok(mut g) = c.lock() {
        f(&mut g);
    }
}

/// Run the pods bound to `cfg.node` until `shutdown`; then stop them all.
pub async fn run(client: Client, cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut w = Watches::new();
    let pods = w.store(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node)),
    );
    pods.wait_until_ready().await?;
    let wake = Arc::new(Notify::new());
    let mut runs: HashMap<String, Run> = HashMap::new();
    // Terminating pods whose stop (and final delete) is under way.
    let mut finishing: std::collections::HashSet<String> = Default::default();
    tracing::info!(node = %cfg.node, "kubelet running");
    loop {
        let all = pods.state();
        let live: Vec<Arc<Pod>> = all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        // Deleted gracefully: stopped (SIGTERM, then SIGKILL after the grace period), then
        // deleted for good, as the kubelet does — the EndpointSlices took it out of service
        // as soon as it was marked.
        finishing.retain(|uid| all.iter().any(|p| p.metadata.uid.as_ref() == Some(uid)));
        for p in all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if !finishing.insert(uid.clone()) {
                continue;
            }
            let run = runs.remove(&uid);
            let (client, ns, name) = (
                client.clone(),
                p.namespace().unwrap_or_default(),
                p.name_any(),
            );
            tokio::spawn(async move {
                if let Some(r) = run {
                    stop(r).await;
                }
                finish_delete(&client, &ns, &name, &uid).await;
            });
        }
        // Pods gone from the store at once: stop them.
        let gone: Vec<String> = runs
            .keys()
            .filter(|uid| !live.iter().any(|p| p.metadata.uid.as_ref() == Some(*uid)))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(r) = runs.remove(&uid) {
                tokio::spawn(stop(r));
            }
        }
        for p in &live {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let due = tokio::time::Instant::now();
            if runs
                .get(&uid)
                .and_then(|r| r.retry_at)
                .is_some_and(|at| at <= due)
            {
                // Its half-made sandbox goes first (awaited: the next one has the same name).
                if let Some(r) = runs.remove(&uid) {
                    stop(r).await;
                }
            }
            if !runs.contains_key(&uid) {
                let used: Vec<String> = runs.values().map(|r| r.ip.clone()).collect();
                let r = start(&client, &cfg, p, &used, wake.clone()).await;
                runs.insert(uid.clone(), r);
            }
            if let Some(r) = runs.get(&uid) {
                report(&client, &cfg, p, r).await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = w.changed() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let stopping: Vec<_> = runs.into_values().map(stop).collect();
    futures::future::join_all(stopping).await;
    Ok(())
}

async fn report(client: &Client, cfg: &Config, p: &Pod, r: &Run) {
    let containers: Vec<status::Container> = r
        .containers
        .iter()
        .filter_map(|c| c.lock().ok().map(|g| g.clone()))
        .collect();
    let st = status::pod_status(
        &containers,
        &r.ip,
        &cfg.node_ip,
        &r.start,
        p.status.as_ref(),
        now(),
    );
    let (Ok(new), Ok(old)) = (serde_json::to_value(&st), serde_json::to_value(&p.status)) else {
        return;
    };
    if new == old {
        return;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
    let body = json!({"apiVersion": "v1", "kind": "Pod", "status": new});
    if let Err(e) = api
        .patch_status(
            &p.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        tracing::debug!(pod = %p.name_any(), error = %e, "writing pod status");
    }
}

fn allocate(cidr: &ipnet::Ipv4Net, used: &[String]) -> Option<String> {
    // .1 is left for the node, as k3s's flannel gives it the CIDR's first address.
    cidr.hosts()
        .skip(1)
        .map(|a: Ipv4Addr| a.to_string())
        .find(|a| !used.contains(a))
}

async fn start(client: &Client, cfg: &Config, p: &Pod, used: &[String], wake: Arc<Notify>) -> Run {
    let spec = p.spec.clone().unwrap_or_default();
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let containers: Vec<Shared> = spec
        .containers
        .iter()
        .map(|c| {
            Arc::new(Mutex::new(status::Container {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                state: State::Waiting("ContainerCreating".into(), String::new()),
                last: None,
                restarts: 0,
                ready: false,
            }))
        })
        .collect();
    let mut run = Run {
        ip: String::new(),
        netns: None,
        start: now(),
        containers,
        stop: CancellationToken::new(),
        tasks: tokio::task::JoinSet::new(),
        retry_at: None,
    };
    let fail = |run: &mut Run, reason: &str, msg: String| {
        tracing::warn!(pod = %name, reason, "{msg}; trying again in {SETUP_RETRY:?}");
        for c in &run.containers {
            set(c, |c| c.state = State::Waiting(reason.into(), msg.clone()));
        }
        run.retry_at = Some(tokio::time::Instant::now() + SETUP_RETRY);
    };
    // The network.
    let own_ip = spec.host_network != Some(true) && cfg.pod_cidr.is_some();
    if own_ip {
        let Some(addr) = cfg.pod_cidr.as_ref().and_then(|c| allocate(c, used)) else {
            fail(
                &mut run,
                "ContainerCreating",
                "no address left in the node's pod CIDR".into(),
            );
            return run;
        };
        let (netns, host_if) = sandbox::names(&cfg.node, &uid);
        if let Err(e) = sandbox::up(&netns, &host_if, &addr).await {
            fail(
                &mut run,
                "ContainerCreating",
                format!("setting up the pod's network: {e:#}"),
            );
            return run;
        }
        run.ip = addr;
        run.netns = Some(netns);
    } else {
        run.ip = cfg.node_ip.clone();
    }
    let net = sandbox::Network {
        ip: run.ip.clone(),
        netns: run.netns.clone(),
    };
    let dir = cfg.data_dir.join("pods").join(format!("{ns}_{name}_{uid}"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        fail(
            &mut run,
            "ContainerCreating",
            format!("creating {}: {e}", dir.display()),
        );
        return run;
    }
    // The ServiceAccount token.
    let mut sa_dir = None;
    if spec.automount_service_account_token != Some(false) {
        match service_account(client, cfg, p, &dir).await {
            Ok(d) => sa_dir = Some(d),
            Err(e) => {
                fail(&mut run, "CreateContainerConfigError", format!("{e:#}"));
                return run;
            }
        }
    }
    for (c, shared) in spec.containers.iter().zip(run.containers.clone()) {
        let proc = match crate::image::process(c, &name, &run.ip, &cfg.exe) {
            Ok(p) => p,
            Err(msg) => {
                set(&shared, |s| {
                    s.state = State::Waiting("ErrImageNeverPull".into(), msg)
                });
                continue;
            }
        };
        let env = match environment(client, cfg, p, c, &run.ip).await {
            Ok(e) => e,
            Err(msg) => {
                set(&shared, |s| {
                    s.state = State::Waiting("CreateContainerConfigError".into(), msg)
                });
                continue;
            }
        };
        let mut mounts = match volumes(client, p, c, &dir).await {
            Ok(m) => m,
            Err(msg) => {
                set(&shared, |s| {
                    s.state = State::Waiting("CreateContainerConfigError".into(), msg)
                });
                continue;
            }
        };
        if let Some(d) = &sa_dir {
            mounts.push(sandbox::Mount {
                source: d.clone(),
                target: sandbox::SA_DIR.into(),
            });
        }
        let job = Job {
            container: c.clone(),
            restart: spec
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into()),
            grace: Duration::from_secs(
                spec.termination_grace_period_seconds
                    .unwrap_or(30)
                    .clamp(0, 30) as u64,
            ),
            net: net.clone(),
            mounts,
            program: proc.program,
            args: proc.args,
            env: env.into_iter().chain(proc.env).collect(),
            log: dir.join(format!("{}.log", c.name)),
            pod: name.clone(),
        };
        run.tasks
            .spawn(supervise(job, shared, run.stop.clone(), wake.clone()));
    }
    run
}

/// The last step of a graceful delete: the pod's processes are stopped, so it goes for good
/// (grace 0, and only this very pod: a new one of the same name is not touched).
async fn finish_delete(client: &Client, ns: &str, name: &str, uid: &str) {
    use kube::api::{DeleteParams, Preconditions};
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &dp).await {
        tracing::debug!(pod = %name, error = %e, "finishing a graceful delete");
    }
}

async fn stop(mut r: Run) {
    r.stop.cancel();
    while r.tasks.join_next().await.is_some() {}
    if let Some(ns) = &r.netns {
        sandbox::down(ns).await;
    }
}

struct Job {
    container: Container,
    restart: String,
    grace: Duration,
    net: sandbox::Network,
    mounts: Vec<sandbox::Mount>,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    pod: String,
}

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(60);

async fn supervise(job: Job, me: Shared, stop: CancellationToken, wake: Arc<Notify>) {
    let mut backoff = BACKOFF_START;
    loop {
        let started = now();
        let began = std::time::Instant::now();
        let outcome = run_once(&job, &me, &stop, &wake, &started).await;
        let code = match outcome {
            Outcome::Stopped => return,
            Outcome::Exited(code) => code,
            Outcome::SpawnFailed(msg) => {
                set(&me, |s| {
                    s.state = State::Waiting("RunContainerError".into(), msg)
                });
                wake.notify_one();
                -1
            }
        };
        let reason = if code == 0 { "Completed" } else { "Error" };
        let finished = State::Terminated(code, reason.into(), Some(started.clone()), now());
        let again = match job.restart.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if began.elapsed() >= BACKOFF_RESET {
            backoff = BACKOFF_START;
        }
        if !again {
            set(&me, |s| {
                s.state = finished;
                s.ready = false;
            });
            wake.notify_one();
            return;
        }
        tracing::info!(pod = %job.pod, container = %job.container.name, code, backoff = ?backoff, "container exited; restarting");
        set(&me, |s| {
            s.last = Some(finished);
            s.ready = false;
            s.state = State::Waiting(
                "CrashLoopBackOff".into(),
                format!(
                    "back-off {}s restarting failed container={} pod={}",
                    backoff.as_secs(),
                    job.container.name,
                    job.pod
                ),
            );
        });
        wake.notify_one();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        set(&me, |s| s.restarts += 1);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// What sets this node's clock, passed on to its pods as a node's clock reaches every process
/// on it: the lab's clock-skew drill runs a node under libfaketime (`lab restart NODE
/// --clock-offset`): a `FAKETIME` offset and the `LD_PRELOAD` that applies it. Nothing else of
/// the agent's environment reaches a pod.
fn node_clock() -> Vec<(&'static str, String)> {
    match (std::env::var("FAKETIME"), std::env::var("LD_PRELOAD")) {
        (Ok(offset), Ok(preload)) => vec![("FAKETIME", offset), ("LD_PRELOAD", preload)],
        _ => Vec::new(),
    }
}

enum Outcome {
    Stopped,
    Exited(i32),
    SpawnFailed(String),
}

async fn run_once(
    job: &Job,
    me: &Shared,
    stop: &CancellationToken,
    wake: &Arc<Notify>,
    started: &Time,
) -> Outcome {
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.log)
    {
        Ok(f) => f,
        Err(e) => return Outcome::SpawnFailed(format!("opening {}: {e}", job.log.display())),
    };
    let (out, err) = match (log.try_clone(), log.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Outcome::SpawnFailed("duplicating the log file".into()),
    };
    let mut cmd = sandbox::command(&job.net, &job.mounts, &job.program, &job.args);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .envs(node_clock())
        .envs(job.env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    if let Some(wd) = &job.container.working_dir {
        cmd.current_dir(wd);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(format!("starting {}: {e}", job.program)),
    };
    let has_readiness = job.container.readiness_probe.is_some();
    set(me, |s| {
        s.state = State::Running(started.clone());
        s.ready = !has_readiness;
    });
    wake.notify_one();
    let probes = CancellationToken::new();
    let liveness_failed = CancellationToken::new();
    let prober = tokio::spawn(probe_loop(
        job.container.clone(),
        job.net.ip.clone(),
        me.clone(),
        wake.clone(),
        probes.clone(),
        liveness_failed.clone(),
    ));
    let outcome = tokio::select! {
        r = child.wait() => Outcome::Exited(r.ok().and_then(|s| s.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(&s).map(|n| 128 + n))).unwrap_or(-1)),
        _ = liveness_failed.cancelled() => {
            tracing::info!(pod = %job.pod, container = %job.container.name, "liveness probe failed; restarting");
            terminate(&mut child, job.grace).await;
            Outcome::Exited(137)
        }
        _ = stop.cancelled() => {
            terminate(&mut child, job.grace).await;
            Outcome::Stopped
        }
    };
    probes.cancel();
    let _ = prober.await;
    outcome
}

async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// How soon a readiness probe is repeated while the container has not been ready yet: a probe
/// is one local connection, and every step of a rollout waits on the new pod's first success
/// (the live demo's push → new colour traced 2026-12-03: 1.0 s of its 3.4 s under load went
/// from the backend listening to it being served, most of it this wait at 500 ms).
const UNREADY_PROBE_EVERY: Duration = Duration::from_millis(100);

async fn probe_loop(
    c: Container,
    ip: String,
    me: Shared,
    wake: Arc<Notify>,
    stop: CancellationToken,
    liveness_failed: CancellationToken,
) {
    let readiness = c.readiness_probe.clone();
    let liveness = c.liveness_probe.clone();
    let run = |probe: Option<k8s_openapi::api::core::v1::Probe>, ready: bool| {
        let (c, ip, me, wake, stop, failed) = (
            c.clone(),
            ip.clone(),
            me.clone(),
            wake.clone(),
            stop.clone(),
            liveness_failed.clone(),
        );
        async move {
            let Some(p) = probe else { return };
            let (delay, period, _, success, failure) = probe::timing(&p);
            let mut counter = probe::Counter::default();
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(delay) => {} }
            loop {
                let result = probe::check(&p, &c, &ip).await;
                if let Err(e) = &result {
                    tracing::debug!(container = %c.name, error = %e, ready, "probe failed");
                }
                match counter.record(result.is_ok(), success, failure) {
                    Some(verdict) if ready => {
                        let changed = me
                            .lock()
                            .map(|mut s| std::mem::replace(&mut s.ready, verdict) != verdict)
                            .unwrap_or(false);
                        if changed {
                            wake.notify_one();
                        }
                    }
                    Some(false) => {
                        failed.cancel();
                        return;
                    }
                    _ => {}
                }
                // Until a readiness probe first succeeds, the next comes sooner: the kubelet
                // triggers a probe whenever it syncs a running container that is not ready yet
                // (prober manager's UpdatePodStatus), so a slow start does not cost a period.
                let wait = if ready && !me.lock().is_ok_and(|s| s.ready) {
                    period.min(UNREADY_PROBE_EVERY)
                } else {
                    period
                };
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
            }
        }
    };
    tokio::join!(run(readiness, true), run(liveness, false));
}
