//! `metalgate run`: the standalone mode, all in one process.
//!
//! 1. the embedded API store (or, with `--api-server` / `--kubeconfig`, someone else's);
//! 2. this machine as a Node, with a heartbeat;
//! 3. the YAML under `--manifests`, server-side applied, every bad document reported;
//! 4. the components named in `--components`, each a task with a client, the node's identity
//!    and a shutdown signal;
//! 5. on SIGTERM or SIGINT, everything stops in reverse order.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use metalgate_apiserver::{ApiServer, Config};
use metalgate_k8s::{Component, ComponentContext, NodeIdentity, client, manifests, node, process};
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;

/// Every component name `--components` accepts, with the component where this build has one.
pub fn components() -> Vec<(&'static str, Option<Component>)> {
    components_with(
        metalgate_proxy::Config::default(),
        metalgate_gitops::runner::Config::default(),
    )
}

/// [`components`], the proxy and the GitOps module configured.
pub fn components_with(
    proxy: metalgate_proxy::Config,
    gitops: metalgate_gitops::runner::Config,
) -> Vec<(&'static str, Option<Component>)> {
    vec![
        (
            metalgate_controller::NAME,
            Some(metalgate_controller::component()),
        ),
        (
            metalgate_gitops::runner::NAME,
            Some(metalgate_gitops::runner::component(gitops)),
        ),
        (
            metalgate_speaker::NAME,
            Some(metalgate_speaker::component()),
        ),
        (
            metalgate_proxy::NAME,
            Some(metalgate_proxy::component(proxy)),
        ),
    ]
}

/// Parse `--components`: `all`, `none`, or a comma-separated list of known names.
pub fn select_components(
    spec: &str,
    proxy: metalgate_proxy::Config,
    gitops: metalgate_gitops::runner::Config,
) -> anyhow::Result<Vec<(&'static str, Option<Component>)>> {
    let known = components_with(proxy, gitops);
    match spec.trim() {
        "all" | "" => return Ok(known),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    let mut out = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match known.iter().find(|(n, _)| *n == name) {
            Some(c) => out.push(c.clone()),
            None => {
                let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                bail!(
                    "--components: unknown component {name:?} (known: {}, or all / none)",
                    names.join(", ")
                );
            }
        }
    }
    Ok(out)
}

/// A kubeconfig for `--api-server`. Without a CA the server's certificate could not be
/// verified: that takes an explicit `--insecure-skip-tls-verify`, never silence.
fn join_kubeconfig(
    url: &str,
    token_file: &Path,
    ca_file: Option<&Path>,
    insecure: bool,
) -> anyhow::Result<String> {
    let tls = match (ca_file, insecure) {
        (Some(ca), _) => {
            let abs =
                std::fs::canonicalize(ca).with_context(|| format!("--ca-file {}", ca.display()))?;
            format!("certificate-authority: {}", abs.display())
        }
        (None, true) => {
            tracing::warn!(
                api_server = url,
                "--insecure-skip-tls-verify: the API server's certificate is NOT verified; anyone on the path can read the token"
            );
            "insecure-skip-tls-verify: true".to_string()
        }
        (None, false) => bail!(
            "--api-server {url} needs --ca-file (the API server's CA certificate, e.g. DATA_DIR/tls/ca.crt of the node that embeds the store), or --insecure-skip-tls-verify to connect without verifying it"
        ),
    };
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("--token-file {}", token_file.display()))?;
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    {tls}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        token.trim()
    ))
}

/// Where the embedded store is reached from this node's network: `--api-listen`, or the
/// node's address when that is a wildcard.
fn embedded_url(args: &RunArgs, server: &ApiServer) -> String {
    let host: IpAddr = if args.api_listen.ip().is_unspecified() {
        args.node_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        args.api_listen.ip()
    };
    format!(
        "https://{}",
        std::net::SocketAddr::new(host, server.local_addr().port())
    )
}

/// The lab's node agent's name in `--components` (`metalgate_agent::NAME`).
const AGENT: &str = "agent";

/// The agent's settings: pods reach the API server where this node does, and trust its CA.
#[cfg(feature = "lab")]
fn agent_config(
    args: &RunArgs,
    server: Option<&ApiServer>,
) -> anyhow::Result<metalgate_agent::Config> {
    let (url, ca) = match (server, &args.api_server) {
        (Some(s), _) => (
            embedded_url(args, s),
            Some(args.data_dir.join("tls").join("ca.crt")),
        ),
        (None, Some(url)) => (url.clone(), args.ca_file.clone()),
        (None, None) => bail!(
            "the agent needs the embedded store or --api-server (a kubeconfig does not say where pods reach the API)"
        ),
    };
    let api = url
        .strip_prefix("https://")
        .and_then(|hp| hp.trim_end_matches('/').rsplit_once(':'))
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
        .with_context(|| format!("the API server URL {url:?} has no host and port"))?;
    // The store signs what it forwards to this node (kubectl logs) with its token, the one this
    // node talks to it with.
    let log_key = match (server, &args.token_file) {
        (Some(s), _) => Some(s.token().to_string()),
        (None, Some(f)) => std::fs::read_to_string(f)
            .ok()
            .map(|t| t.trim().to_string()),
        (None, None) => None,
    };
    Ok(metalgate_agent::Config {
        pod_cidr: args.pod_cidr,
        data_dir: args.data_dir.clone(),
        api: Some(api),
        ca_file: ca,
        namespace: metalgate_k8s::NAMESPACE.into(),
        kubelet_port: args.admin_listen.map(|a| a.port()),
        log_key,
    })
}

/// `metalgate run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    client::install_crypto_provider();
    let gitops = metalgate_gitops::runner::Config {
        data_dir: args.data_dir.clone(),
        poll: args.gitops_poll,
        argo: args.gitops_argo_applications.clone(),
        ..Default::default()
    };
    // The agent is never part of `all`: it runs workloads, which only the lab asks for.
    let mut names: Vec<&str> = args.components.split(',').map(str::trim).collect();
    let with_agent = names.contains(&AGENT);
    names.retain(|n| *n != AGENT);
    let rest = if with_agent && names.iter().all(|n| n.is_empty()) {
        "none".to_string()
    } else {
        names.join(",")
    };
    #[cfg_attr(not(feature = "lab"), allow(unused_mut))]
    let mut selected = select_components(&rest, args.proxy.config()?, gitops)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(process::cancel_on_signal(shutdown.clone()));

    let node = NodeIdentity {
        name: args.node_name.clone().unwrap_or_else(process::hostname),
        ip: args.node_ip,
    };

    // 1. The API server.
    let (kube_client, server, kubeconfig_path) = if let Some(url) = &args.api_server {
        let token = args
            .token_file
            .as_deref()
            .context("--api-server needs --token-file")?;
        let text = join_kubeconfig(
            url,
            token,
            args.ca_file.as_deref(),
            args.insecure_skip_tls_verify,
        )?;
        (client::from_kubeconfig_str(&text).await?, None, None)
    } else if let Some(kc) = &args.kubeconfig {
        (client::from_kubeconfig(kc).await?, None, None)
    } else {
        let mut cfg = Config::new(&args.data_dir);
        cfg.listen = args.api_listen;
        cfg.admission
            .push(std::sync::Arc::new(crate::admission::PoolAdmission));
        if let Some(ip) = args.node_ip {
            cfg.extra_sans.push(ip.to_string());
        }
        cfg.extra_sans.push(node.name.clone());
        let server = ApiServer::start(cfg).await?;
        let url = embedded_url(&args, &server);
        let text = server.kubeconfig(Some(&url));
        let path = args
            .kubeconfig_out
            .clone()
            .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
        metalgate_apiserver::write_kubeconfig(&path, &text)?;
        let c = client::from_kubeconfig_str(&text).await?;
        (c, Some(server), Some(path))
    };

    // 2. This node.
    let mut registered = false;
    for attempt in 1..=20 {
        match node::register(
            &kube_client,
            &node,
            if server.is_some() {
                &["control-plane"]
            } else {
                &[]
            },
        )
        .await
        {
            Ok(()) => {
                registered = true;
                break;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "registering node {} failed; retrying", node.name);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if !registered {
        bail!("could not register node {} with the API server", node.name);
    }
    let heartbeat = tokio::spawn(node::heartbeat(
        kube_client.clone(),
        node.clone(),
        shutdown.clone(),
    ));

    // 3. metalgate's namespace and CRDs (standalone mode has nobody else to install them), then
    //    the manifests.
    if server.is_some() {
        install_crds(&kube_client).await?;
    }
    let failed = apply_manifests(&kube_client, &args.manifests).await;

    if let Some(addr) = args.admin_listen {
        let starting: Vec<&str> = selected
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(n, _)| *n)
            .collect();
        process::spawn_admin(addr, &starting, shutdown.clone());
    }

    // 4. Components.
    if with_agent {
        #[cfg(feature = "lab")]
        selected.push((
            metalgate_agent::NAME,
            Some(metalgate_agent::component(agent_config(
                &args,
                server.as_ref(),
            )?)),
        ));
        #[cfg(not(feature = "lab"))]
        bail!(
            "--components {AGENT}: this build has no lab agent (it was built without the `lab` feature, as the container image is)"
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (name, component) in selected {
        match component {
            Some(c) => {
                let ctx = ComponentContext {
                    client: kube_client.clone(),
                    node: node.clone(),
                    shutdown: shutdown.clone(),
                };
                tasks.spawn(async move { (c.name, (c.run)(ctx).await) });
                tracing::info!(component = name, "started");
            }
            None => tracing::warn!(
                component = name,
                "not available in this build yet (it arrives with its own issue)"
            ),
        }
    }

    match (&server, &kubeconfig_path) {
        (Some(s), Some(p)) => println!(
            "metalgate ready: API store {} (data {}), kubeconfig {}, node {}{}",
            s.url(),
            args.data_dir.display(),
            p.display(),
            node.name,
            if failed > 0 {
                format!(", {failed} bad manifest document(s)")
            } else {
                String::new()
            }
        ),
        _ => println!("metalgate ready: joined as node {}", node.name),
    }

    // 5. Run until told to stop, or until a component fails.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok((name, Ok(()))) => tracing::info!(component = name, "finished"),
                    Ok((name, Err(e))) => tracing::error!(component = name, error = %format!("{e:#}"), "failed"),
                    Err(e) => tracing::error!(error = %e, "component panicked"),
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    heartbeat.abort();
    if let Some(s) = server {
        s.shutdown().await;
    }
    Ok(())
}

/// Server-side apply metalgate's namespace and CRDs: a fresh store has neither, and the
/// components' Leases and pools live there.
async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n---\n{}",
        metalgate_k8s::NAMESPACE,
        metalgate_k8s::crd::yaml()?
    );
    let (docs, errors) = manifests::parse(Path::new("<built-in CRDs>"), &text);
    let report = manifests::apply(client, &docs, "metalgate").await;
    if let Some(e) = errors.into_iter().chain(report.errors).next() {
        bail!("installing metalgate's CRDs: {e}");
    }
    Ok(())
}

/// Load and apply the manifests, printing every bad document; returns how many failed.
async fn apply_manifests(client: &kube::Client, paths: &[PathBuf]) -> usize {
    if paths.is_empty() {
        return 0;
    }
    let (docs, mut errors) = manifests::load(paths);
    let report = manifests::apply(client, &docs, "metalgate").await;
    errors.extend(report.errors);
    for e in &errors {
        eprintln!("manifest error: {e}");
    }
    tracing::info!(
        applied = report.applied.len(),
        failed = errors.len(),
        "manifests applied"
    );
    errors.len()
}

/// `metalgate controller`: the controller alone, against a cluster or a store.
pub async fn controller(args: crate::cli::ControllerArgs) -> anyhow::Result<()> {
    let ctx = process::standalone(process::Standalone {
        kubeconfig: args.kubeconfig.as_deref(),
        node_name: args.node_name,
        node_ip: None,
        admin_listen: args.admin_listen.0,
        components: if args.no_gitops {
            &[metalgate_controller::NAME]
        } else {
            &[metalgate_controller::NAME, metalgate_gitops::runner::NAME]
        },
    })
    .await?;
    let cfg = metalgate_controller::Config {
        namespace: args.namespace.clone(),
        class: args.lb_class,
        memberlist_secret: args.memberlist_secret,
    };
    if args.no_gitops {
        return metalgate_controller::reconciler::run(ctx, cfg).await;
    }
    let gitops = metalgate_gitops::runner::Config {
        namespace: args.namespace,
        data_dir: args.data_dir,
        poll: args.gitops_poll,
        argo: args.gitops_argo_applications.clone(),
        ..Default::default()
    };
    // One process, two leader-elected loops; either ending ends the process.
    tokio::try_join!(
        metalgate_controller::reconciler::run(ctx.clone(), cfg),
        metalgate_gitops::runner::run(ctx, gitops)
    )
    .map(|_| ())
}

/// `metalgate speaker`: the speaker alone, against a cluster or a store.
pub async fn speaker(args: crate::cli::SpeakerArgs) -> anyhow::Result<()> {
    let ctx = process::standalone(process::Standalone {
        kubeconfig: args.kubeconfig.as_deref(),
        node_name: args.node_name,
        node_ip: args.node_ip,
        admin_listen: args.admin_listen.0,
        components: &[metalgate_speaker::NAME],
    })
    .await?;
    let cfg = metalgate_speaker::announcer::Config {
        namespace: args.namespace,
        local_delivery: false,
        memberlist_secret: args.memberlist_secret,
    };
    metalgate_speaker::announcer::run(ctx, cfg).await
}

/// `metalgate gitops run`: the GitOps module alone, with its own ServiceAccount.
pub async fn gitops(args: crate::cli::GitopsArgs) -> anyhow::Result<()> {
    let ctx = process::standalone(process::Standalone {
        kubeconfig: args.kubeconfig.as_deref(),
        node_name: args.node_name,
        node_ip: None,
        admin_listen: args.admin_listen.0,
        components: &[metalgate_gitops::runner::NAME],
    })
    .await?;
    if let Some(addr) = args.ui_listen.0 {
        let stop = ctx.shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = metalgate_k8s::admin::serve_public(addr, stop).await {
                tracing::error!(%addr, error = %format!("{e:#}"), "UI endpoint failed");
            }
        });
    }
    let cfg = metalgate_gitops::runner::Config {
        namespace: args.namespace,
        data_dir: args.data_dir,
        poll: args.poll,
        argo: args.argo_applications.clone(),
        ..Default::default()
    };
    metalgate_gitops::runner::run(ctx, cfg).await
}

#[cfg(all(test, feature = "lab"))]
mod tests {
    #[test]
    fn the_agent_is_named_as_its_crate_names_it() {
        assert_eq!(super::AGENT, metalgate_agent::NAME);
    }
}
