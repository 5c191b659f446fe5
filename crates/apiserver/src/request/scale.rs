//! The `/scale` subresource: a workload's replicas read and written as an autoscaling/v1
//! `Scale`, as `kubectl scale` (a merge patch, or a PUT with `--resource-version`) and
//! autoscalers use it. Writes go through the same pipeline as any spec write.

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::Response;
use serde_json::{Value, json};

use super::admit::admit_write;
use super::decode::Ctx;
use super::response::{Body, json_response};
use super::state::State;
use super::target::ResourcePath;
use super::write::commit_write;
use crate::error::{ApiError, ApiResult, Cause};
use crate::fields::Part;
use crate::kinds::print::selector;
use crate::patch;

/// An object's `Scale`: its name, version, desired and current replicas, and its selector.
pub(super) fn to_scale(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut scale_meta = json!({
        "name": meta["name"],
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
        "creationTimestamp": meta["creationTimestamp"],
    });
    if meta["namespace"].is_string() {
        scale_meta["namespace"] = meta["namespace"].clone();
    }
    let sel = selector(&obj["spec"]["selector"]);
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": scale_meta,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": if sel == "<none>" { String::new() } else { sel },
        },
    })
}

/// The replicas a `Scale` asks for: a whole number, zero or more.
fn wanted_replicas(scale: &Value, name: &str) -> ApiResult<i64> {
    let r = &scale["spec"]["replicas"];
    match r.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(ApiError::invalid(
            "Scale",
            name,
            vec![Cause::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            )],
        )),
    }
}

/// GET, PUT or PATCH `…/{name}/scale`.
pub(super) async fn scale(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
) -> ApiResult<Response<Body>> {
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
    let current = to_scale(&old);
    let asked = match ctx.method {
        Method::GET => return Ok(json_response(StatusCode::OK, &current, &[])),
        Method::PUT => {
            let body = ctx.body_value()?;
            if let Some(rv) = body["metadata"]["resourceVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                    return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
                }
            }
            body
        }
        Method::PATCH => {
            let body = ctx.body_value()?;
            let mut s = current.clone();
            match ctx.content_type().as_str() {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    patch::merge_patch(&mut s, &body)
                }
                "application/json-patch+json" => patch::json_patch(&mut s, &body)?,
                other => return Err(ApiError::unsupported_media(other)),
            }
            s
        }
        ref m => {
            return Err(ApiError::method_not_allowed(format!(
                "{m} is not supported on scale"
            )));
        }
    };
    let replicas = wanted_replicas(&asked, name)?;
    let mut new = (*old).clone();
    new["spec"]["replicas"] = json!(replicas);
    let manager = ctx.manager("update");
    let p = admit_write(
        &txn,
        t,
        Part::Spec,
        Some(&old),
        new,
        &manager,
        ctx.validation(),
        true,
    )?;
    let (status, written, warnings) = commit_write(state, ctx, &mut txn, t, key, p, false).await?;
    Ok(json_response(status, &to_scale(&written), &warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_carries_replicas_and_the_selector() {
        let d = json!({"metadata": {"name": "podinfo", "namespace": "apps", "uid": "u", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "podinfo"}}},
            "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=podinfo");
        assert_eq!(s["metadata"]["namespace"], "apps");
        assert!(wanted_replicas(&json!({"spec": {"replicas": -1}}), "podinfo").is_err());
        assert!(wanted_replicas(&json!({"spec": {"replicas": "2"}}), "podinfo").is_err());
        assert_eq!(
            wanted_replicas(&json!({"spec": {"replicas": 0}}), "podinfo").unwrap(),
            0
        );
    }
}
