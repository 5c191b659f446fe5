//! The command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// metalgate: LoadBalancer IPs, ARP, ingress and GitOps for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "metalgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// A command that asks something and answers (`metalgate gitops list|status|…|validate`),
    /// rather than a process that keeps running: it logs warnings only.
    pub fn is_client_command(&self) -> bool {
        matches!(&self.command, Command::Gitops(g) if !matches!(g, GitopsCommand::Run(_)))
    }

    /// Where the command's main future runs: the proxy's own choice for `metalgate proxy`
    /// ([`metalgate_proxy::cli::MAIN_RUNTIME`]), tokio's work-stealing runtime for the rest.
    pub fn main_runtime(&self) -> metalgate_k8s::process::MainRuntime {
        use metalgate_k8s::process::MainRuntime;
        match &self.command {
            Command::Proxy(_) => metalgate_proxy::cli::MAIN_RUNTIME,
            _ => MainRuntime::MultiThread,
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Standalone mode: the embedded API store, this node, the manifests and the components.
    Run(Box<RunArgs>),
    /// The workshop's network on this machine, in network namespaces (needs root).
    #[cfg(feature = "lab")]
    #[command(subcommand)]
    Lab(metalgate_lab::LabCommand),
    /// A stand-in for podinfo, argocd-server or grafana (the lab's backends).
    #[cfg(feature = "lab")]
    DemoBackend(DemoArgs),
    /// Print metalgate's CRDs as YAML (what manifests/crds/ holds).
    Crdgen,
    /// The controller alone, against a cluster or a running store.
    Controller(ControllerArgs),
    /// The speaker alone (a DaemonSet with hostNetwork and CAP_NET_RAW in a cluster).
    Speaker(SpeakerArgs),
    /// The GitOps module (`run`), and what `argocd app …` shows and does: list, status,
    /// history, refresh, sync, validate.
    #[command(subcommand)]
    Gitops(GitopsCommand),
    /// The ingress proxy alone, against a cluster or a running store.
    Proxy(metalgate_proxy::cli::ProxyArgs),
}

/// `metalgate speaker`.
#[derive(Debug, Clone, Args)]
pub struct SpeakerArgs {
    /// Kubeconfig (default: in-cluster, then KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the IPAddressPools and L2Advertisements.
    #[arg(long, default_value = metalgate_k8s::NAMESPACE)]
    pub namespace: String,
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// This node's address: the speakers gossip on it (UDP 7946), authenticated with the key
    /// in --memberlist-secret.
    #[arg(long, env = "NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// The Secret (in --namespace) with the gossip keys: `secretkey` signs, `secretkey-*` are
    /// also accepted (rotation). Without it there is no gossip.
    #[arg(long, default_value = metalgate_k8s::MEMBERLIST_SECRET)]
    pub memberlist_secret: String,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (`none` for off).
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub admin_listen: Listen,
}

/// `metalgate gitops run`.
#[derive(Debug, Clone, Args)]
pub struct GitopsArgs {
    /// Kubeconfig (default: in-cluster, then KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the Applications and of the leader Lease.
    #[arg(long, default_value = metalgate_k8s::NAMESPACE)]
    pub namespace: String,
    /// This replica's node name (for the Lease holder and Events).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Where the Git cache and checkouts live (`DATA_DIR/gitops`).
    #[arg(long, default_value = "/var/lib/metalgate")]
    pub data_dir: PathBuf,
    /// How often each Application is compared with Git without a trigger.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub poll: std::time::Duration,
    /// Also reconcile ArgoCD's `argoproj.io/v1alpha1` Applications, in this namespace (default
    /// `argocd`), so an ArgoCD repository works unchanged; metalgate serves their CRD where
    /// ArgoCD has not installed it, and leaves them to ArgoCD where it has.
    #[arg(long, value_name = "NAMESPACE", num_args = 0..=1, default_missing_value = "argocd")]
    pub argo_applications: Option<String>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (`none` for off), and the web UI and the
    /// webhook too.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub admin_listen: Listen,
    /// Serve the web UI, its API and the webhook — and not `/metrics` or the probes — here too:
    /// the port to put behind an Ingress (`none` for off).
    #[arg(long, default_value = "none")]
    pub ui_listen: Listen,
}

/// A listen address, or `none` for no listener.
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "none" {
            return Ok(Listen(None));
        }
        s.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|e| format!("{s:?} is not an address like 0.0.0.0:7472 (or none): {e}"))
    }
}

/// `metalgate controller`.
#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Kubeconfig (default: in-cluster, then KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the IPAddressPools and of the leader Lease.
    #[arg(long, default_value = metalgate_k8s::NAMESPACE)]
    pub namespace: String,
    /// The spec.loadBalancerClass served (Services without a class are served too).
    #[arg(long, default_value = "metalgate.io/lb")]
    pub lb_class: String,
    /// The Secret (in --namespace) with the speakers' gossip key; created when missing.
    #[arg(long, default_value = metalgate_k8s::MEMBERLIST_SECRET)]
    pub memberlist_secret: String,
    /// This replica's node name (for the Lease holder and Events).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Where the GitOps module keeps its Git cache and checkouts (`DATA_DIR/gitops`).
    #[arg(long, default_value = "/var/lib/metalgate")]
    pub data_dir: PathBuf,
    /// How often the GitOps module compares each Application with Git without a trigger.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub gitops_poll: std::time::Duration,
    /// Also reconcile ArgoCD's `argoproj.io/v1alpha1` Applications, in this namespace (default
    /// `argocd`), so an ArgoCD repository works unchanged; metalgate serves their CRD where
    /// ArgoCD has not installed it, and leaves them to ArgoCD where it has.
    #[arg(long, value_name = "NAMESPACE", num_args = 0..=1, default_missing_value = "argocd")]
    pub gitops_argo_applications: Option<String>,
    /// Run the IPAM controller only, without the GitOps module (`metalgate gitops` runs it
    /// apart, with its own ServiceAccount).
    #[arg(long)]
    pub no_gitops: bool,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (`none` for off).
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub admin_listen: Listen,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    match metalgate_gitops::spec::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s:?} is not a duration like 30s, 2m or 1m30s")),
    }
}

/// `metalgate demo-backend`.
#[cfg(feature = "lab")]
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which application to stand in for.
    #[arg(long, value_enum)]
    pub kind: metalgate_lab::demo::Kind,
    /// Where to listen.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The host name it reports (default: the machine's).
    #[arg(long)]
    pub hostname: Option<String>,
}

/// `metalgate run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where the embedded store keeps its database, CA and token.
    #[arg(long, default_value = "/var/lib/metalgate")]
    pub data_dir: PathBuf,
    /// Kubernetes YAML files or directories (recursive, multi-document) to server-side apply.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// Where the embedded store listens.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// Where to write the kubeconfig for kubectl (default: DATA_DIR/kubeconfig).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// This node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's address on the network it serves (its InternalIP).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Components to run, comma-separated: controller, gitops, speaker, proxy; `all` or `none`.
    /// `agent` (the lab's node agent: workload controllers and a kubelet running known images
    /// as processes) runs only when named, e.g. `all,agent` or `agent`.
    #[arg(long, default_value = "all")]
    pub components: String,
    /// The agent's pod addresses on this node: each pod that is not `hostNetwork` gets its own
    /// network namespace and an address from here (without it, pods share the node's).
    #[arg(long)]
    pub pod_cidr: Option<ipnet::Ipv4Net>,
    /// How often the GitOps module compares each Application with Git without a trigger.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub gitops_poll: std::time::Duration,
    /// Also reconcile ArgoCD's `argoproj.io/v1alpha1` Applications, in this namespace (default
    /// `argocd`), so an ArgoCD repository works unchanged; metalgate serves their CRD where
    /// ArgoCD has not installed it, and leaves them to ArgoCD where it has.
    #[arg(long, value_name = "NAMESPACE", num_args = 0..=1, default_missing_value = "argocd")]
    pub gitops_argo_applications: Option<String>,
    /// Join this API server instead of embedding one (needs --token-file).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub api_server: Option<String>,
    /// Bearer token for --api-server.
    #[arg(long, requires = "api_server")]
    pub token_file: Option<PathBuf>,
    /// CA certificate for --api-server (required, unless --insecure-skip-tls-verify).
    #[arg(long, requires = "api_server")]
    pub ca_file: Option<PathBuf>,
    /// Join --api-server without verifying its certificate (logged as a warning; for tests).
    #[arg(long, requires = "api_server", conflicts_with = "ca_file")]
    pub insecure_skip_tls_verify: bool,
    /// Join the cluster or store this kubeconfig names instead of embedding one.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (off unless given).
    #[arg(long, visible_alias = "metrics-listen")]
    pub admin_listen: Option<SocketAddr>,
    /// The proxy component's settings.
    #[command(flatten)]
    pub proxy: metalgate_proxy::cli::ProxyOpts,
}

/// `metalgate gitops …`.
#[derive(Debug, Subcommand)]
pub enum GitopsCommand {
    /// Run the GitOps module: sync Applications from Git (its own Deployment in a cluster).
    Run(GitopsArgs),
    /// Every Application: sync status, health, revision, last sync.
    List(Target),
    /// One Application: source, sync, health, conditions and its objects.
    Status(Named),
    /// One Application's history: commits, authors, messages, what each sync changed.
    History(Named),
    /// What differs between Git (the app's target revision) and the cluster, field by field,
    /// with who changed it; exit 1 when something differs (as `argocd app diff`), 2 on error.
    Diff(Named),
    /// Compare with Git now (the refresh annotation) and wait for the result.
    Refresh(Named),
    /// Sync now, even without automated sync, and wait for the result.
    Sync(Named),
    /// Render a directory as the module would, and name every bad file and document.
    Validate {
        /// The directory (an Application's `path` in a checkout): plain YAML/JSON, a
        /// kustomization or a Helm chart, rendered as the module renders it.
        path: PathBuf,
        /// Read subdirectories too (`directory.recurse`).
        #[arg(long)]
        recurse: bool,
        /// Dry-run against this cluster (else against a throwaway embedded store that knows the
        /// built-in kinds and metalgate's CRDs, offline).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The destination namespace (`destination.namespace`).
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
    },
}

/// Where the Applications are.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the Applications.
    #[arg(long, short = 'n', default_value = metalgate_k8s::NAMESPACE)]
    pub namespace: String,
}

/// One Application.
#[derive(Debug, Clone, Args)]
pub struct Named {
    /// The Application's name.
    pub name: String,
    /// Where it is.
    #[command(flatten)]
    pub target: Target,
}
