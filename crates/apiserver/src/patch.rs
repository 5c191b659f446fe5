//! The three patch formats besides apply: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
//! and strategic merge patch as `kubectl` sends it for built-in kinds.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::shape::{Seg, Shape};

/// Apply an RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Apply an RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    // On a copy, without json_patch's own rollback: undoing some failed operations (a `move`
    // into itself after an earlier one applied) panics inside the crate — found by the
    // property test below. The target changes only when every operation applied.
    let mut work = target.clone();
    json_patch::patch_unsafe(&mut work, &p).map_err(|e| {
        ApiError::unprocessable_patch(format!("the JSON patch could not be applied: {e}"))
    })?;
    *target = work;
    Ok(())
}

/// Apply a strategic merge patch.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, shape: &Shape) -> ApiResult<()> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        ));
    }
    smp(target, patch, shape, &[])
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn smp(target: &mut Value, patch: &Value, shape: &Shape, segs: &[Seg]) -> ApiResult<()> {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type {other:?}"
            )));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tm = target.as_object_mut().expect("just made an object");
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, pv) in pm {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = pv {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (tm.get_mut(field), pv) {
                list.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let mut s = segs.to_vec();
        s.push(Seg::Field(k.clone()));
        if pv.is_null() {
            tm.shift_remove(k);
            continue;
        }
        match (tm.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(_)) => smp(tv, pv, shape, &s)?,
            (Some(Value::Array(tl)), Value::Array(pl)) => merge_list(tl, pl, shape, &s)?,
            (_, pv) => {
                tm.insert(k.clone(), strip_directives(pv));
            }
        }
    }
    for (field, order) in orders {
        let mut s = segs.to_vec();
        s.push(Seg::Field(field.clone()));
        if let Some(Value::Array(list)) = tm.get_mut(&field) {
            reorder(list, &order, shape.patch_merge_key(&s).as_deref());
        }
    }
    Ok(())
}

fn merge_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    shape: &Shape,
    segs: &[Seg],
) -> ApiResult<()> {
    let Some(key) = shape.patch_merge_key(segs) else {
        *target = patch.iter().map(strip_directives).collect();
        return Ok(());
    };
    if key.is_empty() {
        for p in patch {
            if !target.contains(p) {
                target.push(p.clone());
            }
        }
        return Ok(());
    }
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    let mut item_segs = segs.to_vec();
    item_segs.push(Seg::Item);
    for p in patch {
        let Some(kv) = p.get(key.as_str()) else {
            return Err(ApiError::bad_request(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let pos = target.iter().position(|t| t.get(key.as_str()) == Some(kv));
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => smp(&mut target[i], p, shape, &item_segs)?,
            (None, false) => target.push(strip_directives(p)),
        }
    }
    Ok(())
}

fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) if !k.is_empty() => v.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let rank = |v: &Value| -> usize {
        let id = ident(v);
        order
            .iter()
            .position(|o| ident(o) == id)
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

impl ApiError {
    /// 422 for a patch that cannot be applied.
    pub fn unprocessable_patch(message: impl Into<String>) -> Self {
        let mut e = ApiError::bad_request(message);
        e.code = 422;
        e.reason = "Invalid";
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;
    use serde_json::json;

    fn service_def() -> crate::registry::ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.kind == "Service")
            .unwrap()
    }

    #[test]
    fn strategic_merge_patch_as_kubectl_sends_it() {
        let def = service_def();
        let shape = Shape::new(&def);
        let mut svc = json!({
            "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443},
            ], "selector": {"app": "web"}},
        });
        // What `kubectl apply` sends after editing: change one port, drop another, add one,
        // delete a label, keep the order it wants.
        let patch = json!({
            "metadata": {"labels": {"b": null, "c": "3"}, "finalizers": ["y"]},
            "spec": {
                "$setElementOrder/ports": [{"port": 8080}, {"port": 80}],
                "ports": [
                    {"port": 80, "targetPort": 9090},
                    {"port": 443, "$patch": "delete"},
                    {"name": "alt", "port": 8080},
                ],
            },
        });
        strategic_merge_patch(&mut svc, &patch, &shape).unwrap();
        assert_eq!(svc["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(
            svc["metadata"]["finalizers"],
            json!(["x", "y"]),
            "finalizers merge as a set"
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "alt", "port": 8080}, {"name": "http", "port": 80, "targetPort": 9090}]),
            "merged by port, deleted by directive, ordered by $setElementOrder"
        );
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    }

    #[test]
    fn replace_and_retain_keys_directives() {
        let def = service_def();
        let shape = Shape::new(&def);
        let mut obj = json!({"spec": {"selector": {"a": "1", "b": "2"}, "type": "ClusterIP", "sessionAffinity": "None"}});
        let patch = json!({"spec": {"selector": {"$patch": "replace", "c": "3"}, "$retainKeys": ["selector", "type"]}});
        strategic_merge_patch(&mut obj, &patch, &shape).unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"selector": {"c": "3"}, "type": "ClusterIP"}})
        );
    }

    #[test]
    fn a_list_item_without_its_merge_key_is_refused() {
        let def = service_def();
        let shape = Shape::new(&def);
        let mut obj = json!({"spec": {"ports": [{"port": 80}]}});
        let err = strategic_merge_patch(
            &mut obj,
            &json!({"spec": {"ports": [{"name": "x"}]}}),
            &shape,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("merge key"), "{}", err.message);
    }

    #[test]
    fn json_and_merge_patches() {
        let mut obj = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut obj, &json!({"a": {"b": null, "d": 4}, "l": [3]}));
        assert_eq!(obj, json!({"a": {"c": 2, "d": 4}, "l": [3]}));
        json_patch(&mut obj, &json!([{"op": "add", "path": "/l/-", "value": 5}, {"op": "test", "path": "/a/c", "value": 2}])).unwrap();
        assert_eq!(obj["l"], json!([3, 5]));
        let err = json_patch(
            &mut obj,
            &json!([{"op": "test", "path": "/a/c", "value": 9}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }
}

/// Randomised documents and patches (#13 item 8): no input panics, a bad patch is an error
/// with a message. Bounded for CI; `PROPTEST_CASES=100000` for a longer run.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::registry::builtins;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z/:.-]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        "[a-z]{1,6}",
                        Just("spec".to_string()),
                        Just("ports".to_string()),
                        Just("$patch".to_string()),
                        Just("$retainKeys".to_string()),
                        Just("$setElementOrder/ports".to_string()),
                        Just("name".to_string()),
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn ops() -> impl Strategy<Value = Value> {
        proptest::collection::vec(
            (
                prop_oneof![Just("add"), Just("remove"), Just("replace"), Just("move"), Just("copy"), Just("test"), Just("bogus")],
                prop_oneof![Just("/spec"), Just("/spec/ports/0"), Just("/spec/ports/-"), Just("/a/b"), Just(""), Just("/~1x")],
                json(),
            )
                .prop_map(|(op, path, value)| serde_json::json!({"op": op, "path": path, "from": "/spec", "value": value})),
            0..4,
        )
        .prop_map(Value::Array)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000)
        ))]

        #[test]
        fn patches_never_panic_and_errors_say_why(doc in json(), patch in json(), ops in ops()) {
            let def = builtins().into_iter().find(|d| d.kind == "Service").expect("Service");
            let shape = crate::shape::Shape::new(&def);
            let mut t = doc.clone();
            merge_patch(&mut t, &patch);
            let mut t = doc.clone();
            if let Err(e) = strategic_merge_patch(&mut t, &patch, &shape) {
                prop_assert!(!e.message.is_empty());
            }
            let mut t = doc.clone();
            if let Err(e) = json_patch(&mut t, &ops) {
                prop_assert!(!e.message.is_empty());
            }
            // A patch that is not a list of operations is a 400, not a panic.
            let mut t = doc;
            prop_assert!(json_patch(&mut t, &patch).is_err() || patch.is_array());
        }
    }
}
