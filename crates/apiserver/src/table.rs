//! Server-side `Table` responses: the columns `kubectl get` prints, computed here as
//! kube-apiserver does (EXTERNAL-IP, PORT(S), AGE, a CRD's printer columns…).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::kinds::{
    self,
    print::{age, created},
};
use crate::registry::{ResourceDef, Schema};

/// Which object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// None.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parse the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// Evaluate the simple JSONPath of a printer column (`.status.assigned`, `.spec.items[0].x`).
pub fn json_path<'v>(o: &'v Value, path: &str) -> &'v Value {
    let mut v = o;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (name, idx) = match part.find('[') {
            Some(i) => (
                &part[..i],
                part[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (part, None),
        };
        v = &v[name];
        if let Some(i) = idx {
            v = &v[i];
        }
    }
    v
}

/// Computes a row's cells (after NAME) from an object.
type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

fn columns_and_cells(def: &ResourceDef) -> (Vec<Value>, Cells) {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let builtin = match def.schema {
        Schema::Builtin => kinds::find(&def.group, &def.kind).and_then(|k| k.printer),
        Schema::Crd(_) => None,
    };
    match builtin {
        Some(p) => {
            let mut cols = if p.named { vec![name] } else { vec![] };
            cols.extend(p.columns.iter().map(|c| {
                if c.name == "Age" {
                    age_col.clone()
                } else {
                    col(c.name, c.ty, c.priority, "")
                }
            }));
            let named = p.named;
            let row = p.row;
            (
                cols,
                Box::new(move |o: &Value| {
                    let mut cells = if named {
                        vec![o["metadata"]["name"].clone()]
                    } else {
                        vec![]
                    };
                    cells.extend(row(o));
                    cells
                }),
            )
        }
        None if !def.printer_columns.is_empty() => {
            let mut cols = vec![name];
            let pcs = def.printer_columns.clone();
            for pc in &pcs {
                cols.push(col(&pc.name, &pc.type_, pc.priority, &pc.description));
            }
            let has_age = pcs.iter().any(|p| p.name.eq_ignore_ascii_case("age"));
            if !has_age {
                cols.push(age_col);
            }
            (
                cols,
                Box::new(move |o: &Value| {
                    let mut row: Vec<Value> = pcs
                        .iter()
                        .map(|pc| {
                            let v = json_path(o, &pc.json_path);
                            if pc.type_ == "date" {
                                json!(age(v))
                            } else if v.is_null() {
                                json!("")
                            } else if v.is_array() || v.is_object() {
                                // As kube-apiserver prints them: JSON.
                                json!(v.to_string())
                            } else {
                                v.clone()
                            }
                        })
                        .collect();
                    if !has_age {
                        row.push(created(o));
                    }
                    let mut cells = vec![o["metadata"]["name"].clone()];
                    cells.extend(row);
                    cells
                }),
            )
        }
        None => (
            vec![name, age_col],
            Box::new(|o: &Value| vec![o["metadata"]["name"].clone(), created(o)]),
        ),
    }
}

/// The `Table` for a list (or a single object) of one resource.
pub fn table(
    def: &ResourceDef,
    objects: &[Arc<Value>],
    include: Include,
    rv: u64,
    cont: Option<&str>,
) -> Value {
    let (columns, cells) = columns_and_cells(def);
    let rows: Vec<Value> = objects.iter().map(|o| row(o, include, &cells)).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(o: &Value, include: Include, cells: &dyn Fn(&Value) -> Vec<Value>) -> Value {
    let mut r = json!({"cells": cells(o)});
    match include {
        Include::None => {}
        Include::Object => r["object"] = o.clone(),
        Include::Metadata => {
            let mut meta = o["metadata"].clone();
            if let Some(m) = meta.as_object_mut() {
                m.shift_remove("managedFields");
            }
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
        }
    }
    r
}

/// A Table for one watch event's object.
pub fn table_for_one(def: &ResourceDef, o: &Value, include: Include) -> Value {
    let (columns, cells) = columns_and_cells(def);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": o["metadata"]["resourceVersion"]},
        "columnDefinitions": columns,
        "rows": [row(o, include, &cells)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    fn def(kind: &str) -> ResourceDef {
        builtins().into_iter().find(|d| d.kind == kind).unwrap()
    }

    #[test]
    fn builtin_rows_lead_with_the_name_but_events() {
        let svc = Arc::new(
            json!({"metadata": {"name": "podinfo"}, "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "ports": [{"port": 9898}]}}),
        );
        let t = table(&def("Service"), &[svc], Include::None, 1, None);
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["rows"][0]["cells"][0], "podinfo");
        assert_eq!(t["rows"][0]["cells"][4], "9898/TCP");
        let ev = Arc::new(
            json!({"metadata": {"name": "e1"}, "type": "Warning", "reason": "AccessDenied", "involvedObject": {"kind": "Ingress", "name": "web"}, "message": "m"}),
        );
        let t = table(&def("Event"), &[ev], Include::None, 1, None);
        assert_eq!(t["columnDefinitions"][0]["name"], "Last Seen");
        assert_eq!(t["rows"][0]["cells"][3], "ingress/web");
    }

    #[test]
    fn columns_and_cells_agree_for_every_kind() {
        let o = Arc::new(
            json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        for d in builtins() {
            let t = table(&d, std::slice::from_ref(&o), Include::None, 1, None);
            assert_eq!(
                t["columnDefinitions"].as_array().unwrap().len(),
                t["rows"][0]["cells"].as_array().unwrap().len(),
                "{}",
                d.kind
            );
        }
    }
}
