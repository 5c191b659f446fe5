//! # metalgate-agent — the lab's node agent
//!
//! No machine here runs k3s, so the lab needs what k3s would run for workloads, small:
//!
//! - [`controllers`] — those decisions carried out, by the replica holding a Lease;
//! - [`image`] — which process stands in for a container image, or why none does;
//! - [`kubelet`] — the pods bound to this node, run as processes and reported;
//! - [`plan`] — the controllers' decisions, pure: Deployments → ReplicaSets → Pods,
//!   DaemonSets, scheduling, EndpointSlices, Service rules;
//! - [`service_proxy`] — Services reachable on each node (kube-proxy's iptables rules).
//!
//! It runs as the `agent` component of `metalgate run` on each lab node: [`component`].
#![forbid(unsafe_code)]

pub mod controllers;
pub mod image;
pub mod kubelet;
pub mod plan;
pub mod service_proxy;

use std::path::PathBuf;

use metalgate_k8s::Component;

/// The component's name in `--components`.
pub const NAME: &str = "agent";

/// The agent's settings (the node's name and IP come from the component context).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Addresses for pods with their own network namespace; `None`: pods share the node's.
    pub pod_cidr: Option<ipnet::Ipv4Net>,
    /// Where pods' logs and tokens are kept.
    pub data_dir: PathBuf,
    /// The API server as pods reach it.
    pub api: Option<(String, u16)>,
    /// The API server's CA certificate, given to pods.
    pub ca_file: Option<PathBuf>,
    /// The namespace of the controllers' Lease.
    pub namespace: String,
    /// The port of this node's admin listener, where `kubectl logs` is served (reported as the
    /// Node's kubelet endpoint); none: no logs.
    pub kubelet_port: Option<u16>,
    /// The key the store signs forwarded requests with (its token, which this node also talks
    /// to it with); none: every forwarded request is refused.
    pub log_key: Option<String>,
}

/// The agent: the workload controllers (one replica at a time), this node's kubelet and its
/// Service rules.
pub fn component(cfg: Config) -> Component {
    Component::new(NAME, move |ctx| {
        let cfg = cfg.clone();
        Box::pin(async move {
            let exe = std::env::current_exe()?;
            let node_ip = ctx
                .node
                .ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "127.0.0.1".into());
            let kubelet = kubelet::Config {
                node: ctx.node.name.clone(),
                node_ip,
                pod_cidr: cfg.pod_cidr,
                data_dir: cfg.data_dir.clone(),
                exe,
                api: cfg.api.clone(),
                ca_file: cfg.ca_file.clone(),
            };
            let namespace = if cfg.namespace.is_empty() {
                metalgate_k8s::NAMESPACE.to_string()
            } else {
                cfg.namespace.clone()
            };
            if let Some(port) = cfg.kubelet_port {
                kubelet::logs::serve(cfg.data_dir.clone(), cfg.log_key.clone());
                report_kubelet_port(&ctx.client, &ctx.node.name, port).await;
            }
            let (a, b, c) = tokio::join!(
                controllers::run(
                    ctx.client.clone(),
                    ctx.node.name.clone(),
                    namespace,
                    ctx.shutdown.clone()
                ),
                kubelet::run(ctx.client.clone(), kubelet, ctx.shutdown.clone()),
                service_proxy::run(
                    ctx.client.clone(),
                    ctx.node.name.clone(),
                    ctx.shutdown.clone()
                ),
            );
            a.and(b).and(c)
        })
    })
}

/// Say where this node's logs are served: `status.daemonEndpoints.kubeletEndpoint.Port`, as a
/// kubelet does (its own field manager: the node's heartbeat owns the rest of the status).
async fn report_kubelet_port(client: &kube::Client, node: &str, port: u16) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams};
    let status = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node},
        "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}},
    });
    let api: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::apply(controllers::MANAGER).force();
    if let Err(e) = api.patch_status(node, &pp, &Patch::Apply(&status)).await {
        tracing::warn!(%node, error = %e, "could not report the kubelet endpoint; kubectl logs will not reach this node");
    }
}
