//! Label selectors as kube-apiserver evaluates them, one implementation for every component
//! (the speaker's node selectors, the lab agent's workload selectors).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` match `sel`: every `matchLabels` pair and every `matchExpressions`
/// requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches
/// everything; an unknown operator matches nothing (fails closed).
pub fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let vals = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| vals.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !vals.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement as R;

    #[test]
    fn operators_as_kube_apiserver_evaluates_them() {
        let labels = [("app".to_string(), "web".to_string())].into();
        let expr = |op: &str, vals: &[&str]| LabelSelector {
            match_expressions: Some(vec![R {
                key: "app".into(),
                operator: op.into(),
                values: Some(vals.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(matches(&LabelSelector::default(), &labels));
        assert!(matches(&expr("In", &["web"]), &labels));
        assert!(!matches(&expr("In", &["db"]), &labels));
        assert!(!matches(&expr("NotIn", &["web"]), &labels));
        assert!(matches(&expr("Exists", &[]), &labels));
        assert!(!matches(&expr("DoesNotExist", &[]), &labels));
        assert!(
            !matches(&expr("Matches", &[]), &labels),
            "unknown operators match nothing"
        );
        let by_label = LabelSelector {
            match_labels: Some([("app".to_string(), "db".to_string())].into()),
            ..Default::default()
        };
        assert!(!matches(&by_label, &labels));
    }
}
