//! The request path, laid out as kube-apiserver's chain: authentication → decode → route to a
//! resource → reads, or writes through admission and validation → storage → encode.
//!
//! - `authn` — who is asking (the admin's token or a ServiceAccount's), impersonation.
//! - `authz` — RBAC on the store's Roles and bindings; 403 as kube-apiserver words it.
//! - `decode` — query, headers, body (JSON/YAML, 3 MiB), field manager and validation;
//!   `protobuf` — the protobuf bodies of kubectl's typed commands.
//! - `discovery` — groups, resources and OpenAPI documents.
//! - `target` — which resource, namespace, name and subresource a URL names.
//! - `read` — get, list and watch.
//! - `admit` — the write pipeline: metadata, structure, defaults, rules, admission, fields.
//! - `write` — create, update, patch and apply; `scale` — the `/scale` subresource;
//!   `reviews` — TokenRequests and access reviews, answered and never stored; `delete` — deletes; `cascade` — what a delete
//!   takes with it (a CRD's objects, a namespace's contents).
//! - `logs` — `pods/log` (`kubectl logs`), forwarded to the pod's node's agent.
//! - `response` — JSON answers and `Status` errors.

mod admit;
mod authn;
mod authz;
mod cascade;
mod decode;
mod delete;
mod discovery;
mod logs;
mod protobuf;
mod read;
mod response;
mod reviews;
mod scale;
mod state;
mod target;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::fields::Part;
use crate::openapi;
use crate::table::{self, Include};

use crate::auth::request_info::request_info;
use authn::{authenticate, impersonate};
use authz::check;
use decode::Ctx;
use delete::{delete, delete_collection};
use discovery::{group_entry, group_list, gv_openapi, resource_list};
use read::{list, present, watch};
pub use response::Body;
use response::{error_response, full, json_response};
use reviews::{answer, token_request};
use scale::scale;
pub use state::{Admission, State, now};
use target::parse_resource_path;
use write::{create, patch_object, update};

/// The Kubernetes version this store reports (kubectl picks its client by it).
pub const KUBE_VERSION: &str = "v1.33.0+metalgate";

/// Handle one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match route(&state, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    // Authentication, impersonation, authorization — before the body is read.
    let user = match authenticate(state, &path, &parts.headers).await? {
        Some(caller) => {
            let user = impersonate(state, caller, &parts.headers).await?;
            let pairs: Vec<(String, String)> =
                query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let attrs = request_info(parts.method.as_str(), &path, &pairs);
            check(state, &user, &attrs).await?;
            Some(user)
        }
        None => None,
    };
    let ctx = Ctx::read(parts.method.clone(), query, parts.headers, body, user).await?;

    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v, &[]));
    match segs.as_slice() {
        ["version"] => ok(json!({
            "major": "1", "minor": "33", "gitVersion": KUBE_VERSION, "gitCommit": "metalgate",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust",
            "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        })),
        ["healthz"] | ["readyz"] | ["livez"] => {
            Ok(full(StatusCode::OK, b"ok".to_vec(), "text/plain"))
        }
        ["api"] => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        ["apis"] => ok(group_list(&state.registry)),
        ["openapi", "v3"] => ok(openapi::index(&state.registry)),
        ["openapi", "v3", "api", v] => {
            gv_openapi(state, "", v, ctx.query.get("hash").map(String::as_str))
        }
        ["openapi", "v3", "apis", g, v] => {
            gv_openapi(state, g, v, ctx.query.get("hash").map(String::as_str))
        }
        ["api", "v1", rest @ ..] => resource_request(state, &ctx, "", "v1", rest).await,
        ["apis", g] => {
            let groups = state.registry.groups();
            match groups.get(*g) {
                Some(vs) => ok(group_entry(g, vs)),
                None => Err(ApiError::no_route(&path)),
            }
        }
        ["apis", g, v, rest @ ..] => resource_request(state, &ctx, g, v, rest).await,
        _ => Err(ApiError::no_route(&path)),
    }
}

async fn resource_request(
    state: &Arc<State>,
    ctx: &Ctx,
    g: &str,
    v: &str,
    rest: &[&str],
) -> ApiResult<Response<Body>> {
    if rest.is_empty() {
        if ctx.method != Method::GET {
            return Err(ApiError::method_not_allowed("discovery is read-only"));
        }
        return Ok(json_response(
            StatusCode::OK,
            &resource_list(&state.registry, g, v)?,
            &[],
        ));
    }
    let mut t = parse_resource_path(&state.registry, g, v, rest)?;
    t.admission = state.admission.clone();
    if t.def.answered {
        return match (&ctx.method, &t.name) {
            (&Method::POST, None) => answer(state, ctx, &t).await,
            (m, _) => Err(ApiError::method_not_allowed(format!(
                "{m} is not supported on {}: create one, it is answered",
                t.def.plural
            ))),
        };
    }
    let part = match t.sub.as_deref() {
        None => {
            if t.def.has_status {
                Part::Spec
            } else {
                Part::Whole
            }
        }
        Some("status") if t.def.has_status => Part::Status,
        Some("finalize") if t.def.kind == "Namespace" => Part::Spec,
        Some("token") if t.def.kind == "ServiceAccount" && ctx.method == Method::POST => {
            let name = t.name.clone().unwrap_or_default();
            return token_request(state, ctx, &t, &name).await;
        }
        Some("log")
            if t.def.kind == "Pod" && t.def.group.is_empty() && ctx.method == Method::GET =>
        {
            let name = t
                .name
                .clone()
                .ok_or_else(|| ApiError::no_route("log of no pod"))?;
            return logs::pod_log(state, ctx, &t, &name).await;
        }
        Some("scale") if t.def.has_scale => {
            let name = t
                .name
                .clone()
                .ok_or_else(|| ApiError::no_route("scale of no object"))?;
            return scale(state, ctx, &t, &name).await;
        }
        Some(other) => {
            return Err(ApiError::no_route(&format!(
                "subresource {other:?} of {}",
                t.def.plural
            )));
        }
    };
    match (&ctx.method, &t.name) {
        (&Method::GET, None) => {
            if ctx.q("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(state.clone(), ctx, &t).await
            } else {
                list(state, ctx, &t).await
            }
        }
        (&Method::GET, Some(name)) => {
            let key = t.def.key(t.namespace.as_deref(), name);
            let obj = state
                .store
                .get(&key)
                .await
                .ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
            let obj = present(&t.def, &obj);
            if ctx.wants_table() {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let include = Include::parse(ctx.q("includeObject"));
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&t.def, &[Arc::new(obj)], include, rv, None),
                    &[],
                ));
            }
            Ok(json_response(StatusCode::OK, &obj, &[]))
        }
        (&Method::POST, None) => create(state, ctx, &t).await,
        (&Method::PUT, Some(name)) => update(state, ctx, &t, name, part).await,
        (&Method::PATCH, Some(name)) => patch_object(state, ctx, &t, name, part).await,
        (&Method::DELETE, Some(name)) => delete(state, ctx, &t, name).await,
        (&Method::DELETE, None) => delete_collection(state, ctx, &t).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported here"
        ))),
    }
}
