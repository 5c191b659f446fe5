//! The store driven by `kube` clients, as metalgate's components drive it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use metalgate_apiserver::{ApiServer, Config};
use serde_json::json;
use tempfile::TempDir;

struct Env {
    server: ApiServer,
    client: kube::Client,
    _dir: TempDir,
}

async fn client_for(server: &ApiServer) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig(None)).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn start_in(dir: TempDir) -> Env {
    let mut cfg = Config::new(dir.path());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.bookmark_interval = Duration::from_millis(200);
    let server = ApiServer::start(cfg).await.unwrap();
    let client = client_for(&server).await;
    Env {
        server,
        client,
        _dir: dir,
    }
}

async fn start() -> Env {
    start_in(tempfile::tempdir().unwrap()).await
}

fn svc(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
    }))
    .unwrap()
}

async fn next_event<S>(events: &mut S) -> watcher::Event<Service>
where
    S: futures::Stream<Item = Result<watcher::Event<Service>, watcher::Error>> + Unpin,
{
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("watcher event within 10 s")
            .expect("watcher stream ended");
        // Errors are transient here (the store dropped the stream, or said 410): the watcher
        // recovers on its own and we keep reading.
        match ev {
            Ok(ev) => return ev,
            Err(e) => eprintln!("watcher error (recovering): {e}"),
        }
    }
}

fn names_of(ev: &watcher::Event<Service>) -> (String, String) {
    match ev {
        watcher::Event::Apply(s) => ("apply".into(), s.metadata.name.clone().unwrap()),
        watcher::Event::Delete(s) => ("delete".into(), s.metadata.name.clone().unwrap()),
        watcher::Event::Init => ("init".into(), String::new()),
        watcher::Event::InitApply(s) => ("init-apply".into(), s.metadata.name.clone().unwrap()),
        watcher::Event::InitDone => ("init-done".into(), String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_in_order_and_survives_dropped_streams_and_410() {
    let env = start().await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    assert_eq!(names_of(&next_event(&mut events).await).0, "init");
    assert_eq!(names_of(&next_event(&mut events).await).0, "init-done");

    api.create(&PostParams::default(), &svc("a")).await.unwrap();
    assert_eq!(
        names_of(&next_event(&mut events).await),
        ("apply".into(), "a".into())
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
    )
    .await
    .unwrap();
    match next_event(&mut events).await {
        watcher::Event::Apply(s) => {
            assert_eq!(s.metadata.name.as_deref(), Some("a"));
            assert_eq!(
                s.metadata.labels.unwrap()["v"],
                "2",
                "the update arrives after the create"
            );
        }
        other => panic!("expected the update of a, got {:?}", names_of(&other)),
    }

    // The store drops every watch stream: the watcher resumes from its last version.
    env.server.drop_watches();
    api.create(&PostParams::default(), &svc("b")).await.unwrap();
    assert_eq!(
        names_of(&next_event(&mut events).await),
        ("apply".into(), "b".into())
    );

    // History compacted and streams dropped: resuming gets 410 Gone, so the watcher relists.
    env.server.compact().await.unwrap();
    env.server.drop_watches();
    let mut seen = Vec::new();
    loop {
        let (kind, name) = names_of(&next_event(&mut events).await);
        if kind == "init-done" {
            break;
        }
        if kind == "init-apply" {
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"], "the relist after 410 holds every Service");
    api.create(&PostParams::default(), &svc("c")).await.unwrap();
    assert_eq!(
        names_of(&next_event(&mut events).await),
        ("apply".into(), "c".into())
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        names_of(&next_event(&mut events).await),
        ("delete".into(), "a".into())
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_version_reports_410_and_bookmarks_carry_versions() {
    let env = start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "one"}, "data": {"k": "v"}})).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    let mut cm2 = cm.clone();
    cm2.metadata.name = Some("two".into());
    api.create(&PostParams::default(), &cm2).await.unwrap();

    // Resume from rv1: the second create is replayed, then a bookmark arrives.
    let wp = WatchParams::default().timeout(5);
    let mut stream = api.watch(&wp.clone(), &rv1).await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("two")),
        other => panic!("expected ADDED two, got {other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match second {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap()
        ),
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }

    env.server.compact().await.unwrap();
    let mut stream = api.watch(&wp, &rv1).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
    {
        Ok(Some(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_between_managers_until_forced() {
    let env = start().await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let mine = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    api.patch("web", &PatchParams::apply("alice"), &Patch::Apply(&mine))
        .await
        .unwrap();

    // Same values: no conflict, both co-own.
    api.patch("web", &PatchParams::apply("bob"), &Patch::Apply(&mine))
        .await
        .unwrap();

    let theirs = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 9090}]}});
    let err = api
        .patch("web", &PatchParams::apply("carol"), &Patch::Apply(&theirs))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 409);
    assert!(status.message.contains(".spec.type"), "{}", status.message);
    assert!(
        status.message.contains("alice") && status.message.contains("bob"),
        "{}",
        status.message
    );
    assert!(status.message.contains("targetPort"), "{}", status.message);
    let unchanged = api.get("web").await.unwrap();
    assert_eq!(
        unchanged.spec.as_ref().unwrap().type_.as_deref(),
        Some("ClusterIP")
    );

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("carol").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let spec = forced.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"carol".to_string()), "{managers:?}");

    // alice no longer owns spec.type: her apply without it does not remove carol's value,
    // and dropping a label she alone applied removes it.
    let with_label = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"owner": "alice"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9090}]}});
    api.patch(
        "web",
        &PatchParams::apply("alice").force(),
        &Patch::Apply(&with_label),
    )
    .await
    .unwrap();
    let without = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9090}]}});
    let after = api
        .patch("web", &PatchParams::apply("alice"), &Patch::Apply(&without))
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().type_.as_deref(), Some("NodePort"));
    assert!(
        !after
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("owner"),
        "a field its only applier dropped is removed"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_leave_generation_and_spec_alone() {
    let env = start().await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &svc("lb"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let status = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.56.200", "ipMode": "VIP"}]}},
        "spec": {"type": "ClusterIP"}});
    let after = api
        .patch_status(
            "lb",
            &PatchParams::apply("metalgate-controller"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "a status write does not move generation"
    );
    assert_eq!(
        after.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer"),
        "a status write ignores spec"
    );
    let ingress = after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.168.56.200"));

    // A spec write ignores status and moves generation.
    let spec_patch =
        json!({"spec": {"ports": [{"name": "http", "port": 81}]}, "status": {"loadBalancer": {}}});
    let after = api
        .patch("lb", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(
        after
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("192.168.56.200")
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_updates_conflict_and_versions_only_grow() {
    let env = start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).unwrap();
    let v1 = api.create(&PostParams::default(), &cm).await.unwrap();
    let mut v2 = v1.clone();
    v2.data = Some([("k".to_string(), "2".to_string())].into());
    let v2 = api.replace("c", &PostParams::default(), &v2).await.unwrap();
    let rv1: u64 = v1
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let rv2: u64 = v2
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    let mut stale = v1.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "2");

    let dup = api.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(
        matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup:?}"
    );
    let missing = api.get("nope").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_selectors() {
    let env = start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier}}}),
        )
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    let odd = api
        .list(&ListParams::default().labels("tier=odd"))
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 3);
    let set = api
        .list(&ListParams::default().labels("tier in (even),tier!=odd"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 4);
    let one = api
        .list(&ListParams::default().fields("metadata.name=cm-5"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let bad = api
        .list(&ListParams::default().labels("tier in even"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_and_dry_run_writes_nothing() {
    let env = start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.io/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "deletion waits for the finalizer"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        api.get_opt("held").await.unwrap().is_none(),
        "gone once the last finalizer is removed"
    );

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let ghost: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ghost"}})).unwrap();
    let answer = api.create(&dry, &ghost).await.unwrap();
    assert_eq!(answer.metadata.name.as_deref(), Some("ghost"));
    assert!(api.get_opt("ghost").await.unwrap().is_none());
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_get_422_naming_the_field() {
    let env = start().await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let bad: Service = serde_json::from_value(
        json!({"metadata": {"name": "bad"}, "spec": {"ports": [{"port": 70000}]}}),
    )
    .unwrap();
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!(s.code, 422);
    assert!(s.message.contains("spec.ports[0].port"), "{}", s.message);
    let lbip: Service = serde_json::from_value(json!({"metadata": {"name": "bad2"}, "spec": {"type": "LoadBalancer", "loadBalancerIP": "192.168.56.300", "ports": [{"port": 80}]}})).unwrap();
    let err = api.create(&PostParams::default(), &lbip).await.unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert!(
        s.message.contains("spec.loadBalancerIP") && s.message.contains("192.168.56.300"),
        "{}",
        s.message
    );
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_objects_uids_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let env = start_in(dir).await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &svc("keep"))
        .await
        .unwrap();
    let rv_before = env.server.resource_version().await;
    let Env { server, _dir, .. } = env;
    server.shutdown().await;

    let mut cfg = Config::new(&path);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let server = ApiServer::start(cfg).await.unwrap();
    let client = client_for(&server).await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let again = api.get("keep").await.unwrap();
    assert_eq!(again.metadata.uid, created.metadata.uid);
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        again.spec.unwrap().cluster_ip,
        created.spec.unwrap().cluster_ip
    );
    let next = api
        .create(&PostParams::default(), &svc("later"))
        .await
        .unwrap();
    let rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        rv > rv_before,
        "resourceVersion keeps increasing across restarts"
    );
    server.shutdown().await;
    drop(_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_crd_serves_its_kind_with_schema_validation() {
    let env = start().await;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.io"},
        "spec": {"group": "example.io", "scope": "Namespaced",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["addresses"], "properties": {
                        "addresses": {"type": "array", "items": {"type": "string"}},
                        "autoAssign": {"type": "boolean", "default": true}}}}}}}]}});
    crds.patch(
        "pools.example.io",
        &PatchParams::apply("test"),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    kube::runtime::wait::await_condition(
        crds.clone(),
        "pools.example.io",
        kube::runtime::conditions::is_crd_established(),
    )
    .await
    .unwrap();

    let ar = kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "example.io",
        "v1",
        "Pool",
    ));
    let pools: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &ar);
    let good = json!({"apiVersion": "example.io/v1", "kind": "Pool", "metadata": {"name": "p"}, "spec": {"addresses": ["192.168.56.200-192.168.56.220"]}});
    let p = pools
        .patch("p", &PatchParams::apply("test"), &Patch::Apply(&good))
        .await
        .unwrap();
    assert_eq!(
        p.data["spec"]["autoAssign"],
        json!(true),
        "schema defaults apply"
    );

    let bad = json!({"apiVersion": "example.io/v1", "kind": "Pool", "metadata": {"name": "q"}, "spec": {"addresses": "nope"}});
    let err = pools
        .patch("q", &PatchParams::apply("test"), &Patch::Apply(&bad))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!(s.code, 422);
    assert!(s.message.contains("spec.addresses"), "{}", s.message);

    crds.delete("pools.example.io", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        pools.list(&ListParams::default()).await.is_err(),
        "the kind is no longer served"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_through_events_k8s_io_are_core_events_too() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let env = start().await;
    let api: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let s = api
        .create(&PostParams::default(), &svc("lb"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "metalgate-controller".into(),
            instance: Some("n1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("Assigned IP [\"192.168.56.200\"]".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder.publish(&ev, &s.object_ref(&())).await.unwrap();
    // Publishing it again makes it a series (a merge patch through events.k8s.io).
    recorder.publish(&ev, &s.object_ref(&())).await.unwrap();
    let core: Api<CoreEvent> = Api::namespaced(env.client.clone(), "default");
    let events = core
        .list(&ListParams::default().fields("involvedObject.name=lb"))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1, "{:?}", events.items);
    let e = &events.items[0];
    assert_eq!(e.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(
        e.message.as_deref(),
        Some("Assigned IP [\"192.168.56.200\"]")
    );
    assert_eq!(e.involved_object.kind.as_deref(), Some("Service"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    env.server.shutdown().await;
}
