//! RBAC, as kube-apiserver's authorizer decides: the rules of every ClusterRoleBinding and, in
//! the request's namespace, every RoleBinding whose subjects include the user are visited; any
//! rule that matches allows. Plus what kube-apiserver's bootstrap policy grants every
//! authenticated user (discovery, health, version, and asking what one may do), and the
//! `system:masters` group, which is never denied.

use serde_json::Value;

use super::{Attributes, UserInfo};

/// The RBAC objects a decision reads.
#[derive(Debug, Default)]
pub struct Policy<'a> {
    /// Every ClusterRole.
    pub cluster_roles: Vec<&'a Value>,
    /// Every ClusterRoleBinding.
    pub cluster_role_bindings: Vec<&'a Value>,
    /// The Roles of the request's namespace.
    pub roles: Vec<&'a Value>,
    /// The RoleBindings of the request's namespace.
    pub role_bindings: Vec<&'a Value>,
}

/// The group whose members are never denied.
pub const MASTERS: &str = "system:masters";

/// Non-resource URLs every authenticated user may GET (`system:discovery`,
/// `system:public-info-viewer`).
const DISCOVERY: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];

/// Whether `user` may do what `attrs` describe, by `policy`.
pub fn allowed(user: &UserInfo, attrs: &Attributes, policy: &Policy) -> bool {
    if user.groups.iter().any(|g| g == MASTERS) {
        return true;
    }
    if bootstrap_allows(user, attrs) {
        return true;
    }
    for b in &policy.cluster_role_bindings {
        if binds(user, b, "") && role_rules(b, "", policy).any(|r| rule_allows(attrs, r)) {
            return true;
        }
    }
    if !attrs.namespace.is_empty() {
        for b in &policy.role_bindings {
            if b["metadata"]["namespace"].as_str() == Some(attrs.namespace.as_str())
                && binds(user, b, &attrs.namespace)
                && role_rules(b, &attrs.namespace, policy).any(|r| rule_allows(attrs, r))
            {
                return true;
            }
        }
    }
    false
}

/// `system:basic-user`, `system:discovery` and `system:public-info-viewer`.
fn bootstrap_allows(user: &UserInfo, attrs: &Attributes) -> bool {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        return false;
    }
    if !attrs.resource_request {
        return attrs.verb == "get" && DISCOVERY.iter().any(|u| url_matches(u, &attrs.path));
    }
    attrs.verb == "create"
        && attrs.subresource.is_empty()
        && matches!(
            (attrs.api_group.as_str(), attrs.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        )
}

/// Whether a binding's subjects include the user. A ServiceAccount subject without a
/// namespace means the binding's own (RoleBindings only).
fn binds(user: &UserInfo, binding: &Value, namespace: &str) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str() {
                Some("User") => user.name == name,
                Some("Group") => user.groups.iter().any(|g| g == name),
                Some("ServiceAccount") => {
                    let ns = s["namespace"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(namespace);
                    !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

/// The rules of the role a binding refers to (none when the role does not exist).
fn role_rules<'p>(
    binding: &Value,
    namespace: &str,
    policy: &'p Policy,
) -> impl Iterator<Item = &'p Value> + 'p {
    let kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
    let name = binding["roleRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = namespace.to_string();
    let role = match kind {
        "ClusterRole" => policy
            .cluster_roles
            .iter()
            .find(|r| r["metadata"]["name"].as_str() == Some(name.as_str())),
        "Role" if !namespace.is_empty() => policy.roles.iter().find(|r| {
            r["metadata"]["name"].as_str() == Some(name.as_str())
                && r["metadata"]["namespace"].as_str() == Some(namespace.as_str())
        }),
        _ => None,
    };
    role.into_iter()
        .flat_map(|r| r["rules"].as_array().into_iter().flatten())
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v.as_str() == Some(want))
}

/// kube-apiserver's `RuleAllows`.
pub fn rule_allows(attrs: &Attributes, rule: &Value) -> bool {
    let verb = has(&rule["verbs"], "*") || has(&rule["verbs"], &attrs.verb);
    if !verb {
        return false;
    }
    if !attrs.resource_request {
        return rule["nonResourceURLs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|u| url_matches(u, &attrs.path));
    }
    let group = has(&rule["apiGroups"], "*") || has(&rule["apiGroups"], &attrs.api_group);
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource = rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            r == "*"
                || r == combined
                || (!attrs.subresource.is_empty() && r == format!("*/{}", attrs.subresource))
        });
    let names = rule["resourceNames"]
        .as_array()
        .is_none_or(|n| n.is_empty())
        || has(&rule["resourceNames"], &attrs.name);
    group && resource && names
}

fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// The message of kube-apiserver's 403, e.g. `services "web" is forbidden: User "jane" cannot
/// patch resource "services/status" in API group "" in the namespace "apps"`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    if !attrs.resource_request {
        return format!(
            "forbidden: User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        );
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", attrs.namespace)
    };
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let what = if attrs.name.is_empty() {
        qualified
    } else {
        format!("{qualified} {:?}", attrs.name)
    };
    format!(
        "{what} is forbidden: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
        user.name, attrs.verb, resource, attrs.api_group
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sa(ns: &str, name: &str) -> UserInfo {
        UserInfo::service_account(ns, name)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn rules_match_as_the_kubernetes_documentation_says() {
        // Examples of https://kubernetes.io/docs/reference/access-authn-authz/rbac/.
        let pod_reader =
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]});
        let logs =
            json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]});
        let my_configmap = json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["my-configmap"], "verbs": ["update", "get"]});
        let all = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        let status = json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]});
        let healthz =
            json!({"nonResourceURLs": ["/healthz", "/healthz/*"], "verbs": ["get", "post"]});
        for (rule, attrs, want) in [
            (
                &pod_reader,
                res("list", "", "pods", "", "default", ""),
                true,
            ),
            (
                &pod_reader,
                res("delete", "", "pods", "", "default", "p"),
                false,
            ),
            (
                &pod_reader,
                res("get", "apps", "pods", "", "default", "p"),
                false,
            ),
            (
                &pod_reader,
                res("get", "", "pods", "log", "default", "p"),
                false,
            ),
            (&logs, res("get", "", "pods", "log", "default", "p"), true),
            (
                &my_configmap,
                res("get", "", "configmaps", "", "default", "my-configmap"),
                true,
            ),
            (
                &my_configmap,
                res("get", "", "configmaps", "", "default", "other"),
                false,
            ),
            (
                &my_configmap,
                res("list", "", "configmaps", "", "default", ""),
                false,
            ),
            (
                &all,
                res("deletecollection", "apps", "deployments", "", "x", ""),
                true,
            ),
            (
                &all,
                res("patch", "", "services", "status", "x", "web"),
                true,
            ),
            (
                &status,
                res("patch", "", "services", "status", "x", "web"),
                true,
            ),
            (&status, res("patch", "", "services", "", "x", "web"), false),
            (
                &healthz,
                Attributes {
                    verb: "get".into(),
                    path: "/healthz/etcd".into(),
                    ..Attributes::default()
                },
                true,
            ),
            (
                &healthz,
                Attributes {
                    verb: "get".into(),
                    path: "/metrics".into(),
                    ..Attributes::default()
                },
                false,
            ),
        ] {
            assert_eq!(rule_allows(&attrs, rule), want, "{rule} vs {attrs:?}");
        }
    }

    fn policy_values() -> Vec<Value> {
        vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "secret-reader"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "read-secrets-global"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"}, "subjects": [{"kind": "Group", "name": "manager", "apiGroup": "rbac.authorization.k8s.io"}]}),
            json!({"kind": "Role", "metadata": {"name": "pod-reader", "namespace": "default"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "read-pods", "namespace": "default"}, "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}),
            // A RoleBinding to a ClusterRole grants it in the binding's namespace only.
            json!({"kind": "RoleBinding", "metadata": {"name": "read-secrets", "namespace": "development"}, "roleRef": {"kind": "ClusterRole", "name": "secret-reader", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"kind": "User", "name": "dave", "apiGroup": "rbac.authorization.k8s.io"}]}),
            // A ServiceAccount subject without a namespace is the binding's own namespace's.
            json!({"kind": "RoleBinding", "metadata": {"name": "sa", "namespace": "default"}, "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"kind": "ServiceAccount", "name": "reader"}]}),
        ]
    }

    fn decide(values: &[Value], user: &UserInfo, attrs: &Attributes) -> bool {
        let of = |k: &str| values.iter().filter(|v| v["kind"] == k).collect::<Vec<_>>();
        let ns = |v: &&Value| v["metadata"]["namespace"].as_str() == Some(attrs.namespace.as_str());
        let policy = Policy {
            cluster_roles: of("ClusterRole"),
            cluster_role_bindings: of("ClusterRoleBinding"),
            roles: of("Role").into_iter().filter(ns).collect(),
            role_bindings: of("RoleBinding").into_iter().filter(ns).collect(),
        };
        allowed(user, attrs, &policy)
    }

    #[test]
    fn bindings_grant_what_the_documentation_says_and_nothing_more() {
        let v = policy_values();
        let jane = UserInfo::user("jane", &[]);
        let dave = UserInfo::user("dave", &[]);
        let manager = UserInfo::user("kim", &["manager"]);
        let reader = sa("default", "reader");
        for (user, attrs, want) in [
            (&jane, res("list", "", "pods", "", "default", ""), true),
            (&jane, res("list", "", "pods", "", "kube-system", ""), false),
            (&jane, res("list", "", "pods", "", "", ""), false),
            (
                &dave,
                res("get", "", "secrets", "", "development", "s"),
                true,
            ),
            (&dave, res("get", "", "secrets", "", "default", "s"), false),
            (&manager, res("list", "", "secrets", "", "", ""), true),
            (
                &manager,
                res("list", "", "secrets", "", "anywhere", ""),
                true,
            ),
            (&reader, res("watch", "", "pods", "", "default", ""), true),
            (
                &sa("other", "reader"),
                res("watch", "", "pods", "", "default", ""),
                false,
            ),
        ] {
            assert_eq!(decide(&v, user, &attrs), want, "{} {attrs:?}", user.name);
        }
    }

    #[test]
    fn every_authenticated_user_may_discover_and_ask_but_masters_may_do_anything() {
        let nobody = sa("default", "nobody");
        let discovery = Attributes {
            verb: "get".into(),
            path: "/apis/apps/v1".into(),
            ..Attributes::default()
        };
        assert!(decide(&[], &nobody, &discovery));
        assert!(decide(
            &[],
            &nobody,
            &res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            )
        ));
        assert!(!decide(
            &[],
            &nobody,
            &res(
                "create",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "",
                "",
                ""
            )
        ));
        assert!(!decide(
            &[],
            &nobody,
            &Attributes {
                verb: "get".into(),
                path: "/metrics".into(),
                ..Attributes::default()
            }
        ));
        let admin = UserInfo::user("system:admin", &[MASTERS]);
        assert!(decide(
            &[],
            &admin,
            &res("delete", "", "nodes", "", "", "n1")
        ));
    }

    #[test]
    fn denials_read_like_kube_apiserver() {
        let u = sa("metalgate-system", "metalgate-controller");
        assert_eq!(
            forbidden_message(&u, &res("patch", "", "services", "status", "apps", "web")),
            "services \"web\" is forbidden: User \"system:serviceaccount:metalgate-system:metalgate-controller\" cannot patch resource \"services/status\" in API group \"\" in the namespace \"apps\""
        );
        assert_eq!(
            forbidden_message(&u, &res("list", "apps", "deployments", "", "", "")),
            "deployments.apps is forbidden: User \"system:serviceaccount:metalgate-system:metalgate-controller\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
    }
}
