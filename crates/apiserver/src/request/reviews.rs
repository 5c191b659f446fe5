//! What the store answers rather than stores: a ServiceAccount's token (`TokenRequest`), and
//! the access reviews `kubectl auth can-i` and `kubectl auth whoami` ask —
//! `SelfSubjectAccessReview`, `SubjectAccessReview`, `SelfSubjectReview`.

use std::sync::Arc;

use http::StatusCode;
use hyper::Response;
use serde_json::{Value, json};

use super::authz::allowed;
use super::decode::Ctx;
use super::response::{Body, json_response};
use super::state::{State, now};
use super::target::ResourcePath;
use crate::auth::tokens::{self, Claims};
use crate::auth::{Attributes, UserInfo};
use crate::error::{ApiError, ApiResult, Cause};

/// The shortest token kube-apiserver issues, and the default.
const MIN_EXPIRY: i64 = 600;
const DEFAULT_EXPIRY: i64 = 3600;

/// `POST …/serviceaccounts/{name}/token`: a signed token for the ServiceAccount.
pub(super) async fn token_request(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
) -> ApiResult<Response<Body>> {
    let ns = t.namespace.clone().unwrap_or_default();
    let key = t.def.key(Some(&ns), name);
    let sa = state
        .store
        .get(&key)
        .await
        .ok_or_else(|| ApiError::not_found(&t.def.plural, "", name))?;
    let body = if ctx.body.is_empty() {
        json!({})
    } else {
        ctx.body_value()?
    };
    let expiry = body["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRY);
    if expiry < MIN_EXPIRY {
        return Err(ApiError::invalid(
            "TokenRequest",
            name,
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiry),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let exp = jiff::Timestamp::now().as_second() + expiry;
    let claims = Claims {
        ns: ns.clone(),
        name: name.to_string(),
        uid: sa["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        exp,
    };
    let token = tokens::issue(&state.sa_key, &claims);
    let expires = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": now()},
            "spec": {
                "audiences": body["spec"]["audiences"].as_array().cloned().unwrap_or_else(|| vec![json!("https://kubernetes.default.svc")]),
                "expirationSeconds": expiry,
            },
            "status": {"token": token, "expirationTimestamp": expires},
        }),
        &[],
    ))
}

/// The attributes an access review asks about.
fn review_attributes(spec: &Value) -> ApiResult<Attributes> {
    let r = &spec["resourceAttributes"];
    let n = &spec["nonResourceAttributes"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match (r.is_object(), n.is_object()) {
        (true, false) => Ok(Attributes {
            verb: s(&r["verb"]),
            resource_request: true,
            api_group: s(&r["group"]),
            api_version: s(&r["version"]),
            namespace: s(&r["namespace"]),
            resource: s(&r["resource"]),
            subresource: s(&r["subresource"]),
            name: s(&r["name"]),
            ..Attributes::default()
        }),
        (false, true) => Ok(Attributes {
            verb: s(&n["verb"]),
            path: s(&n["path"]),
            ..Attributes::default()
        }),
        _ => Err(ApiError::invalid(
            "SubjectAccessReview",
            "",
            vec![Cause::invalid(
                "spec.resourceAttributes",
                &Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

/// `POST` of a review: answered in its status, never stored.
pub(super) async fn answer(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
) -> ApiResult<Response<Body>> {
    let caller = ctx.user.clone().ok_or_else(ApiError::unauthorized)?;
    let mut review = ctx.body_value()?;
    let status = match t.def.kind.as_str() {
        "SelfSubjectReview" => {
            json!({"userInfo": {"username": caller.name, "groups": caller.groups}})
        }
        "SelfSubjectAccessReview" | "SubjectAccessReview" => {
            let spec = &review["spec"];
            let user = if t.def.kind == "SubjectAccessReview" {
                let groups: Vec<&str> = spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                UserInfo::user(spec["user"].as_str().unwrap_or_default(), &groups)
            } else {
                caller
            };
            let attrs = review_attributes(spec)?;
            let yes = allowed(state, &user, &attrs).await
                || user.groups.iter().any(|g| g == crate::auth::rbac::MASTERS);
            if yes {
                json!({"allowed": true, "reason": "allowed by RBAC"})
            } else {
                json!({"allowed": false})
            }
        }
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} is not answered here"
            )));
        }
    };
    review["apiVersion"] = json!(t.def.api_version());
    review["kind"] = json!(t.def.kind);
    review["status"] = status;
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = json!(now());
    Ok(json_response(StatusCode::CREATED, &review, &[]))
}
