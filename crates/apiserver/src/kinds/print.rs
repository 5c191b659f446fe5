//! Cells as kubectl prints them: durations (`3d1h`), `<none>`, lists joined by commas, a pod
//! template's containers and images, a label selector as `key=value,key in (a,b)`.

use serde_json::{Value, json};

use super::{Col, Printer, col};

/// kubectl's HumanDuration.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

/// The time since an RFC 3339 timestamp, as kubectl prints it.
pub fn age(ts: &Value) -> String {
    match ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// The AGE cell of an object.
pub fn created(o: &Value) -> Value {
    json!(age(&o["metadata"]["creationTimestamp"]))
}

/// The strings of a JSON list.
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The addresses in `status.loadBalancer.ingress` (IP, or host name).
pub fn lb_addresses(o: &Value) -> Vec<String> {
    o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or(i["hostname"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// `<none>` for an empty cell.
pub fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// A number at a path, 0 when missing.
pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The CONTAINERS and IMAGES cells of a pod spec.
pub fn containers_and_images(pod_spec: &Value) -> (Value, Value) {
    let cs = pod_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// A label selector (`matchLabels` and `matchExpressions`) as kubectl prints it.
pub fn selector(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values = strs(&e["values"]).join(",");
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        });
    }
    or_none(parts.join(","))
}

const CREATED_AT_COLUMNS: &[Col] = &[Col {
    name: "Created At",
    ty: "date",
    priority: 0,
}];

/// NAME and CREATED AT, as kube-apiserver prints RBAC roles and limit ranges.
pub const CREATED_AT: Printer = Printer {
    named: true,
    columns: CREATED_AT_COLUMNS,
    row: |o| vec![o["metadata"]["creationTimestamp"].clone()],
};

/// NAME and AGE.
pub const AGE: &[Col] = &[col("Age")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn selectors_print_like_kubectl() {
        let sel = json!({"matchLabels": {"app": "podinfo"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(selector(&sel), "app=podinfo,tier in (web,api),!canary");
        assert_eq!(selector(&json!({})), "<none>");
    }
}
