//! The other two kinds of source, end to end: a kustomization rendered by `kubectl kustomize`
//! and a Helm chart rendered by `helm template` (with `helm.values` and `valueFiles`), synced
//! into the embedded store; a chart that does not render applies nothing and says why.

mod common;

use common::apps::{app, color, pass, put_app};
use common::{Repo, store};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use metalgate_gitops::reconciler::Context;

const CHART: &str = "apiVersion: v2\nname: podinfo\nversion: 0.1.0\n";
const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-ui\n  labels: {tier: {{ .Values.tier | quote }}}\ndata:\n  PODINFO_UI_COLOR: {{ .Values.color | quote }}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomization_and_a_helm_chart_are_rendered_and_synced() {
    assert!(
        std::process::Command::new("helm")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "helm is not on PATH: scripts/deps.sh installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.commit(
        &[
            // kustomize: a base ConfigMap, a name prefix and a patch.
            (
                "kust/base/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ui\ndata:\n  PODINFO_UI_COLOR: '#000000'\n",
            ),
            (
                "kust/base/kustomization.yaml",
                "resources: [cm.yaml]\n",
            ),
            (
                "kust/overlay/kustomization.yaml",
                "resources: [../base]\nnamePrefix: podinfo-\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: ui}\n    data: {PODINFO_UI_COLOR: '#34577c'}\n",
            ),
            // Helm: values.yaml, a value file, and values in the Application.
            ("chart/Chart.yaml", CHART),
            ("chart/values.yaml", "color: '#000000'\ntier: web\n"),
            ("chart/prod.yaml", "tier: prod\n"),
            ("chart/templates/cm.yaml", TEMPLATE),
        ],
        "kustomize and helm",
    );
    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let demo: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let charts: Api<ConfigMap> = Api::namespaced(client.clone(), "charts");

    put_app(&client, &app("kust", &repo.url(), "kust/overlay", true)).await;
    let s = pass(&ctx, "kust").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    assert_eq!(s.source_type.as_deref(), Some("Kustomize"));
    assert_eq!(color(&demo.get("podinfo-ui").await.unwrap()), "#34577c");

    let helm_app = app("chart", &repo.url(), "chart", true)
        .replace("namespace: demo", "namespace: charts")
        .replace(
            "    path: chart\n",
            "    path: chart\n    helm:\n      releaseName: podinfo\n      valueFiles: [prod.yaml]\n      values: |\n        color: '#ff8800'\n",
        );
    put_app(&client, &helm_app).await;
    let s = pass(&ctx, "chart").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    assert_eq!(s.source_type.as_deref(), Some("Helm"));
    let cm = charts.get("podinfo-ui").await.unwrap();
    assert_eq!(color(&cm), "#ff8800", "spec.source.helm.values wins");
    assert_eq!(
        cm.metadata.labels.unwrap()["tier"],
        "prod",
        "the value file is read"
    );

    // A template that does not render: nothing applied, helm's words in the condition.
    repo.commit(
        &[(
            "chart/templates/cm.yaml",
            &TEMPLATE.replace(
                "{{ .Values.color | quote }}",
                "{{ .Values.color | nosuchfunction }}",
            ),
        )],
        "a broken template",
    );
    let s = pass(&ctx, "chart").await;
    let why = s
        .conditions
        .iter()
        .find(|c| c.type_ == "ComparisonError")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(why.contains("nosuchfunction"), "{:?}", s.conditions);
    assert_eq!(color(&charts.get("podinfo-ui").await.unwrap()), "#ff8800");
}
