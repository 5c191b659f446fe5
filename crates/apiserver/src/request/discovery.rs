//! Discovery and OpenAPI: the groups, versions and resources served, as kubectl reads them
//! to find a kind's URL and schema.

use http::StatusCode;
use hyper::Response;
use serde_json::{Value, json};

use super::response::{Body, json_response};
use super::state::State;
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::registry::Registry;

/// One group version's OpenAPI document. Asked for by its current hash (the URL `/openapi/v3`
/// hands out), it is immutable, as kube-apiserver marks it: kubectl's HTTP cache then keeps it
/// across commands instead of fetching a few hundred kB before every `apply`.
pub(super) fn gv_openapi(
    state: &State,
    g: &str,
    v: &str,
    hash: Option<&str>,
) -> ApiResult<Response<Body>> {
    if !state.registry.serves_group_version(g, v) {
        return Err(ApiError::no_route(&format!("/openapi/v3/{g}/{v}")));
    }
    let current = hash.is_some_and(|h| h == openapi::hash_of(&state.registry, g, v));
    let cache = if current {
        "public, immutable, max-age=31536000"
    } else {
        "no-cache, private"
    };
    let mut r = json_response(
        StatusCode::OK,
        &openapi::document(&state.registry, g, v),
        &[],
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache),
    );
    Ok(r)
}

pub(super) fn group_entry(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

pub(super) fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(super) fn resource_list(reg: &Registry, g: &str, v: &str) -> ApiResult<Value> {
    if !reg.serves_group_version(g, v) {
        return Err(ApiError::no_route(&format!("{g}/{v}")));
    }
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    let resources: Vec<Value> = reg
        .all()
        .iter()
        .filter(|d| d.group == g && d.version == v)
        .flat_map(|d| d.discovery_entries())
        .collect();
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
