//! What a pass keeps of a live object: judged once, as the object is read, against what Git asks
//! for — its resourceVersion, who owns it, whether it says `Prune=false`, and the fields Git sets
//! that it does not match. A pass over a thousand objects then holds a few facts per object
//! instead of the objects themselves (several KiB each with their managed fields, times every
//! pass running at once). Pure.

use serde_json::Value;

use crate::diff;
use crate::plan::has_option;
use crate::tracking::{self, Owner};

/// A field Git sets that the live object does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field (`data.color`, `spec.template.spec.containers[name=web].image`).
    pub path: String,
    /// The managers other than ours that own it (from managedFields; empty when unknown).
    pub by: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    /// `path (changed by kubectl-edit)`, as drift is reported in Events and history.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.by.is_empty() {
            write!(f, "{} (changed by unknown)", self.path)
        } else {
            write!(f, "{} (changed by {})", self.path, self.by.join(", "))
        }
    }
}

/// The facts of one live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFacts {
    /// Its resourceVersion (tells an apply that changed it from one that did not).
    pub resource_version: Option<String>,
    /// Who owns it, by its tracking id, when `app` wants it.
    pub owner: Owner,
    /// It says `Prune=false`.
    pub prune_false: bool,
    /// The fields Git sets that it does not match (empty: in sync, or Git does not ask for it).
    pub mismatches: Vec<Mismatch>,
}

impl LiveFacts {
    /// Judge `live` for `app`, against `desired` (what Git asks for it, if anything);
    /// `ours` is the field manager whose changes are not drift.
    pub fn of(app: &str, desired: Option<&Value>, live: &Value, ours: &str) -> LiveFacts {
        LiveFacts {
            resource_version: live["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string),
            owner: tracking::owner(app, live),
            prune_false: has_option(live, "Prune=false"),
            mismatches: desired
                .map(|d| {
                    diff::differences(d, live)
                        .into_iter()
                        .map(|d| Mismatch {
                            by: diff::changed_by(live, &d.path, ours),
                            path: d.path.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether it matches what Git asks for.
    pub fn in_sync(&self) -> bool {
        self.mismatches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ObjRef;
    use crate::tracking::{ANNOTATION, TrackingId};

    #[test]
    fn facts_name_the_owner_the_version_and_each_mismatched_field_with_its_manager() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "demo"}, "data": {"color": "#ff0000", "size": "1"}});
        let r = ObjRef::of(&desired);
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "demo", "resourceVersion": "42",
                "annotations": {ANNOTATION: TrackingId::new("demo", &r).value(),
                                "metalgate.io/sync-options": "Prune=false"},
                "managedFields": [
                    {"manager": "metalgate-gitops", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:data": {"f:color": {}, "f:size": {}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:data": {"f:color": {}}}}]},
            "data": {"color": "#123456", "size": "1"}});
        let f = LiveFacts::of("demo", Some(&desired), &live, "metalgate-gitops");
        assert_eq!(f.resource_version.as_deref(), Some("42"));
        assert_eq!(f.owner, Owner::Us);
        assert!(f.prune_false);
        assert!(!f.in_sync());
        assert_eq!(
            f.mismatches,
            [Mismatch {
                path: "data.color".into(),
                by: vec!["kubectl-edit".into()]
            }]
        );
        assert_eq!(
            f.mismatches[0].to_string(),
            "data.color (changed by kubectl-edit)"
        );
        // Another app's object; and the same object as Git says it: in sync.
        let other = LiveFacts::of("other", Some(&live), &live, "metalgate-gitops");
        assert_eq!(other.owner, Owner::Other("demo".into()));
        assert!(other.in_sync());
        // Nothing in Git for it (a prune candidate): no mismatch to report.
        let gone = LiveFacts::of("demo", None, &live, "metalgate-gitops");
        assert!(gone.in_sync() && gone.owner == Owner::Us);
    }
}
