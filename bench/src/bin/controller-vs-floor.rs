//! How long the controller takes to give 1000 LoadBalancer Services their IPs, against two
//! floors on the same store, each one client writing one Service after another:
//! - the status floor: a bare status write per Service;
//! - the three-write floor: what the controller must write per Service — the
//!   `ip-allocated-from-pool` annotation, the status, and an `IPAllocated` Event.
//!
//! The controller's clock stops when a watch (opened before it starts) has seen every Service
//! with an IP — a watch, not a list every few ms, so the bench itself does not load the store.
//!
//! `cargo run --release -p metalgate-bench --bin controller-vs-floor [-- N [ROUNDS]]`
//! Prints each round's times and the medians of the ratios; record results in
//! bench/RESULTS.md.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, Resource, ResourceExt};
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

/// A floor: one client writing, per Service, its status — and with `all_three`, first the
/// pool annotation and after it an Event, as the controller does.
async fn floor(n: usize, all_three: bool) -> anyhow::Result<Duration> {
    let (server, client, _dir) = store().await?;
    create_services(&client, n).await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("floor").force();
    let recorder = metalgate_k8s::reflect::recorder(&client, "floor", "bench");
    let start = Instant::now();
    for i in 0..n {
        let name = format!("svc-{i:05}");
        let ip = format!("10.{}.{}.{}", 200 + i / 65536, (i / 256) % 256, i % 256);
        if all_three {
            let meta = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name,
                "annotations": {"metalgate.io/ip-allocated-from-pool": "bench"}}});
            api.patch(&name, &pp, &Patch::Apply(&meta)).await?;
        }
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        let svc = api.patch_status(&name, &pp, &Patch::Apply(&body)).await?;
        if all_three {
            let ev = kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "IPAllocated".into(),
                note: Some(format!("Assigned IP [\"{ip}\"] from pool bench")),
                action: "Allocate".into(),
                secondary: None,
            };
            recorder.publish(&ev, &svc.object_ref(&())).await?;
        }
    }
    let took = start.elapsed();
    server.shutdown().await;
    Ok(took)
}

/// The first events of a watch on `api`, up to its initial list's end; then a future that
/// resolves once `done` holds for `n` distinct names among later events.
async fn watch_until<K>(
    api: Api<K>,
    n: usize,
    done: fn(&K) -> bool,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use kube::runtime::watcher::{self, Event};
    let mut stream = Box::pin(watcher::watcher(api, watcher::Config::default()));
    // The initial list is read before the controller starts, so the clock does not pay it.
    loop {
        match stream.next().await {
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => anyhow::bail!("watching: {e}"),
            None => anyhow::bail!("the watch ended"),
        }
    }
    Ok(async move {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < n {
            match stream.next().await {
                Some(Ok(Event::Apply(o) | Event::InitApply(o))) => {
                    if done(&o) {
                        seen.insert(o.name_any());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("watching: {e}"),
                None => anyhow::bail!("the watch ended"),
            }
        }
        Ok(())
    })
}

/// Resolves once `n` Services show an IP and `n` `IPAllocated` Events exist, as watches
/// opened now see them: all three of the controller's writes per Service are done.
async fn all_addressed(
    client: kube::Client,
    n: usize,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    let ips = watch_until(
        Api::<Service>::namespaced(client.clone(), "default"),
        n,
        |s| {
            s.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some_and(|i| !i.is_empty())
        },
    )
    .await?;
    let events = watch_until(
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(client, "default"),
        n,
        |e| e.reason.as_deref() == Some("IPAllocated"),
    )
    .await?;
    Ok(async move {
        let (a, b) = futures::join!(ips, events);
        a.and(b)
    })
}

/// The store's resourceVersion: one more for every write it committed.
async fn store_version(client: &kube::Client) -> anyhow::Result<u64> {
    let list = Api::<Namespace>::all(client.clone())
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await?;
    Ok(list.metadata.resource_version.unwrap_or_default().parse()?)
}

/// The controller: Services exist, the controller starts, and the clock runs until every
/// Service shows an IP and has its Event; also how many writes the store committed meanwhile.
async fn controller(n: usize) -> anyhow::Result<(Duration, u64)> {
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
    let done = all_addressed(client.clone(), n).await?;
    let before = store_version(&client).await?;
    let start = Instant::now();
    let task = tokio::spawn(metalgate_controller::reconciler::run(
        ctx,
        metalgate_controller::Config::default(),
    ));
    tokio::time::timeout(Duration::from_secs(600), done)
        .await
        .map_err(|_| anyhow::anyhow!("not all {n} Services got IPs in 600 s"))??;
    let took = start.elapsed();
    // Whatever else it was going to write (the pool's status) lands within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = store_version(&client).await? - before;
    shutdown.cancel();
    let _ = task.await;
    server.shutdown().await;
    Ok((took, writes))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let arg = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(std::env::args()
            .nth(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let n = arg(1, 1000)?;
    let rounds = arg(2, 3)?.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("services: {n}; rounds: {rounds} (status floor, three-write floor, controller, in turn)");
        let (mut by_status, mut by_three) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let status = floor(n, false).await?.as_secs_f64();
            let three = floor(n, true).await?.as_secs_f64();
            let (ctl, writes) = controller(n).await?;
            let ctl = ctl.as_secs_f64();
            println!(
                "round {round}: status floor {status:.3} s, three-write floor {three:.3} s, controller {ctl:.3} s ({:.0} Services/s, {writes} store writes) -> controller / three-write floor {:.2}, / status floor {:.2}",
                n as f64 / ctl,
                ctl / three,
                ctl / status
            );
            by_status.push(ctl / status);
            by_three.push(ctl / three);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median ratio controller / three-write floor: {:.2}; controller / status floor: {:.2}",
            median(&mut by_three),
            median(&mut by_status)
        );
        Ok(())
    })
}
