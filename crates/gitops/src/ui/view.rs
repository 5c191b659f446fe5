//! What the pages show of an Application, read from its status: pure, so the list, the app
//! page and the JSON agree, and tests need no server.

use metalgate_k8s::crd::{Application, ApplicationStatus};

use crate::kinds::PAUSE_ANNOTATION;

/// One app as a card or a page header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSummary {
    /// The Application's name.
    pub name: String,
    /// Synced, OutOfSync, Unknown.
    pub sync: String,
    /// Healthy, Progressing, Degraded, Missing, Suspended, Unknown.
    pub health: String,
    /// The full commit SHA last synced (empty before the first).
    pub revision: String,
    /// Its commit message's first line.
    pub message: String,
    /// Its author.
    pub author: String,
    /// When the last sync finished (RFC 3339), if any.
    pub synced_at: String,
    /// The repository and path.
    pub source: String,
    /// Whether automated sync and self-heal are on, and whether self-heal is paused.
    pub automated: bool,
    /// `selfHeal` in the spec.
    pub self_heal: bool,
    /// The pause annotation is set.
    pub paused: bool,
    /// The last operation's phase and message (Succeeded, Failed, Running …).
    pub operation: String,
}

/// One object of an app, for the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Kind.
    pub kind: String,
    /// Namespace (empty when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced / OutOfSync.
    pub sync: String,
    /// Its health, with the reason when there is one.
    pub health: String,
    /// Why, when not healthy.
    pub health_message: String,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sync's number.
    pub id: i64,
    /// Commit SHA.
    pub revision: String,
    /// Author.
    pub author: String,
    /// Commit message (first line).
    pub message: String,
    /// When deployed.
    pub at: String,
    /// What started it (auto-sync, self-heal, manual, webhook …).
    pub by: String,
    /// Objects created, updated and pruned.
    pub created: Vec<String>,
    /// Updated.
    pub updated: Vec<String>,
    /// Pruned.
    pub pruned: Vec<String>,
    /// Drift reverted: `Kind ns/name: field (changed by manager)`.
    pub reverted: Vec<String>,
}

/// An app's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDetail {
    /// The card's data.
    pub summary: AppSummary,
    /// Objects, by namespace then kind and name.
    pub nodes: Vec<Node>,
    /// Conditions: (type, message).
    pub conditions: Vec<(String, String)>,
    /// Newest first.
    pub history: Vec<Entry>,
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The card of an app.
pub fn summary(app: &Application) -> AppSummary {
    let none = ApplicationStatus::default();
    let st = app.status.as_ref().unwrap_or(&none);
    let revision = st
        .sync
        .as_ref()
        .and_then(|s| s.revision.clone())
        .unwrap_or_default();
    let last = st.history.iter().rev().find(|h| h.revision == revision);
    let automated = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref());
    let src = &app.spec.source;
    AppSummary {
        name: app.metadata.name.clone().unwrap_or_default(),
        sync: st
            .sync
            .as_ref()
            .map(|s| s.status.clone())
            .unwrap_or_else(|| "Unknown".into()),
        health: st
            .health
            .as_ref()
            .map(|h| h.status.clone())
            .unwrap_or_else(|| "Unknown".into()),
        message: last
            .and_then(|h| h.message.as_deref())
            .map(first_line)
            .unwrap_or_default(),
        author: last.and_then(|h| h.author.clone()).unwrap_or_default(),
        synced_at: st
            .history
            .last()
            .map(|h| h.deployed_at.clone())
            .unwrap_or_default(),
        revision,
        source: format!(
            "{} {}",
            src.repo_url,
            src.path.clone().unwrap_or_else(|| ".".into())
        ),
        automated: automated.is_some(),
        self_heal: automated.is_some_and(|a| a.self_heal),
        paused: app
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PAUSE_ANNOTATION)),
        operation: st
            .operation_state
            .as_ref()
            .map(|o| match &o.message {
                Some(m) if !m.is_empty() => format!("{}: {}", o.phase, first_line(m)),
                _ => o.phase.clone(),
            })
            .unwrap_or_default(),
    }
}

/// An app's page data.
pub fn detail(app: &Application) -> AppDetail {
    let none = ApplicationStatus::default();
    let st = app.status.as_ref().unwrap_or(&none);
    let mut nodes: Vec<Node> = st
        .resources
        .iter()
        .map(|r| Node {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            sync: r.status.clone().unwrap_or_else(|| "Unknown".into()),
            health: r
                .health
                .as_ref()
                .map(|h| h.status.clone())
                .unwrap_or_default(),
            health_message: r
                .health
                .as_ref()
                .and_then(|h| h.message.clone())
                .unwrap_or_default(),
        })
        .collect();
    nodes.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    AppDetail {
        summary: summary(app),
        nodes,
        conditions: st
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.message.clone()))
            .collect(),
        history: st
            .history
            .iter()
            .rev()
            .map(|h| Entry {
                id: h.id,
                revision: h.revision.clone(),
                author: h.author.clone().unwrap_or_default(),
                message: h.message.as_deref().map(first_line).unwrap_or_default(),
                at: h.deployed_at.clone(),
                by: h.initiated_by.clone().unwrap_or_default(),
                created: h.created.clone(),
                updated: h.updated.clone(),
                pruned: h.pruned.clone(),
                reverted: h.reverted.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Application as the module leaves it after two syncs and a revert.
    pub(crate) fn app(name: &str) -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "metalgate.io/v1beta1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "metalgate-system",
                         "annotations": {PAUSE_ANNOTATION: "true"}},
            "spec": {
                "source": {"repoURL": "http://git.example/workshop.git", "path": "apps/podinfo", "targetRevision": "HEAD"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "podinfo"},
                "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
            },
            "status": {
                "sync": {"status": "Synced", "revision": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
                "health": {"status": "Healthy"},
                "operationState": {"phase": "Succeeded", "message": "successfully synced"},
                "resources": [
                    {"group": "", "version": "v1", "kind": "Service", "namespace": "podinfo", "name": "podinfo", "status": "Synced", "health": {"status": "Healthy"}},
                    {"group": "", "version": "v1", "kind": "Secret", "namespace": "podinfo", "name": "token", "status": "Synced"},
                    {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "podinfo", "name": "podinfo", "status": "OutOfSync", "health": {"status": "Progressing", "message": "1 of 2 updated"}}
                ],
                "history": [
                    {"id": 1, "revision": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "author": "Ada", "message": "podinfo: first\n\nbody", "deployedAt": "2026-12-01T10:00:00Z", "initiatedBy": "auto-sync", "created": ["Service podinfo/podinfo"]},
                    {"id": 2, "revision": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "author": "Grace", "message": "podinfo: blue <b>", "deployedAt": "2026-12-01T11:00:00Z", "initiatedBy": "webhook", "updated": ["Deployment podinfo/podinfo"]},
                    {"id": 3, "revision": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "author": "Grace", "message": "podinfo: blue <b>", "deployedAt": "2026-12-01T11:05:00Z", "initiatedBy": "self-heal", "reverted": ["apps/Deployment podinfo/podinfo: .spec.replicas (changed by kubectl-edit)"]}
                ],
                "conditions": [{"type": "SyncError", "message": "a condition"}]
            }
        }))
        .expect("an Application")
    }

    #[test]
    fn the_card_shows_the_synced_commit_its_author_and_the_last_sync() {
        let s = summary(&app("podinfo"));
        assert_eq!(s.sync, "Synced");
        assert_eq!(s.health, "Healthy");
        assert_eq!(s.message, "podinfo: blue <b>");
        assert_eq!(s.author, "Grace");
        assert_eq!(s.synced_at, "2026-12-01T11:05:00Z");
        assert!(s.automated && s.self_heal && s.paused);
        assert_eq!(s.operation, "Succeeded: successfully synced");
    }

    #[test]
    fn the_page_lists_objects_by_namespace_and_history_newest_first() {
        let d = detail(&app("podinfo"));
        let names: Vec<String> = d
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.kind, n.name))
            .collect();
        assert_eq!(
            names,
            ["Deployment podinfo", "Secret token", "Service podinfo"]
        );
        assert_eq!(d.history.first().map(|h| h.id), Some(3));
        assert_eq!(d.history[2].message, "podinfo: first");
        assert_eq!(d.conditions, [("SyncError".into(), "a condition".into())]);
    }

    #[test]
    fn an_app_without_status_is_unknown() {
        let mut a = app("new");
        a.status = None;
        let s = summary(&a);
        assert_eq!((s.sync.as_str(), s.health.as_str()), ("Unknown", "Unknown"));
        assert!(detail(&a).nodes.is_empty());
    }
}
