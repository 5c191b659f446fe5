//! Registering this machine as a Node (standalone mode and lab nodes) and keeping its
//! heartbeat: a Lease in `kube-node-lease` renewed every few seconds and a Ready condition.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::component::NodeIdentity;

/// The field manager of node registration.
pub const FIELD_MANAGER: &str = "metalgate-node";
/// How often the heartbeat runs.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// Create or update the Node object and mark it Ready.
pub async fn register(
    client: &kube::Client,
    node: &NodeIdentity,
    roles: &[&str],
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(node.name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert(
        "kubernetes.io/arch".into(),
        json!(
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
        ),
    );
    for r in roles {
        labels.insert(format!("node-role.kubernetes.io/{r}"), json!("true"));
    }
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&node.name, &pp, &Patch::Apply(&obj)).await?;
    report_status(client, node).await?;
    Ok(())
}

async fn report_status(client: &kube::Client, node: &NodeIdentity) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let now = now();
    let mut addresses = vec![json!({"type": "Hostname", "address": node.name})];
    if let Some(ip) = node.ip {
        addresses.insert(0, json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name},
        "status": {
            "addresses": addresses,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "MetalgateReady",
                "message": "metalgate is running on this node",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "nodeInfo": {
                "kubeletVersion": concat!("metalgate-v", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "", "osImage": os_image(), "kernelVersion": kernel(),
                "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
                "containerRuntimeVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&node.name, &pp, &Patch::Apply(&status))
        .await?;
    Ok(())
}

async fn renew_lease(client: &kube::Client, node: &NodeIdentity) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node.name},
        "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": now},
    });
    api.patch(
        &node.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&lease),
    )
    .await?;
    Ok(())
}

/// Keep the Node's Lease and Ready condition fresh until `shutdown`.
pub async fn heartbeat(client: kube::Client, node: NodeIdentity, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = renew_lease(&client, &node).await {
                    tracing::warn!(node = %node.name, error = %e, "renewing node lease failed");
                }
                if let Err(e) = report_status(&client, &node).await {
                    tracing::warn!(node = %node.name, error = %e, "reporting node status failed");
                }
            }
        }
    }
}
