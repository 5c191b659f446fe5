//! The reconcile loop: watches Services, pools and Namespaces; feeds the allocator; writes
//! `status.loadBalancer.ingress`, the `ip-allocated-from-pool` annotation, Events and pool
//! status. Writes are server-side applies with one field manager.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::{reflector, watcher};
use kube::{Resource, ResourceExt};
use metalgate_ipam::{Allocator, Pool, PoolSpec, Requirement, Selector, ServiceAllocation};
use metalgate_k8s::crd::IPAddressPool;
use metalgate_k8s::{ComponentContext, reflect};
use serde_json::json;

use crate::desired::{ALLOCATED_FROM_POOL, Wanted, status_ips, wanted};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "metalgate-controller";
/// The coordination Lease the active controller replica holds (in its namespace).
pub const LEASE: &str = "metalgate-controller";

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where pools (and the leader Lease) live.
    pub namespace: String,
    /// The `spec.loadBalancerClass` served (Services without a class are served too).
    pub class: String,
    /// The speakers' gossip-key Secret (in `namespace`), created when missing.
    pub memberlist_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: metalgate_k8s::NAMESPACE.into(),
            class: crate::desired::DEFAULT_CLASS.into(),
            memberlist_secret: metalgate_k8s::MEMBERLIST_SECRET.into(),
        }
    }
}

fn selector(s: &LabelSelector) -> Selector {
    let mut reqs: Vec<Requirement> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
        .collect();
    for (index, e) in s.match_expressions.iter().flatten().enumerate() {
        let vals = e.values.clone().unwrap_or_default();
        reqs.push(match e.operator.as_str() {
            "In" => Requirement::In(e.key.clone(), vals),
            "NotIn" => Requirement::NotIn(e.key.clone(), vals),
            "Exists" => Requirement::Exists(e.key.clone()),
            "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
            op => Requirement::Unknown {
                key: e.key.clone(),
                operator: op.into(),
                index,
            },
        });
    }
    Selector(reqs)
}

/// A pool object as the allocator's plain spec.
pub fn pool_spec(p: &IPAddressPool) -> PoolSpec {
    PoolSpec {
        name: p.name_any(),
        addresses: p.spec.addresses.clone(),
        auto_assign: p.spec.auto_assign,
        avoid_buggy_ips: p.spec.avoid_buggy_ips,
        allocation: p
            .spec
            .service_allocation
            .as_ref()
            .map(|a| ServiceAllocation {
                priority: a.priority,
                namespaces: a.namespaces.clone(),
                namespace_selectors: a.namespace_selectors.iter().map(selector).collect(),
                service_selectors: a.service_selectors.iter().map(selector).collect(),
            }),
    }
}

struct State {
    client: kube::Client,
    cfg: Config,
    alloc: Allocator,
    recorder: Recorder,
    /// The last valid version of each pool: a bad edit leaves the pool as it was.
    last_good: BTreeMap<String, Pool>,
    /// Pool versions already reported invalid.
    reported: HashSet<(String, String)>,
    /// Service resourceVersions already handled.
    seen: HashMap<String, String>,
    /// The last failure reported per Service (so an Event is not repeated every pass).
    failures: HashMap<String, String>,
    pools_in_use: Vec<Pool>,
    /// Each pool's usage as last computed, for `/metrics`.
    usage: Arc<std::sync::Mutex<BTreeMap<String, metalgate_k8s::crd::IPAddressPoolStatus>>>,
}

/// Pool usage in the Prometheus text format.
fn render_usage(usage: &BTreeMap<String, metalgate_k8s::crd::IPAddressPoolStatus>) -> String {
    let mut out = String::from(
        "# HELP metalgate_controller_pool_addresses Addresses of a pool by family and state (assigned or available).\n# TYPE metalgate_controller_pool_addresses gauge\n",
    );
    for (pool, s) in usage {
        for (family, state, n) in [
            ("ipv4", "assigned", s.assigned_ipv4),
            ("ipv4", "available", s.available_ipv4),
            ("ipv6", "assigned", s.assigned_ipv6),
            ("ipv6", "available", s.available_ipv6),
        ] {
            out.push_str(&format!(
                "metalgate_controller_pool_addresses{{pool=\"{pool}\",family=\"{family}\",state=\"{state}\"}} {n}\n"
            ));
        }
    }
    out
}

fn ips_text(ips: &[IpAddr]) -> String {
    let quoted: Vec<String> = ips.iter().map(|i| format!("{:?}", i.to_string())).collect();
    format!("[{}]", quoted.join(","))
}

impl State {
    /// Pools from the store, validated; a bad pool keeps its last good version.
    async fn refresh_pools(&mut self, pools: &[Arc<IPAddressPool>]) -> bool {
        let specs: Vec<PoolSpec> = pools.iter().map(|p| pool_spec(p)).collect();
        let metalgate_ipam::Accepted {
            pools: accepted,
            problems,
        } = metalgate_ipam::accept(&specs, &mut self.last_good);
        for (name, problem) in problems {
            let Some(obj) = pools.iter().find(|p| p.name_any() == name) else {
                continue;
            };
            if self
                .reported
                .insert((name.clone(), obj.resource_version().unwrap_or_default()))
            {
                tracing::warn!(pool = %name, %problem, "invalid IPAddressPool; keeping its last good version");
                publish(&self.recorder, obj.as_ref(), EventType::Warning, "InvalidConfiguration", format!("IPAddressPool {name}: {problem}; the pool keeps its last valid configuration")).await;
            }
        }
        if accepted == self.pools_in_use {
            return false;
        }
        self.pools_in_use = accepted.clone();
        let cleared = self.alloc.set_pools(accepted);
        for k in cleared {
            self.seen.remove(&k);
            tracing::info!(service = %k, "IP outside its pool now; cleared");
        }
        true
    }

    /// The allocation after a restart: every Service keeps the IPs its status shows.
    fn rebuild(
        &mut self,
        services: &[Arc<Service>],
        namespaces: &HashMap<String, BTreeMap<String, String>>,
    ) {
        let mut ordered: Vec<&Arc<Service>> = services.iter().collect();
        ordered.sort_by_key(|s| {
            (
                s.metadata.creation_timestamp.clone().map(|t| t.0),
                reflect::key_of(&s.metadata),
            )
        });
        let empty = BTreeMap::new();
        for svc in ordered {
            let ips = status_ips(svc);
            if ips.is_empty() {
                continue;
            }
            let ns_labels = namespaces
                .get(&svc.namespace().unwrap_or_default())
                .unwrap_or(&empty);
            if let Wanted::Ips(mut req) = wanted(svc, ns_labels, &self.cfg.class) {
                req.families = ips
                    .iter()
                    .map(|ip| metalgate_ipam::Family::of(*ip))
                    .collect();
                req.requested = ips;
                req.pool = None;
                match self.alloc.assign(&reflect::key_of(&svc.metadata), &req) {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(service = %reflect::key_of(&svc.metadata), error = %e, "could not keep the IPs in its status")
                    }
                }
            }
        }
    }

    /// Decide what one Service needs: the allocator's answer, as data for the applier.
    fn decide(
        &mut self,
        svc: &Arc<Service>,
        ns_labels: &BTreeMap<String, String>,
    ) -> Option<Action> {
        let k = reflect::key_of(&svc.metadata);
        let mut action = Action {
            svc: svc.clone(),
            write: None,
            events: Vec::new(),
        };
        let clear = |action: &mut Action, reason: String| {
            if !status_ips(svc).is_empty() || svc.annotations().contains_key(ALLOCATED_FROM_POOL) {
                action.write = Some((Vec::new(), None));
                if !status_ips(svc).is_empty() {
                    action
                        .events
                        .push((EventType::Normal, "ClearAssignment", reason));
                }
            }
        };
        match wanted(svc, ns_labels, &self.cfg.class) {
            Wanted::NotOurs => {
                self.alloc.release(&k);
                self.failures.remove(&k);
                clear(
                    &mut action,
                    "the Service is no longer a LoadBalancer of this class; its IP was released"
                        .into(),
                );
            }
            Wanted::Invalid(why) => {
                self.alloc.release(&k);
                clear(&mut action, format!("released: {why}"));
                self.fail(&mut action, why);
            }
            Wanted::Ips(req) => match self.alloc.assign(&k, &req) {
                Ok(a) => {
                    self.failures.remove(&k);
                    let pool_annotation = svc.annotations().get(ALLOCATED_FROM_POOL).cloned();
                    if status_ips(svc) != a.ips
                        || pool_annotation.as_deref() != Some(a.pool.as_str())
                    {
                        if status_ips(svc) != a.ips {
                            action.events.push((
                                EventType::Normal,
                                "IPAllocated",
                                format!("Assigned IP {} from pool {}", ips_text(&a.ips), a.pool),
                            ));
                        }
                        action.write = Some((a.ips, Some(a.pool)));
                    }
                }
                Err(e) => {
                    clear(&mut action, format!("released: {e}"));
                    self.fail(&mut action, e.to_string());
                }
            },
        }
        (action.write.is_some() || !action.events.is_empty()).then_some(action)
    }

    /// An AllocationFailed Event, once per distinct reason.
    fn fail(&mut self, action: &mut Action, why: String) {
        let k = reflect::key_of(&action.svc.metadata);
        if self.failures.get(&k) != Some(&why) {
            tracing::info!(service = %k, %why, "allocation failed");
            action.events.push((
                EventType::Warning,
                "AllocationFailed",
                format!("Failed to allocate IP for \"{k}\": {why}"),
            ));
            self.failures.insert(k, why);
        }
    }

    async fn pool_status(&self, pools: &[Arc<IPAddressPool>]) {
        self.usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| pools.iter().any(|p| p.name_any() == *name));
        for p in pools {
            let s = self.alloc.stats(&p.name_any());
            let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
            let want = metalgate_k8s::crd::IPAddressPoolStatus {
                assigned_ipv4: clamp(s.assigned_v4),
                assigned_ipv6: clamp(s.assigned_v6),
                available_ipv4: clamp(s.available_v4),
                available_ipv6: clamp(s.available_v6),
            };
            self.usage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.name_any(), want.clone());
            if p.status.as_ref() == Some(&want) {
                continue;
            }
            let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.cfg.namespace);
            let body = json!({"apiVersion": "metalgate.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": p.name_any()}, "status": want});
            if let Err(e) = api
                .patch_status(
                    &p.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                tracing::warn!(pool = %p.name_any(), error = %e, "writing pool status failed");
            }
        }
    }
}

/// What a pass decided for one Service.
struct Action {
    svc: Arc<Service>,
    /// IPs (empty: clear) and the pool to record.
    write: Option<(Vec<IpAddr>, Option<String>)>,
    /// Events to publish once the write is done.
    events: Vec<(EventType, &'static str, String)>,
}

async fn publish(
    recorder: &Recorder,
    obj: &impl Resource<DynamicType = ()>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    reflect::publish(
        recorder,
        &obj.object_ref(&()),
        type_,
        reason,
        "Allocate",
        note,
    )
    .await;
}

async fn write_status(
    client: &kube::Client,
    svc: &Service,
    ips: &[IpAddr],
    pool: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
    let name = svc.name_any();
    let ingress: Vec<serde_json::Value> = ips
        .iter()
        .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect();
    let status = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": svc.namespace()},
        "status": {"loadBalancer": if ingress.is_empty() { json!({}) } else { json!({"ingress": ingress}) }},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut meta = json!({"name": name, "namespace": svc.namespace()});
    if let Some(p) = pool {
        meta["annotations"] = json!({ALLOCATED_FROM_POOL: p});
    }
    let annotate = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta});
    let annotation_changes =
        pool.map(str::to_string) != svc.annotations().get(ALLOCATED_FROM_POOL).cloned();
    // Observers may rely on the order: an IP in status has its pool annotation already, and
    // a cleared status no longer shows the IP before the annotation goes.
    if annotation_changes && pool.is_some() {
        api.patch(&name, &pp, &Patch::Apply(&annotate)).await?;
    }
    api.patch_status(&name, &pp, &Patch::Apply(&status)).await?;
    if annotation_changes && pool.is_none() {
        api.patch(&name, &pp, &Patch::Apply(&annotate)).await?;
    }
    Ok(())
}

/// Perform one decision; on failure, the Service's key (to be looked at again).
async fn perform(client: &kube::Client, recorder: &Recorder, a: Action) -> Result<(), String> {
    if let Some((ips, pool)) = &a.write {
        if let Err(e) = write_status(client, &a.svc, ips, pool.as_deref()).await {
            tracing::warn!(service = %reflect::key_of(&a.svc.metadata), error = %e, "writing status failed; will retry");
            // The Service's owner sees why it has no address (a 403 names the missing rule);
            // repeats are folded into one Event series by the recorder.
            publish(
                recorder,
                a.svc.as_ref(),
                EventType::Warning,
                "StatusWriteFailed",
                format!("writing the LoadBalancer address into status failed: {e}"),
            )
            .await;
            return Err(reflect::key_of(&a.svc.metadata));
        }
    }
    for (type_, reason, note) in a.events {
        publish(recorder, a.svc.as_ref(), type_, reason, note).await;
    }
    Ok(())
}

/// How many writes the applier has in flight.
const WRITE_CONCURRENCY: usize = 16;

/// Run the controller until `ctx.shutdown`.
pub async fn run(ctx: ComponentContext, cfg: Config) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let me = format!("{}-{}", ctx.node.name, std::process::id());
    // Ready: a standby waiting for the Lease (so a rollout can start the next replica), or the
    // leader once every watch has listed (a watch its RBAC forbids keeps it NotReady).
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let r = ready.clone();
        metalgate_k8s::metrics::register_readiness(
            crate::NAME,
            Arc::new(move || r.load(std::sync::atomic::Ordering::Relaxed)),
        );
    }
    let Some(lost) =
        metalgate_k8s::leader::acquire(&client, &cfg.namespace, LEASE, &me, &ctx.shutdown).await
    else {
        return Ok(());
    };
    ready.store(false, std::sync::atomic::Ordering::Relaxed);

    // The speakers gossip only with a key; make sure there is one (the leader does it, so two
    // replicas do not race to create two).
    match crate::memberlist::ensure(&client, &cfg.namespace, &cfg.memberlist_secret).await {
        Ok(crate::memberlist::Outcome::Created) => tracing::info!(
            secret = %format!("{}/{}", cfg.namespace, cfg.memberlist_secret),
            "created the speakers' gossip key"
        ),
        Ok(crate::memberlist::Outcome::Present) => {}
        Err(e) => tracing::error!(
            secret = %format!("{}/{}", cfg.namespace, cfg.memberlist_secret),
            error = %format!("{e:#}"),
            "cannot make sure the speakers' gossip key exists; they gossip only once it does"
        ),
    }

    let mut watches = reflect::Watches::new();
    let services = watches.store(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let pools = watches.store(
        Api::<IPAddressPool>::namespaced(client.clone(), &cfg.namespace),
        watcher::Config::default(),
    );
    let namespaces = watches.store(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    );
    for ready in [
        services.wait_until_ready().await.is_ok(),
        pools.wait_until_ready().await.is_ok(),
        namespaces.wait_until_ready().await.is_ok(),
    ] {
        if !ready {
            anyhow::bail!("a watch ended before its first list");
        }
    }
    ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let recorder = reflect::recorder(&client, FIELD_MANAGER, &me);
    let mut st = State {
        client: client.clone(),
        cfg: cfg.clone(),
        alloc: Allocator::default(),
        recorder,
        last_good: BTreeMap::new(),
        reported: HashSet::new(),
        seen: HashMap::new(),
        failures: HashMap::new(),
        pools_in_use: Vec::new(),
        usage: Default::default(),
    };
    let usage = st.usage.clone();
    metalgate_k8s::metrics::register(
        "controller",
        Arc::new(move || render_usage(&usage.lock().unwrap_or_else(|e| e.into_inner()))),
    );
    let ns_labels =
        |namespaces: &reflector::Store<Namespace>| -> HashMap<String, BTreeMap<String, String>> {
            namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone()))
                .collect()
        };
    st.refresh_pools(&pools.state()).await;
    st.rebuild(&services.state(), &ns_labels(&namespaces));
    tracing::info!(
        pools = st.pools_in_use.len(),
        held = st.alloc.assignments().count(),
        "controller started; allocation rebuilt from Service status"
    );

    let mut last_ns: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    loop {
        let all_pools = pools.state();
        let ns = ns_labels(&namespaces);
        let mut everything = st.refresh_pools(&all_pools).await;
        if ns != last_ns {
            everything = true;
            last_ns = ns.clone();
        }
        let mut svcs = services.state();
        svcs.sort_by_key(|s| {
            (
                s.metadata.creation_timestamp.clone().map(|t| t.0),
                reflect::key_of(&s.metadata),
            )
        });
        let present: HashSet<String> = svcs.iter().map(|s| reflect::key_of(&s.metadata)).collect();
        let held_before = st.alloc.assignments().count();
        // Deleted Services first, so their IPs are free for this pass.
        let gone: Vec<String> = st
            .alloc
            .assignments()
            .map(|(k, _)| k.clone())
            .filter(|k| !present.contains(k))
            .collect();
        for k in gone {
            st.alloc.release(&k);
            st.seen.remove(&k);
            st.failures.remove(&k);
            tracing::info!(service = %k, "deleted; IP released");
        }
        let empty = BTreeMap::new();
        let mut actions = Vec::new();
        for svc in &svcs {
            if svc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let k = reflect::key_of(&svc.metadata);
            let rv = svc.resource_version().unwrap_or_default();
            // Services still waiting for an IP are tried again on every pass.
            if !everything && st.seen.get(&k) == Some(&rv) && !st.failures.contains_key(&k) {
                continue;
            }
            st.seen.insert(k.clone(), rv);
            let labels = ns
                .get(&svc.namespace().unwrap_or_default())
                .unwrap_or(&empty);
            actions.extend(st.decide(svc, labels));
        }
        // The decisions are made; the writes go out together, a few at a time.
        let failed: Vec<String> = futures::stream::iter(
            actions
                .into_iter()
                .map(|a| perform(&st.client, &st.recorder, a)),
        )
        .buffer_unordered(WRITE_CONCURRENCY)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
        for k in failed {
            st.seen.remove(&k);
        }
        st.seen.retain(|k, _| present.contains(k));
        st.pool_status(&all_pools).await;
        // Something was released during the pass while others still wait: go again at once.
        if st.alloc.assignments().count() < held_before && !st.failures.is_empty() {
            continue;
        }

        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = lost.cancelled() => {
                tracing::warn!("lost the controller lease; stopping writes");
                break;
            }
            _ = watches.changed() => {}
        }
        // Let a burst of changes arrive before the next pass.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(watches);
    if !lost.is_cancelled() {
        metalgate_k8s::leader::release(&client, &cfg.namespace, LEASE, &me).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selector_operators_are_kept_and_unknown_ones_named() {
        let expr = |key: &str, op: &str| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: None,
        };
        let s = LabelSelector {
            match_labels: Some([("team".to_string(), "a".to_string())].into()),
            match_expressions: Some(vec![expr("gone", "DoesNotExist"), expr("tier", "Matches")]),
        };
        assert_eq!(
            selector(&s).0,
            vec![
                Requirement::In("team".into(), vec!["a".into()]),
                Requirement::DoesNotExist("gone".into()),
                Requirement::Unknown {
                    key: "tier".into(),
                    operator: "Matches".into(),
                    index: 1
                },
            ]
        );
    }

    mod agreement {
        //! A pool's selectors (converted for the allocator) and the speaker's node selectors
        //! (`metalgate_k8s::selector`) read one LabelSelector the same way: random selectors,
        //! unknown operators included, against random labels.
        use std::collections::BTreeMap;

        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        use proptest::prelude::*;

        fn requirement() -> impl Strategy<Value = LabelSelectorRequirement> {
            let op = prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Gt"]);
            let values = proptest::collection::vec("[xyz]", 0..3);
            ("[abc]", op, values).prop_map(|(key, op, values)| LabelSelectorRequirement {
                key,
                operator: op.to_string(),
                values: Some(values),
            })
        }

        proptest! {
            #[test]
            fn the_allocator_and_the_speaker_select_alike(
                match_labels in proptest::collection::btree_map("[abc]", "[xyz]", 0..3),
                exprs in proptest::collection::vec(requirement(), 0..3),
                labels in proptest::collection::btree_map("[abc]", "[xyz]", 0..4),
            ) {
                let sel = LabelSelector {
                    match_labels: Some(match_labels),
                    match_expressions: Some(exprs),
                };
                let labels: BTreeMap<String, String> = labels;
                prop_assert_eq!(
                    super::super::selector(&sel).matches(&labels),
                    metalgate_k8s::selector::matches(&sel, &labels)
                );
            }
        }
    }
}
