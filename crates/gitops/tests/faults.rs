//! What goes wrong around a sync, end to end against the embedded store and real repositories:
//! the prune guards hold and say why, a pinned `targetRevision` rolls back, a force-push is
//! followed, an unreachable repository or a deleted branch deletes nothing, and a path that
//! leaves the repository applies nothing. (Back-off after such a failure: `tests/gitops.rs`.)

mod common;

use common::apps::{app, cm, color, pass, pass_for, put_app};
use common::{Repo, git, store};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use metalgate_gitops::reconciler::{Context, Trigger};
use metalgate_k8s::crd::ApplicationStatus;

/// A ConfigMap named `name`.
fn named(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

async fn names(cms: &Api<ConfigMap>) -> Vec<String> {
    let mut n: Vec<String> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    n.sort();
    n
}

fn condition<'a>(s: &'a ApplicationStatus, type_: &str) -> Option<&'a str> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prune_guards_hold_until_the_application_lifts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let files: Vec<(String, String)> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| (format!("apps/cms/{n}.yaml"), named(n)))
        .chain([("apps/cms/README.md".into(), "not a manifest\n".into())])
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    repo.commit(&refs, "four ConfigMaps");
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let spec = app("cms", &repo.url(), "apps/cms", true);
    put_app(&client, &spec).await;
    pass(&ctx, "cms").await;
    assert_eq!(names(&cms).await, ["a", "b", "c", "d"]);

    // Three of four gone in one commit: more than half — nothing is pruned, and it says why.
    for n in ["b", "c", "d"] {
        std::fs::remove_file(repo.work.join(format!("apps/cms/{n}.yaml"))).unwrap();
    }
    repo.commit(&[], "only a");
    let s = pass(&ctx, "cms").await;
    assert_eq!(names(&cms).await, ["a", "b", "c", "d"]);
    let why = condition(&s, "PruneGuard").expect("a PruneGuard condition");
    assert!(
        why.contains("would prune 3 of") && why.contains("allowMassPrune"),
        "{why}"
    );
    assert!(s.history.last().unwrap().pruned.is_empty());

    // The Application lifts the guard: the three go.
    let lifted = spec.replace("selfHeal: true}", "selfHeal: true, allowMassPrune: true}");
    put_app(&client, &lifted).await;
    let s = pass(&ctx, "cms").await;
    assert_eq!(names(&cms).await, ["a"]);
    assert_eq!(condition(&s, "PruneGuard"), None);

    // An empty revision (no manifest left) prunes nothing without allowEmpty.
    std::fs::remove_file(repo.work.join("apps/cms/a.yaml")).unwrap();
    repo.commit(&[], "nothing left");
    let s = pass(&ctx, "cms").await;
    assert_eq!(names(&cms).await, ["a"]);
    let why = condition(&s, "PruneGuard").expect("a PruneGuard condition");
    assert!(why.contains("allowEmpty"), "{why}");

    let empty_ok = lifted.replace(
        "allowMassPrune: true}",
        "allowMassPrune: true, allowEmpty: true}",
    );
    put_app(&client, &empty_ok).await;
    let s = pass(&ctx, "cms").await;
    assert!(names(&cms).await.is_empty(), "{:?}", names(&cms).await);
    assert_eq!(s.history.last().unwrap().pruned, ["ConfigMap demo/a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_revision_rolls_back_and_a_force_push_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let blue = repo.commit(&[("apps/podinfo/cm.yaml", &cm("#0000ff"))], "blue");
    let red = repo.commit(&[("apps/podinfo/cm.yaml", &cm("#ff0000"))], "red");
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let spec = app("podinfo", &repo.url(), "apps/podinfo", true);
    put_app(&client, &spec).await;
    pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");

    // Rollback by pinning: targetRevision names the old commit.
    let pinned = spec.replace("targetRevision: main", &format!("targetRevision: {blue}"));
    put_app(&client, &pinned).await;
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#0000ff");
    assert_eq!(s.sync.unwrap().revision.as_deref(), Some(blue.as_str()));
    assert_eq!(s.history.last().unwrap().message.as_deref(), Some("blue"));

    // Unpinned, it follows the branch again.
    put_app(&client, &spec).await;
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");
    assert_eq!(s.sync.unwrap().revision.as_deref(), Some(red.as_str()));

    // A force-push rewrites main back to blue: the app follows the branch, not its history.
    git(&repo.work, &["reset", "-q", "--hard", &blue]);
    git(
        &repo.work,
        &["push", "-q", "--force", "origin", "HEAD:main"],
    );
    let s = pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#0000ff");
    assert_eq!(s.sync.unwrap().revision.as_deref(), Some(blue.as_str()));
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_or_a_deleted_branch_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.commit(&[("README.md", "main\n")], "main");
    git(&repo.work, &["checkout", "-q", "-b", "feature"]);
    let sha = repo.commit(&[("apps/podinfo/cm.yaml", &cm("#34577c"))], "feature");
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let spec = app("podinfo", &repo.url(), "apps/podinfo", true)
        .replace("targetRevision: main", "targetRevision: feature");
    put_app(&client, &spec).await;
    pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");

    // The branch is deleted on the remote: a condition naming it; the objects stay.
    git(&repo.work, &["push", "-q", "origin", "--delete", "feature"]);
    let s = pass(&ctx, "podinfo").await;
    let why = condition(&s, "ComparisonError").expect("a ComparisonError");
    assert!(why.contains("feature"), "{why}");
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    assert_eq!(
        s.sync.as_ref().unwrap().revision.as_deref(),
        Some(sha.as_str()),
        "the last synced revision is kept"
    );
    assert_eq!(s.history.len(), 1);

    // The branch comes back, then the whole repository becomes unreachable.
    git(&repo.work, &["push", "-q", "origin", "feature"]);
    let s = pass(&ctx, "podinfo").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    let moved = tmp.path().join("moved.git");
    std::fs::rename(&repo.bare, &moved).unwrap();
    let s = pass(&ctx, "podinfo").await;
    let why = condition(&s, "ComparisonError").expect("a ComparisonError");
    assert!(why.contains(&repo.bare.display().to_string()), "{why}");
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    assert_eq!(s.sync.as_ref().unwrap().status, "Synced");
    // A hand edit while the Git host is down is still reverted: a drift pass heals to the
    // commit already synced, without asking the remote.
    cms.patch(
        "podinfo-ui",
        &kube::api::PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &kube::api::Patch::Merge(serde_json::json!({"data": {"PODINFO_UI_COLOR": "#000000"}})),
    )
    .await
    .unwrap();
    let s = pass_for(&ctx, "podinfo", Trigger::Drift).await;
    assert_eq!(condition(&s, "ComparisonError"), None, "{:?}", s.conditions);
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    assert_eq!(
        s.history.last().unwrap().initiated_by.as_deref(),
        Some("self-heal")
    );
    // It is reachable again: the condition clears.
    std::fs::rename(&moved, &repo.bare).unwrap();
    let s = pass(&ctx, "podinfo").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_leaves_the_repository_applies_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    std::fs::write(tmp.path().join("outside.yaml"), named("stolen")).unwrap();
    repo.commit(&[("apps/podinfo/cm.yaml", &cm("#34577c"))], "first");
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");

    // spec.source.path climbing out of the checkout.
    put_app(&client, &app("podinfo", &repo.url(), "apps/../..", true)).await;
    let s = pass(&ctx, "podinfo").await;
    let why = condition(&s, "ComparisonError")
        .or(condition(&s, "InvalidSpecError"))
        .expect("a condition");
    assert!(why.contains("path"), "{why}");
    assert!(names(&cms).await.is_empty());

    // A symlink in the app's directory pointing out of the repository: the revision, good file
    // included, is not applied, and the condition names the link.
    put_app(&client, &app("podinfo", &repo.url(), "apps/podinfo", true)).await;
    std::os::unix::fs::symlink(
        "../../../outside.yaml",
        repo.work.join("apps/podinfo/leak.yaml"),
    )
    .unwrap();
    repo.commit(&[], "a link out");
    let s = pass(&ctx, "podinfo").await;
    let why = condition(&s, "ComparisonError").unwrap_or_else(|| panic!("{s:?}"));
    assert!(why.contains("apps/podinfo/leak.yaml"), "{why}");
    assert!(names(&cms).await.is_empty(), "{:?}", names(&cms).await);
}
