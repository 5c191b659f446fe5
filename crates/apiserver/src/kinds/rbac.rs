//! rbac.authorization.k8s.io/v1: Roles, ClusterRoles and their bindings — the rules
//! kube-apiserver's RBAC validation applies, subject defaults, and kubectl's ROLE column.

use serde_json::{Value, json};

use super::print::created;
use super::{Printer, col, wide};
use crate::error::Cause;
use crate::validation::is_dns1123_subdomain;

/// A Role's rules: verbs, resources and API groups.
pub fn role_rules(obj: &Value, c: &mut Vec<Cause>) {
    policy_rules(obj, true, c);
}

/// A ClusterRole's rules: verbs, and either resources with API groups or non-resource URLs.
pub fn cluster_role_rules(obj: &Value, c: &mut Vec<Cause>) {
    policy_rules(obj, false, c);
}

fn policy_rules(obj: &Value, namespaced: bool, c: &mut Vec<Cause>) {
    for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let f = format!("rules[{i}]");
        if r["verbs"].as_array().is_none_or(Vec::is_empty) {
            c.push(Cause::required(format!("{f}.verbs")));
        }
        let urls = r["nonResourceURLs"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        let resources = r["resources"].as_array().is_some_and(|a| !a.is_empty());
        if urls && namespaced {
            c.push(Cause::invalid(
                format!("{f}.nonResourceURLs"),
                &r["nonResourceURLs"],
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if urls && resources {
            c.push(Cause::invalid(
                format!("{f}.nonResourceURLs"),
                &r["nonResourceURLs"],
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        if !urls {
            if r["apiGroups"].as_array().is_none_or(Vec::is_empty) {
                c.push(Cause::required(format!("{f}.apiGroups")));
            }
            if !resources {
                c.push(Cause::required(format!("{f}.resources")));
            }
        }
    }
}

fn binding(obj: &Value, cluster: bool, c: &mut Vec<Cause>) {
    let rr = &obj["roleRef"];
    if rr["apiGroup"] != "rbac.authorization.k8s.io" {
        c.push(Cause::not_supported(
            "roleRef.apiGroup",
            &rr["apiGroup"],
            &["rbac.authorization.k8s.io"],
        ));
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    match rr["kind"].as_str() {
        Some(k) if kinds.contains(&k) => {}
        _ => c.push(Cause::not_supported("roleRef.kind", &rr["kind"], kinds)),
    }
    match rr["name"].as_str() {
        None | Some("") => c.push(Cause::required("roleRef.name")),
        Some(n) if !is_dns1123_subdomain(n) && n.contains('/') => c.push(Cause::invalid(
            "roleRef.name",
            &rr["name"],
            "may not contain '/'",
        )),
        Some(_) => {}
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let f = format!("subjects[{i}]");
        if s["name"].as_str().is_none_or(str::is_empty) {
            c.push(Cause::required(format!("{f}.name")));
        }
        match s["kind"].as_str() {
            Some("ServiceAccount") => {
                if !s["apiGroup"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::not_supported(
                        format!("{f}.apiGroup"),
                        &s["apiGroup"],
                        &[""],
                    ));
                }
                if cluster && s["namespace"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(format!("{f}.namespace")));
                }
            }
            Some("User" | "Group") => {
                if s["apiGroup"] != "rbac.authorization.k8s.io" {
                    c.push(Cause::not_supported(
                        format!("{f}.apiGroup"),
                        &s["apiGroup"],
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            _ => c.push(Cause::not_supported(
                format!("{f}.kind"),
                &s["kind"],
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// A RoleBinding's role reference and subjects.
pub fn role_binding_rules(obj: &Value, c: &mut Vec<Cause>) {
    binding(obj, false, c);
}

/// A ClusterRoleBinding's role reference (a ClusterRole) and subjects (ServiceAccounts with
/// their namespace).
pub fn cluster_role_binding_rules(obj: &Value, c: &mut Vec<Cause>) {
    binding(obj, true, c);
}

/// Subjects' API group, as kube-apiserver defaults it by kind.
pub fn binding_defaults(obj: &mut Value) {
    for s in obj
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if s["apiGroup"].is_null() {
            let g = match s["kind"].as_str() {
                Some("User" | "Group") => "rbac.authorization.k8s.io",
                _ => "",
            };
            s["apiGroup"] = json!(g);
        }
    }
}

/// ROLE, AGE; wide: USERS, GROUPS, SERVICEACCOUNTS.
pub const BINDING: Printer = Printer {
    named: true,
    columns: &[
        col("Role"),
        col("Age"),
        wide("Users"),
        wide("Groups"),
        wide("ServiceAccounts"),
    ],
    row: |o| {
        let subjects = o["subjects"].as_array().cloned().unwrap_or_default();
        let of = |kind: &str| -> Value {
            let names: Vec<String> = subjects
                .iter()
                .filter(|s| s["kind"] == kind)
                .map(|s| {
                    let name = s["name"].as_str().unwrap_or_default();
                    match s["namespace"].as_str() {
                        Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                        _ => name.to_string(),
                    }
                })
                .collect();
            json!(names.join(", "))
        };
        vec![
            json!(format!(
                "{}/{}",
                o["roleRef"]["kind"].as_str().unwrap_or_default(),
                o["roleRef"]["name"].as_str().unwrap_or_default()
            )),
            created(o),
            of("User"),
            of("Group"),
            of("ServiceAccount"),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(rules: fn(&Value, &mut Vec<Cause>), o: Value) -> Vec<String> {
        let mut c = Vec::new();
        rules(&o, &mut c);
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn role_rules_need_verbs_and_a_target() {
        let ok = json!({"kind": "ClusterRole", "rules": [
            {"apiGroups": [""], "resources": ["services", "services/status"], "verbs": ["get", "patch"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]});
        assert!(fields(cluster_role_rules, ok).is_empty());
        for (o, want) in [
            (
                json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
                vec!["rules[0].verbs"],
            ),
            (
                json!({"rules": [{"resources": ["pods"], "verbs": ["get"]}]}),
                vec!["rules[0].apiGroups"],
            ),
            (
                json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
                vec!["rules[0].nonResourceURLs"],
            ),
        ] {
            assert_eq!(fields(role_rules, o.clone()), want, "{o}");
        }
    }

    #[test]
    fn bindings_name_a_role_and_proper_subjects() {
        let rb = |role_kind: &str, subject: Value| {
            let mut o = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "view"}, "subjects": [subject]});
            binding_defaults(&mut o);
            o
        };
        let sa = json!({"kind": "ServiceAccount", "name": "speaker"});
        assert!(fields(role_binding_rules, rb("ClusterRole", sa.clone())).is_empty());
        assert_eq!(
            fields(cluster_role_binding_rules, rb("ClusterRole", sa.clone())),
            ["subjects[0].namespace"]
        );
        assert_eq!(
            fields(
                cluster_role_binding_rules,
                rb(
                    "Role",
                    json!({"kind": "ServiceAccount", "name": "s", "namespace": "n"})
                )
            ),
            ["roleRef.kind"]
        );
        assert_eq!(
            fields(
                role_binding_rules,
                rb("Role", json!({"kind": "Robot", "name": "r"}))
            ),
            ["subjects[0].kind"]
        );
        let user = rb("Role", json!({"kind": "User", "name": "jane"}));
        assert_eq!(user["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(fields(role_binding_rules, user).is_empty());
    }
}
