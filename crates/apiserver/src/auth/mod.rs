//! Who is asking and what they may do: the identities the store knows (its admin, and
//! ServiceAccounts by the tokens it issues), what a request asks to do, and RBAC. All pure; the
//! request path (`request::authn`, `request::authz`) feeds them from the store.
//!
//! - `request_info` — a request's verb, group, resource, subresource, namespace and name.
//! - `rbac` — kube-apiserver's RBAC decision and its 403 message.
//! - `tokens` — ServiceAccount tokens: issued, signed and checked.

pub mod rbac;
pub mod request_info;
pub mod tokens;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `system:admin`, `system:serviceaccount:NS:NAME`, or an impersonated name.
    pub name: String,
    /// The user's groups, `system:authenticated` among them.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups (and `system:authenticated`).
    pub fn user(name: &str, groups: &[&str]) -> UserInfo {
        let mut g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        if !g.iter().any(|x| x == "system:authenticated") {
            g.push("system:authenticated".into());
        }
        UserInfo {
            name: name.to_string(),
            groups: g,
        }
    }

    /// A ServiceAccount's user, with the groups Kubernetes gives it.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo::user(
            &format!("system:serviceaccount:{namespace}:{name}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
            ],
        )
    }
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`; for non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// Whether it names a resource (otherwise `path` is what is asked for).
    pub resource_request: bool,
    /// The URL path.
    pub path: String,
    /// API group, empty for core.
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace, empty for cluster scope.
    pub namespace: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`, `scale`, `token`), if any.
    pub subresource: String,
    /// Object name, if any.
    pub name: String,
}
