//! Authorization: the RBAC decision for a request, on the store's current Roles, ClusterRoles
//! and their bindings; a denial is kube-apiserver's 403 `Status` naming the user, verb,
//! resource and namespace.

use serde_json::Value;

use super::state::State;
use crate::auth::rbac::{self, MASTERS, Policy};
use crate::auth::{Attributes, UserInfo};
use crate::error::{ApiError, ApiResult};

/// Allow, or 403 with kube-apiserver's message.
pub(super) async fn check(state: &State, user: &UserInfo, attrs: &Attributes) -> ApiResult<()> {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    if allowed(state, user, attrs).await {
        return Ok(());
    }
    let e = ApiError::forbidden(
        rbac::forbidden_message(user, attrs),
        &attrs.resource,
        &attrs.name,
    );
    tracing::info!(user = %user.name, message = %e.message, "forbidden");
    Err(e)
}

/// Whether RBAC allows it.
pub(super) async fn allowed(state: &State, user: &UserInfo, attrs: &Attributes) -> bool {
    let list = |prefix: String| async move {
        state
            .store
            .list(&prefix)
            .await
            .0
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<std::sync::Arc<Value>>>()
    };
    let g = "rbac.authorization.k8s.io";
    let cluster_roles = list(format!("{g}/clusterroles/")).await;
    let cluster_role_bindings = list(format!("{g}/clusterrolebindings/")).await;
    let (roles, role_bindings) = if attrs.namespace.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (
            list(format!("{g}/roles/{}/", attrs.namespace)).await,
            list(format!("{g}/rolebindings/{}/", attrs.namespace)).await,
        )
    };
    let policy = Policy {
        cluster_roles: cluster_roles.iter().map(|v| &**v).collect(),
        cluster_role_bindings: cluster_role_bindings.iter().map(|v| &**v).collect(),
        roles: roles.iter().map(|v| &**v).collect(),
        role_bindings: role_bindings.iter().map(|v| &**v).collect(),
    };
    rbac::allowed(user, attrs, &policy)
}
