//! The proxy's command line: its flags (flattened into `metalgate run` too) and `metalgate
//! proxy` / the `metalgate-proxy` binary, the proxy alone against a cluster or a store.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// The proxy's settings, shared by `metalgate run` and `metalgate proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyOpts {
    /// Plain HTTP listeners (repeatable).
    #[arg(
        long = "http-listen",
        value_name = "ADDR",
        default_value = "0.0.0.0:80"
    )]
    pub http_listen: Vec<SocketAddr>,
    /// HTTPS listeners (repeatable); certificates come from the Ingresses' TLS Secrets.
    #[arg(
        long = "https-listen",
        value_name = "ADDR",
        default_value = "0.0.0.0:443"
    )]
    pub https_listen: Vec<SocketAddr>,
    /// The IngressClass name served (IngressClasses with controller
    /// metalgate.io/ingress-controller are served too).
    #[arg(long, default_value = "metalgate")]
    pub ingress_class: String,
    /// Also serve Ingresses of class `nginx`: a drop-in for ingress-nginx.
    #[arg(long)]
    pub watch_nginx_ingresses: bool,
    /// The proxy's own Service (NAMESPACE/NAME); its address goes into each Ingress's status.
    #[arg(long, default_value = "metalgate-system/metalgate-proxy")]
    pub publish_service: String,
    /// No JSON access log on stdout.
    #[arg(long)]
    pub no_access_log: bool,
    /// Seconds a client has to send a request's headers (slowloris protection).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout: u64,
    /// Seconds requests in flight get to finish on SIGTERM.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub drain_timeout: u64,
}

impl ProxyOpts {
    /// The proxy's configuration; a bad `--publish-service` is named.
    pub fn config(&self) -> anyhow::Result<crate::Config> {
        let publish_service = match self.publish_service.trim() {
            "" => None,
            s => match s.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Some(crate::ObjKey {
                        namespace: ns.into(),
                        name: name.into(),
                    })
                }
                _ => anyhow::bail!("--publish-service {s:?}: expected NAMESPACE/NAME"),
            },
        };
        Ok(crate::Config {
            listen: crate::Listen {
                http: self.http_listen.clone(),
                https: self.https_listen.clone(),
                header_timeout: std::time::Duration::from_secs(self.header_timeout),
            },
            classes: crate::ClassSettings {
                class: self.ingress_class.clone(),
                accept_nginx: self.watch_nginx_ingresses,
            },
            publish_service,
            access_log: !self.no_access_log,
            drain: std::time::Duration::from_secs(self.drain_timeout),
            ..Default::default()
        })
    }
}

/// `metalgate proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Kubeconfig (default: in-cluster, then KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This replica's node name (for Events).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    #[arg(long, default_value = "0.0.0.0:10254")]
    pub admin_listen: SocketAddr,
    /// The proxy's settings.
    #[command(flatten)]
    pub proxy: ProxyOpts,
}

/// Where `metalgate proxy` and `metalgate-proxy` run [`run`]: requests are served on workers of
/// their own (a thread per core, `server::workers`), so the control plane — watches, table
/// builds, the admin endpoint — runs on the main thread alone: two threads fewer than tokio's
/// work-stealing runtime, and the proxy's PSS on a node 0.8–1.0 MB lower (`bench/node_memory.py`,
/// `bench/RESULTS.md` 2026-12-06 (e)).
pub const MAIN_RUNTIME: metalgate_k8s::process::MainRuntime =
    metalgate_k8s::process::MainRuntime::MainThread;

/// Run the proxy alone: a client from the kubeconfig (or in-cluster), the admin endpoint,
/// SIGTERM/SIGINT to drain and stop.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let cfg = args.proxy.config()?;
    let ctx = metalgate_k8s::process::standalone(metalgate_k8s::process::Standalone {
        kubeconfig: args.kubeconfig.as_deref(),
        node_name: args.node_name.clone(),
        node_ip: None,
        admin_listen: Some(args.admin_listen),
        // Not ready until the first route table is served.
        components: &[crate::NAME],
    })
    .await?;
    crate::run(ctx, cfg).await
}
