//! The controller against the embedded store, observed as a user would: Service status,
//! annotations, Events, pool status.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{CustomResourceExt, ResourceExt};
use metalgate_k8s::crd::{IPAddressPool, L2Advertisement};
use metalgate_k8s::{ComponentContext, NodeIdentity};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    client: kube::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _store: metalgate_testkit::Store,
}

async fn start() -> Env {
    let store = metalgate_testkit::Store::start().await;
    let client = store.client.clone();
    let pp = PatchParams::apply("test");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    for crd in [IPAddressPool::crd(), L2Advertisement::crd()] {
        crds.patch(&crd.name_any(), &pp, &Patch::Apply(&crd))
            .await
            .unwrap();
    }
    store.namespaces(&["metalgate-system", "apps"]).await;
    let mut env = Env {
        client,
        shutdown: CancellationToken::new(),
        task: None,
        _store: store,
    };
    env.start_controller();
    env
}

impl Env {
    fn start_controller(&mut self) {
        self.shutdown = CancellationToken::new();
        let ctx = ComponentContext {
            client: self.client.clone(),
            node: NodeIdentity {
                name: "test".into(),
                ip: None,
            },
            shutdown: self.shutdown.clone(),
        };
        self.task = Some(tokio::spawn(metalgate_controller::reconciler::run(
            ctx,
            metalgate_controller::Config::default(),
        )));
    }

    async fn stop_controller(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    async fn pool(&self, name: &str, spec: Value) {
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), "metalgate-system");
        let body = json!({"apiVersion": "metalgate.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": name}, "spec": spec});
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    }

    async fn lb(&self, name: &str, extra: Value) {
        let mut body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "apps"},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}});
        merge(&mut body, &extra);
        self.svcs()
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }

    fn svcs(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), "apps")
    }

    async fn ip(&self, name: &str) -> Option<String> {
        let s = self.svcs().get(name).await.ok()?;
        s.status?.load_balancer?.ingress?.first()?.ip.clone()
    }

    /// Wait (bounded) until a Service's EXTERNAL-IP satisfies `want`.
    async fn wait_ip(&self, name: &str, want: impl Fn(&Option<String>) -> bool) -> Option<String> {
        for _ in 0..200 {
            let ip = self.ip(name).await;
            if want(&ip) {
                return ip;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let ip = self.ip(name).await;
        panic!("{name}: EXTERNAL-IP still {ip:?} after 5 s");
    }

    async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<CoreEvent> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap();
        list.items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    async fn wait_event(&self, name: &str, reason: &str) -> String {
        for _ in 0..200 {
            if let Some((_, m)) = self
                .events(name)
                .await
                .into_iter()
                .find(|(r, _)| r == reason)
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no {reason} event for {name}: {:?}",
            self.events(name).await
        );
    }
}

fn merge(t: &mut Value, p: &Value) {
    if let (Some(tm), Some(pm)) = (t.as_object_mut(), p.as_object()) {
        for (k, v) in pm {
            match tm.get_mut(k) {
                Some(tv) if tv.is_object() && v.is_object() => merge(tv, v),
                _ => {
                    tm.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

fn some(ip: &Option<String>) -> bool {
    ip.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigns_from_the_pool_with_annotation_event_and_pool_counts() {
    let env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    env.lb("web", json!({})).await;
    let ip = env.wait_ip("web", some).await.unwrap();
    assert_eq!(ip, "192.168.56.200");
    let svc = env.svcs().get("web").await.unwrap();
    let ingress = &svc.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0];
    assert_eq!(ingress.ip_mode.as_deref(), Some("VIP"));
    assert_eq!(
        svc.metadata.annotations.unwrap()["metalgate.io/ip-allocated-from-pool"],
        "lab"
    );
    let msg = env.wait_event("web", "IPAllocated").await;
    assert!(
        msg.contains("192.168.56.200") && msg.contains("lab"),
        "{msg}"
    );
    let pools: Api<IPAddressPool> = Api::namespaced(env.client.clone(), "metalgate-system");
    for _ in 0..200 {
        if pools
            .get("lab")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.assigned_ipv4 == 1 && s.available_ipv4 == 20)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = pools.get("lab").await.unwrap().status.unwrap();
    assert_eq!((status.assigned_ipv4, status.available_ipv4), (1, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ips_metallb_annotations_and_sharing() {
    let env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    env.pool(
        "manual",
        json!({"addresses": ["192.168.56.230/32"], "autoAssign": false}),
    )
    .await;
    env.lb(
        "by-spec",
        json!({"spec": {"loadBalancerIP": "192.168.56.210"}}),
    )
    .await;
    env.lb("by-metallb", json!({"metadata": {"annotations": {"metallb.universe.tf/loadBalancerIPs": "192.168.56.211"}}})).await;
    env.lb(
        "by-pool",
        json!({"metadata": {"annotations": {"metallb.io/address-pool": "manual"}}}),
    )
    .await;
    assert_eq!(
        env.wait_ip("by-spec", some).await.unwrap(),
        "192.168.56.210"
    );
    assert_eq!(
        env.wait_ip("by-metallb", some).await.unwrap(),
        "192.168.56.211"
    );
    assert_eq!(
        env.wait_ip("by-pool", some).await.unwrap(),
        "192.168.56.230"
    );

    let share = |port: u16| json!({"metadata": {"annotations": {"metalgate.io/allow-shared-ip": "dns", "metalgate.io/loadBalancerIPs": "192.168.56.215"}}, "spec": {"ports": [{"name": "p", "port": port}]}});
    env.lb("dns-tcp", share(53)).await;
    env.lb("dns-alt", share(5353)).await;
    assert_eq!(
        env.wait_ip("dns-tcp", some).await.unwrap(),
        "192.168.56.215"
    );
    assert_eq!(
        env.wait_ip("dns-alt", some).await.unwrap(),
        "192.168.56.215"
    );
    // Same key, same port: refused, naming who holds it.
    env.lb("dns-clash", share(53)).await;
    let msg = env.wait_event("dns-clash", "AllocationFailed").await;
    assert!(
        msg.contains("192.168.56.215") && msg.contains("apps/dns-tcp"),
        "{msg}"
    );
    assert_eq!(env.ip("dns-clash").await, None);
    // Asking for an IP in no pool says so.
    env.lb("nowhere", json!({"spec": {"loadBalancerIP": "10.1.2.3"}}))
        .await;
    let msg = env.wait_event("nowhere", "AllocationFailed").await;
    assert!(msg.contains("10.1.2.3 is not in any pool"), "{msg}");
    // Conflicting annotations are named.
    env.lb("confused", json!({"metadata": {"annotations": {"metalgate.io/address-pool": "lab", "metallb.io/address-pool": "manual"}}})).await;
    let msg = env.wait_event("confused", "AllocationFailed").await;
    assert!(msg.contains("conflicting annotations"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_leaves_pending_then_release_frees_the_ip_for_reuse() {
    let env = start().await;
    env.pool(
        "tiny",
        json!({"addresses": ["192.168.56.200-192.168.56.201"]}),
    )
    .await;
    env.lb("a", json!({})).await;
    env.wait_ip("a", some).await;
    env.lb("b", json!({})).await;
    env.wait_ip("b", some).await;
    env.lb("c", json!({})).await;
    let msg = env.wait_event("c", "AllocationFailed").await;
    assert!(
        msg.contains("no available IPs") && msg.contains("tiny"),
        "{msg}"
    );
    assert_eq!(env.ip("c").await, None, "c stays <pending>");

    let freed = env.ip("a").await;
    env.svcs()
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let got = env.wait_ip("c", some).await;
    assert_eq!(got, freed, "the released IP goes to the waiting Service");

    // A Service that stops being a LoadBalancer releases its IP too.
    let b_ip = env.ip("b").await;
    env.svcs()
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    env.wait_ip("b", |ip| ip.is_none()).await;
    env.wait_event("b", "ClearAssignment").await;
    env.lb("d", json!({})).await;
    assert_eq!(env.wait_ip("d", some).await, b_ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrinking_pool_clears_only_what_falls_outside() {
    let env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.203"]}),
    )
    .await;
    for n in ["s0", "s1", "s2", "s3"] {
        env.lb(n, json!({})).await;
        env.wait_ip(n, some).await;
    }
    let before: Vec<Option<String>> =
        futures::future::join_all(["s0", "s1", "s2", "s3"].map(|n| env.ip(n))).await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.201"]}),
    )
    .await;
    let mut kept = 0;
    for (n, was) in ["s0", "s1", "s2", "s3"].iter().zip(&before) {
        let was = was.clone().unwrap();
        if was == "192.168.56.200" || was == "192.168.56.201" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                env.ip(n).await.as_deref(),
                Some(was.as_str()),
                "{n} keeps its IP"
            );
            kept += 1;
        } else {
            env.wait_ip(n, |ip| ip.is_none()).await;
            env.wait_event(n, "ClearAssignment").await;
        }
    }
    assert_eq!(kept, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_classes_are_left_alone() {
    let env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    env.lb(
        "theirs",
        json!({"spec": {"loadBalancerClass": "other.example/lb"}}),
    )
    .await;
    env.lb(
        "ours",
        json!({"spec": {"loadBalancerClass": "metalgate.io/lb"}}),
    )
    .await;
    env.wait_ip("ours", some).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.ip("theirs").await, None);
    assert!(env.events("theirs").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pools_are_reported_and_do_not_disturb_assignments() {
    let env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    env.lb("web", json!({})).await;
    let ip = env.wait_ip("web", some).await;

    env.pool("overlap", json!({"addresses": ["192.168.56.210/32"]}))
        .await;
    let msg = env.wait_event("overlap", "InvalidConfiguration").await;
    assert!(
        msg.contains("spec.addresses") && msg.contains("overlaps pool \"lab\""),
        "{msg}"
    );
    env.pool("badcidr", json!({"addresses": ["192.168.57.0/33"]}))
        .await;
    let msg = env.wait_event("badcidr", "InvalidConfiguration").await;
    assert!(
        msg.contains("spec.addresses[0]") && msg.contains("prefix length"),
        "{msg}"
    );
    // A bad edit of the pool in use keeps its last good version.
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.220-192.168.56.200"]}),
    )
    .await;
    let msg = env.wait_event("lab", "InvalidConfiguration").await;
    assert!(
        msg.contains("spec.addresses[0]") && msg.contains("reversed"),
        "{msg}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        env.ip("web").await,
        ip,
        "existing assignments are undisturbed"
    );
    env.lb("next", json!({})).await;
    assert!(
        env.wait_ip("next", some).await.is_some(),
        "the last good pool still allocates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_moves_no_ip() {
    let mut env = start().await;
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    for i in 0..10 {
        env.lb(&format!("s{i}"), json!({})).await;
    }
    for i in 0..10 {
        env.wait_ip(&format!("s{i}"), some).await;
    }
    let before: Vec<Option<String>> =
        futures::future::join_all((0..10).map(|i| env.ip_owned(format!("s{i}")))).await;
    env.stop_controller().await;
    // While it is down: one Service goes, one arrives. The newcomer must not take an IP
    // that a surviving Service holds.
    env.svcs()
        .delete("s3", &DeleteParams::default())
        .await
        .unwrap();
    env.lb("late", json!({})).await;
    env.start_controller();
    let late = env.wait_ip("late", some).await.unwrap();
    for (i, was) in before.iter().enumerate() {
        if i == 3 {
            continue;
        }
        assert_eq!(&env.ip(&format!("s{i}")).await, was, "s{i} kept its IP");
        assert_ne!(Some(&late), was.as_ref(), "late got a held IP");
    }
}

impl Env {
    async fn ip_owned(&self, name: String) -> Option<String> {
        self.ip(&name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_services_get_one_ip_per_family() {
    let env = start().await;
    env.pool(
        "dual",
        json!({"addresses": ["192.168.56.200-192.168.56.210", "fd00:56::200-fd00:56::210"]}),
    )
    .await;
    env.lb(
        "both",
        json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
    )
    .await;
    env.wait_ip("both", some).await;
    let svc = env.svcs().get("both").await.unwrap();
    let ips: Vec<String> = svc
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect();
    assert_eq!(ips, ["192.168.56.200", "fd00:56::200"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_both_write() {
    let env = start().await;
    // A second replica against the same store.
    let second = CancellationToken::new();
    let ctx = ComponentContext {
        client: env.client.clone(),
        node: NodeIdentity {
            name: "second".into(),
            ip: None,
        },
        shutdown: second.clone(),
    };
    let task = tokio::spawn(metalgate_controller::reconciler::run(
        ctx,
        metalgate_controller::Config::default(),
    ));
    env.pool(
        "lab",
        json!({"addresses": ["192.168.56.200-192.168.56.220"]}),
    )
    .await;
    for i in 0..5 {
        env.lb(&format!("s{i}"), json!({})).await;
    }
    for i in 0..5 {
        env.wait_ip(&format!("s{i}"), some).await;
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), "metalgate-system");
    let holder = leases
        .get("metalgate-controller")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    // Every write came from the Lease holder: each Service's status was written once, by one
    // replica, and all the IPAllocated Events name the same instance.
    let api: Api<CoreEvent> = Api::all(env.client.clone());
    let instances: std::collections::BTreeSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("IPAllocated"))
        .filter_map(|e| e.reporting_instance)
        .collect();
    assert_eq!(instances.into_iter().collect::<Vec<_>>(), [holder]);
    second.cancel();
    task.await.unwrap().unwrap();
}
