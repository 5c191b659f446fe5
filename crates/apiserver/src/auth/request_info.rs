//! What a request asks to do, read from its method, path and query exactly as kube-apiserver's
//! `RequestInfoFactory` reads it: a resource request (verb, group, resource, subresource,
//! namespace, name) or a non-resource one (verb and path).

use super::Attributes;

fn split(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The attributes of a request. `query` is the decoded query string.
pub fn request_info(method: &str, path: &str, query: &[(String, String)]) -> Attributes {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let parts = split(path);
    if parts.len() < 3 {
        return non_resource();
    }
    let (group, rest) = match parts[0] {
        "api" => ("", &parts[1..]),
        "apis" if parts.len() >= 4 => (parts[1], &parts[2..]),
        _ => return non_resource(),
    };
    let version = rest[0];
    let mut rest = &rest[1..];
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    // The deprecated /watch/ prefix.
    if rest.first() == Some(&"watch") {
        verb = "watch".into();
        rest = &rest[1..];
    }
    let mut namespace = String::new();
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    let resource = rest.first().copied().unwrap_or_default().to_string();
    let mut name = rest.get(1).copied().unwrap_or_default().to_string();
    let subresource = rest.get(2).copied().unwrap_or_default().to_string();
    if name.is_empty() && verb == "get" {
        verb = if matches!(q("watch"), Some("true" | "1")) {
            "watch".into()
        } else {
            "list".into()
        };
        // A list of one object by name is authorized as that object.
        if let Some(n) = q("fieldSelector").and_then(|s| s.strip_prefix("metadata.name=")) {
            if !n.is_empty() && !n.contains([',', '/']) {
                name = n.to_string();
            }
        }
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    Attributes {
        verb,
        resource_request: true,
        path: path.to_string(),
        api_group: group.to_string(),
        api_version: version.to_string(),
        namespace,
        resource,
        subresource,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, url: &str) -> (String, String, String, String, String, String) {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let a = request_info(method, path, &q);
        (
            a.verb,
            a.api_group,
            a.resource,
            a.subresource,
            a.namespace,
            a.name,
        )
    }

    fn t(
        v: &str,
        g: &str,
        r: &str,
        s: &str,
        ns: &str,
        n: &str,
    ) -> (String, String, String, String, String, String) {
        (v.into(), g.into(), r.into(), s.into(), ns.into(), n.into())
    }

    #[test]
    fn urls_read_as_kube_apiserver_reads_them() {
        for (method, url, want) in [
            (
                "GET",
                "/api/v1/namespaces/apps/services",
                t("list", "", "services", "", "apps", ""),
            ),
            (
                "GET",
                "/api/v1/services?watch=true",
                t("watch", "", "services", "", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/apps/services/web",
                t("get", "", "services", "", "apps", "web"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/apps/services/web/status",
                t("patch", "", "services", "status", "apps", "web"),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/apps/deployments",
                t("create", "apps", "deployments", "", "apps", ""),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/apps/deployments/podinfo/scale",
                t("update", "apps", "deployments", "scale", "apps", "podinfo"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/apps/configmaps",
                t("deletecollection", "", "configmaps", "", "apps", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/apps",
                t("delete", "", "namespaces", "", "apps", "apps"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/apps/finalize",
                t("update", "", "namespaces", "finalize", "apps", "apps"),
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                t("get", "", "nodes", "", "", "n1"),
            ),
            (
                "GET",
                "/apis/metalgate.io/v1beta1/namespaces/metalgate-system/ipaddresspools?fieldSelector=metadata.name%3Dworkshop",
                t(
                    "list",
                    "metalgate.io",
                    "ipaddresspools",
                    "",
                    "metalgate-system",
                    "workshop",
                ),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/apps/pods",
                t("watch", "", "pods", "", "apps", ""),
            ),
        ] {
            assert_eq!(info(method, url), want, "{method} {url}");
        }
    }

    #[test]
    fn discovery_and_health_are_non_resource_requests() {
        for (method, path) in [
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/apis/apps/v1"),
            ("GET", "/version"),
            ("GET", "/openapi/v3/apis/apps/v1"),
            ("POST", "/healthz"),
        ] {
            let a = request_info(method, path, &[]);
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, method.to_ascii_lowercase());
            assert_eq!(a.path, path);
        }
    }
}
