//! Field ownership (`managedFields`) and server-side apply.
//!
//! A field set is a set of paths in the `FieldsV1` notation (`f:spec`, `k:{"port":80,…}`,
//! `v:"x"`, `.`). Apply merges the applied configuration into the live object, removes what
//! the manager applied before and no longer applies (unless someone else owns it), and refuses
//! to change a field another manager owns with a different value unless forced.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::shape::{ListType, Seg, Shape};

/// One path in a field set.
pub type FieldPath = Vec<String>;
/// A set of owned leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` (the main resource of a kind with a status subresource).
    Spec,
    /// Only `status`.
    Status,
    /// The whole object (kinds without a status subresource).
    Whole,
}

impl Part {
    /// The `subresource` recorded in managedFields.
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Status => Some("status"),
            _ => None,
        }
    }
}

fn key_of(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        let mut v = item.get(k.as_str()).cloned().unwrap_or(Value::Null);
        if v.is_null() && k == "protocol" {
            v = json!("TCP");
        }
        if !v.is_null() {
            m.insert(k.clone(), v);
        }
    }
    Value::Object(m)
}

fn tracked_top_level(part: Part, key: &str) -> bool {
    match (part, key) {
        (_, "apiVersion" | "kind") => false,
        (Part::Status, k) => k == "status",
        (Part::Spec, k) => k != "status",
        (Part::Whole, _) => true,
    }
}

/// The field set of an object (or an applied configuration).
pub fn field_set(obj: &Value, shape: &Shape, part: Part) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(map) = obj {
        for (k, v) in map {
            if !tracked_top_level(part, k) {
                continue;
            }
            if k == "metadata" {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = v.get(mk) {
                        if part == Part::Status {
                            continue;
                        }
                        let path = vec![Seg::Field("metadata".into()), Seg::Field(mk.into())];
                        walk(
                            mv,
                            shape,
                            &path,
                            vec!["f:metadata".into(), format!("f:{mk}")],
                            &mut out,
                        );
                    }
                }
                continue;
            }
            walk(
                v,
                shape,
                &[Seg::Field(k.clone())],
                vec![format!("f:{k}")],
                &mut out,
            );
        }
    }
    out
}

fn walk(v: &Value, shape: &Shape, segs: &[Seg], prefix: FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(map) if !map.is_empty() && !is_opaque(shape, segs) => {
            for (k, child) in map {
                let mut s = segs.to_vec();
                s.push(Seg::Field(k.clone()));
                let mut p = prefix.clone();
                p.push(format!("f:{k}"));
                walk(child, shape, &s, p, out);
            }
        }
        Value::Array(items) if !items.is_empty() => match shape.list_type(segs) {
            ListType::Atomic => {
                out.insert(prefix);
            }
            ListType::Set => {
                for item in items {
                    let mut p = prefix.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    let mut kp = prefix.clone();
                    kp.push(format!("k:{}", key_of(item, &keys)));
                    let mut dot = kp.clone();
                    dot.push(".".into());
                    out.insert(dot);
                    if let Value::Object(fields) = item {
                        for (k, child) in fields {
                            let mut s = segs.to_vec();
                            s.push(Seg::Item);
                            s.push(Seg::Field(k.clone()));
                            let mut p = kp.clone();
                            p.push(format!("f:{k}"));
                            walk(child, shape, &s, p, out);
                        }
                    }
                }
            }
        },
        _ => {
            out.insert(prefix);
        }
    }
}

/// Objects whose keys are data, not structure, are still walked key by key (labels,
/// annotations, data); only CRD fields marked `x-kubernetes-map-type: atomic` are one leaf.
fn is_opaque(shape: &Shape, segs: &[Seg]) -> bool {
    shape
        .schema_at(segs)
        .map(|s| s["x-kubernetes-map-type"].as_str() == Some("atomic"))
        .unwrap_or(false)
}

/// Follow a field path to the value it names.
pub fn value_at<'v>(mut v: &'v Value, path: &[String]) -> Option<&'v Value> {
    for el in path {
        if el == "." {
            return Some(v);
        }
        v = if let Some(f) = el.strip_prefix("f:") {
            v.get(f)?
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).ok()?;
            find_keyed(v.as_array()?, &key)?
        } else if let Some(val) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(val).ok()?;
            v.as_array()?.iter().find(|i| **i == want)?
        } else {
            return None;
        };
    }
    Some(v)
}

fn matches_key(item: &Value, key: &Value) -> bool {
    let Value::Object(k) = key else { return false };
    k.iter().all(|(name, want)| {
        let got = item.get(name.as_str()).cloned().unwrap_or(Value::Null);
        let got = if got.is_null() && name == "protocol" {
            json!("TCP")
        } else {
            got
        };
        got == *want
    })
}

fn find_keyed<'v>(items: &'v [Value], key: &Value) -> Option<&'v Value> {
    items.iter().find(|i| matches_key(i, key))
}

/// Remove the field a path names (a list item when the path ends in `.`).
pub fn remove_at(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let last = rest.is_empty() || (rest.len() == 1 && rest[0] == ".");
    if let Some(f) = first.strip_prefix("f:") {
        if let Value::Object(m) = v {
            if rest.is_empty() {
                m.shift_remove(f);
            } else if let Some(child) = m.get_mut(f) {
                remove_at(child, rest);
                // A map left empty by the removal goes too: nobody set it empty.
                if child.as_object().is_some_and(Map::is_empty) {
                    m.shift_remove(f);
                }
            }
        }
    } else if let Some(k) = first.strip_prefix("k:") {
        let Ok(key) = serde_json::from_str::<Value>(k) else {
            return;
        };
        if let Value::Array(items) = v {
            if last {
                items.retain(|i| !matches_key(i, &key));
            } else if let Some(item) = items.iter_mut().find(|i| matches_key(i, &key)) {
                remove_at(item, rest);
            }
        }
    } else if let Some(val) = first.strip_prefix("v:") {
        let Ok(want) = serde_json::from_str::<Value>(val) else {
            return;
        };
        if let Value::Array(items) = v {
            items.retain(|i| *i != want);
        }
    }
}

/// Merge an applied configuration into an object: maps recursively, keyed lists by key,
/// sets by value, everything else replaced.
pub fn merge(live: &mut Value, applied: &Value, shape: &Shape, segs: &[Seg]) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let mut s = segs.to_vec();
                s.push(Seg::Field(k.clone()));
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, shape, &s),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match shape.list_type(segs) {
            ListType::Map(keys) => {
                let mut item_segs = segs.to_vec();
                item_segs.push(Seg::Item);
                for ai in a {
                    let key = key_of(ai, &keys);
                    match l.iter_mut().find(|li| matches_key(li, &key)) {
                        Some(li) => merge(li, ai, shape, &item_segs),
                        None => l.push(ai.clone()),
                    }
                }
            }
            ListType::Set => {
                for ai in a {
                    if !l.contains(ai) {
                        l.push(ai.clone());
                    }
                }
            }
            ListType::Atomic => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    /// Field manager name.
    pub name: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` or none.
    pub subresource: Option<String>,
    /// apiVersion the fields were written in.
    pub api_version: String,
    /// When.
    pub time: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Decode `metadata.managedFields`.
pub fn managers_of(obj: &Value) -> Vec<Manager> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Manager {
            name: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            subresource: e["subresource"].as_str().map(str::to_string),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            fields: decode_fields(&e["fieldsV1"]),
        })
        .collect()
}

/// Encode managers into `metadata.managedFields` (or drop it when there are none).
pub fn set_managers(obj: &mut Value, managers: &[Manager]) {
    let list: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.name,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&m.fields),
            });
            if let Some(s) = &m.subresource {
                e["subresource"] = json!(s);
            }
            e
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// FieldsV1 JSON → set of leaf paths.
pub fn decode_fields(v: &Value) -> FieldSet {
    fn rec(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    if k == "." {
                        out.insert(prefix.clone());
                    } else {
                        rec(child, prefix, out);
                    }
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// Set of leaf paths → FieldsV1 JSON.
pub fn encode_fields(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for el in path {
            node = node
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("field set nodes are objects");
        }
    }
    Value::Object(root)
}

/// The `.spec.ports[port=80,protocol="TCP"].name`-style rendering used in conflict messages.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(k) {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

fn is_manager(m: &Manager, name: &str, operation: &str, part: Part) -> bool {
    m.name == name && m.operation == operation && m.subresource.as_deref() == part.subresource()
}

fn same_part(m: &Manager, part: Part) -> bool {
    m.subresource.as_deref() == part.subresource()
}

/// Outcome of a server-side apply.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// The new object (managedFields set).
    Applied(Value),
    /// Conflicting fields: (manager, rendered path).
    Conflicts(Vec<(String, String)>),
}

/// Server-side apply of `applied` onto `live` (an empty object for a create).
pub fn apply(
    live: &Value,
    applied: &Value,
    shape: &Shape,
    part: Part,
    manager: &str,
    force: bool,
    now: &str,
) -> ApplyOutcome {
    let applied_set = field_set(applied, shape, part);
    let mut managers = managers_of(live);

    // Conflicts: another manager owns a field this apply sets to a different value.
    let mut conflicts = Vec::new();
    let mut contested: BTreeMap<usize, Vec<FieldPath>> = BTreeMap::new();
    for (i, m) in managers.iter().enumerate() {
        if is_manager(m, manager, "Apply", part) || !same_part(m, part) {
            continue;
        }
        for p in m.fields.intersection(&applied_set) {
            if p.last().map(String::as_str) == Some(".") {
                continue;
            }
            let (was, asked) = (value_at(live, p), value_at(applied, p));
            // A map on both sides is a container, not a value: its keys conflict one by one
            // (structured-merge-diff compares leaves). An empty map applied is owned — as
            // `data: {}` is — but never compared whole against the keys others hold.
            if matches!(
                (was, asked),
                (Some(Value::Object(_)), Some(Value::Object(_)))
            ) {
                continue;
            }
            if was != asked {
                conflicts.push((m.name.clone(), render_path(p)));
                contested.entry(i).or_default().push(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return ApplyOutcome::Conflicts(conflicts);
    }
    for (i, paths) in contested {
        for p in paths {
            managers[i].fields.remove(&p);
        }
    }

    // Fields this manager applied before and no longer applies, owned by nobody else, go.
    let previous = managers
        .iter()
        .find(|m| is_manager(m, manager, "Apply", part))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = managers
        .iter()
        .filter(|m| !is_manager(m, manager, "Apply", part))
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    let mut obj = live.clone();
    for p in previous.difference(&applied_set) {
        if !others.contains(p) {
            remove_at(&mut obj, p);
        }
    }
    let mut to_merge = applied.clone();
    if let Value::Object(m) = &mut to_merge {
        m.retain(|k, _| tracked_top_level(part, k) || k == "metadata");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            if part == Part::Status {
                meta.clear();
            } else {
                meta.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "labels" | "annotations" | "finalizers" | "ownerReferences"
                    )
                });
            }
        }
    }
    merge(&mut obj, &to_merge, shape, &[]);
    prune_empty_metadata_maps(&mut obj);

    let api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    managers.retain(|m| !is_manager(m, manager, "Apply", part));
    managers.push(Manager {
        name: manager.into(),
        operation: "Apply".into(),
        subresource: part.subresource().map(str::to_string),
        api_version,
        time: now.into(),
        fields: applied_set,
    });
    managers.retain(|m| !m.fields.is_empty());
    set_managers(&mut obj, &managers);
    ApplyOutcome::Applied(obj)
}

fn prune_empty_metadata_maps(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["labels", "annotations"] {
            if meta
                .get(k)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                meta.shift_remove(k);
            }
        }
    }
}

/// Record a non-apply write (create, update, patch) in `new`'s managedFields: the fields it
/// changed now belong to `manager` and no longer to anyone else.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    shape: &Shape,
    part: Part,
    manager: &str,
    now: &str,
) {
    let mut managers = old.map(managers_of).unwrap_or_default();
    let new_set = field_set(new, shape, part);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for m in managers.iter_mut() {
        if same_part(m, part) {
            m.fields
                .retain(|p| new_set.contains(p) && !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
        match managers
            .iter_mut()
            .find(|m| is_manager(m, manager, "Update", part))
        {
            Some(m) => {
                m.fields.extend(changed);
                m.time = now.into();
                m.api_version = api_version;
            }
            None => managers.push(Manager {
                name: manager.into(),
                operation: "Update".into(),
                subresource: part.subresource().map(str::to_string),
                api_version,
                time: now.into(),
                fields: changed,
            }),
        }
    }
    managers.retain(|m| !m.fields.is_empty());
    set_managers(new, &managers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    fn service_def() -> crate::registry::ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.kind == "Service")
            .unwrap()
    }

    #[test]
    fn field_sets_key_service_ports_by_port_and_protocol() {
        let def = service_def();
        let shape = Shape::new(&def);
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}});
        let set = field_set(&svc, &shape, Part::Spec);
        let rendered: Vec<String> = set.iter().map(|p| p.join(" ")).collect();
        assert_eq!(
            rendered,
            [
                "f:metadata f:labels f:app",
                r#"f:spec f:ports k:{"port":80,"protocol":"TCP"} ."#,
                r#"f:spec f:ports k:{"port":80,"protocol":"TCP"} f:name"#,
                r#"f:spec f:ports k:{"port":80,"protocol":"TCP"} f:port"#,
                "f:spec f:selector f:app",
            ]
        );
        assert_eq!(
            decode_fields(&encode_fields(&set)),
            set,
            "FieldsV1 round trip"
        );
        let status = field_set(&svc, &shape, Part::Status);
        assert_eq!(status.len(), 1, "{status:?}");
    }

    #[test]
    fn apply_removes_what_its_manager_stopped_applying() {
        let def = service_def();
        let shape = Shape::new(&def);
        let empty = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}});
        let v1 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 443}], "selector": {"app": "web"}}});
        let ApplyOutcome::Applied(live) = apply(&empty, &v1, &shape, Part::Spec, "a", false, "t")
        else {
            panic!()
        };
        let v2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}});
        let ApplyOutcome::Applied(live) = apply(&live, &v2, &shape, Part::Spec, "a", false, "t")
        else {
            panic!()
        };
        assert_eq!(live["spec"], json!({"ports": [{"port": 80}]}));
        assert_eq!(
            render_path(&[
                "f:spec".into(),
                "f:ports".into(),
                r#"k:{"port":80,"protocol":"TCP"}"#.into(),
                "f:name".into()
            ]),
            r#".spec.ports[port=80,protocol="TCP"].name"#
        );
    }

    mod ownership {
        //! Server-side apply's ownership, as properties over two managers applying ConfigMap
        //! `data` maps drawn from a few keys and values (so they overlap often).
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        type Data = BTreeMap<String, String>;

        fn data() -> impl Strategy<Value = Data> {
            proptest::collection::btree_map("[a-d]", "[xy]", 0..4)
        }

        fn cm(data: &Data) -> Value {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
        }

        fn def() -> crate::registry::ResourceDef {
            builtins()
                .into_iter()
                .find(|d| d.kind == "ConfigMap")
                .unwrap()
        }

        fn run(live: &Value, data: &Data, manager: &str, force: bool) -> ApplyOutcome {
            let def = def();
            apply(
                live,
                &cm(data),
                &Shape::new(&def),
                Part::Whole,
                manager,
                force,
                "t",
            )
        }

        fn applied(o: ApplyOutcome) -> Value {
            match o {
                ApplyOutcome::Applied(v) => v,
                ApplyOutcome::Conflicts(c) => panic!("unexpected conflicts {c:?}"),
            }
        }

        fn data_of(obj: &Value) -> Data {
            serde_json::from_value(obj["data"].clone()).unwrap_or_default()
        }

        /// Whether `manager` owns `data.k`.
        fn owns(obj: &Value, manager: &str, k: &str) -> bool {
            let path = vec!["f:data".to_string(), format!("f:{k}")];
            managers_of(obj)
                .iter()
                .any(|m| m.name == manager && m.fields.contains(&path))
        }

        fn empty() -> Value {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        }

        proptest! {
            #[test]
            fn applying_the_same_configuration_again_changes_nothing(a in data()) {
                let once = applied(run(&empty(), &a, "a", false));
                let twice = applied(run(&once, &a, "a", false));
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn a_second_manager_conflicts_exactly_on_the_keys_it_sets_differently(
                a in data(), b in data()
            ) {
                let live = applied(run(&empty(), &a, "a", false));
                let differing: Vec<&String> =
                    b.iter().filter(|(k, v)| a.get(*k).is_some_and(|x| x != *v)).map(|(k, _)| k).collect();
                match run(&live, &b, "b", false) {
                    ApplyOutcome::Conflicts(c) => {
                        prop_assert!(!differing.is_empty());
                        let named: Vec<String> = c.iter().map(|(m, p)| format!("{m} {p}")).collect();
                        prop_assert_eq!(named.len(), differing.len());
                        for k in &differing {
                            prop_assert!(named.contains(&format!("a .data.{k}")), "{named:?} lacks {k}");
                        }
                    }
                    ApplyOutcome::Applied(obj) => {
                        prop_assert!(differing.is_empty());
                        let mut union = a.clone();
                        union.extend(b.clone());
                        prop_assert_eq!(data_of(&obj), union);
                        for k in a.keys() {
                            prop_assert!(owns(&obj, "a", k));
                        }
                        for k in b.keys() {
                            prop_assert!(owns(&obj, "b", k), "b applied {k} and does not own it");
                        }
                    }
                }
            }

            #[test]
            fn a_forced_apply_takes_the_contested_keys_and_leaves_the_rest(
                a in data(), b in data()
            ) {
                let live = applied(run(&empty(), &a, "a", false));
                let obj = applied(run(&live, &b, "b", true));
                let got = data_of(&obj);
                for (k, v) in &b {
                    prop_assert_eq!(got.get(k), Some(v));
                    prop_assert!(owns(&obj, "b", k));
                    if a.get(k).is_some_and(|x| x != v) {
                        prop_assert!(!owns(&obj, "a", k), "a still owns the contested {k}");
                    }
                }
                for (k, v) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
                    prop_assert_eq!(got.get(k), Some(v));
                    prop_assert!(owns(&obj, "a", k));
                }
            }

            #[test]
            fn a_key_a_manager_stops_applying_goes_unless_another_owns_it(
                a in data(), b in data(), keep in data()
            ) {
                // `a` applies, `b` applies (forced), then `a` applies only the keys of `keep`
                // it had: what `a` dropped stays only where `b` owns it.
                let live = applied(run(&empty(), &a, "a", false));
                let live = applied(run(&live, &b, "b", true));
                let still: Data = a
                    .iter()
                    .filter(|(k, _)| keep.contains_key(*k) && !b.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let obj = applied(run(&live, &still, "a", false));
                let got = data_of(&obj);
                let mut expected = b.clone();
                expected.extend(still.clone());
                prop_assert_eq!(got, expected);
            }
        }
    }
}
