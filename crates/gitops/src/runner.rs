//! The GitOps component: leader-elected, it watches Applications and gives each one a
//! [`reconcile`](crate::reconciler::reconcile) pass when its spec changes, when it carries the
//! refresh annotation, and on the poll — several apps at once (bounded), never two passes of one
//! app at the same time, so two quick pushes end in the later commit's state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use metalgate_k8s::crd::{Application, ApplicationStatus, ArgoApplication};
use metalgate_k8s::{Component, ComponentContext, leader, reflect};
use tokio::task::JoinSet;

use crate::drift::{Drift, Gvk};
use crate::kinds::AppKind;
use crate::reconciler::{Context, Trigger, reconcile_kind};
use crate::webhook;

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "gitops";
/// The coordination Lease the active replica holds.
pub const LEASE: &str = "metalgate-gitops";
pub use crate::kinds::{PAUSE_ANNOTATION, REFRESH_ANNOTATIONS, SYNC_ANNOTATION};

/// How the component runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The namespace of the Applications and the Lease.
    pub namespace: String,
    /// Where Git data is kept (`<data_dir>/gitops`).
    pub data_dir: PathBuf,
    /// How often each app is compared with Git without a trigger.
    pub poll: Duration,
    /// How many apps sync at once.
    pub parallel: usize,
    /// Also reconcile ArgoCD's `argoproj.io/v1alpha1` Applications in this namespace (ArgoCD's
    /// is `argocd`), serving their CRD where ArgoCD has not installed it (never where it has).
    pub argo: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: metalgate_k8s::NAMESPACE.into(),
            data_dir: PathBuf::from("/var/lib/metalgate"),
            poll: Duration::from_secs(30),
            parallel: 4,
            argo: None,
        }
    }
}

/// The module as a component.
pub fn component(cfg: Config) -> Component {
    Component::new(NAME, move |ctx: ComponentContext| {
        let cfg = cfg.clone();
        Box::pin(run(ctx, cfg))
    })
}

/// What decides that an app is due.
#[derive(Default)]
struct Seen {
    /// The spec last reconciled (as JSON).
    spec: String,
    /// When its last pass ended.
    at: Option<Instant>,
    /// Failed passes in a row (for `syncPolicy.retry`).
    failures: u32,
    /// When the next retry is due, while retries are left.
    retry_at: Option<Instant>,
    /// The refresh/sync requests (annotation, value) its last such pass answered.
    answered: Vec<(String, String)>,
}

/// Whether a pass failed in a way a retry may mend (a render, dry-run, Git or apply error; not
/// a spec error, which needs a new spec).
fn failed(status: &ApplicationStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| matches!(c.type_.as_str(), "ComparisonError" | "SyncError"))
}

/// The app's retry policy, when it asks for retries (`syncPolicy.retry`), as ArgoCD: none
/// without one.
fn retry_policy(app: &Application) -> Option<crate::spec::Retry> {
    app.spec.sync_policy.as_ref()?.retry.as_ref()?;
    let name = app.metadata.name.clone().unwrap_or_default();
    crate::spec::AppConfig::from_spec(&name, &app.spec)
        .ok()
        .map(|c| c.retry)
}

/// The refresh and sync annotations an Application carries, with their values (a request
/// each; `metalgate gitops sync|refresh` and the UI write the time as the value).
fn requests(app: &Application) -> Vec<(String, String)> {
    let Some(a) = app.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    REFRESH_ANNOTATIONS
        .iter()
        .chain(std::iter::once(&SYNC_ANNOTATION))
        .filter_map(|k| Some((k.to_string(), a.get(*k)?.clone())))
        .collect()
}

/// Remove the refresh/sync annotations a pass answered, once it has ended (so their removal
/// tells `metalgate gitops sync` the pass is done) — unless one was set again meanwhile: that
/// is a new request, for the next pass. A patch conditional on the resourceVersion read.
async fn clear_answered(api: &Api<DynamicObject>, name: &str, answered: &[(String, String)]) {
    for _ in 0..5 {
        match clear_once(api, name, answered).await {
            Ok(true) => return,
            // Changed meanwhile: read it again.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(app = %name, error = %e, "could not clear the answered refresh/sync annotation");
                return;
            }
        }
    }
    tracing::warn!(app = %name, "the answered refresh/sync annotation was not cleared: the Application kept changing");
}

/// One conditional try of [`clear_answered`]: `Ok(false)` when the Application changed between
/// the read and the patch.
async fn clear_once(
    api: &Api<DynamicObject>,
    name: &str,
    answered: &[(String, String)],
) -> Result<bool, kube::Error> {
    let app = api.get(name).await?;
    let annotations = app.metadata.annotations.clone().unwrap_or_default();
    let clear: serde_json::Map<String, serde_json::Value> = answered
        .iter()
        .filter(|(k, v)| annotations.get(k) == Some(v))
        .map(|(k, _)| (k.clone(), serde_json::Value::Null))
        .collect();
    if clear.is_empty() {
        return Ok(true);
    }
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": app.metadata.resource_version,
        "annotations": clear,
    }});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
        Ok(_) => Ok(true),
    }
}

/// An Application's sync status and health status, borrowed (a status lists every object of
/// its app, and the loop reads these every second).
fn sync_and_health(app: &Application) -> (Option<&str>, Option<&str>) {
    let status = app.status.as_ref();
    (
        status
            .and_then(|s| s.sync.as_ref())
            .map(|s| s.status.as_str()),
        status
            .and_then(|s| s.health.as_ref())
            .map(|h| h.status.as_str()),
    )
}

/// Each Application's sync status and health (1 for the current value), the passes made, and
/// the drift they found and reverted, in the Prometheus text format.
fn render_metrics(
    apps: &[Arc<Application>],
    passes: u64,
    drift: &crate::reconciler::DriftCounters,
) -> String {
    let detected = drift.detected.load(Ordering::Relaxed);
    let reverted = drift.reverted.load(Ordering::Relaxed);
    let mut sync = String::from(
        "# HELP metalgate_gitops_app_sync An Application's sync status (1 for the current one).\n# TYPE metalgate_gitops_app_sync gauge\n",
    );
    let mut health = String::from(
        "# HELP metalgate_gitops_app_health An Application's health (1 for the current one).\n# TYPE metalgate_gitops_app_health gauge\n",
    );
    for app in apps {
        let name = app.metadata.name.clone().unwrap_or_default();
        let (s, h) = sync_and_health(app);
        let (s, h) = (s.unwrap_or("Unknown"), h.unwrap_or("Unknown"));
        sync.push_str(&format!(
            "metalgate_gitops_app_sync{{app=\"{name}\",status=\"{s}\"}} 1\n"
        ));
        health.push_str(&format!(
            "metalgate_gitops_app_health{{app=\"{name}\",status=\"{h}\"}} 1\n"
        ));
    }
    format!(
        "{sync}{health}# HELP metalgate_gitops_passes_total Reconcile passes made.\n# TYPE metalgate_gitops_passes_total counter\nmetalgate_gitops_passes_total {passes}\n# HELP metalgate_gitops_drift_detected_total Passes that found an app which was in sync with its revision changed in the cluster (never the module's own applies).\n# TYPE metalgate_gitops_drift_detected_total counter\nmetalgate_gitops_drift_detected_total {detected}\n# HELP metalgate_gitops_drift_reverted_total Changes made in the cluster to what Git defines that self-heal put back (one per field or deleted object).\n# TYPE metalgate_gitops_drift_reverted_total counter\nmetalgate_gitops_drift_reverted_total {reverted}\n"
    )
}

/// Where Git hosts post pushes, on the admin endpoint (ArgoCD's path).
pub const WEBHOOK_PATH: &str = "/api/webhook";

/// The Applications a webhook call concerns, or why it is refused.
async fn webhook_answer(
    client: &kube::Client,
    namespace: &str,
    apps: &[Arc<Application>],
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, webhook::Refusal> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let secret: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secrets = match secret.get_opt(webhook::SECRET).await {
        Ok(Some(s)) => s.data.unwrap_or_default(),
        Ok(None) => Default::default(),
        Err(e) => {
            // Not knowing whether a secret is set must not let an unsigned push through.
            tracing::warn!(error = %e, "reading the webhook Secret failed; refusing the push");
            return Err(webhook::Refusal::BadPayload(format!(
                "cannot read Secret {}: {e}",
                webhook::SECRET
            )));
        }
    };
    webhook::verify(&pairs, body, |p| {
        secrets
            .get(p.key())
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
    })?;
    let payload: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| webhook::Refusal::BadPayload(format!("not JSON: {e}")))?;
    let repos = webhook::repositories(&payload);
    if repos.is_empty() {
        return Err(webhook::Refusal::BadPayload(
            "the payload names no repository".into(),
        ));
    }
    Ok(apps
        .iter()
        .filter(|a| webhook::concerns(&repos, &a.spec.source.repo_url))
        .filter_map(|a| a.metadata.name.clone())
        .collect())
}

fn render_answer(answer: Result<Vec<String>, webhook::Refusal>) -> metalgate_k8s::admin::Answer {
    use http::StatusCode;
    use webhook::Refusal;
    match answer {
        Ok(apps) => (
            StatusCode::OK,
            serde_json::json!({"refreshed": apps}).to_string(),
        ),
        Err(Refusal::NotAPush(e)) => (StatusCode::OK, format!("ignored: {e} is not a push\n")),
        Err(Refusal::Unknown) => (
            StatusCode::BAD_REQUEST,
            "not a GitHub, Gitea or GitLab webhook\n".into(),
        ),
        Err(Refusal::BadSignature(p)) => (
            StatusCode::UNAUTHORIZED,
            format!("bad or missing {} webhook signature\n", p.key()),
        ),
        Err(Refusal::BadPayload(why)) => (StatusCode::BAD_REQUEST, format!("{why}\n")),
    }
}

/// The Applications that hold an Application whose sync or health changed since the last call
/// (`last` keeps what was seen): app-of-apps parents, whose health is their children's, are
/// looked at again at once rather than at the next poll, as ArgoCD's controller does.
fn parents_of_changed(
    apps: &[Arc<Application>],
    last: &mut HashMap<String, String>,
) -> HashSet<String> {
    let mut changed = HashSet::new();
    for a in apps {
        let Some(name) = a.metadata.name.clone() else {
            continue;
        };
        let (sync, health) = sync_and_health(a);
        let now = format!(
            "{}/{}",
            sync.unwrap_or_default(),
            health.unwrap_or_default()
        );
        if last
            .insert(name.clone(), now.clone())
            .is_some_and(|before| before != now)
        {
            changed.insert(name);
        }
    }
    apps.iter()
        .filter(|a| {
            a.status.as_ref().is_some_and(|st| {
                st.resources
                    .iter()
                    .any(|r| r.kind == "Application" && changed.contains(&r.name))
            })
        })
        .filter_map(|a| a.metadata.name.clone())
        .collect()
}

/// Every kind any Application's inventory holds (what the drift watches cover).
fn inventory_kinds(apps: &[Arc<Application>]) -> BTreeSet<Gvk> {
    // Borrowed first: this runs every second over every app's resource list, and a few kinds
    // stand for thousands of entries.
    let kinds: BTreeSet<(&str, &str, &str)> = apps
        .iter()
        .filter_map(|a| a.status.as_ref())
        .flat_map(|s| s.resources.iter())
        .map(|r| (r.group.as_str(), r.version.as_str(), r.kind.as_str()))
        .collect();
    kinds
        .into_iter()
        .map(|(g, v, k)| (g.to_string(), v.to_string(), k.to_string()))
        .collect()
}

/// Every Application the module reconciles, with its kind: metalgate's, then ArgoCD's (when
/// served) whose names no metalgate Application has taken — one name, one app, as the tracking
/// ids on objects name apps by name.
fn listed(
    apps: &Store<Application>,
    argo: Option<&Store<ArgoApplication>>,
) -> Vec<(AppKind, Arc<Application>)> {
    let mut out: Vec<(AppKind, Arc<Application>)> = apps
        .state()
        .into_iter()
        .map(|a| (AppKind::Metalgate, a))
        .collect();
    let taken: HashSet<String> = out
        .iter()
        .filter_map(|(_, a)| a.metadata.name.clone())
        .collect();
    for a in argo.map(|s| s.state()).unwrap_or_default() {
        if a.metadata.name.as_ref().is_some_and(|n| taken.contains(n)) {
            tracing::debug!(app = ?a.metadata.name, "an argoproj.io Application has the name of a metalgate.io one; skipped");
            continue;
        }
        out.push((AppKind::Argo, Arc::new(Application::from(a.as_ref()))));
    }
    out
}

fn only_apps(listed: &[(AppKind, Arc<Application>)]) -> Vec<Arc<Application>> {
    listed.iter().map(|(_, a)| a.clone()).collect()
}

/// The watch on ArgoCD's Applications in `namespace`, once their CRD is served by us; none
/// (and a warning saying why) where ArgoCD's own CRD is installed or it cannot be served.
async fn argo_store(
    client: &kube::Client,
    watches: &mut reflect::Watches,
    namespace: &str,
) -> Option<Store<ArgoApplication>> {
    match crate::kinds::serve_argo_crd(client).await {
        Ok(crate::kinds::ArgoCrd::Ours) => {
            tracing::info!(namespace, "reconciling argoproj.io Applications too");
            let api: Api<ArgoApplication> = Api::namespaced(client.clone(), namespace);
            Some(watches.store(api, watcher::Config::default()))
        }
        Ok(crate::kinds::ArgoCrd::Theirs) => {
            tracing::warn!(
                "applications.argoproj.io is ArgoCD's own CRD here: its Applications are left to ArgoCD"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve applications.argoproj.io; argoproj.io Applications are not reconciled");
            None
        }
    }
}

/// Run until `ctx.shutdown` (or until leadership is lost).
pub async fn run(ctx: ComponentContext, cfg: Config) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let me = format!("{}-{}", ctx.node.name, std::process::id());
    // Ready: a standby waiting for the Lease, or the leader once its Applications are listed.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let r = ready.clone();
        metalgate_k8s::metrics::register_readiness(
            NAME,
            Arc::new(move || r.load(Ordering::Relaxed)),
        );
    }
    // The UI is served by every replica, the leader or not.
    let crate::ui::Apps {
        store: apps,
        changes: mut app_changes,
    } = crate::ui::start(client.clone(), &cfg.namespace, ctx.shutdown.clone()).await;
    let Some(lost) = leader::acquire(&client, &cfg.namespace, LEASE, &me, &ctx.shutdown).await
    else {
        return Ok(());
    };
    ready.store(false, Ordering::Relaxed);
    let mut watches = reflect::Watches::new();
    if apps.wait_until_ready().await.is_err() {
        anyhow::bail!("the Application watch ended before its first list");
    }
    let argo = match &cfg.argo {
        Some(ns) => argo_store(&client, &mut watches, ns).await,
        None => None,
    };
    ready.store(true, Ordering::Relaxed);
    let passes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rctx = Arc::new(Context::new(client.clone(), &cfg.data_dir));
    {
        let (apps, argo, passes) = (apps.clone(), argo.clone(), passes.clone());
        let drift = rctx.drift.clone();
        metalgate_k8s::metrics::register(
            NAME,
            Arc::new(move || {
                let all = only_apps(&listed(&apps, argo.as_ref()));
                render_metrics(&all, passes.load(Ordering::Relaxed), &drift)
            }),
        );
    }
    let mut drift = Drift::new(client.clone());
    let drifted = drift.notified();
    let hooked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook_notify = Arc::new(tokio::sync::Notify::new());
    {
        let (apps, client, ns) = (apps.clone(), client.clone(), cfg.namespace.clone());
        let (hooked, notify, argo) = (hooked.clone(), hook_notify.clone(), argo.clone());
        metalgate_k8s::admin::register_route(
            "POST",
            WEBHOOK_PATH,
            Arc::new(move |headers, body| {
                let (apps, client, ns) = (apps.clone(), client.clone(), ns.clone());
                let (hooked, notify) = (hooked.clone(), notify.clone());
                let all = only_apps(&listed(&apps, argo.as_ref()));
                Box::pin(async move {
                    let answer = webhook_answer(&client, &ns, &all, &headers, &body).await;
                    if let Ok(names) = &answer {
                        hooked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(names.iter().cloned());
                        notify.notify_one();
                    }
                    render_answer(answer)
                })
            }),
        );
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut app_states: HashMap<String, String> = HashMap::new();
    // Parents to look at again; kept until their pass starts (one may be running right now).
    let mut woken: HashSet<String> = HashSet::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<ApplicationStatus> = JoinSet::new();
    let mut by_task: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut retries: HashMap<String, Option<crate::spec::Retry>> = HashMap::new();
    let tick = Duration::from_secs(1).min(cfg.poll);
    loop {
        let all = listed(&apps, argo.as_ref());
        let plain = only_apps(&all);
        drift.track(&inventory_kinds(&plain)).await;
        let marked = drift.take();
        let pushed = std::mem::take(&mut *hooked.lock().unwrap_or_else(|e| e.into_inner()));
        woken.extend(parents_of_changed(&plain, &mut app_states));
        woken.extend(drift.take_health_changed());
        for (kind, app) in all {
            let Some(name) = app.metadata.name.clone() else {
                continue;
            };
            if running.contains(&name) || running.len() >= cfg.parallel.max(1) {
                if marked.contains(&name) {
                    drift.mark(&name);
                }
                if pushed.contains(&name) {
                    hooked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone());
                }
                continue;
            }
            let spec = serde_json::to_string(&app.spec).unwrap_or_default();
            let s = seen.entry(name.clone()).or_default();
            if s.spec != spec {
                s.failures = 0;
                s.retry_at = None;
            }
            let retry_due = s.retry_at.is_some_and(|t| Instant::now() >= t);
            // A request the last pass answered stays in this view of the Application until
            // the watch shows its removal: it is not asked again.
            let asked = requests(&app);
            if asked.is_empty() {
                s.answered.clear();
            }
            let new_request = !asked.is_empty() && asked != s.answered;
            let trigger = if new_request && asked.iter().any(|(k, _)| k == SYNC_ANNOTATION) {
                Some(Trigger::Manual)
            } else if new_request {
                Some(Trigger::Refresh)
            } else if pushed.contains(&name) {
                Some(Trigger::Webhook)
            } else if s.spec != spec
                || s.at.is_none_or(|t| t.elapsed() >= cfg.poll)
                || woken.contains(&name)
                || retry_due
            {
                Some(Trigger::Auto)
            } else if marked.contains(&name) {
                Some(Trigger::Drift)
            } else {
                None
            };
            let Some(trigger) = trigger else { continue };
            woken.remove(&name);
            s.spec = spec;
            s.retry_at = None;
            let answered = if matches!(trigger, Trigger::Refresh | Trigger::Manual) {
                s.answered = asked;
                s.answered.clone()
            } else {
                Vec::new()
            };
            running.insert(name.clone());
            let api = kind.api(
                &client,
                app.metadata.namespace.as_deref().unwrap_or_default(),
            );
            let (rctx, task_name) = (rctx.clone(), name.clone());
            let done = passes.clone();
            let policy = retry_policy(&app);
            retries.insert(name.clone(), policy);
            let handle = tasks.spawn(async move {
                let name = task_name;
                let status = reconcile_kind(&rctx, kind, &app, trigger).await;
                if !answered.is_empty() {
                    clear_answered(&api, &name, &answered).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
                status
            });
            by_task.insert(handle.id(), name);
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = lost.cancelled() => {
                tracing::warn!("gitops leadership lost; stopping");
                break;
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, status) = match done {
                    Ok((id, status)) => (id, Some(status)),
                    Err(e) => {
                        tracing::error!(error = %e, "a sync pass failed");
                        (e.id(), None)
                    }
                };
                if let Some(name) = by_task.remove(&id) {
                    running.remove(&name);
                    let policy = retries.remove(&name).flatten();
                    if let Some(s) = seen.get_mut(&name) {
                        s.at = Some(Instant::now());
                        if status.as_ref().is_some_and(failed) {
                            s.failures += 1;
                            s.retry_at = policy
                                .filter(|p| p.limit.is_none_or(|l| s.failures <= l))
                                .map(|p| Instant::now() + p.wait(s.failures));
                            if let Some(at) = s.retry_at {
                                tracing::info!(app = %name, failures = s.failures, in_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64, "retrying a failed sync");
                            }
                        } else {
                            s.failures = 0;
                            s.retry_at = None;
                        }
                    }
                }
            }
            _ = watches.changed() => {}
            // (A closed channel disables this branch rather than waking the loop.)
            Ok(()) = app_changes.changed() => {}
            _ = drifted.notified() => {}
            _ = hook_notify.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
    tasks.shutdown().await;
    if !lost.is_cancelled() {
        leader::release(&client, &cfg.namespace, LEASE, &me).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, health: &str, children: &[&str]) -> Arc<Application> {
        let v = serde_json::json!({
            "apiVersion": "metalgate.io/v1beta1", "kind": "Application",
            "metadata": {"name": name, "namespace": "metalgate-system"},
            "spec": {"source": {"repoURL": "file:///r", "path": "."}, "destination": {}},
            "status": {
                "sync": {"status": "Synced"}, "health": {"status": health},
                "resources": children.iter().map(|c| serde_json::json!({
                    "group": "metalgate.io", "version": "v1beta1", "kind": "Application",
                    "namespace": "metalgate-system", "name": c})).collect::<Vec<_>>(),
            },
        });
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn a_child_whose_health_changes_wakes_its_parent_only() {
        let mut last = HashMap::new();
        let before = [
            app("root", "Progressing", &["podinfo"]),
            app("podinfo", "Progressing", &[]),
            app("other", "Healthy", &[]),
        ];
        assert!(
            parents_of_changed(&before, &mut last).is_empty(),
            "the first look is no change"
        );
        let after = [
            app("root", "Progressing", &["podinfo"]),
            app("podinfo", "Healthy", &[]),
            app("other", "Healthy", &[]),
        ];
        assert_eq!(
            parents_of_changed(&after, &mut last),
            HashSet::from(["root".to_string()])
        );
        assert!(
            parents_of_changed(&after, &mut last).is_empty(),
            "once per change"
        );
    }
}
