//! Deletes: one object (preconditions, finalizers, dry runs, the propagation policy the
//! garbage collector carries out, a pod's grace period) and collections.

use std::sync::Arc;

use http::StatusCode;
use hyper::Response;
use serde_json::{Value, json};

use super::cascade::{cascade, deleted_keys, empty_after, finish_namespace};
use super::decode::{Ctx, parse_body};
use super::read::{Filter, list_prefix, present};
use super::response::{Body, json_response};
use super::state::{State, now};
use super::target::ResourcePath;
use super::write::crd_side_effects;
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::store::{Txn, Write};

pub(super) async fn delete(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
) -> ApiResult<Response<Body>> {
    let opts: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        parse_body(&ctx.body, "application/json").unwrap_or(json!({}))
    };
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
    if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str() {
        if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    if let Some(uid) = opts["preconditions"]["uid"].as_str() {
        if Some(uid) != old["metadata"]["uid"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    let dry = ctx.dry_run()
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let policy = propagation(ctx, &opts)?;
    let grace = grace_asked(ctx, &opts)?;
    let (resp, code) = match pod_grace(&t.def, &old, grace) {
        Some(g) => graceful(&mut txn, &key, &old, g, dry)?,
        None => delete_in_txn(state, &mut txn, t, &key, &old, dry, policy)?,
    };
    Ok(json_response(code, &present(&t.def, &resp), &[]))
}

/// `gracePeriodSeconds` of the DeleteOptions (body or query), when given.
fn grace_asked(ctx: &Ctx, opts: &Value) -> ApiResult<Option<i64>> {
    let q = ctx.q("gracePeriodSeconds");
    match (&opts["gracePeriodSeconds"], q) {
        (Value::Number(n), _) => n.as_i64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("gracePeriodSeconds {n} is not a whole number"))
        }),
        (_, Some(q)) => q.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds {q:?} is not a whole number"))
        }),
        _ => Ok(None),
    }
}

/// A pod deleted with a grace period, as kube-apiserver's pod strategy decides it: the one
/// asked for, else `spec.terminationGracePeriodSeconds`, else 30 s — but none for a pod on no
/// node or already finished (nobody has anything to stop). `None`: delete at once.
pub(super) fn pod_grace(def: &ResourceDef, pod: &Value, asked: Option<i64>) -> Option<i64> {
    if def.kind != "Pod" || !def.group.is_empty() {
        return None;
    }
    let on_node = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    );
    let grace = asked
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    (on_node && !finished && grace > 0).then_some(grace)
}

/// Mark a pod for deletion after `grace` seconds: `deletionTimestamp` (now + grace) and
/// `deletionGracePeriodSeconds`. Its node's kubelet stops it and deletes it with grace 0; the
/// EndpointSlices take it out of service at once. A pod already terminating keeps its time.
fn graceful(
    txn: &mut Txn<'_>,
    key: &str,
    old: &Value,
    grace: i64,
    dry: bool,
) -> ApiResult<(Value, StatusCode)> {
    if !old["metadata"]["deletionTimestamp"].is_null() {
        return Ok((old.clone(), StatusCode::OK));
    }
    let mut o = old.clone();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
    o["metadata"]["deletionTimestamp"] = json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    if dry {
        return Ok((o, StatusCode::OK));
    }
    let stored = txn.commit(vec![Write::Put(key.to_string(), o.clone())])?;
    let out = stored.into_iter().next().map(|s| (*s).clone()).unwrap_or(o);
    Ok((out, StatusCode::OK))
}

/// How a delete treats the object's dependents (`propagationPolicy`, or the older
/// `orphanDependents`): the finalizer the garbage collector acts on, none for Background.
fn propagation(ctx: &Ctx, opts: &Value) -> ApiResult<Option<&'static str>> {
    let asked = opts["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| ctx.q("propagationPolicy").map(str::to_string));
    match asked.as_deref() {
        None | Some("Background") => {
            let orphan = opts["orphanDependents"].as_bool() == Some(true)
                || ctx.q("orphanDependents") == Some("true");
            Ok(orphan.then_some(crate::gc::ORPHAN))
        }
        Some("Foreground") => Ok(Some(crate::gc::FOREGROUND)),
        Some("Orphan") => Ok(Some(crate::gc::ORPHAN)),
        Some(other) => Err(ApiError::bad_request(format!(
            "propagationPolicy {other:?} is not one of Background, Foreground, Orphan"
        ))),
    }
}

pub(super) fn delete_in_txn(
    state: &State,
    txn: &mut Txn<'_>,
    t: &ResourcePath,
    key: &str,
    old: &Value,
    dry: bool,
    policy: Option<&'static str>,
) -> ApiResult<(Value, StatusCode)> {
    let now = now();
    let has_finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let is_ns = t.def.kind == "Namespace" && t.def.group.is_empty();
    let policy = policy.filter(|_| !is_ns);
    if has_finalizers || is_ns || policy.is_some() {
        let mut o = old.clone();
        if let Some(f) = policy {
            let mut list = o["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !list.iter().any(|x| x == f) {
                list.push(json!(f));
            }
            o["metadata"]["finalizers"] = json!(list);
        }
        if o["metadata"]["deletionTimestamp"].is_null() {
            o["metadata"]["deletionTimestamp"] = json!(now);
            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if is_ns {
            o["status"]["phase"] = json!("Terminating");
        }
        if dry {
            return Ok((o, StatusCode::OK));
        }
        let mut writes = vec![Write::Put(key.to_string(), o.clone())];
        if is_ns {
            writes.extend(cascade(txn, &state.registry, &t.def, &o, &now));
            let ns = o["metadata"]["name"].as_str().unwrap_or_default();
            let removing = deleted_keys(&writes);
            // Everything left is being deleted: the namespace goes at once.
            if empty_after(txn, &state.registry, ns, &removing) {
                writes.push(Write::Delete(key.to_string()));
            }
        }
        let stored = txn.commit(writes)?;
        let out = stored
            .into_iter()
            .find(|s| s["metadata"]["uid"] == o["metadata"]["uid"])
            .map(|s| (*s).clone())
            .unwrap_or(o);
        return Ok((out, StatusCode::OK));
    }
    if dry {
        return Ok((old.clone(), StatusCode::OK));
    }
    let mut writes = cascade(txn, &state.registry, &t.def, old, &now);
    writes.push(Write::Delete(key.to_string()));
    if let Some(ns) = old["metadata"]["namespace"].as_str() {
        let removing = deleted_keys(&writes);
        if let Some(w) = finish_namespace(txn, &state.registry, ns, &removing) {
            writes.push(w);
        }
    }
    let stored = txn.commit(writes)?;
    crd_side_effects(state, &t.def, old, true);
    let out = stored
        .into_iter()
        .find(|s| s["metadata"]["uid"] == old["metadata"]["uid"])
        .map(|s| (*s).clone())
        .unwrap_or_else(|| old.clone());
    Ok((out, StatusCode::OK))
}

pub(super) async fn delete_collection(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
) -> ApiResult<Response<Body>> {
    let filter = Filter::from(ctx)?;
    let opts: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        parse_body(&ctx.body, "application/json").unwrap_or(json!({}))
    };
    let policy = propagation(ctx, &opts)?;
    let grace = grace_asked(ctx, &opts)?;
    let mut txn = state.store.txn().await;
    let victims: Vec<(String, Arc<Value>)> = txn
        .list(&list_prefix(t))
        .into_iter()
        .filter(|(_, o)| filter.matches(o))
        .collect();
    let mut items = Vec::new();
    for (k, o) in victims {
        let (v, _) = match pod_grace(&t.def, &o, grace) {
            Some(g) => graceful(&mut txn, &k, &o, g, ctx.dry_run())?,
            None => delete_in_txn(state, &mut txn, t, &k, &o, ctx.dry_run(), policy)?,
        };
        items.push(present(&t.def, &v));
    }
    let rv = txn.resource_version();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: &str) -> ResourceDef {
        crate::registry::builtins()
            .into_iter()
            .find(|d| d.kind == kind && d.group.is_empty())
            .unwrap()
    }

    #[test]
    fn a_pod_on_a_node_gets_its_grace_period_and_others_go_at_once() {
        let pod = json!({"spec": {"nodeName": "ops-demo", "terminationGracePeriodSeconds": 5}, "status": {"phase": "Running"}});
        let p = def("Pod");
        assert_eq!(pod_grace(&p, &pod, None), Some(5), "the pod's own");
        assert_eq!(pod_grace(&p, &pod, Some(2)), Some(2), "the one asked for");
        assert_eq!(
            pod_grace(&p, &pod, Some(0)),
            None,
            "--grace-period=0 --force"
        );
        let mut default = pod.clone();
        default["spec"]
            .as_object_mut()
            .unwrap()
            .remove("terminationGracePeriodSeconds");
        assert_eq!(pod_grace(&p, &default, None), Some(30), "kube's default");
        let mut unscheduled = pod.clone();
        unscheduled["spec"]["nodeName"] = json!("");
        assert_eq!(pod_grace(&p, &unscheduled, None), None, "nobody runs it");
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_grace(&p, &done, None), None, "nothing to stop");
        assert_eq!(pod_grace(&def("ConfigMap"), &pod, None), None, "pods only");
    }
}
