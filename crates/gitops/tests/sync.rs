//! The GitOps loop end to end against the embedded store and real Git repositories: an
//! Application syncs its path, a push is applied, a removed file is pruned (and kept without
//! prune), `git revert` rolls back, a broken revision applies nothing and is named, and an
//! app-of-apps root creates its children.

mod common;

use common::apps::{SVC, app, cm, color, pass, put_app};
use common::{Repo, git, store};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use metalgate_gitops::reconciler::Context;
use metalgate_k8s::crd::Application;
use std::sync::atomic::Ordering::Relaxed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_prune_revert_and_a_broken_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let first = repo.commit(
        &[
            ("apps/podinfo/cm.yaml", &cm("#34577c")),
            ("apps/podinfo/svc.yaml", SVC),
        ],
        "podinfo: first version",
    );
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    put_app(&client, &app("podinfo", &repo.url(), "apps/podinfo", true)).await;

    let s = pass(&ctx, "podinfo").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    let sync = s.sync.unwrap();
    assert_eq!(
        (sync.status.as_str(), sync.revision.as_deref()),
        ("Synced", Some(first.as_str()))
    );
    assert_eq!(s.health.unwrap().status, "Healthy");
    assert_eq!(s.history.len(), 1);
    assert_eq!(
        s.history[0].author.as_deref(),
        Some("Ada Ops <ada@example.com>")
    );
    assert_eq!(
        s.history[0].message.as_deref(),
        Some("podinfo: first version")
    );
    assert_eq!(
        s.history[0].created,
        ["ConfigMap demo/podinfo-ui", "Service demo/podinfo"]
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "demo");
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    // The status a user reads with kubectl is the one written.
    let apps: Api<Application> = Api::namespaced(client.clone(), "metalgate-system");
    let stored = apps.get("podinfo").await.unwrap().status.unwrap();
    assert_eq!(stored.sync.unwrap().status, "Synced");

    // A push is applied and recorded.
    let second = repo.commit(&[("apps/podinfo/cm.yaml", &cm("#ff0000"))], "podinfo: red");
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(s.sync.unwrap().revision.as_deref(), Some(second.as_str()));
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");
    assert_eq!(s.history.len(), 2);
    assert_eq!(s.history[1].updated, ["ConfigMap demo/podinfo-ui"]);

    // A removed file is pruned.
    std::fs::remove_file(repo.work.join("apps/podinfo/svc.yaml")).unwrap();
    repo.commit(&[], "podinfo: no service");
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(s.history.last().unwrap().pruned, ["Service demo/podinfo"]);
    assert!(svcs.get_opt("podinfo").await.unwrap().is_none());
    assert!(
        s.resources
            .iter()
            .any(|r| r.kind == "Namespace" && r.created_namespace),
        "the namespace it created is in the inventory, never pruned"
    );

    // git revert brings it back.
    git(&repo.work, &["revert", "--no-edit", "HEAD"]);
    git(&repo.work, &["push", "-q", "origin", "HEAD"]);
    let s = pass(&ctx, "podinfo").await;
    assert!(svcs.get_opt("podinfo").await.unwrap().is_some());
    assert!(
        s.history
            .last()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .starts_with("Revert")
    );

    // A broken revision applies nothing and names the file and the field.
    repo.commit(
        &[
            ("apps/podinfo/cm.yaml", &cm("#00ff00")),
            ("apps/podinfo/svc.yaml", &format!("{SVC}  colour: red\n")),
        ],
        "broken",
    );
    let s = pass(&ctx, "podinfo").await;
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == "ComparisonError")
        .expect("a condition");
    assert!(
        c.message
            .contains("apps/podinfo/svc.yaml: document 1: Service demo/podinfo")
            && c.message.contains("spec.colour"),
        "{}",
        c.message
    );
    assert_eq!(
        color(&cms.get("podinfo-ui").await.unwrap()),
        "#ff0000",
        "the good file of a bad revision is not applied either"
    );
    assert_eq!(
        s.history.len(),
        4,
        "no history for a sync that did not happen"
    );
    // Its own applies, prunes and a revert are never counted as drift.
    assert_eq!(ctx.drift.detected.load(Relaxed), 0);
    assert_eq!(ctx.drift.reverted.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prune_a_removed_file_stays_and_the_app_is_out_of_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.commit(
        &[
            ("apps/podinfo/cm.yaml", &cm("#34577c")),
            ("apps/podinfo/svc.yaml", SVC),
        ],
        "first",
    );
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    put_app(&client, &app("podinfo", &repo.url(), "apps/podinfo", false)).await;
    pass(&ctx, "podinfo").await;
    std::fs::remove_file(repo.work.join("apps/podinfo/svc.yaml")).unwrap();
    repo.commit(&[], "no service");
    let s = pass(&ctx, "podinfo").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "demo");
    assert!(
        svcs.get_opt("podinfo").await.unwrap().is_some(),
        "kept without prune"
    );
    assert_eq!(s.sync.unwrap().status, "OutOfSync");
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "OrphanedResourceWarning"
                && c.message.contains("Service demo/podinfo")),
        "{:?}",
        s.conditions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_of_apps_root_creates_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let url = repo.url();
    let child = app("podinfo", &url, "manifests/podinfo", true);
    let root =
        app("root", &url, "apps", true).replace("namespace: demo", "namespace: metalgate-system");
    repo.commit(
        &[
            ("apps/root.yaml", &root),
            ("apps/podinfo.yaml", &child),
            ("manifests/podinfo/cm.yaml", &cm("#34577c")),
        ],
        "app of apps",
    );
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    // The workshop's one kubectl apply: the root Application.
    put_app(&client, &root).await;
    let s = pass(&ctx, "root").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    // The root manages itself and its child.
    let kinds: Vec<_> = s
        .resources
        .iter()
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    assert_eq!(kinds, ["Application podinfo", "Application root"]);
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(s.health.unwrap().status, "Healthy");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    // The root's health follows its children's once they report.
    let s = pass(&ctx, "root").await;
    assert_eq!(s.health.unwrap().status, "Healthy");
}

/// Edit the ConfigMap as `kubectl edit` would (a plain update by another manager).
async fn edit_color(client: &kube::Client, color: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    cms.patch(
        "podinfo-ui",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(serde_json::json!({"data": {"PODINFO_UI_COLOR": color}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_in_the_cluster_is_reverted_and_reported_only_with_self_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.commit(&[("apps/podinfo/cm.yaml", &cm("#34577c"))], "first");
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");

    // Without selfHeal: the edit stays, and the app says it is out of sync.
    let no_heal = app("podinfo", &repo.url(), "apps/podinfo", true)
        .replace("selfHeal: true", "selfHeal: false");
    put_app(&client, &no_heal).await;
    pass(&ctx, "podinfo").await;
    edit_color(&client, "#000000").await;
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#000000");
    assert_eq!(s.sync.unwrap().status, "OutOfSync");
    assert_eq!(s.history.len(), 1);
    assert_eq!(ctx.drift.detected.load(Relaxed), 1);
    pass(&ctx, "podinfo").await;
    assert_eq!(
        ctx.drift.detected.load(Relaxed),
        1,
        "the same drift found again is not counted twice"
    );
    assert_eq!(ctx.drift.reverted.load(Relaxed), 0);

    // With selfHeal: reverted, recorded in history and in an Event naming field and manager.
    put_app(&client, &app("podinfo", &repo.url(), "apps/podinfo", true)).await;
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    assert_eq!(s.sync.unwrap().status, "Synced");
    let last = s.history.last().unwrap();
    assert_eq!(last.initiated_by.as_deref(), Some("self-heal"));
    assert_eq!(
        last.reverted,
        ["ConfigMap demo/podinfo-ui: data.PODINFO_UI_COLOR (changed by kubectl-edit)"]
    );
    assert_eq!(ctx.drift.reverted.load(Relaxed), 1);
    // A second edit of an app in sync is found and reverted again.
    edit_color(&client, "#111111").await;
    pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    assert_eq!(
        (
            ctx.drift.detected.load(Relaxed),
            ctx.drift.reverted.load(Relaxed)
        ),
        (2, 2)
    );
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "metalgate-system");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let list = events.list(&Default::default()).await.unwrap();
        if list.items.iter().any(|e| {
            e.reason.as_deref() == Some("DriftReverted")
                && e.involved_object.name.as_deref() == Some("podinfo")
                && e.message.as_deref().is_some_and(|m| {
                    m.contains("data.PODINFO_UI_COLOR") && m.contains("kubectl-edit")
                })
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            list.items
                .iter()
                .map(|e| (&e.reason, &e.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
