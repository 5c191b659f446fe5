//! Authentication: who is asking. Today one bearer token (the admin kubeconfig's), compared
//! in constant time; health and version endpoints are public.

use http::{HeaderMap, header};

use super::state::State;
use crate::error::{ApiError, ApiResult};

/// Paths anyone may read: health and version, as kube-apiserver's `system:public-info-viewer`.
fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/readyz" | "/livez")
}

/// Let the request through if its path is public or it carries the store's bearer token;
/// 401 otherwise.
pub(super) fn authenticate(state: &State, path: &str, headers: &HeaderMap) -> ApiResult<()> {
    if is_public(path) {
        return Ok(());
    }
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), state.token.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
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
