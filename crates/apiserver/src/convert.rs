//! `events.k8s.io/v1` Events are stored as core `v1` Events, as kube-apiserver does, so an
//! Event recorded through either API (kube's `Recorder` uses `events.k8s.io`) shows up in
//! `kubectl get events` and `kubectl describe`.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field)
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename(obj: &Value, from_new: bool, api_version: &str) -> Value {
    let Value::Object(m) = obj else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let name = RENAMES
            .iter()
            .find_map(|(new, old)| {
                if from_new && k == new {
                    Some(*old)
                } else if !from_new && k == old {
                    Some(*new)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(name.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in its stored, core `v1` form.
pub fn event_to_core(obj: &Value) -> Value {
    rename(obj, true, "v1")
}

/// A stored core `v1` Event as `events.k8s.io/v1` serves it.
pub fn event_from_core(obj: &Value) -> Value {
    rename(obj, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Service", "name": "web"}, "note": "IP allocated", "reason": "IPAllocated",
            "type": "Normal", "reportingController": "metalgate.io/controller", "reportingInstance": "n1",
            "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Allocate"});
        let core = event_to_core(&new);
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "IP allocated");
        assert_eq!(core["reportingComponent"], "metalgate.io/controller");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(event_from_core(&core), new);
    }
}
