//! Diff: is a live object what Git says? Only the fields Git sets are compared (what
//! server-side apply would own), so defaults and other controllers' fields never read as drift.
//! Each difference is a field path, and [`changed_by`] names the manager that owns that field
//! now (from `metadata.managedFields`) — what the drift report and the `DriftReverted` Event say.

use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A map key.
    Key(String),
    /// An item of a keyed list (`containers[name=podinfo]`): the key and its value.
    Item(String, Value),
    /// An item of a list by position.
    Index(usize),
}

/// A field path, shown as `spec.template.spec.containers[name=podinfo].image`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Seg>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Item(k, Value::String(v)) => write!(f, "[{k}={v}]")?,
                Seg::Item(k, v) => write!(f, "[{k}={v}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A field Git sets that the live object does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The field.
    pub path: FieldPath,
    /// What Git says.
    pub want: Value,
    /// What the cluster has (`null` when the field is missing).
    pub live: Value,
}

/// The keys that identify an item of a list, tried in order: the merge keys Kubernetes uses for
/// the lists people write (containers, env, volumes by `name`; mounts by `mountPath`; ports).
const LIST_KEYS: [&str; 6] = ["name", "mountPath", "containerPort", "port", "ip", "key"];

/// The fields Git sets in `desired` that differ in `live`. `status`, and the metadata the API
/// server fills in, are not compared; a `null` in Git means "no opinion". A Secret's
/// `stringData` is compared with the live `data` it became.
pub fn differences(desired: &Value, live: &Value) -> Vec<Difference> {
    let desired = comparable(desired);
    let mut out = Vec::new();
    let mut path = Vec::new();
    if let (Some(d), Some(l)) = (desired.as_object(), live.as_object()) {
        for (k, dv) in d {
            if k == "status" || k == "apiVersion" || k == "kind" {
                continue;
            }
            path.push(Seg::Key(k.clone()));
            if k == "metadata" {
                for mk in ["labels", "annotations"] {
                    if let Some(dm) = dv.get(mk) {
                        path.push(Seg::Key(mk.into()));
                        walk(dm, &l["metadata"][mk], &mut path, &mut out);
                        path.pop();
                    }
                }
            } else {
                walk(dv, l.get(k).unwrap_or(&Value::Null), &mut path, &mut out);
            }
            path.pop();
        }
    }
    out
}

/// The desired object as the API server would store it, where that differs in form only.
fn comparable(desired: &Value) -> Value {
    let mut d = desired.clone();
    if d["kind"] == "Secret" && d["apiVersion"] == "v1" {
        if let Some(Value::Object(sd)) = d.as_object_mut().and_then(|m| m.remove("stringData")) {
            use base64::Engine;
            let data = d
                .as_object_mut()
                .map(|m| m.entry("data").or_insert_with(|| Value::Object(Map::new())));
            if let Some(Value::Object(data)) = data {
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or_default();
                    data.insert(
                        k,
                        Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
        }
    }
    d
}

fn walk(want: &Value, live: &Value, path: &mut Vec<Seg>, out: &mut Vec<Difference>) {
    match (want, live) {
        (Value::Null, _) => {}
        (Value::Object(w), Value::Object(l)) => {
            for (k, wv) in w {
                path.push(Seg::Key(k.clone()));
                walk(wv, l.get(k).unwrap_or(&Value::Null), path, out);
                path.pop();
            }
        }
        (Value::Array(w), Value::Array(l)) => match list_key(w) {
            Some(key) => {
                for wi in w {
                    let id = &wi[key];
                    path.push(Seg::Item(key.into(), id.clone()));
                    match l.iter().find(|li| same(&li[key], id)) {
                        Some(li) => walk(wi, li, path, out),
                        None => out.push(Difference {
                            path: FieldPath(path.clone()),
                            want: wi.clone(),
                            live: Value::Null,
                        }),
                    }
                    path.pop();
                }
            }
            None if w.len() != l.len() => out.push(Difference {
                path: FieldPath(path.clone()),
                want: Value::Array(w.clone()),
                live: Value::Array(l.clone()),
            }),
            None => {
                for (i, (wi, li)) in w.iter().zip(l).enumerate() {
                    path.push(Seg::Index(i));
                    walk(wi, li, path, out);
                    path.pop();
                }
            }
        },
        (w, l) if same(w, l) => {}
        (w, l) => out.push(Difference {
            path: FieldPath(path.clone()),
            want: w.clone(),
            live: l.clone(),
        }),
    }
}

/// Equal, with numbers compared by value (`1` and `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The key every item of a desired list of maps has, if any.
fn list_key(items: &[Value]) -> Option<&'static str> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    LIST_KEYS.into_iter().find(|k| {
        items
            .iter()
            .all(|i| i.get(*k).is_some_and(|v| !v.is_null()))
    })
}

/// The field managers (other than `ours`) that own `path` in `live`'s `managedFields`, or the
/// nearest field above it that someone owns — who changed a field Git owns. Empty when no
/// other manager owns it (a change by an older API client that records no managed fields).
pub fn changed_by(live: &Value, path: &FieldPath, ours: &str) -> Vec<String> {
    let Some(entries) = live["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    let mut best: (usize, Vec<String>) = (0, Vec::new());
    for e in entries {
        let manager = e["manager"].as_str().unwrap_or("");
        if manager == ours || manager.is_empty() {
            continue;
        }
        let depth = owned_depth(&e["fieldsV1"], &path.0);
        if depth == 0 {
            continue;
        }
        if depth > best.0 {
            best = (depth, vec![manager.to_string()]);
        } else if depth == best.0 && !best.1.iter().any(|m| m == manager) {
            best.1.push(manager.to_string());
        }
    }
    best.1
}

/// How many steps of `path` a `fieldsV1` set covers, counting only a step that the set owns
/// itself (a leaf, or an entry marked with `.`).
fn owned_depth(fields: &Value, path: &[Seg]) -> usize {
    let mut node = fields;
    let mut owned = 0;
    for (i, seg) in path.iter().enumerate() {
        let Some(map) = node.as_object() else { break };
        let next = match seg {
            Seg::Key(k) => map.get(&format!("f:{k}")),
            Seg::Item(k, v) => map.iter().find_map(|(fk, fv)| {
                let item = fk.strip_prefix("k:")?;
                let id: Value = serde_json::from_str(item).ok()?;
                same(&id[k.as_str()], v).then_some(fv)
            }),
            Seg::Index(_) => None,
        };
        let Some(next) = next else { break };
        let is_leaf = next
            .as_object()
            .is_none_or(|m| m.is_empty() || m.contains_key("."));
        if is_leaf {
            owned = i + 1;
        }
        node = next;
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(color: &str, replicas: i64) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"podinfo","namespace":"demo","labels":{"app":"podinfo"}},
            "spec":{"replicas":replicas,"template":{"spec":{"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.7.1",
            "env":[{"name":"PODINFO_UI_COLOR","value":color}],"ports":[{"containerPort":9898,"protocol":"TCP"}]}]}}}})
    }

    fn paths(d: &[Difference]) -> Vec<String> {
        d.iter().map(|d| d.path.to_string()).collect()
    }

    #[test]
    fn only_fields_git_sets_are_compared() {
        let desired = deploy("#34577c", 1);
        let mut live = deploy("#34577c", 1);
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["resourceVersion"] = json!("42");
        live["metadata"]["labels"]["extra"] = json!("x");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["strategy"] = json!({"type":"RollingUpdate"});
        live["status"] = json!({"replicas": 1});
        assert_eq!(differences(&desired, &live), []);
    }

    #[test]
    fn changed_fields_are_named_by_path() {
        let desired = deploy("#34577c", 1);
        let live = deploy("#ff0000", 3);
        let d = differences(&desired, &live);
        assert_eq!(
            paths(&d),
            [
                "spec.replicas",
                "spec.template.spec.containers[name=podinfo].env[name=PODINFO_UI_COLOR].value"
            ]
        );
        assert_eq!(d[0].want, json!(1));
        assert_eq!(d[0].live, json!(3));

        let mut gone = deploy("#34577c", 1);
        gone["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        gone["metadata"]["labels"] = json!({});
        assert_eq!(
            paths(&differences(&desired, &gone)),
            [
                "metadata.labels.app",
                "spec.template.spec.containers[name=podinfo].env[name=PODINFO_UI_COLOR]"
            ]
        );
    }

    #[test]
    fn lists_without_keys_compare_by_position_and_length() {
        let d = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"args":["--port","9898"]}});
        let mut l = d.clone();
        assert!(differences(&d, &l).is_empty());
        l["spec"]["args"] = json!(["--port", "9999"]);
        assert_eq!(paths(&differences(&d, &l)), ["spec.args[1]"]);
        l["spec"]["args"] = json!(["--port", "9898", "--extra"]);
        assert_eq!(paths(&differences(&d, &l)), ["spec.args"]);
    }

    #[test]
    fn numbers_nulls_and_secrets() {
        let d = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","annotations":null},"data":{"a":"1"},"x":1.0});
        let l = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"},"x":1});
        assert!(differences(&d, &l).is_empty());
        let s = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"password":"hunter2"}});
        let ls = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"password":"aHVudGVyMg=="}});
        assert!(differences(&s, &ls).is_empty());
        let ls2 = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"password":"b3RoZXI="}});
        assert_eq!(paths(&differences(&s, &ls2)), ["data.password"]);
    }

    #[test]
    fn the_manager_that_changed_a_field_is_found() {
        let mut live = deploy("#ff0000", 1);
        live["metadata"]["managedFields"] = json!([
            {"manager":"metalgate-gitops","operation":"Apply","fieldsV1":{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"podinfo\"}":{".":{},"f:image":{},"f:name":{}}}}}}}},
            {"manager":"kubectl-edit","operation":"Update","fieldsV1":{"f:spec":{"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"podinfo\"}":{"f:env":{"k:{\"name\":\"PODINFO_UI_COLOR\"}":{"f:value":{}}}}}}}}}}
        ]);
        let d = differences(&deploy("#34577c", 1), &live);
        assert_eq!(d.len(), 1);
        assert_eq!(
            changed_by(&live, &d[0].path, "metalgate-gitops"),
            ["kubectl-edit"]
        );
        let replicas = FieldPath(vec![Seg::Key("spec".into()), Seg::Key("replicas".into())]);
        assert!(
            changed_by(&live, &replicas, "metalgate-gitops").is_empty(),
            "ours only"
        );
        assert!(changed_by(&json!({}), &replicas, "x").is_empty());
    }
}
