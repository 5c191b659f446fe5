//! The GitOps `Application`, with ArgoCD's field names and meanings so an Argo user changes only
//! `apiVersion` (`argoproj.io/v1alpha1` → `metalgate.io/v1beta1`).
//!
//! ArgoCD fields that metalgate accepts but does not implement (`project` other than `default`,
//! `sources`, `ignoreDifferences`, a Helm chart repository, …) are kept as they are written, so
//! the module can name each one in a Warning condition instead of dropping it silently.

use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An ArgoCD field kept as written, of any shape (`x-kubernetes-preserve-unknown-fields`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct Opaque(pub Value);

impl JsonSchema for Opaque {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Opaque".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// A set of Kubernetes objects kept in the state a Git repository's path describes.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "metalgate.io",
    version = "v1beta1",
    kind = "Application",
    namespaced,
    status = "ApplicationStatus",
    shortname = "app",
    shortname = "apps",
    category = "metalgate",
    printcolumn = r#"{"name":"Sync Status","type":"string","jsonPath":".status.sync.status"}"#,
    printcolumn = r#"{"name":"Health","type":"string","jsonPath":".status.health.status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.sync.revision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Where the manifests are.
    pub source: ApplicationSource,
    /// Where they go (in-cluster only).
    #[serde(default)]
    pub destination: ApplicationDestination,
    /// When and how to sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// How many entries `status.history` keeps (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// ArgoCD's project: only `default` (or none) is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// ArgoCD's multi-source list: not supported (a condition names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Opaque>,
    /// ArgoCD's diff exclusions: not supported (a condition names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_differences: Option<Opaque>,
    /// ArgoCD's free-form info: shown, not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Opaque>,
}

/// `spec.source`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// The repository: `file://`, `http(s)://`, `ssh://` or `user@host:path`.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// A branch, a tag, a commit SHA or `HEAD` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// The directory inside the repository (its root when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Plain YAML/JSON directory options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    /// Build the path with `kubectl kustomize` (also chosen when the path has a
    /// `kustomization.yaml`). ArgoCD's options in it (`images`, `namePrefix`, …) are not
    /// supported yet: each is named in a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Opaque>,
    /// Render the path as a Helm chart with `helm template` (also chosen when it has a
    /// `Chart.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// A chart from a Helm repository: not supported (a condition names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// A config-management plugin: not supported (a condition names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Opaque>,
}

/// `spec.source.directory`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Include subdirectories.
    #[serde(default)]
    pub recurse: bool,
    /// A glob of file names to include (ArgoCD's `{a.yaml,b.yaml}` braces allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// A glob of file names to skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Jsonnet options: not supported (a condition names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<Opaque>,
}

/// `spec.source.helm`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// The release name (the Application's name by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Values files, relative to the chart's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Values as a YAML string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Values as an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_object: Option<Opaque>,
    /// `--set` parameters: not supported (a condition names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Opaque>,
}

/// `spec.destination`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// The cluster: only this one (`https://kubernetes.default.svc`, or empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A cluster by name: only `in-cluster` (or empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace of namespaced objects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.syncPolicy`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync on every change (without it, syncs run only when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    /// ArgoCD's options: `CreateNamespace=true`, `Prune=false`, `PruneLast=true`,
    /// `ServerSideApply=true` (always on here) are understood; others are named in a condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// Retries of a failed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels and annotations for a created namespace: not supported (a condition names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<Opaque>,
}

/// `spec.syncPolicy.automated`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Delete tracked objects that left Git.
    #[serde(default)]
    pub prune: bool,
    /// Revert changes made to the cluster by anyone else.
    #[serde(default)]
    pub self_heal: bool,
    /// Allow a sync that leaves the app with no objects.
    #[serde(default)]
    pub allow_empty: bool,
    /// metalgate's mass-deletion guard: allow pruning more than half of the app's objects in
    /// one sync.
    #[serde(default)]
    pub allow_mass_prune: bool,
}

/// `spec.syncPolicy.retry`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// How many times (negative: without end; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The wait between tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// `spec.syncPolicy.retry.backoff`, durations as ArgoCD writes them (`5s`, `2m`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Each wait is the previous one times this (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// The longest wait (default `3m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// What the module last found and did, as ArgoCD reports it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Whether the cluster matches Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    /// The app's health: its worst object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// The last (or running) sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// Every object of the app (its inventory, used for prune).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// The last syncs, newest last (as ArgoCD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    /// Problems and warnings, in plain words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationCondition>,
    /// When the app was last compared with Git (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// `Directory`, `Kustomize` or `Helm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// `status.sync`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// `Synced`, `OutOfSync` or `Unknown`.
    pub status: String,
    /// The commit compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A health and why.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    pub status: String,
    /// Why, when not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status.operationState`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// `Running`, `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The commit being (or last) synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How many tries of this revision failed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
}

/// One object of the app.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group (empty for core).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Synced` or `OutOfSync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The object's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ResourceHealth>,
    /// The sync wave it is applied in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_wave: Option<i64>,
    /// Whether the module created its namespace (never pruned).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_namespace: bool,
}

/// An object's health (same values as [`HealthStatus`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHealth {
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    pub status: String,
    /// Why, when not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One sync in `status.history`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// A number, one higher than the previous entry's.
    pub id: i64,
    /// The commit SHA.
    pub revision: String,
    /// Its author (`Name <email>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Its message's first line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the sync finished (RFC 3339).
    pub deployed_at: String,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<String>,
    /// `auto`, `webhook`, `refresh`, `cli`, `self-heal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<String>,
    /// Objects created, as `Kind namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Objects changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updated: Vec<String>,
    /// Objects pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// Fields reverted by self-heal, as `Kind namespace/name: path (by manager)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverted: Vec<String>,
}

/// A condition, as ArgoCD's: a type and a message in plain words.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    /// `ComparisonError`, `InvalidSpecError`, `SyncError`, `SharedResourceWarning`,
    /// `UnsupportedFieldWarning`, `PruneGuard`, `RepeatedResourceWarning`, `OrphanedResourceWarning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// What is wrong, naming the file, document, object and field where there is one.
    pub message: String,
    /// When it first appeared (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// ArgoCD's own `Application` (`argoproj.io/v1alpha1`), for migrating a repository unchanged:
/// the same fields as [`Application`]. Not among the generated CRDs — the GitOps module serves it
/// itself with `--gitops-argo-applications`, and only where ArgoCD has not installed it.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Application",
    root = "ArgoApplication",
    namespaced,
    status = "ApplicationStatus",
    shortname = "app",
    shortname = "apps",
    printcolumn = r#"{"name":"Sync Status","type":"string","jsonPath":".status.sync.status"}"#,
    printcolumn = r#"{"name":"Health","type":"string","jsonPath":".status.health.status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.sync.revision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ArgoApplicationSpec {
    /// Exactly [`ApplicationSpec`]'s fields.
    #[serde(flatten)]
    pub app: ApplicationSpec,
}

impl From<&ArgoApplication> for Application {
    fn from(a: &ArgoApplication) -> Self {
        Application {
            metadata: a.metadata.clone(),
            spec: a.spec.app.clone(),
            status: a.status.clone(),
        }
    }
}

/// The label on the `applications.argoproj.io` CRD metalgate serves, telling it from ArgoCD's.
pub const ARGO_CRD_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "metalgate");

/// The `applications.argoproj.io` CRD as metalgate serves it, labelled as its own.
pub fn argo_application_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = ArgoApplication::crd();
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(ARGO_CRD_LABEL.0.into(), ARGO_CRD_LABEL.1.into());
    crd
}

#[cfg(test)]
mod argo_tests {
    use super::*;

    #[test]
    fn argo_applications_have_the_same_fields_and_read_as_ours() {
        let crd = argo_application_crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("applications.argoproj.io")
        );
        let argo = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let ours = serde_json::to_value(&Application::crd().spec.versions[0].schema).unwrap();
        assert_eq!(
            argo["openAPIV3Schema"]["properties"]["spec"]["properties"],
            ours["openAPIV3Schema"]["properties"]["spec"]["properties"]
        );
        let a: ArgoApplication = serde_yaml_ng::from_str(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: podinfo, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: 'https://example.com/r.git', targetRevision: HEAD, path: apps}\n  destination: {server: 'https://kubernetes.default.svc', namespace: demo}\n  syncPolicy: {automated: {prune: true, selfHeal: true}}\n",
        )
        .unwrap();
        let app = Application::from(&a);
        assert_eq!(app.spec.source.path.as_deref(), Some("apps"));
        assert_eq!(app.spec.project.as_deref(), Some("default"));
    }
}
