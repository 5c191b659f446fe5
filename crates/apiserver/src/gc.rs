//! The garbage collector, as kube-controller-manager's: dependents go with their owners by
//! `metadata.ownerReferences`.
//!
//! - **Background** (the default): the owner goes at once; a dependent whose owners are all gone
//!   is deleted next (and its own dependents after it); one that still has another owner only
//!   loses the reference to the gone one.
//! - **Foreground**: the owner stays, with a `deletionTimestamp` and the `foregroundDeletion`
//!   finalizer, until every dependent with `blockOwnerDeletion` is gone; dependents are deleted
//!   in foreground themselves when they have dependents.
//! - **Orphan**: the `orphan` finalizer; dependents lose their reference to the owner and stay.
//!
//! `plan` decides one step from the whole store (pure, tested by tables); `run` applies steps
//! after every delete and every few seconds, so a cascade cut short by a restart finishes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::store::{EventType, Store, Write};

/// The finalizer of an owner deleted in foreground.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner deleted with its dependents orphaned.
pub const ORPHAN: &str = "orphan";

fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

fn deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

fn finalizers(o: &Value) -> Vec<&str> {
    o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn owner_refs(o: &Value) -> &[Value] {
    o["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `o` without the finalizer `f`: deleted when no finalizer is left.
fn release(key: &str, o: &Value, f: &str) -> Write {
    let rest: Vec<&str> = finalizers(o).into_iter().filter(|x| *x != f).collect();
    if rest.is_empty() {
        return Write::Delete(key.to_string());
    }
    let mut o = o.clone();
    o["metadata"]["finalizers"] = json!(rest);
    Write::Put(key.to_string(), o)
}

/// Start deleting `o`: at once, or by marking it when it has finalizers or (in foreground)
/// dependents of its own.
fn start_delete(key: &str, o: &Value, foreground: bool, now: &str) -> Write {
    if !foreground && finalizers(o).is_empty() {
        return Write::Delete(key.to_string());
    }
    let mut o = o.clone();
    o["metadata"]["deletionTimestamp"] = json!(now);
    if foreground {
        let mut f: Vec<Value> = finalizers(&o).into_iter().map(|s| json!(s)).collect();
        f.push(json!(FOREGROUND));
        o["metadata"]["finalizers"] = json!(f);
    }
    Write::Put(key.to_string(), o)
}

/// One step of collection over every object (`(storage key, object)`), at time `now`.
pub fn plan(all: &[(String, Arc<Value>)], now: &str) -> Vec<Write> {
    let uids: HashSet<&str> = all.iter().map(|(_, o)| uid(o)).collect();
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, o)) in all.iter().enumerate() {
        for r in owner_refs(o) {
            if let Some(u) = r["uid"].as_str() {
                dependents.entry(u).or_default().push(i);
            }
        }
    }
    let mut writes = Vec::new();
    let mut touched: HashSet<&str> = HashSet::new();
    let deps_of = |o: &Value| dependents.get(uid(o)).cloned().unwrap_or_default();

    // Owners being deleted with a policy.
    for (key, o) in all.iter().filter(|(_, o)| deleting(o)) {
        let f = finalizers(o);
        if f.contains(&ORPHAN) {
            for i in deps_of(o) {
                let (dk, d) = &all[i];
                if touched.insert(dk) {
                    let mut d = (**d).clone();
                    let keep: Vec<Value> = owner_refs(&d)
                        .iter()
                        .filter(|r| r["uid"].as_str() != Some(uid(o)))
                        .cloned()
                        .collect();
                    d["metadata"]["ownerReferences"] = json!(keep);
                    writes.push(Write::Put(dk.clone(), d));
                }
            }
            if touched.insert(key) {
                writes.push(release(key, o, ORPHAN));
            }
        } else if f.contains(&FOREGROUND) {
            let deps = deps_of(o);
            let mut blocked = false;
            for &i in &deps {
                let (dk, d) = &all[i];
                let blocks = owner_refs(d).iter().any(|r| {
                    r["uid"].as_str() == Some(uid(o)) && r["blockOwnerDeletion"] == json!(true)
                });
                blocked |= blocks;
                if !deleting(d) && touched.insert(dk) {
                    let has_own = dependents.contains_key(uid(d));
                    writes.push(start_delete(dk, d, has_own, now));
                }
            }
            if !blocked && touched.insert(key) {
                writes.push(release(key, o, FOREGROUND));
            }
        }
    }

    // Dependents whose owners are gone.
    for (key, o) in all.iter() {
        let refs = owner_refs(o);
        if refs.is_empty() || deleting(o) || touched.contains(key.as_str()) {
            continue;
        }
        let gone: Vec<&Value> = refs
            .iter()
            .filter(|r| !r["uid"].as_str().is_some_and(|u| uids.contains(u)))
            .collect();
        if gone.is_empty() {
            continue;
        }
        touched.insert(key);
        if gone.len() == refs.len() {
            writes.push(start_delete(key, o, false, now));
        } else {
            let mut d = (**o).clone();
            let keep: Vec<Value> = refs
                .iter()
                .filter(|r| r["uid"].as_str().is_some_and(|u| uids.contains(u)))
                .cloned()
                .collect();
            d["metadata"]["ownerReferences"] = json!(keep);
            writes.push(Write::Put(key.clone(), d));
        }
    }
    writes
}

/// How often the whole store is looked at even without a delete.
const PERIOD: Duration = Duration::from_secs(5);
/// Steps per wake-up at most (each step is one level of a cascade).
const MAX_STEPS: usize = 32;

/// Collect until `stop`: at start (finishing what a restart cut short), after deletes and
/// deletion marks, and every few seconds.
pub async fn run<S: AsRef<Store>>(state: Arc<S>, stop: CancellationToken) {
    let store: &Store = (*state).as_ref();
    let (_, mut rx, _) = store.snapshot_and_watch("\u{10ffff}").await;
    loop {
        for _ in 0..MAX_STEPS {
            let mut txn = store.txn().await;
            let all = txn.list("");
            let writes = plan(&all, &crate::store::now());
            if writes.is_empty() {
                break;
            }
            let n = writes.len();
            if let Err(e) = txn.commit(writes) {
                tracing::warn!(error = %e.message, "garbage collection could not write");
                break;
            }
            tracing::debug!(writes = n, "garbage collected");
        }
        let wake = async {
            loop {
                match rx.recv().await {
                    Ok(c)
                        if c.kind == EventType::Deleted
                            || c.object["metadata"]["deletionTimestamp"].is_string()
                            || !owner_refs(&c.object).is_empty() =>
                    {
                        return;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake => {}
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, uid: &str, owners: &[(&str, bool)], extra: Value) -> (String, Arc<Value>) {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(u, block)| json!({"apiVersion": "apps/v1", "kind": "Owner", "name": "o", "uid": u, "blockOwnerDeletion": block}))
            .collect();
        let mut o = json!({"metadata": {"name": key, "uid": uid}});
        if !refs.is_empty() {
            o["metadata"]["ownerReferences"] = json!(refs);
        }
        if let Value::Object(m) = extra {
            for (k, v) in m {
                o["metadata"][k.as_str()] = v;
            }
        }
        (key.to_string(), Arc::new(o))
    }

    fn summary(w: &[Write]) -> Vec<String> {
        let mut out: Vec<String> = w
            .iter()
            .map(|w| match w {
                Write::Delete(k) => format!("delete {k}"),
                Write::Put(k, o) => format!(
                    "put {k} finalizers={} owners={} deleting={}",
                    json!(o["metadata"]["finalizers"]),
                    owner_refs(o).len(),
                    deleting(o)
                ),
            })
            .collect();
        out.sort();
        out
    }

    const NOW: &str = "2026-12-02T00:00:00Z";

    #[test]
    fn background_deletes_orphans_level_by_level() {
        // The Deployment is gone; its ReplicaSet goes, then the ReplicaSet's Pods.
        let all = vec![
            obj("rs", "u-rs", &[("u-deploy", true)], json!({})),
            obj("pod", "u-pod", &[("u-rs", true)], json!({})),
        ];
        assert_eq!(summary(&plan(&all, NOW)), ["delete rs"]);
        let next = vec![all[1].clone()];
        assert_eq!(summary(&plan(&next, NOW)), ["delete pod"]);
    }

    #[test]
    fn a_dependent_with_another_owner_only_loses_the_gone_one() {
        let all = vec![
            obj("other", "u-other", &[], json!({})),
            obj(
                "cm",
                "u-cm",
                &[("u-gone", false), ("u-other", false)],
                json!({}),
            ),
        ];
        assert_eq!(
            summary(&plan(&all, NOW)),
            ["put cm finalizers=null owners=1 deleting=false"]
        );
    }

    #[test]
    fn a_dependent_with_finalizers_is_marked_not_removed() {
        let all = vec![obj(
            "pvc",
            "u-pvc",
            &[("u-gone", false)],
            json!({"finalizers": ["kubernetes.io/pvc-protection"]}),
        )];
        assert_eq!(
            summary(&plan(&all, NOW)),
            ["put pvc finalizers=[\"kubernetes.io/pvc-protection\"] owners=1 deleting=true"]
        );
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let owner = obj(
            "deploy",
            "u-d",
            &[],
            json!({"deletionTimestamp": NOW, "finalizers": [FOREGROUND]}),
        );
        let rs = obj("rs", "u-rs", &[("u-d", true)], json!({}));
        let pod = obj("pod", "u-pod", &[("u-rs", true)], json!({}));
        // The ReplicaSet has Pods: it is deleted in foreground too; the Deployment waits.
        let all = vec![owner.clone(), rs.clone(), pod.clone()];
        assert_eq!(
            summary(&plan(&all, NOW)),
            ["put rs finalizers=[\"foregroundDeletion\"] owners=1 deleting=true"]
        );
        // The ReplicaSet deletes its Pod; both owners still wait.
        let rs_marked = obj(
            "rs",
            "u-rs",
            &[("u-d", true)],
            json!({"deletionTimestamp": NOW, "finalizers": [FOREGROUND]}),
        );
        let all = vec![owner.clone(), rs_marked.clone(), pod];
        assert_eq!(summary(&plan(&all, NOW)), ["delete pod"]);
        // Pod gone: the ReplicaSet is released; then the Deployment.
        let all = vec![owner.clone(), rs_marked];
        assert_eq!(summary(&plan(&all, NOW)), ["delete rs"]);
        assert_eq!(summary(&plan(&[owner], NOW)), ["delete deploy"]);
    }

    #[test]
    fn foreground_does_not_wait_for_non_blocking_dependents() {
        let owner = obj(
            "deploy",
            "u-d",
            &[],
            json!({"deletionTimestamp": NOW, "finalizers": [FOREGROUND]}),
        );
        let cm = obj("cm", "u-cm", &[("u-d", false)], json!({}));
        assert_eq!(
            summary(&plan(&[owner, cm], NOW)),
            ["delete cm", "delete deploy"]
        );
    }

    #[test]
    fn orphan_keeps_dependents_without_the_reference() {
        let owner = obj(
            "deploy",
            "u-d",
            &[],
            json!({"deletionTimestamp": NOW, "finalizers": [ORPHAN]}),
        );
        let rs = obj("rs", "u-rs", &[("u-d", true)], json!({}));
        assert_eq!(
            summary(&plan(&[owner, rs], NOW)),
            [
                "delete deploy",
                "put rs finalizers=null owners=0 deleting=false"
            ]
        );
    }

    #[test]
    fn nothing_to_do_is_nothing_written() {
        let all = vec![
            obj("deploy", "u-d", &[], json!({})),
            obj("rs", "u-rs", &[("u-d", true)], json!({})),
        ];
        assert!(plan(&all, NOW).is_empty());
    }
}
