//! The reconciler: one Application, one pass, as a recipe over the pure stages —
//! validate the spec → resolve the revision (refs only) → fetch when it moved → check it out →
//! render → place and dry-run (all or nothing) → compare → plan → apply wave by wave → prune →
//! health → status. Every step that fails leaves the cluster as it was and says why in a
//! condition naming the file, object and field.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use metalgate_k8s::crd::{
    Application, ApplicationCondition, ApplicationStatus, HealthStatus, OperationState,
    ResourceHealth, ResourceStatus, RevisionHistory, SyncStatus,
};
use serde_json::json;

use crate::applier::{Applied, Applier, FIELD_MANAGER};
use crate::context::join;
use crate::health::{self, State};
use crate::kinds::AppKind;
use crate::live::LiveFacts;
use crate::object::{Manifest, ObjRef, split_api_version};
use crate::plan::{self, Owned};
use crate::source::{Failure, checkout, fail, render_checkout};
use crate::spec::AppConfig;

pub use crate::context::{Context, DriftCounters};

/// Why a pass was started (recorded in history as ArgoCD's `initiatedBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The poll, or a change of the Application.
    Auto,
    /// A webhook for its repository.
    Webhook,
    /// The refresh annotation.
    Refresh,
    /// `metalgate gitops sync` (syncs even without `automated`).
    Manual,
    /// A tracked object changed in the cluster: compared with the revision already synced
    /// (no round-trip to the Git host).
    Drift,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Auto => "auto",
            Trigger::Webhook => "webhook",
            Trigger::Refresh => "refresh",
            Trigger::Manual => "cli",
            Trigger::Drift => "drift",
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

fn condition(type_: &str, message: impl Into<String>) -> ApplicationCondition {
    ApplicationCondition {
        type_: type_.into(),
        message: message.into(),
        last_transition_time: Some(now()),
    }
}

/// One pass over `app` (a metalgate.io Application); returns the status it wrote.
pub async fn reconcile(ctx: &Context, app: &Application, trigger: Trigger) -> ApplicationStatus {
    reconcile_kind(ctx, AppKind::Metalgate, app, trigger).await
}

/// One pass over `app`, an Application of `kind`; returns the status it wrote (or, when the
/// Application cannot be read, one it did not write, with a `ComparisonError`).
pub async fn reconcile_kind(
    ctx: &Context,
    kind: AppKind,
    app: &Application,
    trigger: Trigger,
) -> ApplicationStatus {
    let name = app.metadata.name.clone().unwrap_or_default();
    let ns = app.metadata.namespace.clone().unwrap_or_default();
    // The Application as it is now, not as the caller's cache last saw it: a pass that started
    // from a status older than the previous pass's write would write that old history back.
    // metalgate's cached Applications are compacted (no inventory): a pass never starts from
    // one, as the status it writes would lose the inventory. ArgoCD's are cached whole.
    let mut fresh = match kind.api(&ctx.client, &ns).get_opt(&name).await {
        Ok(Some(a)) => match crate::kinds::read(a) {
            Ok(a) => a,
            Err(e) if kind == AppKind::Argo => {
                tracing::warn!(app = %name, error = %e, "the Application does not read as one; using the cached one");
                app.clone()
            }
            Err(e) => return unread(app, format!("the Application does not read as one: {e}")),
        },
        Ok(None) => return app.status.clone().unwrap_or_default(),
        Err(e) => return unread(app, format!("reading the Application failed: {e}")),
    };
    // The status is taken out, not copied: it lists every object of the app.
    let previous = fresh.status.take().unwrap_or_default();
    let app = &fresh;
    let status = match pass(ctx, kind, &name, app, &previous, trigger).await {
        Ok(s) => s,
        Err(failure) => {
            // Nothing changed in the cluster: keep what was known, add why.
            let mut s = previous.clone();
            s.conditions.retain(|c| c.type_.ends_with("Warning"));
            s.conditions.push(condition(failure.kind, failure.message));
            if s.sync.is_none() {
                s.sync = Some(SyncStatus {
                    status: "Unknown".into(),
                    revision: None,
                });
            }
            s.reconciled_at = Some(now());
            s
        }
    };
    write_status(ctx, kind, &ns, &name, &status).await;
    status
}

/// A pass that could not read its Application: nothing is done or written; the cached status
/// with a `ComparisonError` is returned so that the app's retry policy applies.
fn unread(app: &Application, why: String) -> ApplicationStatus {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    tracing::warn!(app = %name, error = %why, "skipping a pass");
    let mut s = app.status.clone().unwrap_or_default();
    s.conditions.push(condition("ComparisonError", why));
    s
}

async fn write_status(
    ctx: &Context,
    kind: AppKind,
    ns: &str,
    name: &str,
    status: &ApplicationStatus,
) {
    let api = kind.api(&ctx.client, ns);
    let patch = json!({
        "apiVersion": kind.api_version(),
        "kind": "Application",
        "status": status,
    });
    if let Err(e) = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
    {
        tracing::warn!(app = %name, error = %e, "could not write the Application's status");
    }
}

/// A manifest's apiVersion.
fn api_version(m: &Manifest) -> String {
    m.object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn api_version_of(r: &ResourceStatus) -> String {
    if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    }
}

pub(crate) fn obj_ref_of(r: &ResourceStatus) -> ObjRef {
    ObjRef {
        group: r.group.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    }
}

async fn pass(
    ctx: &Context,
    kind: AppKind,
    name: &str,
    app: &Application,
    previous: &ApplicationStatus,
    trigger: Trigger,
) -> Result<ApplicationStatus, Failure> {
    let cfg = AppConfig::from_spec(name, &app.spec)
        .map_err(|errs| fail("InvalidSpecError", join(&errs)))?;
    let started = now();
    let app_ns = app.metadata.namespace.clone().unwrap_or_default();
    let synced = previous.sync.as_ref().and_then(|s| s.revision.as_deref());
    let known = synced.filter(|_| trigger == Trigger::Drift);
    let (commit, root) = checkout(ctx, &cfg, &app_ns, known).await?;
    let (source_type, mut desired) = render_checkout(name, &cfg, &root).await?;

    // An app-of-apps root usually holds its own Application: never wait on or judge itself.
    let me = ObjRef {
        group: kind.group().into(),
        kind: "Application".into(),
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        name: name.to_string(),
    };
    let mut applier = Applier::new(ctx.client.clone());
    let dest_ns = cfg.namespace.clone().unwrap_or_else(|| "default".into());
    let placed = applier.place(&mut desired, &dest_ns).await;
    if !placed.is_empty() {
        return Err(fail("ComparisonError", join(&placed)));
    }
    let coming =
        crate::source::coming_namespaces(&desired, cfg.create_namespace.then_some(&*dest_ns));
    let dry = applier.dry_run(name, &desired, &coming).await;
    if !dry.is_empty() {
        return Err(fail("ComparisonError", join(&dry)));
    }

    // Compare.
    let owned: Vec<Owned> = previous
        .resources
        .iter()
        .map(|r| Owned {
            obj: obj_ref_of(r),
            wave: r.sync_wave.unwrap_or(0),
            created_namespace: r.created_namespace,
        })
        .collect();
    // Each object Git asks for or the app owned, read once and judged as it arrives (owner,
    // resourceVersion, the fields off Git): the pass keeps those facts, not the objects.
    let mut wanted: HashMap<ObjRef, &Manifest> = HashMap::new();
    for m in &desired {
        wanted.entry(m.obj_ref()).or_insert(m);
    }
    let mut refs: Vec<(ObjRef, String)> = desired
        .iter()
        .map(|m| (m.obj_ref(), api_version(m)))
        .collect();
    refs.extend(
        previous
            .resources
            .iter()
            .map(|r| (obj_ref_of(r), api_version_of(r)))
            .filter(|(r, _)| !wanted.contains_key(r)),
    );
    let live: HashMap<ObjRef, LiveFacts> = applier
        .live_with(&refs, |r, l| {
            let git = wanted.get(r).map(|m| &m.object);
            LiveFacts::of(name, git, &l, FIELD_MANAGER)
        })
        .await;
    drop(refs);
    // Missing, off Git, or not yet tracked by any app (adopting it takes an apply).
    let out_of_sync = |m: &Manifest| {
        live.get(&m.obj_ref())
            .is_none_or(|l| !l.in_sync() || l.owner == crate::tracking::Owner::Nobody)
    };
    let plan = plan::plan(&cfg.plan, &desired, &owned, &live)
        .map_err(|errs| fail("ComparisonError", join(&errs)))?;
    let needs_sync = desired.iter().any(out_of_sync) || !plan.prune.is_empty();
    let synced_revision = previous.sync.as_ref().and_then(|s| s.revision.clone());
    let new_revision = synced_revision.as_deref() != Some(&commit.sha);
    // As ArgoCD: auto-sync follows a new commit that changes what the app's objects should be
    // (a commit that leaves them as they are moves the revision without a sync or a history
    // entry); a change made in the cluster is reverted only with selfHeal (else the app is
    // OutOfSync and the diff says what differs).
    let paused = app
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crate::kinds::PAUSE_ANNOTATION));
    let healing = cfg.automated && cfg.self_heal && !paused && !new_revision && needs_sync;
    let was_synced = previous.sync.as_ref().is_some_and(|s| s.status == "Synced");
    if needs_sync && !new_revision && was_synced {
        ctx.drift.detected.fetch_add(1, Ordering::Relaxed);
    }
    let should_sync = match trigger {
        Trigger::Manual => true,
        _ => cfg.automated && ((new_revision && needs_sync) || healing),
    };
    let drift: Vec<String> = if healing {
        desired
            .iter()
            .filter_map(|m| live.get(&m.obj_ref()).map(|l| (m, l)))
            .flat_map(|(m, l)| {
                l.mismatches
                    .iter()
                    .map(move |x| format!("{}: {x}", m.obj_ref()))
            })
            .chain(
                desired
                    .iter()
                    .filter(|m| !live.contains_key(&m.obj_ref()))
                    .map(|m| format!("{}: deleted", m.obj_ref())),
            )
            .collect()
    } else {
        Vec::new()
    };

    let mut conditions: Vec<ApplicationCondition> = cfg
        .warnings
        .iter()
        .map(|w| condition("UnsupportedFieldWarning", w.to_string()))
        .collect();
    for h in &plan.held {
        conditions.push(condition(h.condition_type(), h.to_string()));
    }

    let mut entry = RevisionHistory {
        id: previous.history.last().map_or(1, |h| h.id + 1),
        revision: commit.sha.clone(),
        author: Some(commit.author.clone()),
        message: Some(commit.summary.clone()),
        deploy_started_at: Some(started.clone()),
        initiated_by: Some(
            if healing {
                "self-heal"
            } else {
                trigger.as_str()
            }
            .into(),
        ),
        reverted: drift.clone(),
        ..Default::default()
    };
    let mut created_ns = false;
    let mut operation = previous.operation_state.clone();
    let mut sync_error = None;
    if should_sync {
        if cfg.create_namespace {
            match applier.ensure_namespace(&dest_ns).await {
                Ok(c) => created_ns = c,
                Err(e) => sync_error = Some(format!("namespace {dest_ns}: {e}")),
            }
        }
        let last = plan.stages.len().saturating_sub(1);
        'stages: for (i, stage) in plan.stages.iter().enumerate() {
            let applied = applier.apply_all(name, &stage.objects, &live).await;
            let mut failed = Vec::new();
            for (m, result) in stage.objects.iter().zip(applied) {
                match result {
                    Ok(Applied::Created) => entry.created.push(m.obj_ref().to_string()),
                    Ok(Applied::Updated) => entry.updated.push(m.obj_ref().to_string()),
                    Ok(Applied::Unchanged) => {}
                    Err(e) => failed.push(e),
                }
            }
            if !failed.is_empty() {
                sync_error = Some(join(&failed));
                break 'stages;
            }
            // As ArgoCD: a wave waits for the one before it to be healthy; the last one is
            // not waited for (its health is reported, not awaited), nor is the app itself.
            let waited: Vec<&Manifest> = stage
                .objects
                .iter()
                .copied()
                .filter(|m| m.obj_ref() != me)
                .collect();
            if stage.wave.is_none() {
                applier.rediscover();
            } else if i < last && !wait_healthy(&mut applier, &waited, ctx.wave_timeout).await {
                sync_error = Some(format!(
                    "wave {} did not turn healthy within {:?}; later waves wait",
                    stage.wave.unwrap_or(0),
                    ctx.wave_timeout
                ));
                break;
            }
        }
        if sync_error.is_none() {
            for (r, av) in plan.prune.iter().map(|r| {
                let av = previous
                    .resources
                    .iter()
                    .find(|x| obj_ref_of(x) == *r)
                    .map(api_version_of)
                    .unwrap_or_default();
                (r, av)
            }) {
                match applier.delete(r, &av).await {
                    Ok(()) => entry.pruned.push(r.to_string()),
                    Err(e) => sync_error = Some(format!("prune {r}: {e}")),
                }
            }
        }
        let finished = now();
        operation = Some(OperationState {
            phase: if sync_error.is_some() {
                "Failed"
            } else {
                "Succeeded"
            }
            .into(),
            message: Some(sync_error.clone().unwrap_or_else(|| {
                format!(
                    "successfully synced (created {}, updated {}, pruned {})",
                    entry.created.len(),
                    entry.updated.len(),
                    entry.pruned.len()
                )
            })),
            revision: Some(commit.sha.clone()),
            started_at: Some(started.clone()),
            finished_at: Some(finished.clone()),
            retry_count: None,
        });
        entry.deployed_at = finished;
    }
    if let Some(e) = &sync_error {
        conditions.push(condition("SyncError", e.clone()));
    }
    if should_sync && sync_error.is_none() {
        ctx.drift
            .reverted
            .fetch_add(drift.len() as u64, Ordering::Relaxed);
    }
    if should_sync {
        use kube::Resource;
        use kube::runtime::events::EventType;
        let mut me_ref = app.object_ref(&());
        me_ref.api_version = Some(kind.api_version().into());
        let (type_, reason, note) = match &sync_error {
            Some(e) => (
                EventType::Warning,
                "SyncFailed",
                format!("sync to {} failed: {e}", short(&commit.sha)),
            ),
            None if !drift.is_empty() => (
                EventType::Normal,
                "DriftReverted",
                format!(
                    "reverted to Git ({}): {}",
                    short(&commit.sha),
                    drift.join("; ")
                ),
            ),
            None => (
                EventType::Normal,
                "Synced",
                format!(
                    "synced to {} \"{}\" by {}: created {}, updated {}, pruned {}",
                    short(&commit.sha),
                    commit.summary,
                    commit.author,
                    entry.created.len(),
                    entry.updated.len(),
                    entry.pruned.len()
                ),
            ),
        };
        metalgate_k8s::reflect::publish(&ctx.recorder, &me_ref, type_, reason, "Sync", note).await;
    }

    // Health and inventory, read back after the sync.
    let mut resources = Vec::new();
    let mut states = Vec::new();
    let mut any_out_of_sync = false;
    let desired_refs: Vec<(ObjRef, String)> = desired
        .iter()
        .map(|m| (m.obj_ref(), api_version(m)))
        .collect();
    // Each object's health and whether it matches Git, judged as it arrives.
    let by_ref: HashMap<ObjRef, &Manifest> = desired.iter().map(|m| (m.obj_ref(), m)).collect();
    let after = applier
        .live_with(&desired_refs, |r, l| {
            let in_sync = by_ref
                .get(r)
                .is_some_and(|m| crate::diff::differences(&m.object, &l).is_empty());
            (health::of(&l), in_sync)
        })
        .await;
    for m in &desired {
        let r = m.obj_ref();
        let (h, in_sync) = match after.get(&r) {
            _ if r == me => (None, after.get(&r).is_some_and(|(_, s)| *s)),
            Some((h, s)) => (h.clone(), *s),
            None => (Some(health::missing()), false),
        };
        if let Some(h) = &h {
            states.push(h.state);
        }
        any_out_of_sync |= !in_sync;
        let av = api_version(m);
        let (_, version) = split_api_version(&av);
        resources.push(ResourceStatus {
            group: r.group.clone(),
            version: version.to_string(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            status: Some(if in_sync { "Synced" } else { "OutOfSync" }.into()),
            health: h.map(|h| ResourceHealth {
                status: h.state.to_string(),
                message: (!h.message.is_empty()).then_some(h.message),
            }),
            sync_wave: plan::wave_of(&m.object).ok(),
            created_namespace: false,
        });
    }
    // Objects kept from earlier syncs (prune off or guarded) stay in the inventory.
    let listed: std::collections::HashSet<ObjRef> = resources.iter().map(obj_ref_of).collect();
    let pruned: std::collections::HashSet<&String> = entry.pruned.iter().collect();
    for r in &previous.resources {
        let kept = plan.held.iter().any(|h| match h {
            plan::Held::PruneDisabled { obj } | plan::Held::PruneFalse { obj } => {
                *obj == obj_ref_of(r)
            }
            plan::Held::EmptyNotAllowed { .. } | plan::Held::MassPrune { .. } => true,
            _ => false,
        }) && !listed.contains(&obj_ref_of(r))
            && !pruned.contains(&obj_ref_of(r).to_string());
        if kept || (r.created_namespace && !listed.contains(&obj_ref_of(r))) {
            let mut r = r.clone();
            if !r.created_namespace {
                r.status = Some("OutOfSync".into());
                any_out_of_sync = true;
            }
            resources.push(r);
        }
    }
    if created_ns {
        resources.push(ResourceStatus {
            version: "v1".into(),
            kind: "Namespace".into(),
            name: dest_ns.clone(),
            created_namespace: true,
            ..Default::default()
        });
    }
    let worst = health::worst(states.iter().copied());
    let worst_message = resources
        .iter()
        .filter_map(|r| r.health.as_ref().map(|h| (r, h)))
        .find(|(_, h)| State::parse(&h.status) == worst && worst != State::Healthy)
        .map(|(r, h)| {
            format!(
                "{}: {}",
                obj_ref_of(r),
                h.message.clone().unwrap_or_else(|| h.status.clone())
            )
        });

    let mut history = previous.history.clone();
    if should_sync && sync_error.is_none() {
        history.push(entry);
        let keep = cfg.history_limit.max(1);
        if history.len() > keep {
            history.drain(..history.len() - keep);
        }
    }
    Ok(ApplicationStatus {
        sync: Some(SyncStatus {
            status: if any_out_of_sync {
                "OutOfSync"
            } else {
                "Synced"
            }
            .into(),
            revision: Some(commit.sha.clone()),
        }),
        health: Some(HealthStatus {
            status: worst.to_string(),
            message: worst_message,
        }),
        operation_state: operation,
        resources,
        history,
        conditions,
        reconciled_at: Some(now()),
        source_type: Some(source_type.to_string()),
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// Wait until every object of a wave that has a health is Healthy (or Suspended), or time out.
async fn wait_healthy(applier: &mut Applier, objects: &[&Manifest], timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut ok = true;
        for m in objects {
            let av = m.object["apiVersion"].as_str().unwrap_or_default();
            let state = match applier.live(&m.obj_ref(), av).await {
                Ok(Some(l)) => health::of(&l).map(|h| h.state),
                _ => Some(State::Missing),
            };
            if state.is_some_and(|s| s > State::Suspended) {
                ok = false;
                break;
            }
        }
        if ok {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
