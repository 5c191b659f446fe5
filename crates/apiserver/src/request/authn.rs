//! Authentication: who is asking. The store's admin token (`system:admin`, in
//! `system:masters`), or a ServiceAccount token the store issued — good while its signature
//! holds, it has not expired and the account still exists with the same uid. Health and version
//! endpoints are public. `Impersonate-User`/`Impersonate-Group` act as another user when the
//! caller may `impersonate` them (as `kubectl --as`).

use http::{HeaderMap, header};

use super::authz::check;
use super::state::State;
use crate::auth::rbac::MASTERS;
use crate::auth::tokens::{self, Refused};
use crate::auth::{Attributes, UserInfo};
use crate::error::{ApiError, ApiResult};

/// Paths anyone may read: health and version, as kube-apiserver's `system:public-info-viewer`.
pub(super) fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/readyz" | "/livez")
}

/// The user a request's bearer token names (`None` for a public path without one); 401 when
/// the token is missing, unknown, forged, expired or its ServiceAccount is gone.
pub(super) async fn authenticate(
    state: &State,
    path: &str,
    headers: &HeaderMap,
) -> ApiResult<Option<UserInfo>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer else {
        return if is_public(path) {
            Ok(None)
        } else {
            Err(ApiError::unauthorized())
        };
    };
    if constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Ok(Some(UserInfo::user("system:admin", &[MASTERS])));
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = tokens::verify(&state.sa_key, token, now).map_err(|why| {
        tracing::debug!(?why, "token refused");
        ApiError::unauthorized()
    })?;
    let key = format!("core/serviceaccounts/{}/{}", claims.ns, claims.name);
    match state.store.get(&key).await {
        Some(sa) if sa["metadata"]["uid"].as_str() == Some(claims.uid.as_str()) => {
            Ok(Some(UserInfo::service_account(&claims.ns, &claims.name)))
        }
        _ => {
            tracing::debug!(why = ?Refused::NotOurs, account = %key, "token of a ServiceAccount that is gone");
            Err(ApiError::unauthorized())
        }
    }
}

/// The user to act as: the caller, or whom `Impersonate-*` headers name when the caller may
/// impersonate them (403 otherwise).
pub(super) async fn impersonate(
    state: &State,
    caller: UserInfo,
    headers: &HeaderMap,
) -> ApiResult<UserInfo> {
    let Some(as_user) = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return Ok(caller);
    };
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let mut asks = Vec::new();
    let target = match as_user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, name)) => {
            asks.push(("serviceaccounts", ns.to_string(), name.to_string()));
            UserInfo::service_account(ns, name)
        }
        None => {
            asks.push(("users", String::new(), as_user.clone()));
            UserInfo::user(&as_user, &[])
        }
    };
    for g in &groups {
        asks.push(("groups", String::new(), g.clone()));
    }
    for (resource, namespace, name) in asks {
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            resource: resource.into(),
            namespace,
            name,
            ..Attributes::default()
        };
        check(state, &caller, &attrs).await?;
    }
    let mut user = target;
    if !groups.is_empty() {
        user.groups = groups;
        user.groups.push("system:authenticated".into());
    }
    Ok(user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
