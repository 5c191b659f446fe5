//! How long the controller takes to give 1000 LoadBalancer Services their IPs, against the
//! floor: the time the same store takes for 1000 bare status writes by one client.
//!
//! `cargo run --release -p metalgate-bench --bin controller-vs-floor [-- N]`
//! Prints both times and their ratio; record results in bench/RESULTS.md.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use metalgate_apiserver::{ApiServer, Config};
use metalgate_k8s::crd::{IPAddressPool, L2Advertisement};
use metalgate_k8s::{ComponentContext, NodeIdentity};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn store() -> anyhow::Result<(ApiServer, kube::Client, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::new(dir.path());
    cfg.listen = "127.0.0.1:0".parse()?;
    let server = ApiServer::start(cfg).await?;
    let client = metalgate_k8s::client::from_kubeconfig_str(&server.kubeconfig(None)).await?;
    Ok((server, client, dir))
}

fn svc(i: usize) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i:05}")},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
    }))?)
}

async fn create_services(client: &kube::Client, n: usize) -> anyhow::Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    for i in 0..n {
        api.create(&PostParams::default(), &svc(i)?).await?;
    }
    Ok(())
}

/// The floor: one client writing each Service's status once.
async fn floor(n: usize) -> anyhow::Result<Duration> {
    let (server, client, _dir) = store().await?;
    create_services(&client, n).await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("floor").force();
    let start = Instant::now();
    for i in 0..n {
        let name = format!("svc-{i:05}");
        let ip = format!("10.{}.{}.{}", 200 + i / 65536, (i / 256) % 256, i % 256);
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        api.patch_status(&name, &pp, &Patch::Apply(&body)).await?;
    }
    let took = start.elapsed();
    server.shutdown().await;
    Ok(took)
}

/// The controller: Services exist, the controller starts, and the clock runs until every
/// Service shows an IP.
async fn controller(n: usize) -> anyhow::Result<Duration> {
    let (server, client, _dir) = store().await?;
    let pp = PatchParams::apply("bench");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    for crd in [IPAddressPool::crd(), L2Advertisement::crd()] {
        crds.patch(&crd.name_any(), &pp, &Patch::Apply(&crd))
            .await?;
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.patch("metalgate-system", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metalgate-system"}}))).await?;
    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), "metalgate-system");
    pools
        .patch("bench", &pp, &Patch::Apply(json!({"apiVersion": "metalgate.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "bench"}, "spec": {"addresses": ["10.200.0.0/16"]}})))
        .await?;
    create_services(&client, n).await?;

    let shutdown = CancellationToken::new();
    let ctx = ComponentContext {
        client: client.clone(),
        node: NodeIdentity {
            name: "bench".into(),
            ip: None,
        },
        shutdown: shutdown.clone(),
    };
    let start = Instant::now();
    let task = tokio::spawn(metalgate_controller::reconciler::run(
        ctx,
        metalgate_controller::Config::default(),
    ));
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    loop {
        let done = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty())
            })
            .count();
        if done == n {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {done} of {n} Services got IPs in 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    shutdown.cancel();
    let _ = task.await;
    server.shutdown().await;
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let floor = floor(n).await?;
        let ctl = controller(n).await?;
        println!("services: {n}");
        println!(
            "floor (bare status writes, one client): {:.3} s ({:.0}/s)",
            floor.as_secs_f64(),
            n as f64 / floor.as_secs_f64()
        );
        println!(
            "controller (all {n} Services with IPs):  {:.3} s ({:.0}/s)",
            ctl.as_secs_f64(),
            n as f64 / ctl.as_secs_f64()
        );
        println!(
            "ratio controller / floor: {:.2}",
            ctl.as_secs_f64() / floor.as_secs_f64()
        );
        Ok(())
    })
}
