//! Applications as the sync tests write them, and one pass of the reconciler on one.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use metalgate_gitops::reconciler::{Context, Trigger, reconcile};
use metalgate_k8s::crd::{Application, ApplicationStatus};

/// The podinfo ConfigMap with a colour.
pub fn cm(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-ui\ndata:\n  PODINFO_UI_COLOR: '{color}'\n"
    )
}

/// A Service for podinfo.
pub const SVC: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\nspec:\n  ports:\n  - port: 9898\n";

/// An Application of `path` in `url` at `main`, into namespace demo, self-healing.
pub fn app(name: &str, url: &str, path: &str, prune: bool) -> String {
    format!(
        "apiVersion: metalgate.io/v1beta1
kind: Application
metadata:
  name: {name}
  namespace: metalgate-system
spec:
  source:
    repoURL: {url}
    targetRevision: main
    path: {path}
  destination:
    server: https://kubernetes.default.svc
    namespace: demo
  syncPolicy:
    automated: {{prune: {prune}, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
"
    )
}

/// Create or replace an Application as `kubectl apply` would.
pub async fn put_app(client: &kube::Client, yaml: &str) -> Application {
    let api: Api<Application> = Api::namespaced(client.clone(), "metalgate-system");
    let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let name = v["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(
        &name,
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(v),
    )
    .await
    .unwrap()
}

/// One pass on the Application as it is stored now.
pub async fn pass(ctx: &Context, name: &str) -> ApplicationStatus {
    pass_for(ctx, name, Trigger::Auto).await
}

/// One pass for this reason.
pub async fn pass_for(ctx: &Context, name: &str, trigger: Trigger) -> ApplicationStatus {
    let api: Api<Application> = Api::namespaced(ctx.client.clone(), "metalgate-system");
    let app = api.get(name).await.unwrap();
    reconcile(ctx, &app, trigger).await
}

/// The colour a podinfo ConfigMap holds.
pub fn color(cm: &ConfigMap) -> String {
    cm.data.as_ref().unwrap()["PODINFO_UI_COLOR"].clone()
}
