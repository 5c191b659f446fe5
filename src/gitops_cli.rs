//! `metalgate gitops list|status|history|diff|refresh|sync|validate`: what `argocd app list|
//! get|history|diff|sync` show and do, read from and written to the Application objects — the
//! module itself (`metalgate gitops run`) does the work; `diff` reads Git and the cluster.
//! Applications of both kinds are shown and driven (`argoproj.io` ones where the module
//! reconciles them, `--gitops-argo-applications`), a name resolving as the module resolves it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use metalgate_gitops::kinds::AppKind;
use metalgate_k8s::crd::Application;

use crate::cli::{GitopsCommand, Target};

/// The annotation that asks the module for a sync now (cleared when the pass starts).
pub const SYNC_ANNOTATION: &str = metalgate_gitops::runner::SYNC_ANNOTATION;

async fn client(t: &Target) -> anyhow::Result<kube::Client> {
    Ok(match &t.kubeconfig {
        Some(k) => metalgate_k8s::client::from_kubeconfig(k).await?,
        None => metalgate_k8s::client::infer().await?,
    })
}

/// Whether an error says the kind is not served (no ArgoCD Applications here).
fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The Applications of `namespace` the module reconciles, as it picks them: metalgate's, then
/// ArgoCD's (where their CRD is served) whose names no metalgate Application has taken.
async fn list_apps(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<Application>> {
    let mut apps = Vec::new();
    for kind in [AppKind::Metalgate, AppKind::Argo] {
        let items = match kind.api(client, namespace).list(&Default::default()).await {
            Ok(l) => l.items,
            Err(e) if kind == AppKind::Argo && not_served(&e) => Vec::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("listing {} Applications", kind.group()));
            }
        };
        for o in items {
            let a = read(o, kind)?;
            if !apps
                .iter()
                .any(|b: &Application| b.metadata.name == a.metadata.name)
            {
                apps.push(a);
            }
        }
    }
    apps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(apps)
}

fn read(o: DynamicObject, kind: AppKind) -> anyhow::Result<Application> {
    let name = o.metadata.name.clone().unwrap_or_default();
    metalgate_gitops::kinds::read(o)
        .with_context(|| format!("{} Application {name} does not read", kind.group()))
}

/// One Application by name, metalgate's first, then ArgoCD's, with the API it lives in.
async fn find_app(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(Api<DynamicObject>, Application)> {
    for kind in [AppKind::Metalgate, AppKind::Argo] {
        let api = kind.api(client, namespace);
        match api.get_opt(name).await {
            Ok(Some(o)) => return Ok((api, read(o, kind)?)),
            Ok(None) => {}
            Err(e) if kind == AppKind::Argo && not_served(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("Application {name}")),
        }
    }
    bail!("Application {name} not found in namespace {namespace} (metalgate.io or argoproj.io)")
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Rows of cells as an aligned table, as kubectl prints.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sync_health(app: &Application) -> (String, String, String) {
    let s = app.status.clone().unwrap_or_default();
    let sync = s
        .sync
        .as_ref()
        .map(|x| x.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let health = s
        .health
        .as_ref()
        .map(|x| x.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let rev = s
        .sync
        .as_ref()
        .and_then(|x| x.revision.clone())
        .unwrap_or_default();
    (sync, health, rev)
}

/// `list`: one row per Application.
pub fn render_list(apps: &[Application]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "SYNC".into(),
        "HEALTH".into(),
        "REVISION".into(),
        "LAST SYNC".into(),
        "MESSAGE".into(),
    ]];
    for a in apps {
        let (sync, health, rev) = sync_health(a);
        let last = a.status.as_ref().and_then(|s| s.history.last());
        rows.push(vec![
            a.metadata.name.clone().unwrap_or_default(),
            sync,
            health,
            short(&rev).to_string(),
            last.map(|h| h.deployed_at.clone()).unwrap_or_default(),
            last.and_then(|h| h.message.as_deref().map(first_line).map(str::to_string))
                .unwrap_or_default(),
        ]);
    }
    table(&rows)
}

/// `status`: an Application in words, then its objects.
pub fn render_status(app: &Application) -> String {
    let (sync, health, rev) = sync_health(app);
    let s = app.status.clone().unwrap_or_default();
    let src = &app.spec.source;
    let mut out = format!(
        "Name:       {}\nSource:     {} @ {} path {}\nSync:       {sync} at {}\nHealth:     {health}\n",
        app.metadata.name.clone().unwrap_or_default(),
        src.repo_url,
        src.target_revision.clone().unwrap_or_else(|| "HEAD".into()),
        src.path.clone().unwrap_or_else(|| ".".into()),
        short(&rev),
    );
    if let Some(op) = &s.operation_state {
        out.push_str(&format!(
            "Last sync:  {} — {}\n",
            op.phase,
            op.message.clone().unwrap_or_default()
        ));
    }
    for c in &s.conditions {
        out.push_str(&format!("Condition:  {}: {}\n", c.type_, c.message));
    }
    let mut rows = vec![vec![
        "KIND".to_string(),
        "NAMESPACE".into(),
        "NAME".into(),
        "SYNC".into(),
        "HEALTH".into(),
    ]];
    for r in &s.resources {
        rows.push(vec![
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.status.clone().unwrap_or_default(),
            r.health
                .as_ref()
                .map(|h| h.status.clone())
                .unwrap_or_default(),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    out
}

/// `history`: newest first.
pub fn render_history(app: &Application) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "DATE".into(),
        "REVISION".into(),
        "BY".into(),
        "AUTHOR".into(),
        "MESSAGE".into(),
        "CHANGES".into(),
    ]];
    let history = app
        .status
        .as_ref()
        .map(|s| s.history.clone())
        .unwrap_or_default();
    for h in history.iter().rev() {
        let mut changes = Vec::new();
        for (what, list) in [
            ("created", &h.created),
            ("updated", &h.updated),
            ("pruned", &h.pruned),
            ("reverted", &h.reverted),
        ] {
            if !list.is_empty() {
                changes.push(format!("{what} {}", list.len()));
            }
        }
        rows.push(vec![
            h.id.to_string(),
            h.deployed_at.clone(),
            short(&h.revision).to_string(),
            h.initiated_by.clone().unwrap_or_default(),
            h.author.clone().unwrap_or_default(),
            first_line(h.message.as_deref().unwrap_or_default()).to_string(),
            changes.join(", "),
        ]);
    }
    table(&rows)
}

/// Set `annotation` on the Application and wait (at most a minute) until the module removes
/// it, which it does when the pass that answered it has ended (and its status is written).
async fn ask(
    api: &Api<DynamicObject>,
    name: &str,
    annotation: &str,
) -> anyhow::Result<Application> {
    let patch = serde_json::json!({"metadata": {"annotations": {annotation: jiff::Timestamp::now().to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Application {name}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metalgate_gitops::kinds::read(api.get(name).await?)?;
        let pending = now
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotation));
        if !pending {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!(
                "Application {name}: the GitOps module did not answer {annotation} within a minute — is `metalgate gitops run` (or the gitops component) running?"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Check a directory as the module would before a sync: rendered as a pass renders it, then
/// placed and dry-run (schemas of built-in kinds and of served CRDs, names, namespaces) against
/// `kubeconfig`'s cluster, or offline against a throwaway embedded store.
pub async fn validate(
    path: &Path,
    recurse: bool,
    kubeconfig: Option<&Path>,
    namespace: &str,
) -> anyhow::Result<Result<usize, Vec<String>>> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let root = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    if let Some(k) = kubeconfig {
        let client = metalgate_k8s::client::from_kubeconfig(k).await?;
        return Ok(
            metalgate_gitops::source::validate(client, root, &name, recurse, namespace).await,
        );
    }
    let dir = std::env::temp_dir().join(format!("metalgate-validate-{}", std::process::id()));
    let mut cfg = metalgate_apiserver::Config::new(&dir);
    cfg.listen = "127.0.0.1:0".parse()?;
    let server = metalgate_apiserver::ApiServer::start(cfg).await?;
    let result = async {
        let client = metalgate_k8s::client::from_kubeconfig_str(&server.kubeconfig(None)).await?;
        let crds = metalgate_k8s::crd::yaml()?;
        let (docs, errors) = metalgate_k8s::manifests::parse(Path::new("<built-in CRDs>"), &crds);
        anyhow::ensure!(errors.is_empty(), "metalgate's CRDs: {errors:?}");
        let report = metalgate_k8s::manifests::apply(&client, &docs, "metalgate").await;
        anyhow::ensure!(
            report.errors.is_empty(),
            "metalgate's CRDs: {:?}",
            report.errors
        );
        Ok(metalgate_gitops::source::validate(client, root, &name, recurse, namespace).await)
    }
    .await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Run a `metalgate gitops` command.
pub async fn dispatch(cmd: GitopsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        // The module itself is started where the other components are (`crate::commands`).
        GitopsCommand::Run(_) => bail!("`metalgate gitops run` is not a client command"),
        GitopsCommand::List(t) => {
            let apps = list_apps(&client(&t).await?, &t.namespace).await?;
            println!("{}", render_list(&apps));
            Ok(ExitCode::SUCCESS)
        }
        GitopsCommand::Status(n) => {
            let (_, app) =
                find_app(&client(&n.target).await?, &n.target.namespace, &n.name).await?;
            println!("{}", render_status(&app));
            Ok(ExitCode::SUCCESS)
        }
        GitopsCommand::Diff(n) => {
            let client = client(&n.target).await?;
            let (_, app) = find_app(&client, &n.target.namespace, &n.name).await?;
            // Git data for this one comparison only.
            let dir = std::env::temp_dir().join(format!("metalgate-diff-{}", std::process::id()));
            let ctx = metalgate_gitops::reconciler::Context::new(client, &dir);
            let result = metalgate_gitops::compare::diff(&ctx, &app).await;
            let _ = std::fs::remove_dir_all(&dir);
            match result {
                Ok(d) => {
                    print!("{}", d.render());
                    Ok(if d.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => {
                    eprintln!("{}: {e}", n.name);
                    Ok(ExitCode::from(2))
                }
            }
        }
        GitopsCommand::History(n) => {
            let (_, app) =
                find_app(&client(&n.target).await?, &n.target.namespace, &n.name).await?;
            println!("{}", render_history(&app));
            Ok(ExitCode::SUCCESS)
        }
        GitopsCommand::Refresh(n) => {
            let (api, _) =
                find_app(&client(&n.target).await?, &n.target.namespace, &n.name).await?;
            let app = ask(
                &api,
                &n.name,
                metalgate_gitops::runner::REFRESH_ANNOTATIONS[0],
            )
            .await?;
            println!("{}", render_status(&app));
            Ok(ExitCode::SUCCESS)
        }
        GitopsCommand::Sync(n) => {
            let (api, _) =
                find_app(&client(&n.target).await?, &n.target.namespace, &n.name).await?;
            let app = ask(&api, &n.name, SYNC_ANNOTATION).await?;
            println!("{}", render_status(&app));
            let failed = app
                .status
                .as_ref()
                .and_then(|s| s.operation_state.as_ref())
                .is_some_and(|o| o.phase == "Failed");
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        GitopsCommand::Validate {
            path,
            recurse,
            kubeconfig,
            namespace,
        } => match validate(&path, recurse, kubeconfig.as_deref(), &namespace).await? {
            Ok(n) => {
                println!("{}: {n} object(s), all valid", path.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
