//! The applier against the embedded API store: what it writes is what a user sees with kubectl
//! — objects with the tracking id and the module's field manager; a bad revision dry-runs to
//! errors naming file, object and field and writes nothing; prune deletes.

mod common;

use common::store;
use kube::api::{Api, PatchParams};
use metalgate_gitops::applier::{Applied, Applier, FIELD_MANAGER};
use metalgate_gitops::render::parse_documents;
use metalgate_gitops::tracking::ANNOTATION;

const GOOD: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: podinfo-ui}
data: {PODINFO_UI_COLOR: '#34577c'}
---
apiVersion: v1
kind: Service
metadata: {name: podinfo}
spec:
  ports: [{port: 9898}]
---
apiVersion: v1
kind: Namespace
metadata: {name: demo, namespace: ignored}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_with_tracking_dry_runs_bad_revisions_and_prunes() {
    let store = store().await;
    let client = store.client.clone();
    let mut applier = Applier::new(client.clone());
    let mut ms = parse_documents("apps/podinfo.yaml", GOOD).unwrap();
    assert!(applier.place(&mut ms, "demo").await.is_empty());
    assert_eq!(ms[0].object["metadata"]["namespace"], "demo");
    assert!(ms[2].object["metadata"].get("namespace").is_none());
    let dry = applier.dry_run("podinfo", &ms, &["demo".to_string()]).await;
    assert!(dry.is_empty(), "{dry:?}");
    let ns = &ms[2];
    assert_eq!(
        applier.apply("podinfo", ns).await.unwrap(),
        Applied::Created
    );
    for m in &ms[..2] {
        assert_eq!(applier.apply("podinfo", m).await.unwrap(), Applied::Created);
    }
    assert_eq!(
        applier.apply("podinfo", &ms[0]).await.unwrap(),
        Applied::Unchanged
    );

    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "demo");
    let cm = cms.get("podinfo-ui").await.unwrap();
    assert_eq!(
        cm.metadata.annotations.as_ref().unwrap()[ANNOTATION],
        "podinfo:/ConfigMap:demo/podinfo-ui"
    );
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert_eq!(managers, [FIELD_MANAGER]);

    // A revision with an unknown field and an unknown kind: errors name file, object and field,
    // and nothing of it is written — not even its good objects.
    let bad = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: podinfo-ui}
data: {PODINFO_UI_COLOR: '#ff0000'}
---
apiVersion: v1
kind: Service
metadata: {name: podinfo}
spec:
  ports: [{port: 9898}]
  colour: red
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
";
    let mut ms_bad = parse_documents("apps/podinfo.yaml", bad).unwrap();
    let mut errors = applier.place(&mut ms_bad, "demo").await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with("apps/podinfo.yaml: document 3: Gadget g:"),
        "{}",
        errors[0]
    );
    errors = applier.dry_run("podinfo", &ms_bad[..2], &[]).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert!(
        e.starts_with("apps/podinfo.yaml: document 2: Service demo/podinfo:")
            && e.contains("spec.colour"),
        "{e}"
    );
    let cm = cms.get("podinfo-ui").await.unwrap();
    assert_eq!(
        cm.data.unwrap()["PODINFO_UI_COLOR"],
        "#34577c",
        "the dry run wrote nothing"
    );

    // Someone else's change shows up in the live object with their manager.
    cms.patch(
        "podinfo-ui",
        &PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"data": {"PODINFO_UI_COLOR": "#000000"}})),
    )
    .await
    .unwrap();
    let live = applier.live(&ms[0].obj_ref(), "v1").await.unwrap().unwrap();
    let d = metalgate_gitops::diff::differences(&ms[0].object, &live);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].path.to_string(), "data.PODINFO_UI_COLOR");
    assert!(!metalgate_gitops::diff::changed_by(&live, &d[0].path, FIELD_MANAGER).is_empty());
    assert_eq!(
        applier.apply("podinfo", &ms[0]).await.unwrap(),
        Applied::Updated
    );
    assert_eq!(
        cms.get("podinfo-ui").await.unwrap().data.unwrap()["PODINFO_UI_COLOR"],
        "#34577c"
    );

    // Prune.
    applier.delete(&ms[0].obj_ref(), "v1").await.unwrap();
    assert!(cms.get_opt("podinfo-ui").await.unwrap().is_none());
    applier.delete(&ms[0].obj_ref(), "v1").await.unwrap();
    assert_eq!(applier.live(&ms[0].obj_ref(), "v1").await.unwrap(), None);

    assert!(applier.ensure_namespace("fresh").await.unwrap());
    assert!(!applier.ensure_namespace("fresh").await.unwrap());
}
