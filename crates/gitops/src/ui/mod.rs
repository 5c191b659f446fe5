//! The web UI people look at (`argocd.192.168.56.200.nip.io` in the workshop): served on the
//! module's admin listener under `/`, server-rendered, with a few lines of plain JS for live
//! updates. Anonymous visitors read; Refresh, Sync and Pause self-heal need the admin password
//! (a session cookie and a CSRF token per form). The same data is JSON at ArgoCD's paths.
//!
//! - [`view`]: an Application's status → what a card and a page show — pure;
//! - [`html`]: the pages, every value escaped — pure;
//! - [`auth`]: the password Secret, sessions, CSRF tokens, cookies — pure but for randomness;
//! - [`assets`]: the stylesheet and the script, compiled in;
//! - [`server`]: routes, the Applications' cache, the annotation writes, the event stream.

pub mod assets;
pub mod auth;
pub mod html;
pub mod server;
pub mod view;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use metalgate_k8s::crd::Application;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Create the admin Secret with a random password unless it exists (ArgoCD's initial admin
/// secret); an existing one is never changed.
pub async fn ensure_admin_secret(client: &kube::Client, namespace: &str) -> anyhow::Result<bool> {
    metalgate_k8s::secrets::ensure(client, namespace, auth::SECRET, auth::KEY, || {
        let password = auth::token();
        anyhow::ensure!(!password.is_empty(), "no randomness for the admin password");
        Ok(password)
    })
    .await
}

/// The Applications of `namespace` as the UI's watch sees them, [`compact`]ed, and a counter
/// bumped on each change: the leader's sync loop reads the same cache instead of holding a
/// second copy.
pub struct Apps {
    /// The cache.
    pub store: Store<Application>,
    /// Bumped on every watch event.
    pub changes: watch::Receiver<u64>,
}

/// What the cache keeps of an Application's status: all but the long lists. An app's
/// `resources` name each object it holds (thousands in a big app) and each history entry the
/// objects it touched; the cards, the metrics and the sync loop's triggers need only the child
/// Applications and one entry per kind (what the drift watches cover). The page of one app and
/// the JSON API read the Application from the API server whole; a sync pass does too.
pub fn compact(app: &mut Application) {
    let Some(st) = app.status.as_mut() else {
        return;
    };
    let mut kinds = std::collections::HashSet::new();
    st.resources.retain(|r| {
        r.kind == "Application"
            || kinds.insert((r.group.clone(), r.version.clone(), r.kind.clone()))
    });
    st.resources.shrink_to_fit();
    for h in &mut st.history {
        h.created = Vec::new();
        h.updated = Vec::new();
        h.pruned = Vec::new();
        h.reverted = Vec::new();
    }
}

/// Serve the UI on the admin listener (under `/`) until `shutdown`: every replica serves it,
/// leader or not, from its own cache of the Applications in `namespace`, which it returns.
pub async fn start(client: kube::Client, namespace: &str, shutdown: CancellationToken) -> Apps {
    match ensure_admin_secret(&client, namespace).await {
        Ok(true) => tracing::info!(
            secret = %format!("{namespace}/{}", auth::SECRET),
            "created the UI's admin password"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            secret = %format!("{namespace}/{}", auth::SECRET),
            error = %format!("{e:#}"),
            "cannot make sure the UI's admin Secret exists; nobody can log in until it does"
        ),
    }
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    let (reader, writer) = reflector::store();
    let (tx, rx) = watch::channel(0u64);
    let events = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()).modify(compact),
    )
    .default_backoff();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = events.next() => match ev {
                    Some(_) => { tx.send_modify(|n| *n += 1); }
                    None => return,
                },
            }
        }
    });
    let ui = Arc::new(server::Ui {
        apps: reader.clone(),
        api,
        secrets: Api::namespaced(client, namespace),
        sessions: Mutex::new(auth::Sessions::default()),
        changes: rx.clone(),
    });
    metalgate_k8s::admin::register_handler(
        "/",
        Arc::new(move |req| {
            let ui = ui.clone();
            Box::pin(ui.handle(req))
        }),
    );
    Apps {
        store: reader,
        changes: rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_child_apps_one_entry_per_kind_and_the_history_without_lists() {
        let cm = |n: &str| serde_json::json!({"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "a", "name": n});
        let child = |n: &str| serde_json::json!({"group": "metalgate.io", "version": "v1beta1", "kind": "Application", "namespace": "metalgate-system", "name": n});
        let mut app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "metalgate.io/v1beta1", "kind": "Application",
            "metadata": {"name": "root", "namespace": "metalgate-system"},
            "spec": {"source": {"repoURL": "file:///r", "path": "."}, "destination": {}},
            "status": {
                "sync": {"status": "Synced", "revision": "abc"}, "health": {"status": "Healthy"},
                "resources": [cm("one"), child("podinfo"), cm("two"), child("grafana"), cm("three"),
                    {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "a", "name": "d"}],
                "history": [{"id": 1, "revision": "abc", "author": "A <a@x>", "message": "first",
                    "deployedAt": "2026-12-04T00:00:00Z", "created": ["ConfigMap a/one"],
                    "updated": ["ConfigMap a/two"], "pruned": ["ConfigMap a/old"],
                    "reverted": ["ConfigMap a/one: data.x (by kubectl)"]}],
            },
        }))
        .unwrap();
        let card = view::summary(&app);
        compact(&mut app);
        let st = app.status.as_ref().unwrap();
        let kept: Vec<(&str, &str)> = st
            .resources
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            kept,
            [
                ("ConfigMap", "one"),
                ("Application", "podinfo"),
                ("Application", "grafana"),
                ("Deployment", "d")
            ]
        );
        let h = &st.history[0];
        assert!(h.created.is_empty() && h.updated.is_empty() && h.pruned.is_empty());
        assert!(h.reverted.is_empty());
        // What a card shows is unchanged.
        assert_eq!(view::summary(&app), card);
    }
}
