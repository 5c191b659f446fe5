//! Live drift detection: one watch per kind that any Application's inventory holds. A change to
//! a tracked object's content (not its status), or its deletion, marks the Application that
//! tracks it, and the runner gives it a pass at once — so self-heal reverts a hand edit within
//! a second, and an app without self-heal turns OutOfSync as soon as it drifts, instead of at the
//! next poll. A change of a tracked object's health (a rollout finishing, a child Application
//! turning Healthy) asks for a pass too, as ArgoCD refreshes an app when its resources change: the
//! app's health, and the sync waves waiting on it, follow in a second rather than at the poll.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::health::{self, State};
use crate::tracking::{ANNOTATION, ARGO_ANNOTATION, TrackingId};

/// A kind to watch: group, version, kind.
pub type Gvk = (String, String, String);

/// What a change must alter to count as drift: everything but status and the metadata the
/// server keeps.
pub fn fingerprint(obj: &Value) -> u64 {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.shift_remove("status");
    }
    if let Some(meta) = o["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "managedFields",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.shift_remove(k);
        }
    }
    let mut h = DefaultHasher::new();
    o.to_string().hash(&mut h);
    h.finish()
}

/// What a watch event changed about a tracked object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing that matters.
    None,
    /// Its content (drift).
    Content,
    /// Only its health.
    Health,
}

/// What an object is, for telling changes apart: its content fingerprint and health state.
pub type Seen = (u64, Option<State>);

/// How `now` differs from what was `before` (None: not seen yet).
pub fn classify(before: Option<Seen>, now: Seen) -> Change {
    match before {
        Some((fp, _)) if fp != now.0 => Change::Content,
        None => Change::Content,
        Some((_, h)) if h != now.1 => Change::Health,
        Some(_) => Change::None,
    }
}

/// The Application an object is tracked by, from its tracking annotation.
pub fn tracked_by(obj: &Value) -> Option<String> {
    let a = &obj["metadata"]["annotations"];
    let v = a[ANNOTATION].as_str().or(a[ARGO_ANNOTATION].as_str())?;
    TrackingId::parse(v).map(|t| t.app)
}

/// The watches, and the Applications they marked.
pub struct Drift {
    client: kube::Client,
    marked: Arc<Mutex<HashSet<String>>>,
    health_changed: Arc<Mutex<HashSet<String>>>,
    notify: Arc<Notify>,
    watches: HashMap<Gvk, JoinHandle<()>>,
}

impl Drift {
    /// No watches yet.
    pub fn new(client: kube::Client) -> Self {
        Drift {
            client,
            marked: Arc::default(),
            health_changed: Arc::default(),
            notify: Arc::new(Notify::new()),
            watches: HashMap::new(),
        }
    }

    /// Keep exactly one watch per kind in `kinds`.
    pub async fn track(&mut self, kinds: &BTreeSet<Gvk>) {
        self.watches.retain(|k, h| {
            let keep = kinds.contains(k) && !h.is_finished();
            if !keep {
                h.abort();
            }
            keep
        });
        for gvk in kinds {
            if self.watches.contains_key(gvk) {
                continue;
            }
            let (g, v, k) = gvk;
            let ar = match kube::discovery::pinned_kind(
                &self.client,
                &GroupVersionKind::gvk(g, v, k),
            )
            .await
            {
                Ok((ar, _)) => ar,
                Err(e) => {
                    tracing::debug!(group = %g, version = %v, kind = %k, error = %e, "no drift watch for this kind");
                    continue;
                }
            };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            let (marked, notify) = (self.marked.clone(), self.notify.clone());
            let health_changed = self.health_changed.clone();
            let api_version = if g.is_empty() {
                v.clone()
            } else {
                format!("{g}/{v}")
            };
            let kind = k.clone();
            let handle = tokio::spawn(async move {
                // Tracked objects only, by a hash of their uid: a watch over a kind covers the
                // whole cluster, and tens of thousands of entries add up.
                let mut seen: HashMap<u64, Seen> = HashMap::new();
                let mut events = watcher(api, watcher::Config::default()).boxed();
                while let Some(ev) = events.next().await {
                    let (obj, deleted, initial) = match ev {
                        Ok(watcher::Event::Apply(o)) => (o, false, false),
                        Ok(watcher::Event::InitApply(o)) => (o, false, true),
                        Ok(watcher::Event::Delete(o)) => (o, true, false),
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::debug!(error = %e, "drift watch error; it retries");
                            continue;
                        }
                    };
                    let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
                    // List items may come without their type; health needs it.
                    v["apiVersion"] = Value::String(api_version.clone());
                    v["kind"] = Value::String(kind.clone());
                    let uid = {
                        let mut h = DefaultHasher::new();
                        v["metadata"]["uid"]
                            .as_str()
                            .unwrap_or_default()
                            .hash(&mut h);
                        h.finish()
                    };
                    let Some(app) = tracked_by(&v) else {
                        seen.remove(&uid);
                        continue;
                    };
                    let change = if deleted {
                        match seen.remove(&uid) {
                            Some(_) => Change::Content,
                            None => Change::None,
                        }
                    } else {
                        let now = (fingerprint(&v), health::of(&v).map(|h| h.state));
                        classify(seen.insert(uid, now), now)
                    };
                    if initial || change == Change::None {
                        continue;
                    }
                    let set = if change == Change::Content {
                        &marked
                    } else {
                        &health_changed
                    };
                    set.lock().unwrap_or_else(|e| e.into_inner()).insert(app);
                    notify.notify_one();
                }
            });
            self.watches.insert(gvk.clone(), handle);
        }
    }

    /// The Applications marked since the last call.
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.marked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The Applications whose objects changed health (and not content) since the last call.
    pub fn take_health_changed(&self) -> HashSet<String> {
        std::mem::take(
            &mut *self
                .health_changed
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Mark an Application again (it was busy when it was marked).
    pub fn mark(&self, app: &str) {
        self.marked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(app.to_string());
    }

    /// Woken when an Application is marked.
    pub fn notified(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

impl Drop for Drift {
    fn drop(&mut self) {
        for h in self.watches.values() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_and_server_metadata_are_not_drift() {
        let a = json!({"metadata": {"name": "podinfo", "resourceVersion": "1", "generation": 1, "annotations": {"x": "1"}}, "spec": {"replicas": 2}, "status": {"readyReplicas": 0}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("2");
        b["status"]["readyReplicas"] = json!(2);
        b["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager"}]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let mut c = a.clone();
        c["spec"]["replicas"] = json!(5);
        assert_ne!(fingerprint(&a), fingerprint(&c));
        let mut d = a.clone();
        d["metadata"]["annotations"]["x"] = json!("2");
        assert_ne!(fingerprint(&a), fingerprint(&d));
    }

    #[test]
    fn content_changes_are_drift_and_health_changes_alone_are_not() {
        let (a, b) = (1, 2);
        assert_eq!(classify(None, (a, None)), Change::Content);
        assert_eq!(
            classify(
                Some((a, Some(State::Progressing))),
                (b, Some(State::Healthy))
            ),
            Change::Content
        );
        assert_eq!(
            classify(
                Some((a, Some(State::Progressing))),
                (a, Some(State::Healthy))
            ),
            Change::Health
        );
        assert_eq!(
            classify(Some((a, Some(State::Healthy))), (a, Some(State::Healthy))),
            Change::None
        );
    }

    #[test]
    fn objects_name_the_application_that_tracks_them() {
        let o = json!({"metadata": {"annotations": {ANNOTATION: "podinfo:apps/Deployment:podinfo/podinfo"}}});
        assert_eq!(tracked_by(&o).as_deref(), Some("podinfo"));
        let argo = json!({"metadata": {"annotations": {ARGO_ANNOTATION: "root:argoproj.io/Application:argocd/podinfo"}}});
        assert_eq!(tracked_by(&argo).as_deref(), Some("root"));
        assert_eq!(tracked_by(&json!({"metadata": {}})), None);
    }
}
