//! Randomised objects of every built-in kind through the checks a write goes through —
//! structure (the typed k8s-openapi form), then pruning, defaults, metadata and the kind's
//! rules (#13 item 8): no input panics, and every rejection names a field and says why.
//! Bounded for CI; `PROPTEST_CASES=100000` for a longer run.

use proptest::prelude::*;
use serde_json::Value;

use crate::registry::builtins;

/// Field names the built-in kinds use, so random trees reach the kinds' real fields (and
/// a few that no kind has).
const FIELDS: &[&str] = &[
    "replicas",
    "selector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "template",
    "metadata",
    "labels",
    "annotations",
    "name",
    "namespace",
    "spec",
    "status",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "port",
    "targetPort",
    "nodePort",
    "protocol",
    "type",
    "rules",
    "host",
    "http",
    "paths",
    "path",
    "pathType",
    "backend",
    "service",
    "number",
    "data",
    "stringData",
    "binaryData",
    "subjects",
    "roleRef",
    "kind",
    "apiGroup",
    "verbs",
    "resources",
    "apiGroups",
    "resourceNames",
    "schedule",
    "jobTemplate",
    "minAvailable",
    "maxUnavailable",
    "strategy",
    "rollingUpdate",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "externalTrafficPolicy",
    "loadBalancerIP",
    "addresses",
    "endpoints",
    "conditions",
    "ready",
    "webhooks",
    "clientConfig",
    "scaleTargetRef",
    "metrics",
    "minReplicas",
    "maxReplicas",
    "accessModes",
    "storage",
    "requests",
    "limits",
    "hard",
    "ownerReferences",
    "finalizers",
    "env",
    "value",
    "valueFrom",
    "volumes",
    "volumeMounts",
    "mountPath",
    "tls",
    "hosts",
    "secretName",
    "ingressClassName",
    "completions",
    "parallelism",
    "backoffLimit",
    "suspend",
    "serviceName",
    "podManagementPolicy",
    "holderIdentity",
    "leaseDurationSeconds",
    "renewTime",
    "versions",
    "names",
    "group",
    "scope",
    "sessionAffinity",
    "bogus",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-3i64..70000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("1Gi"),
            Just("-1"),
            Just("100m"),
            Just("TCP"),
            Just("Prefix"),
            Just("Exact"),
            Just("In"),
            Just("NotIn"),
            Just("Exists"),
            Just("Local"),
            Just("LoadBalancer"),
            Just("2026-12-03T16:00:00Z"),
            Just("25%"),
            Just("*"),
            Just(""),
            Just("a b"),
        ]
        .prop_map(|s| Value::String(s.into())),
        "[a-zA-Z0-9./:%-]{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(FIELDS), inner, 0..5)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
        ]
    })
}

/// An object of built-in kind `kind` (an index into the builtins): its apiVersion and kind,
/// a name, and random metadata extras, spec and status.
fn object() -> impl Strategy<Value = (usize, Value)> {
    let kinds = builtins().len();
    (0..kinds, "[a-z0-9.-]{0,10}", tree(), tree(), tree()).prop_map(
        move |(i, name, meta, spec, status)| {
            let def = &builtins()[i];
            let mut metadata = match meta {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            metadata.insert("name".into(), Value::String(name));
            // events.k8s.io Events are checked in the core form they are stored in.
            let api_version = match def.group.as_str() {
                "events.k8s.io" => "v1".to_string(),
                _ => def.api_version(),
            };
            let obj = serde_json::json!({
                "apiVersion": api_version,
                "kind": def.kind,
                "metadata": metadata,
                "spec": spec,
                "status": status,
            });
            (i, obj)
        },
    )
}

fn said_why(causes: &[crate::error::Cause], what: &str) -> Result<(), TestCaseError> {
    for c in causes {
        prop_assert!(
            !c.field.is_empty() && !c.message.is_empty() && !c.reason.is_empty(),
            "{what}: a cause without a field, reason or message: {c:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000)
    ))]

    #[test]
    fn random_objects_of_every_kind_are_checked_without_panic_and_refusals_name_a_field(
        (i, obj) in object()
    ) {
        let def = &builtins()[i];
        let what = format!("{} {}", def.kind, obj);
        let findings = def.builtin_structure(&obj);
        said_why(&findings.causes, &what)?;
        for u in &findings.unknown {
            prop_assert!(!u.is_empty(), "{what}: an unknown field without a path");
        }
        if findings.causes.is_empty() {
            let mut obj = obj;
            super::prune(&mut obj, &findings.unknown);
            def.builtin_defaults(&mut obj);
            let mut causes = Vec::new();
            super::metadata(&def.kind, &obj, &mut causes);
            def.builtin_rules(&obj, &mut causes);
            said_why(&causes, &what)?;
        }
    }
}
