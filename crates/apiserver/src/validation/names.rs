//! Names and metadata every kind shares: RFC 1123 labels and subdomains, qualified names, label
//! values, and the checks of `metadata` kube-apiserver makes for every object.

use serde_json::Value;

use crate::error::Cause;

/// RFC 1123 label: lower case alphanumerics and '-', 63 at most.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain as Kubernetes checks it: labels of lower case alphanumerics and '-'
/// joined by '.', 253 characters in all (a single label may exceed 63 here).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A qualified name (`prefix/name`), as label and annotation keys are.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return false;
        }
    }
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// A label value: empty, or 63 alphanumerics, '-', '_' or '.' starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// Checks of `metadata` common to every kind.
pub fn metadata(kind: &str, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let label_names = matches!(kind, "Namespace" | "Service");
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else if label_names && !is_dns1123_label(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &meta["name"],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    } else if !label_names && kind != "Event" && !is_dns1123_subdomain(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &meta["name"],
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid("metadata.labels", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid(
                    format!("metadata.labels.{k}"),
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )),
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        for (k, v) in ann {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            if !v.is_string() {
                causes.push(Cause::invalid(
                    format!("metadata.annotations.{k}"),
                    v,
                    "must be a string",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_and_subdomains_follow_rfc_1123() {
        for (s, label, sub) in [
            ("podinfo", true, true),
            ("pod-info-2", true, true),
            ("podinfo.example.com", false, true),
            ("-podinfo", false, false),
            ("Podinfo", false, false),
            ("", false, false),
            (&"a".repeat(64), false, true),
        ] {
            assert_eq!(is_dns1123_label(s), label, "label {s:?}");
            assert_eq!(is_dns1123_subdomain(s), sub, "subdomain {s:?}");
        }
    }

    #[test]
    fn qualified_names_and_label_values() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("app"));
        assert!(!is_qualified_name("Bad_Prefix/app"));
        assert!(!is_qualified_name("app/"));
        assert!(!is_qualified_name("-app"));
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3"));
        assert!(!is_label_value("v1 2"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn metadata_names_each_bad_field() {
        let mut c = Vec::new();
        let o =
            json!({"metadata": {"name": "Web", "labels": {"app": "a b"}, "annotations": {"n": 1}}});
        metadata("Service", &o, &mut c);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.labels.app",
                "metadata.annotations.n"
            ]
        );
        let mut c = Vec::new();
        metadata("ConfigMap", &json!({"metadata": {"name": "a.b"}}), &mut c);
        assert!(c.is_empty(), "{c:?}");
        metadata("Namespace", &json!({"metadata": {"name": "a.b"}}), &mut c);
        assert_eq!(c.len(), 1, "a Namespace's name is a label");
        let mut c = Vec::new();
        metadata("ConfigMap", &json!({"metadata": {}}), &mut c);
        assert_eq!(c[0].reason, "FieldValueRequired");
    }
}
