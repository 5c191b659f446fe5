//! Cluster machinery: Leases, CustomResourceDefinitions, PodDisruptionBudgets,
//! HorizontalPodAutoscalers and admission webhook configurations (stored, never called) — their
//! rules and kubectl's columns.

use serde_json::{Value, json};

use super::print::{created, int};
use super::{Printer, check_one_of, col};
use crate::error::Cause;
use crate::validation::is_dns1123_label;

/// HOLDER, AGE.
pub const LEASE: Printer = Printer {
    named: true,
    columns: &[col("Holder"), col("Age")],
    row: |o| {
        vec![
            json!(o["spec"]["holderIdentity"].as_str().unwrap_or_default()),
            created(o),
        ]
    },
};

/// A CRD's names, group, scope and versions, as kube-apiserver checks them.
pub fn crd_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            &spec["group"],
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() || !is_dns1123_label(plural) {
        c.push(Cause::invalid(
            "spec.names.plural",
            &spec["names"]["plural"],
            "a lowercase RFC 1123 label is required",
        ));
    }
    if spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
        c.push(Cause::required("spec.names.kind"));
    }
    let want = format!("{plural}.{group}");
    if obj["metadata"]["name"].as_str() != Some(want.as_str()) {
        c.push(Cause::invalid(
            "metadata.name",
            &obj["metadata"]["name"],
            format!("must be spec.names.plural+\".\"+spec.group ({want:?})"),
        ));
    }
    check_one_of(&spec["scope"], "spec.scope", &["Cluster", "Namespaced"], c);
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        c.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        c.push(Cause::invalid(
            "spec.versions",
            &Value::from(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["schema"]["openAPIV3Schema"].is_null() {
            c.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        }
    }
}

/// A PodDisruptionBudget sets one of `minAvailable` and `maxUnavailable`.
pub fn pdb_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        c.push(Cause::invalid(
            "spec",
            &Value::String(String::new()),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for f in ["minAvailable", "maxUnavailable"] {
        if spec[f].as_i64().is_some_and(|n| n < 0) {
            c.push(Cause::invalid(
                format!("spec.{f}"),
                &spec[f],
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// MIN AVAILABLE, MAX UNAVAILABLE, ALLOWED DISRUPTIONS, AGE.
pub const PDB: Printer = Printer {
    named: true,
    columns: &[
        col("Min Available"),
        col("Max Unavailable"),
        col("Allowed Disruptions"),
        col("Age"),
    ],
    row: |o| {
        let shown = |v: &Value| match v {
            Value::Null => json!("N/A"),
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        };
        vec![
            shown(&o["spec"]["minAvailable"]),
            shown(&o["spec"]["maxUnavailable"]),
            json!(int(&o["status"]["disruptionsAllowed"])),
            created(o),
        ]
    },
};

/// An autoscaler names what it scales and a sane replica range.
pub fn hpa_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let target = &spec["scaleTargetRef"];
    if target["kind"].as_str().is_none_or(str::is_empty) {
        c.push(Cause::required("spec.scaleTargetRef.kind"));
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        c.push(Cause::required("spec.scaleTargetRef.name"));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        c.push(Cause::invalid(
            "spec.maxReplicas",
            &spec["maxReplicas"],
            "must be greater than or equal to 1",
        ));
    }
    if let Some(min) = spec["minReplicas"].as_i64() {
        if min < 1 {
            c.push(Cause::invalid(
                "spec.minReplicas",
                &spec["minReplicas"],
                "must be greater than or equal to 1",
            ));
        } else if min > max {
            c.push(Cause::invalid(
                "spec.maxReplicas",
                &spec["maxReplicas"],
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        check_one_of(
            &m["type"],
            &format!("spec.metrics[{i}].type"),
            &[
                "ContainerResource",
                "External",
                "Object",
                "Pods",
                "Resource",
            ],
            c,
        );
    }
}

/// `minReplicas: 1`, and an 80 % CPU target when no metric is given.
pub fn hpa_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if spec["minReplicas"].is_null() {
        spec["minReplicas"] = json!(1);
    }
    if spec["metrics"].is_null() {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
}

/// REFERENCE, TARGETS, MINPODS, MAXPODS, REPLICAS, AGE.
pub const HPA: Printer = Printer {
    named: true,
    columns: &[
        col("Reference"),
        col("Targets"),
        col("MinPods"),
        col("MaxPods"),
        col("Replicas"),
        col("Age"),
    ],
    row: |o| {
        let spec = &o["spec"];
        let targets: Vec<String> = spec["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let t = &m["resource"]["target"];
                let name = m["resource"]["name"].as_str().unwrap_or("metric");
                match t["averageUtilization"].as_i64() {
                    Some(u) => format!("{name}: <unknown>/{u}%"),
                    None => "<unknown>".to_string(),
                }
            })
            .collect();
        vec![
            json!(format!(
                "{}/{}",
                spec["scaleTargetRef"]["kind"].as_str().unwrap_or_default(),
                spec["scaleTargetRef"]["name"].as_str().unwrap_or_default()
            )),
            json!(targets.join(", ")),
            json!(spec["minReplicas"].as_i64().unwrap_or(1)),
            json!(int(&spec["maxReplicas"])),
            json!(int(&o["status"]["currentReplicas"])),
            created(o),
        ]
    },
};

/// WEBHOOKS, AGE.
pub const WEBHOOKS: Printer = Printer {
    named: true,
    columns: &[col("Webhooks"), col("Age")],
    row: |o| {
        vec![
            json!(o["webhooks"].as_array().map_or(0, Vec::len)),
            created(o),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crd_needs_matching_names_and_one_storage_version() {
        let good = json!({"metadata": {"name": "ipaddresspools.metalgate.io"}, "spec": {
            "group": "metalgate.io", "scope": "Cluster",
            "names": {"plural": "ipaddresspools", "kind": "IPAddressPool"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let mut c = Vec::new();
        crd_rules(&good, &mut c);
        assert!(c.is_empty(), "{c:?}");
        let mut bad = good.clone();
        bad["metadata"]["name"] = json!("pools.metalgate.io");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["scope"] = json!("Global");
        crd_rules(&bad, &mut c);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "spec.scope", "spec.versions"]);
    }

    #[test]
    fn a_pdb_sets_one_bound_and_an_hpa_a_sane_range() {
        let mut c = Vec::new();
        pdb_rules(
            &json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            &mut c,
        );
        assert_eq!(c[0].field, "spec");
        let mut c = Vec::new();
        hpa_rules(
            &json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "podinfo"}, "minReplicas": 3, "maxReplicas": 2}}),
            &mut c,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.maxReplicas");
    }
}
