//! `metalgate gitops diff APP` (ArgoCD's `argocd app diff`): Git's state at the app's target
//! revision against the cluster, without changing anything — the fields that differ (with
//! who changed them), the objects missing, and those the app tracks that Git no longer has.
//! Secret values are never shown.

use serde_json::Value;

use crate::applier::{Applier, FIELD_MANAGER};
use crate::diff::{changed_by, differences};
use crate::object::ObjRef;
use crate::reconciler::{Context, api_version_of, obj_ref_of};
use crate::source::{checkout, render_checkout};
use crate::spec::AppConfig;
use metalgate_k8s::crd::Application;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its path.
    pub path: String,
    /// Git's value (hidden for Secrets).
    pub git: String,
    /// The cluster's value (hidden for Secrets).
    pub live: String,
    /// The managers that own it in the cluster.
    pub by: Vec<String>,
}

/// What differs between Git and the cluster for one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppDiff {
    /// The commit compared (short SHA and message).
    pub revision: String,
    /// Objects whose fields differ.
    pub changed: Vec<(ObjRef, Vec<Field>)>,
    /// In Git, not in the cluster.
    pub missing: Vec<ObjRef>,
    /// Tracked by the app, no longer in Git (pruned on sync with `prune`).
    pub extra: Vec<ObjRef>,
    /// Objects that match.
    pub same: usize,
}

fn shown(kind: &str, v: &Value) -> String {
    if kind == "Secret" {
        return "(hidden)".into();
    }
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => format!("{s:?}"),
        v => v.to_string(),
    }
}

/// The fields Git sets that `live` does not match, as shown to a person (pure).
pub fn fields(kind: &str, desired: &Value, live: &Value) -> Vec<Field> {
    differences(desired, live)
        .into_iter()
        .map(|d| Field {
            path: d.path.to_string(),
            git: shown(kind, &d.want),
            live: shown(kind, &d.live),
            by: changed_by(live, &d.path, FIELD_MANAGER),
        })
        .collect()
}

impl AppDiff {
    /// Whether Git and the cluster agree.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }

    /// As `diff` prints it.
    pub fn render(&self) -> String {
        let mut out = format!("revision {}\n", self.revision);
        for (r, fs) in &self.changed {
            out.push_str(&format!("\n{r}\n"));
            for f in fs {
                let by = if f.by.is_empty() {
                    String::new()
                } else {
                    format!("  (changed by {})", f.by.join(", "))
                };
                out.push_str(&format!(
                    "  {}: Git {}, cluster {}{by}\n",
                    f.path, f.git, f.live
                ));
            }
        }
        for r in &self.missing {
            out.push_str(&format!(
                "\n{r}\n  missing in the cluster (created on sync)\n"
            ));
        }
        for r in &self.extra {
            out.push_str(&format!(
                "\n{r}\n  no longer in Git (pruned on sync when automated.prune is on)\n"
            ));
        }
        out.push_str(&format!(
            "\n{} changed, {} missing, {} not in Git, {} in sync\n",
            self.changed.len(),
            self.missing.len(),
            self.extra.len(),
            self.same
        ));
        out
    }
}

/// Compare the app's target revision with the cluster (reads only).
pub async fn diff(ctx: &Context, app: &Application) -> Result<AppDiff, String> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let cfg = AppConfig::from_spec(&name, &app.spec).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let app_ns = app.metadata.namespace.clone().unwrap_or_default();
    let (commit, root) = checkout(ctx, &cfg, &app_ns, None)
        .await
        .map_err(|f| format!("{}: {}", f.kind, f.message))?;
    let (_, mut desired) = render_checkout(&name, &cfg, &root)
        .await
        .map_err(|f| format!("{}: {}", f.kind, f.message))?;
    let mut applier = Applier::new(ctx.client.clone());
    let dest_ns = cfg.namespace.clone().unwrap_or_else(|| "default".into());
    let placed = applier.place(&mut desired, &dest_ns).await;
    if !placed.is_empty() {
        return Err(placed
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "));
    }
    let mut out = AppDiff {
        revision: format!(
            "{} {}",
            commit.sha.get(..7).unwrap_or(&commit.sha),
            commit.summary
        ),
        ..Default::default()
    };
    for m in &desired {
        let r = m.obj_ref();
        let av = m.object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match applier.live(&r, &av).await? {
            None => out.missing.push(r),
            Some(live) => {
                let fs = fields(&r.kind, &m.object, &live);
                if fs.is_empty() {
                    out.same += 1;
                } else {
                    out.changed.push((r, fs));
                }
            }
        }
    }
    let wanted: std::collections::HashSet<ObjRef> = desired.iter().map(|m| m.obj_ref()).collect();
    // A namespace the module created (CreateNamespace=true) is tracked but never pruned.
    for res in app
        .status
        .iter()
        .flat_map(|s| s.resources.iter())
        .filter(|r| !r.created_namespace)
    {
        let r = obj_ref_of(res);
        if !wanted.contains(&r) && applier.live(&r, &api_version_of(res)).await?.is_some() {
            out.extra.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_name_path_values_and_manager_and_hide_secrets() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"color": "#ff0000"}});
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "managedFields": [
                {"manager": "kubectl-edit", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {"f:color": {}}}}]},
            "data": {"color": "#123456"}});
        let f = fields("ConfigMap", &desired, &live);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "data.color");
        assert_eq!(
            (f[0].git.as_str(), f[0].live.as_str()),
            ("\"#ff0000\"", "\"#123456\"")
        );
        assert_eq!(f[0].by, ["kubectl-edit"]);
        let s = fields("Secret", &desired, &live);
        assert_eq!(
            (s[0].git.as_str(), s[0].live.as_str()),
            ("(hidden)", "(hidden)")
        );
    }

    #[test]
    fn the_report_says_what_a_sync_would_do() {
        let r = |k: &str, n: &str| ObjRef {
            group: String::new(),
            kind: k.into(),
            namespace: "demo".into(),
            name: n.into(),
        };
        let d = AppDiff {
            revision: "abc1234 podinfo: red".into(),
            changed: vec![(
                r("ConfigMap", "ui"),
                vec![Field {
                    path: "data.color".into(),
                    git: "\"red\"".into(),
                    live: "\"blue\"".into(),
                    by: vec!["kubectl-edit".into()],
                }],
            )],
            missing: vec![r("Service", "web")],
            extra: vec![r("ConfigMap", "old")],
            same: 2,
        };
        let text = d.render();
        assert!(
            text.contains("data.color: Git \"red\", cluster \"blue\"  (changed by kubectl-edit)"),
            "{text}"
        );
        assert!(text.contains("missing in the cluster"));
        assert!(text.contains("no longer in Git"));
        assert!(text.ends_with("1 changed, 1 missing, 1 not in Git, 2 in sync\n"));
        assert!(!d.is_empty() && AppDiff::default().is_empty());
    }
}
