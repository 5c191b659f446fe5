//! The I/O edge: watch Ingresses, IngressClasses, Services, EndpointSlices and TLS Secrets,
//! rebuild the table on every change and swap it in; write each Ingress's
//! `status.loadBalancer.ingress`; report problems as Events.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Api, Resource};
use metalgate_k8s::reflect;
use tokio_util::sync::CancellationToken;

use crate::service::ProxyState;
use crate::table::{ClassSettings, ObjKey, Snapshot, TableBuilder};

/// The field manager of the proxy's writes.
pub const FIELD_MANAGER: &str = "metalgate-proxy";

/// What discovery needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which Ingresses are ours.
    pub classes: ClassSettings,
    /// The proxy's own Service (`namespace/name`): its LoadBalancer address goes into each
    /// Ingress's status.
    pub publish_service: Option<ObjKey>,
}

/// Run until `shutdown`: keep `shared.table` current.
pub async fn run(
    client: kube::Client,
    shared: Arc<ProxyState>,
    settings: Settings,
    instance: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut watches = reflect::Watches::new();
    let all = watcher::Config::default();
    let ingresses = watches.store(Api::<Ingress>::all(client.clone()), all.clone());
    let classes = watches.store(Api::<IngressClass>::all(client.clone()), all.clone());
    let services = watches.store(Api::<Service>::all(client.clone()), all.clone());
    let slices = watches.store(Api::<EndpointSlice>::all(client.clone()), all.clone());
    let secrets = watches.store(
        Api::<Secret>::all(client.clone()),
        all.clone().fields("type=kubernetes.io/tls"),
    );
    let ready = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = async {
            ingresses.wait_until_ready().await.is_ok()
                && classes.wait_until_ready().await.is_ok()
                && services.wait_until_ready().await.is_ok()
                && slices.wait_until_ready().await.is_ok()
                && secrets.wait_until_ready().await.is_ok()
        } => r,
    };
    if !ready {
        anyhow::bail!("a watch ended before its first list");
    }
    let recorder = reflect::recorder(&client, FIELD_MANAGER, &instance);
    let mut reported: HashSet<(ObjKey, String, String)> = HashSet::new();
    let mut builder = TableBuilder::new(settings.classes.clone());

    loop {
        let snap = Snapshot {
            ingresses: ingresses.state(),
            classes: classes.state(),
            services: services.state(),
            slices: slices.state(),
            // The field selector is a hint some servers ignore: filter here too.
            secrets: secrets
                .state()
                .into_iter()
                .filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
                .collect(),
        };
        let started = std::time::Instant::now();
        let table = builder.build(&snap, &|i, s| shared.metrics.route(i, s));
        let m = &shared.metrics;
        m.build_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        m.generation.store(table.generation, Ordering::Relaxed);
        m.routes
            .store(table.route_count() as u64, Ordering::Relaxed);
        m.certificates
            .store(table.certs.len() as u64, Ordering::Relaxed);
        let table = Arc::new(table);
        shared.table.store(table.clone());
        if !shared.ready.swap(true, Ordering::Relaxed) {
            tracing::info!(ingresses = table.ingress_count(), "proxy route table ready");
        }

        // Problems: logged and published once each, while they last.
        let now: HashSet<(ObjKey, String, String)> = table
            .problems
            .iter()
            .map(|p| (p.ingress.clone(), p.field.clone(), p.message.clone()))
            .collect();
        let fresh: Vec<_> = table
            .problems
            .iter()
            .filter(|p| {
                !reported.contains(&(p.ingress.clone(), p.field.clone(), p.message.clone()))
            })
            .collect();
        if !fresh.is_empty() {
            let by_key: std::collections::HashMap<ObjKey, &Arc<Ingress>> = builder
                .our_ingresses()
                .map(|i| (crate::table::key_of(i), i))
                .collect();
            for p in fresh {
                tracing::warn!(ingress = %p.ingress, field = %p.field, "{}", p.message);
                if let Some(ing) = by_key.get(&p.ingress) {
                    reflect::publish(
                        &recorder,
                        &ing.object_ref(&()),
                        EventType::Warning,
                        p.reason,
                        "Route",
                        format!("{}: {}", p.field, p.message),
                    )
                    .await;
                }
            }
        }
        reported = now;

        // Status: every Ingress of ours shows the proxy Service's address.
        if let Some(ps) = &settings.publish_service {
            let addrs: Vec<String> = snap
                .services
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(ps.namespace.as_str())
                        && s.metadata.name.as_deref() == Some(ps.name.as_str())
                })
                .and_then(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .collect();
            for ing in builder.our_ingresses() {
                if shows(ing, &addrs) {
                    continue;
                }
                let ik = crate::table::key_of(ing);
                let entries: Vec<serde_json::Value> = addrs
                    .iter()
                    .map(|a| {
                        if a.parse::<std::net::IpAddr>().is_ok() {
                            serde_json::json!({ "ip": a })
                        } else {
                            serde_json::json!({ "hostname": a })
                        }
                    })
                    .collect();
                // Server-side apply as the proxy: the address list is ours, and `kubectl get
                // ing --show-managed-fields` says who wrote it.
                let patch = serde_json::json!({
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "metadata": {"name": ik.name, "namespace": ik.namespace},
                    "status": { "loadBalancer": { "ingress": entries } }
                });
                let api = Api::<Ingress>::namespaced(client.clone(), &ik.namespace);
                match api
                    .patch_status(
                        &ik.name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(ingress = %ik, address = ?addrs, "Ingress status written");
                    }
                    Err(e) => {
                        tracing::warn!(ingress = %ik, error = %e, "writing Ingress status failed")
                    }
                }
            }
        }

        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = watches.changed() => {}
        }
        // Let the other watches take in what arrived with this event, so a burst is built
        // once; no timer: a build is cheap now (each table from the last), and a 2 ms pause
        // here was 40 % of a change's way to live.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
    drop(watches);
    Ok(())
}

/// Whether an Ingress's status already lists exactly `addrs` (IPs or host names, in order).
fn shows(ing: &Ingress, addrs: &[String]) -> bool {
    let listed = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref()?.ingress.as_ref())
        .map_or(&[][..], |v| v.as_slice());
    let mut names = listed
        .iter()
        .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()));
    addrs.iter().all(|a| names.next() == Some(a.as_str())) && names.next().is_none()
}
