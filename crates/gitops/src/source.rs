//! Where a pass starts: the revision's commit checked out (credentials from repository
//! Secrets, ssh known hosts from their ConfigMap, one fetch per repository) and the app's path
//! rendered as a directory, a kustomization or a Helm chart. Every failure is a [`Failure`]
//! naming what went wrong; nothing here writes to the cluster.

use std::path::{Path, PathBuf};

use kube::api::Api;

use crate::context::{Context, join};
use crate::git::{self, CommitInfo};
use crate::object::Manifest;
use crate::render::{self, SourceType};
use crate::spec::AppConfig;

/// Why a pass stopped before it changed anything: a condition type and its message.
pub(crate) struct Failure {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

pub(crate) fn fail(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, git::GitError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| fail("ComparisonError", e.to_string())),
        Err(e) => Err(fail("ComparisonError", e.to_string())),
    }
}

/// The revision's commit, checked out: (sha, commit facts, checkout directory).
/// The credentials for `url` from the repository Secrets in `namespace` (none when there is
/// no matching Secret, or the module may not list Secrets there).
async fn credentials(
    ctx: &Context,
    namespace: &str,
    url: &str,
) -> Result<Option<git::Credentials>, Failure> {
    let api: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.client.clone(), namespace);
    let mut secrets = Vec::new();
    for label in crate::repo_creds::TYPE_LABELS {
        match api
            .list(&kube::api::ListParams::default().labels(label))
            .await
        {
            Ok(l) => secrets.extend(l.items),
            Err(e) => tracing::debug!(error = %e, "listing repository Secrets failed"),
        }
    }
    let mut creds =
        crate::repo_creds::find(&secrets, url).map_err(|e| fail("ComparisonError", e))?;
    if git::is_ssh(url) {
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(ctx.client.clone(), namespace);
        let mut hosts = String::new();
        for name in crate::repo_creds::KNOWN_HOSTS_CONFIGMAPS {
            match cms.get_opt(name).await {
                Ok(Some(cm)) => {
                    if let Some(h) = cm.data.as_ref().and_then(|d| d.get("ssh_known_hosts")) {
                        hosts.push_str(h);
                        hosts.push('\n');
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, configmap = name, "reading known hosts failed")
                }
            }
        }
        if !hosts.trim().is_empty() {
            creds.get_or_insert_with(Default::default).ssh_known_hosts = Some(hosts);
        }
        if creds.as_ref().is_some_and(|c| c.insecure) {
            tracing::warn!(
                url,
                "ssh host keys are not checked for this repository (its Secret says insecure)"
            );
        }
    }
    Ok(creds)
}

pub(crate) async fn checkout(
    ctx: &Context,
    cfg: &AppConfig,
    namespace: &str,
    known: Option<&str>,
) -> Result<(CommitInfo, PathBuf), Failure> {
    let creds = credentials(ctx, namespace, &cfg.repo_url).await?;
    // A commit already resolved and in the cache (a drift pass heals to what was synced, as
    // ArgoCD's self-heal does): no round-trip to the remote, so a hand edit is reverted even
    // while the Git host is slow or down. New commits come with the next poll or webhook.
    let cached = match known {
        Some(sha) => {
            let (cache, url, sha) = (ctx.cache.clone(), cfg.repo_url.clone(), sha.to_string());
            blocking(move || Ok(cache.has_commit(&url, &sha).then_some(sha))).await?
        }
        None => None,
    };
    let (sha, full) = match cached {
        Some(sha) => (sha, false),
        None => {
            let resolved = resolve(ctx, cfg, namespace, creds.clone()).await?;
            let full = resolved.via.is_none();
            (resolved.sha, full)
        }
    };
    let dir = ctx.checkouts.join(&sha);
    let target = dir.clone();
    let (cache, url) = (ctx.cache.clone(), cfg.repo_url.clone());
    let info = blocking(move || {
        let writer = cache.writer(&url);
        let _one_at_a_time = writer.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.has_commit(&url, &sha) {
            cache.fetch(&url, creds.as_ref(), full)?;
        }
        if !target.exists() {
            let tmp = target.with_extension("partial");
            let _ = std::fs::remove_dir_all(&tmp);
            cache.checkout(&url, &sha, &tmp)?;
            std::fs::rename(&tmp, &target).map_err(|e| git::GitError::Cache {
                path: target.display().to_string(),
                message: e.to_string(),
            })?;
        }
        cache.commit_info(&url, &sha)
    })
    .await?;
    Ok((info, dir))
}

/// Render the app's path of a checkout.
pub(crate) async fn render_checkout(
    name: &str,
    cfg: &AppConfig,
    root: &Path,
) -> Result<(SourceType, Vec<Manifest>), Failure> {
    let dir = root.join(&cfg.path);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let kind = render::detect(&names, cfg.kustomize, cfg.helm.is_some());
    let rel = cfg.path.to_string_lossy().to_string();
    let bad = |errs: Vec<render::RenderError>| fail("ComparisonError", join(&errs));
    let manifests = match kind {
        SourceType::Directory => {
            render::read_directory(root, &cfg.path, &cfg.directory).map_err(bad)?
        }
        SourceType::Kustomize => {
            let out = tool(
                "kustomize",
                &rel,
                "kubectl",
                &["kustomize".as_ref(), dir.as_os_str()],
            )
            .await?;
            render::parse_documents(&rel, &out).map_err(bad)?
        }
        SourceType::Helm => {
            let helm = cfg.helm.clone().unwrap_or_default();
            let release = if helm.release_name.is_empty() {
                name
            } else {
                &helm.release_name
            };
            let mut args: Vec<std::ffi::OsString> =
                vec!["template".into(), release.into(), dir.clone().into()];
            for f in &helm.value_files {
                args.push("--values".into());
                args.push(dir.join(f).into());
            }
            let mut tmp_files = Vec::new();
            for (i, v) in helm.values.iter().enumerate() {
                let p = root.with_extension(format!("values-{i}.yaml"));
                std::fs::write(&p, v).map_err(|e| fail("ComparisonError", e.to_string()))?;
                args.push("--values".into());
                args.push(p.clone().into());
                tmp_files.push(p);
            }
            let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            let out = tool("helm", &rel, "helm", &args).await;
            for p in tmp_files {
                let _ = std::fs::remove_file(p);
            }
            render::parse_documents(&rel, &out?).map_err(bad)?
        }
    };
    Ok((kind, manifests))
}

async fn tool(
    what: &'static str,
    path: &str,
    program: &str,
    args: &[&std::ffi::OsStr],
) -> Result<String, Failure> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            fail(
                "ComparisonError",
                render::RenderError::Tool {
                    tool: what,
                    path: path.into(),
                    message: format!("cannot run {program}: {e}"),
                }
                .to_string(),
            )
        })?;
    if !out.status.success() {
        return Err(fail(
            "ComparisonError",
            render::RenderError::Tool {
                tool: what,
                path: path.into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespaces a sync makes before the rest: those in the revision, and the destination
/// when the app asks for it (`CreateNamespace=true`) — a dry run must not refuse objects in them.
pub(crate) fn coming_namespaces(desired: &[Manifest], destination: Option<&str>) -> Vec<String> {
    desired
        .iter()
        .filter(|m| m.obj_ref().kind == "Namespace" && m.obj_ref().group.is_empty())
        .map(|m| m.obj_ref().name)
        .chain(destination.map(str::to_string))
        .collect()
}

/// `metalgate gitops validate`: the directory `root/path` rendered as a pass renders it (a
/// directory, a kustomization, a Helm chart), then placed and dry-run against `client` — all or
/// nothing, with a pass's messages (file, document, object, field). The objects' count, or
/// every problem.
pub async fn validate(
    client: kube::Client,
    root: &Path,
    path: &Path,
    recurse: bool,
    namespace: &str,
) -> Result<usize, Vec<String>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "validate".into());
    let spec: metalgate_k8s::crd::ApplicationSpec = serde_json::from_value(serde_json::json!({
        "source": {"repoURL": "file:///validate", "path": path,
                   "directory": {"recurse": recurse}},
        "destination": {"namespace": namespace},
    }))
    .map_err(|e| vec![e.to_string()])?;
    let cfg = AppConfig::from_spec(&name, &spec)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let (_, mut desired) = render_checkout(&name, &cfg, root)
        .await
        .map_err(|f| vec![f.message])?;
    let mut applier = crate::applier::Applier::new(client);
    let placed = applier.place(&mut desired, namespace).await;
    if !placed.is_empty() {
        return Err(placed.iter().map(ToString::to_string).collect());
    }
    let coming = coming_namespaces(&desired, Some(namespace));
    let dry = applier.dry_run(&name, &desired, &coming).await;
    if !dry.is_empty() {
        return Err(dry.iter().map(ToString::to_string).collect());
    }
    Ok(desired.len())
}

/// The remote's refs listed, and `targetRevision` resolved among them.
async fn resolve(
    ctx: &Context,
    cfg: &AppConfig,
    namespace: &str,
    creds: Option<git::Credentials>,
) -> Result<git::Resolved, Failure> {
    let (cache, url, rev, c) = (
        ctx.cache.clone(),
        cfg.repo_url.clone(),
        cfg.revision.clone(),
        creds.clone(),
    );
    blocking(move || {
        let refs = cache.ls_remote(&url, c.as_ref())?;
        git::resolve(&url, &refs, &rev)
    })
    .await
    .map_err(|mut f| {
        if creds.is_none() && f.message.contains("No credentials were returned") {
            f.message = format!(
                "{}: the repository asks for credentials, and no repository Secret in {namespace} matches its URL (labelled argocd.argoproj.io/secret-type: repository, with url, username and password)",
                cfg.repo_url
            );
        }
        f
    })
}
