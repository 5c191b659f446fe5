//! kube-proxy's part, on every node: the rules of [`crate::plan::services`] kept in the node's
//! `nat` table with `iptables-restore --noflush` whenever Services or EndpointSlices change,
//! the jumps into them added once, and everything removed when the agent stops.

use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use metalgate_k8s::reflect::Watches;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::plan::services::{CHAIN, POSTROUTING, rules};

const JUMPS: [(&str, &str); 3] = [
    ("PREROUTING", CHAIN),
    ("OUTPUT", CHAIN),
    ("POSTROUTING", POSTROUTING),
];

async fn iptables(args: &[&str]) -> anyhow::Result<bool> {
    let out = Command::new("iptables")
        .args(["-w", "5", "-t", "nat"])
        .args(args)
        .output()
        .await
        .context("running iptables")?;
    Ok(out.status.success())
}

async fn restore(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "5", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The ClusterIP range (the store's, and k3s's).
pub const SERVICE_CIDR: &str = "10.43.0.0/16";

/// Keep node `node`'s Service rules until `shutdown`, then remove them.
pub async fn run(client: Client, node: String, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The node's own connections to a ClusterIP need a route before `OUTPUT` rewrites them (a
    // node with a default route has one; the lab's host-only nodes do not). After DNAT the
    // kernel routes again, to the endpoint.
    let routed = Command::new("ip")
        .args(["route", "add", SERVICE_CIDR, "dev", "lo"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    let mut w = Watches::new();
    let services = w.store(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let slices = w.store(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    );
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    let mut written = String::new();
    let mut jumps = false;
    loop {
        let svcs = services.state();
        let sls = slices.state();
        let text = rules(
            &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
            &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
            &node,
        );
        if text != written {
            match restore(&text).await {
                Ok(()) => {
                    tracing::debug!(rules = text.lines().count(), "service rules written");
                    written = text;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "writing service rules failed; retrying")
                }
            }
        }
        if !jumps && !written.is_empty() {
            jumps = true;
            for (from, to) in JUMPS {
                if !iptables(&["-C", from, "-j", to]).await?
                    && !iptables(&["-I", from, "-j", to]).await?
                {
                    tracing::warn!(from, to, "adding the jump into the service rules failed");
                    jumps = false;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = w.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
    for (from, to) in JUMPS {
        let _ = iptables(&["-D", from, "-j", to]).await;
    }
    for chain in [CHAIN, POSTROUTING] {
        let _ = iptables(&["-F", chain]).await;
        let _ = iptables(&["-X", chain]).await;
    }
    if routed {
        let _ = Command::new("ip")
            .args(["route", "del", SERVICE_CIDR, "dev", "lo"])
            .output()
            .await;
    }
    Ok(())
}
