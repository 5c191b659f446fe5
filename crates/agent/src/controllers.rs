//! The workload controllers k3s would run (kube-controller-manager's Deployment, ReplicaSet,
//! DaemonSet and EndpointSlice controllers, and kube-scheduler), carried out: one replica holds
//! the Lease `metalgate-agent-controllers` and, on every change it watches (and every second,
//! for pods waiting on a node), runs the pure plans of [`crate::plan`] against its caches and
//! writes what they say. Status is written by server-side apply, field manager
//! `metalgate-agent`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodCondition, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use metalgate_k8s::reflect::Watches;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::plan::{self, REVISION_HASH, controlled_by, pod_gone};

/// The field manager of everything the agent writes.
pub const MANAGER: &str = "metalgate-agent";
const LEASE: &str = "metalgate-agent-controllers";

struct Caches {
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    daemonsets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
}

/// Creations under the agent's field manager.
fn post() -> PostParams {
    PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Create the pods, delete the named ones, write the owner's status: what the ReplicaSet and
/// DaemonSet controllers each do with their plan.
async fn carry_out<K>(
    client: &Client,
    owner: &K,
    api: &Api<Pod>,
    create: Vec<Pod>,
    delete: &[String],
    status: serde_json::Value,
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    for pod in create {
        api.create(&post(), &pod).await?;
    }
    for name in delete {
        api.delete(name, &DeleteParams::default()).await?;
    }
    write_status(client, owner, status).await
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn ns_of<K: Resource>(o: &K) -> String {
    o.meta().namespace.clone().unwrap_or_default()
}

fn uid_of<K: Resource>(o: &K) -> String {
    o.meta().uid.clone().unwrap_or_default()
}

/// Run the controllers while this replica holds the Lease, until `shutdown`.
pub async fn run(
    client: Client,
    identity: String,
    namespace: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let Some(lost) =
            metalgate_k8s::leader::acquire(&client, &namespace, LEASE, &identity, &shutdown).await
        else {
            return Ok(());
        };
        let stop = CancellationToken::new();
        tokio::select! {
            r = lead(client.clone(), stop.clone()) => { r?; }
            _ = lost.cancelled() => { stop.cancel(); }
            _ = shutdown.cancelled() => {
                stop.cancel();
                metalgate_k8s::leader::release(&client, &namespace, LEASE, &identity).await;
                return Ok(());
            }
        }
    }
}

async fn lead(client: Client, stop: CancellationToken) -> anyhow::Result<()> {
    let mut w = Watches::new();
    let cfg = watcher::Config::default;
    let caches = Caches {
        deployments: w.store(Api::all(client.clone()), cfg()),
        replicasets: w.store(Api::all(client.clone()), cfg()),
        daemonsets: w.store(Api::all(client.clone()), cfg()),
        pods: w.store(Api::all(client.clone()), cfg()),
        nodes: w.store(Api::all(client.clone()), cfg()),
        services: w.store(Api::all(client.clone()), cfg()),
        slices: w.store(Api::all(client.clone()), cfg()),
        namespaces: w.store(Api::all(client.clone()), cfg()),
        accounts: w.store(Api::all(client.clone()), cfg()),
    };
    for ready in [
        caches.deployments.wait_until_ready().await,
        caches.replicasets.wait_until_ready().await,
        caches.daemonsets.wait_until_ready().await,
        caches.pods.wait_until_ready().await,
        caches.nodes.wait_until_ready().await,
        caches.services.wait_until_ready().await,
        caches.slices.wait_until_ready().await,
        caches.namespaces.wait_until_ready().await,
        caches.accounts.wait_until_ready().await,
    ] {
        ready?;
    }
    tracing::info!("workload controllers running");
    loop {
        if let Err(e) = pass(&client, &caches).await {
            tracing::warn!(error = %e, "workload controllers: a write failed; retrying");
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = w.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Let a burst of events settle into one pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pass(client: &Client, c: &Caches) -> anyhow::Result<()> {
    let pods: Vec<std::sync::Arc<Pod>> = c
        .pods
        .state()
        .into_iter()
        .filter(|p| !pod_gone(p))
        .collect();
    let replicasets = c.replicasets.state();
    let mut first_error = None;
    let mut note = |r: anyhow::Result<()>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "workload controller");
            first_error.get_or_insert(e);
        }
    };
    for d in c.deployments.state() {
        note(deployment(client, &d, &replicasets).await);
    }
    for rs in &replicasets {
        note(replica_set(client, rs, &pods).await);
    }
    let nodes: Vec<Node> = c.nodes.state().iter().map(|n| (**n).clone()).collect();
    for ds in c.daemonsets.state() {
        note(daemon_set(client, &ds, &nodes, &pods).await);
    }
    note(schedule(client, &nodes, &c.pods.state()).await);
    note(default_accounts(client, c).await);
    for svc in c.services.state() {
        note(endpoints(client, &svc, &c.pods.state(), &c.slices).await);
    }
    first_error.map_or(Ok(()), Err)
}

async fn write_status<K>(client: &Client, obj: &K, status: serde_json::Value) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    let current = serde_json::to_value(obj)?;
    if current["status"] == status {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(client.clone(), &ns_of(obj));
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn deployment(
    client: &Client,
    d: &Deployment,
    all: &[std::sync::Arc<ReplicaSet>],
) -> anyhow::Result<()> {
    let uid = uid_of(d);
    let owned: Vec<&ReplicaSet> = all
        .iter()
        .filter(|r| controlled_by(&r.metadata, &uid))
        .map(|r| &**r)
        .collect();
    let p = plan::deployment::plan(d, &owned, now());
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns_of(d));
    for a in &p.actions {
        match a {
            plan::deployment::Action::Create(rs) => {
                tracing::info!(deployment = %d.name_any(), replicaset = %rs.name_any(), "new ReplicaSet");
                match api.create(&post(), rs).await {
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    r => {
                        r?;
                    }
                }
            }
            plan::deployment::Action::Scale { name, replicas } => {
                tracing::info!(deployment = %d.name_any(), replicaset = %name, replicas, "scaling");
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                )
                .await?;
            }
            plan::deployment::Action::Revision { name, revision } => {
                api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {plan::REVISION: revision.to_string()}}}))).await?;
            }
            plan::deployment::Action::Delete(name) => {
                api.delete(name, &DeleteParams::default()).await?;
            }
        }
    }
    // The Deployment carries the revision of its current ReplicaSet, as kubectl shows it.
    if let Some(rev) = owned
        .iter()
        .filter(|r| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(plan::TEMPLATE_HASH))
                == Some(&plan::template_hash(
                    &d.spec.clone().unwrap_or_default().template,
                ))
        })
        .find_map(|r| r.annotations().get(plan::REVISION).cloned())
    {
        if d.annotations().get(plan::REVISION) != Some(&rev) {
            let dapi: Api<Deployment> = Api::namespaced(client.clone(), &ns_of(d));
            dapi.patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {plan::REVISION: rev}}})),
            )
            .await?;
        }
    }
    let mut status = serde_json::to_value(&p.status)?;
    keep_times(
        &mut status,
        d.status.as_ref().map(serde_json::to_value).transpose()?,
    );
    write_status(client, d, status).await
}

/// Conditions whose content did not change keep their times, so a pass without news writes
/// nothing.
fn keep_times(status: &mut serde_json::Value, old: Option<serde_json::Value>) {
    let Some(old) = old else { return };
    let (Some(new), Some(prev)) = (
        status["conditions"].as_array_mut(),
        old["conditions"].as_array(),
    ) else {
        return;
    };
    for c in new.iter_mut() {
        if let Some(o) = prev.iter().find(|o| {
            o["type"] == c["type"] && o["status"] == c["status"] && o["reason"] == c["reason"]
        }) {
            c["lastUpdateTime"] = o["lastUpdateTime"].clone();
            c["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
    }
}

async fn replica_set(
    client: &Client,
    rs: &ReplicaSet,
    pods: &[std::sync::Arc<Pod>],
) -> anyhow::Result<()> {
    let uid = uid_of(rs);
    let ns = ns_of(rs);
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| controlled_by(&p.metadata, &uid))
        .map(|p| &**p)
        .collect();
    let p = plan::replicaset::plan(rs, &owned);
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let create = (0..p.create)
        .map(|_| {
            plan::pod_from_template(
                &template,
                &ns,
                plan::generate_name(&format!("{}-", rs.name_any())),
                plan::controller_ref("apps/v1", "ReplicaSet", &rs.metadata),
            )
        })
        .collect();
    let status = serde_json::to_value(&p.status)?;
    carry_out(client, rs, &api, create, &p.delete, status).await
}

async fn daemon_set(
    client: &Client,
    ds: &DaemonSet,
    nodes: &[Node],
    pods: &[std::sync::Arc<Pod>],
) -> anyhow::Result<()> {
    let uid = uid_of(ds);
    let ns = ns_of(ds);
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| controlled_by(&p.metadata, &uid))
        .map(|p| &**p)
        .collect();
    let p = plan::daemonset::plan(ds, nodes, &owned);
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_HASH.into(), p.hash.clone());
    let create = p
        .create
        .iter()
        .map(|node| {
            let mut pod = plan::pod_from_template(
                &template,
                &ns,
                plan::generate_name(&format!("{}-", ds.name_any())),
                plan::controller_ref("apps/v1", "DaemonSet", &ds.metadata),
            );
            // Daemon pods are placed by their controller, not the scheduler.
            pod.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
            pod
        })
        .collect();
    let status = serde_json::to_value(&p.status)?;
    carry_out(client, ds, &api, create, &p.delete, status).await
}

async fn schedule(
    client: &Client,
    nodes: &[Node],
    all: &[std::sync::Arc<Pod>],
) -> anyhow::Result<()> {
    let live: Vec<&Pod> = all.iter().filter(|p| !pod_gone(p)).map(|p| &**p).collect();
    let mut placed: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in &live {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            placed.entry(n).or_default().push(p);
        }
    }
    for p in live
        .iter()
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()))
    {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns_of(*p));
        match plan::schedule::choose(p, nodes, &placed) {
            Ok(node) => {
                tracing::info!(pod = %p.name_any(), node, "scheduled");
                api.patch(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"nodeName": node}})),
                )
                .await?;
                placed.entry(node).or_default().push(p);
            }
            Err(reason) => {
                let cond = PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    message: Some(reason),
                    last_transition_time: Some(now()),
                    ..Default::default()
                };
                let had = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                    .and_then(|c| c.message.clone());
                if had != cond.message {
                    tracing::info!(pod = %p.name_any(), reason = cond.message.as_deref().unwrap_or_default(), "unschedulable");
                    write_status(
                        client,
                        *p,
                        json!({"phase": "Pending", "conditions": [cond]}),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

async fn endpoints(
    client: &Client,
    svc: &Service,
    pods: &[std::sync::Arc<Pod>],
    slices: &Store<EndpointSlice>,
) -> anyhow::Result<()> {
    let ns = ns_of(svc);
    let in_ns: Vec<&Pod> = pods
        .iter()
        .filter(|p| ns_of(&***p) == ns)
        .map(|p| &**p)
        .collect();
    let Some(want) = plan::endpoints::slice(svc, &in_ns) else {
        return Ok(());
    };
    let current = slices
        .state()
        .into_iter()
        .find(|s| ns_of(&**s) == ns && s.metadata.name == want.metadata.name);
    if let Some(cur) = current {
        if cur.endpoints == want.endpoints
            && cur.ports == want.ports
            && cur.metadata.labels == want.metadata.labels
        {
            return Ok(());
        }
    }
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let mut body = serde_json::to_value(&want)?;
    body["apiVersion"] = json!("discovery.k8s.io/v1");
    body["kind"] = json!("EndpointSlice");
    api.patch(
        &want.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Every namespace has a ServiceAccount `default`, as kube-controller-manager's ServiceAccount
/// controller keeps it: pods that name none run as it.
async fn default_accounts(client: &Client, c: &Caches) -> anyhow::Result<()> {
    let accounts = c.accounts.state();
    for ns in c.namespaces.state() {
        if ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = ns.name_any();
        if accounts
            .iter()
            .any(|a| ns_of(&**a) == name && a.name_any() == "default")
        {
            continue;
        }
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&post(), &sa).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            r => {
                r?;
            }
        }
    }
    Ok(())
}
