//! An Application's spec → one validated model, in one step: every field the module cannot honour
//! is named — an error when the app cannot be synced as written (another cluster, a chart
//! repository), a warning when it can but part of the spec has no effect (`ignoreDifferences`,
//! an unknown sync option). Nothing is dropped silently.

use std::time::Duration;

use metalgate_k8s::crd::ApplicationSpec;

use crate::plan::Settings;
use crate::render::{DirectoryOptions, RenderError, resolve_inside};

/// The cluster URL that means "this cluster", as ArgoCD writes it.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// A field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path in the Application (`spec.source.chart`).
    pub field: String,
    /// Why.
    pub message: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// How failed syncs are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Tries of one revision before giving up until the next change (`None`: no end).
    pub limit: Option<u32>,
    /// The first wait.
    pub base: Duration,
    /// Each wait is the previous one times this.
    pub factor: u32,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            limit: Some(5),
            base: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(180),
        }
    }
}

impl Retry {
    /// The wait before try `n` (from 1) — `base × factorⁿ⁻¹`, at most `max`.
    pub fn wait(&self, n: u32) -> Duration {
        let mut d = self.base;
        for _ in 1..n {
            d = d.saturating_mul(self.factor);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// What to sync, from where, and how: the validated Application.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The repository URL.
    pub repo_url: String,
    /// A branch, tag, SHA or `HEAD`.
    pub revision: String,
    /// The path inside the repository, made safe (relative, never above its root).
    pub path: std::path::PathBuf,
    /// Plain-directory options.
    pub directory: DirectoryOptions,
    /// `spec.source.kustomize` was given.
    pub kustomize: bool,
    /// `spec.source.helm` was given: release name, values files, inline values (YAML).
    pub helm: Option<HelmConfig>,
    /// The namespace for namespaced objects that name none.
    pub namespace: Option<String>,
    /// Sync by itself on every change (`syncPolicy.automated`).
    pub automated: bool,
    /// Revert foreign changes (`automated.selfHeal`).
    pub self_heal: bool,
    /// `CreateNamespace=true`.
    pub create_namespace: bool,
    /// Retries.
    pub retry: Retry,
    /// `status.history` entries kept.
    pub history_limit: usize,
    /// The plan's settings.
    pub plan: Settings,
    /// Fields that have no effect, each named.
    pub warnings: Vec<FieldProblem>,
}

/// `spec.source.helm`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelmConfig {
    /// The release name.
    pub release_name: String,
    /// Values files, relative to the chart, made safe.
    pub value_files: Vec<String>,
    /// Inline values as YAML (`values`, then `valuesObject` over it).
    pub values: Vec<String>,
}

/// Sync options the module understands (`ServerSideApply` is how it always applies;
/// `PruneLast` is how it always prunes).
const KNOWN_OPTIONS: [&str; 4] = [
    "CreateNamespace=true",
    "CreateNamespace=false",
    "ServerSideApply=true",
    "PruneLast=true",
];

/// Parse ArgoCD's durations: `30s`, `2m`, `1h`, `1m30s`, a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    (num.is_empty() && !s.is_empty()).then_some(Duration::from_secs(total))
}

impl AppConfig {
    /// Validate `spec` of Application `name`: the model, or every reason it cannot be synced.
    pub fn from_spec(name: &str, spec: &ApplicationSpec) -> Result<AppConfig, Vec<FieldProblem>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldProblem {
                field: field.into(),
                message,
            })
        };
        let mut warn = |field: &str, message: &str| {
            warnings.push(FieldProblem {
                field: field.into(),
                message: message.into(),
            })
        };

        let src = &spec.source;
        if src.repo_url.trim().is_empty() {
            err("spec.source.repoURL", "is empty".into());
        }
        let path = resolve_inside(src.path.as_deref().unwrap_or("")).unwrap_or_else(|e| {
            err("spec.source.path", e.to_string());
            Default::default()
        });
        if src.chart.is_some() {
            err(
                "spec.source.chart",
                "charts from a Helm repository are not supported; put the chart in Git and set spec.source.path".into(),
            );
        }
        if src.plugin.is_some() {
            err(
                "spec.source.plugin",
                "config-management plugins are not supported".into(),
            );
        }
        let dir = src.directory.clone().unwrap_or_default();
        let directory = match DirectoryOptions::new(
            dir.recurse,
            dir.include.as_deref(),
            dir.exclude.as_deref(),
        ) {
            Ok(d) => d,
            Err(RenderError::BadGlob { field, message }) => {
                err(&format!("spec.source.directory.{field}"), message);
                DirectoryOptions::default()
            }
            Err(e) => {
                err("spec.source.directory", e.to_string());
                DirectoryOptions::default()
            }
        };
        if dir.jsonnet.is_some() {
            warn(
                "spec.source.directory.jsonnet",
                "Jsonnet is not supported; only YAML and JSON files are read",
            );
        }
        if let Some(k) = &src.kustomize {
            if let Some(map) = k.0.as_object() {
                for key in map.keys() {
                    warn(
                        &format!("spec.source.kustomize.{key}"),
                        "is not supported; the kustomization is built as it is in Git",
                    );
                }
            }
        }
        let helm = src.helm.as_ref().map(|h| {
            let mut values = Vec::new();
            if let Some(v) = &h.values {
                values.push(v.clone());
            }
            if let Some(o) = &h.values_object {
                values.push(serde_yaml_ng::to_string(&o.0).unwrap_or_default());
            }
            if h.parameters.is_some() {
                warn(
                    "spec.source.helm.parameters",
                    "is not supported; use values or valuesObject",
                );
            }
            let mut value_files = Vec::new();
            for (i, f) in h.value_files.iter().enumerate() {
                match resolve_inside(&path.join(f).to_string_lossy()) {
                    Ok(_) => value_files.push(f.clone()),
                    Err(e) => err(&format!("spec.source.helm.valueFiles[{i}]"), e.to_string()),
                }
            }
            HelmConfig {
                release_name: h.release_name.clone().unwrap_or_else(|| name.to_string()),
                value_files,
                values,
            }
        });

        let dst = &spec.destination;
        match dst
            .server
            .as_deref()
            .map(|s| s.trim().trim_end_matches('/'))
        {
            None | Some("") | Some(IN_CLUSTER) => {}
            Some(other) => err(
                "spec.destination.server",
                format!("{other:?}: only this cluster ({IN_CLUSTER}) is supported"),
            ),
        }
        match dst.name.as_deref() {
            None | Some("") | Some("in-cluster") => {}
            Some(other) => err(
                "spec.destination.name",
                format!("{other:?}: only this cluster (in-cluster) is supported"),
            ),
        }
        match spec.project.as_deref() {
            None | Some("") | Some("default") => {}
            Some(_) => warn(
                "spec.project",
                "projects are not supported; the app is synced as in project default",
            ),
        }
        if spec.sources.is_some() {
            err(
                "spec.sources",
                "multiple sources are not supported; use spec.source".into(),
            );
        }
        if spec.ignore_differences.is_some() {
            warn(
                "spec.ignoreDifferences",
                "is not supported; every field Git sets is compared",
            );
        }

        let policy = spec.sync_policy.clone().unwrap_or_default();
        let automated = policy.automated.clone();
        let mut create_namespace = false;
        for (i, o) in policy.sync_options.iter().enumerate() {
            let o = o.trim();
            if o.eq_ignore_ascii_case("CreateNamespace=true") {
                create_namespace = true;
            }
            if !KNOWN_OPTIONS.iter().any(|k| k.eq_ignore_ascii_case(o)) {
                warn(
                    &format!("spec.syncPolicy.syncOptions[{i}]"),
                    &format!("{o:?} is not supported"),
                );
            }
        }
        if policy.managed_namespace_metadata.is_some() {
            warn(
                "spec.syncPolicy.managedNamespaceMetadata",
                "is not supported",
            );
        }
        let mut retry = Retry::default();
        if let Some(r) = &policy.retry {
            if let Some(l) = r.limit {
                retry.limit = u32::try_from(l).ok();
            }
            if let Some(b) = &r.backoff {
                let mut dur = |field: &str, v: &Option<String>, into: &mut Duration| {
                    if let Some(v) = v {
                        match parse_duration(v) {
                            Some(d) => *into = d,
                            None => err(field, format!("{v:?} is not a duration like 5s or 3m")),
                        }
                    }
                };
                dur(
                    "spec.syncPolicy.retry.backoff.duration",
                    &b.duration,
                    &mut retry.base,
                );
                dur(
                    "spec.syncPolicy.retry.backoff.maxDuration",
                    &b.max_duration,
                    &mut retry.max,
                );
                if let Some(f) = b.factor {
                    match u32::try_from(f) {
                        Ok(f) if f >= 1 => retry.factor = f,
                        _ => err(
                            "spec.syncPolicy.retry.backoff.factor",
                            format!("{f} is not a whole number of at least 1"),
                        ),
                    }
                }
            }
        }
        let history_limit = match spec.revision_history_limit {
            None => 10,
            Some(n) if n >= 0 => n as usize,
            Some(n) => {
                err("spec.revisionHistoryLimit", format!("{n} is negative"));
                10
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let a = automated.clone().unwrap_or_default();
        Ok(AppConfig {
            repo_url: src.repo_url.trim().to_string(),
            revision: src
                .target_revision
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .unwrap_or("HEAD")
                .to_string(),
            path,
            directory,
            kustomize: src.kustomize.is_some(),
            helm,
            namespace: dst.namespace.clone().filter(|n| !n.is_empty()),
            automated: automated.is_some(),
            self_heal: a.self_heal,
            create_namespace,
            retry,
            history_limit,
            plan: Settings {
                app: name.to_string(),
                prune: a.prune,
                allow_empty: a.allow_empty,
                allow_mass_prune: a.allow_mass_prune,
            },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ApplicationSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    /// The seed's podinfo Application, as an ArgoCD user writes it.
    const PODINFO: &str = "
project: default
source:
  repoURL: https://github.com/example/ops-demo.git
  targetRevision: main
  path: manifests/apps/podinfo
destination:
  server: https://kubernetes.default.svc
  namespace: demo
syncPolicy:
  automated: {prune: true, selfHeal: true}
  syncOptions: [CreateNamespace=true]
";

    #[test]
    fn an_argo_application_is_understood_as_written() {
        let c = AppConfig::from_spec("podinfo", &spec(PODINFO)).unwrap();
        assert_eq!(c.revision, "main");
        assert_eq!(c.path, std::path::Path::new("manifests/apps/podinfo"));
        assert_eq!(c.namespace.as_deref(), Some("demo"));
        assert!(c.automated && c.self_heal && c.create_namespace && c.plan.prune);
        assert!(!c.plan.allow_empty);
        assert_eq!(c.history_limit, 10);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let bare = AppConfig::from_spec("x", &spec("source: {repoURL: file:///r}")).unwrap();
        assert_eq!(bare.revision, "HEAD");
        assert!(!bare.automated && !bare.plan.prune);
    }

    #[test]
    fn fields_without_effect_are_warnings_naming_them() {
        let c = AppConfig::from_spec(
            "x",
            &spec(
                "project: team-a
source:
  repoURL: file:///r
  directory: {jsonnet: {tlas: []}}
  kustomize: {namePrefix: p-, images: [a]}
  helm: {parameters: [{name: a, value: b}]}
ignoreDifferences: [{group: apps, kind: Deployment}]
syncPolicy:
  syncOptions: [Validate=false, PruneLast=true]
  managedNamespaceMetadata: {labels: {a: b}}
",
            ),
        )
        .unwrap();
        let fields: Vec<_> = c.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.source.directory.jsonnet",
                "spec.source.kustomize.namePrefix",
                "spec.source.kustomize.images",
                "spec.source.helm.parameters",
                "spec.project",
                "spec.ignoreDifferences",
                "spec.syncPolicy.syncOptions[0]",
                "spec.syncPolicy.managedNamespaceMetadata",
            ]
        );
    }

    #[test]
    fn what_cannot_be_synced_is_an_error_naming_each_field() {
        let errs = AppConfig::from_spec(
            "x",
            &spec(
                "source:
  repoURL: ''
  path: ../outside
  chart: podinfo
  directory: {include: '{a'}
destination: {server: https://other:6443, name: prod}
sources: []
revisionHistoryLimit: -1
syncPolicy:
  retry: {backoff: {duration: soon, factor: 0}}
",
            ),
        )
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.source.repoURL",
                "spec.source.path",
                "spec.source.chart",
                "spec.source.directory.include",
                "spec.destination.server",
                "spec.destination.name",
                "spec.sources",
                "spec.syncPolicy.retry.backoff.duration",
                "spec.syncPolicy.retry.backoff.factor",
                "spec.revisionHistoryLimit",
            ]
        );
        assert!(
            errs[1].to_string().contains("leaves the repository"),
            "{}",
            errs[1]
        );
    }

    #[test]
    fn durations_and_backoff() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        for bad in ["", "s", "5x", "5m3"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        let r = Retry::default();
        let waits: Vec<u64> = (1..=8).map(|n| r.wait(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 180, 180]);
    }
}
