//! How lists inside an object merge: atomic, as a set, or as a map keyed by some fields.
//! Built-in kinds follow the Kubernetes API's `x-kubernetes-list-type` / `patchMergeKey`
//! markers; custom kinds read them from the CRD's schema.

use serde_json::Value;

use crate::registry::{ResourceDef, Schema};

/// A step into an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A field of an object.
    Field(String),
    /// An element of a list.
    Item,
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects keyed by these fields.
    Map(Vec<String>),
}

/// What the store knows of a kind's structure.
#[derive(Debug, Clone)]
pub struct Shape<'a> {
    def: &'a ResourceDef,
}

fn names(path: &[Seg]) -> Vec<&str> {
    path.iter()
        .filter_map(|s| match s {
            Seg::Field(f) => Some(f.as_str()),
            Seg::Item => None,
        })
        .collect()
}

impl<'a> Shape<'a> {
    /// The shape of a resource's objects.
    pub fn new(def: &'a ResourceDef) -> Self {
        Shape { def }
    }

    /// Whether the kind is a custom resource.
    pub fn is_custom(&self) -> bool {
        matches!(self.def.schema, Schema::Crd(_))
    }

    /// The list type at a path (the path names the list field).
    pub fn list_type(&self, path: &[Seg]) -> ListType {
        let n = names(path);
        match n.as_slice() {
            ["metadata", "finalizers"] => return ListType::Set,
            ["metadata", "ownerReferences"] => return ListType::Map(vec!["uid".into()]),
            [.., "conditions"] => return ListType::Map(vec!["type".into()]),
            _ => {}
        }
        if let Schema::Crd(schema) = &self.def.schema {
            return match resolve(schema, path) {
                Some(s) => match s["x-kubernetes-list-type"].as_str() {
                    Some("set") => ListType::Set,
                    Some("map") => ListType::Map(
                        s["x-kubernetes-list-map-keys"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => ListType::Atomic,
                },
                None => ListType::Atomic,
            };
        }
        match (self.def.kind.as_str(), n.as_slice()) {
            ("Service", ["spec", "ports"]) => ListType::Map(vec!["port".into(), "protocol".into()]),
            (_, [.., "containers" | "initContainers" | "env" | "volumes"]) => {
                ListType::Map(vec!["name".into()])
            }
            ("Node", ["spec", "taints"]) => ListType::Atomic,
            _ => ListType::Atomic,
        }
    }

    /// The strategic-merge-patch merge key of a list, `Some("")` for a merged list of scalars,
    /// `None` for a list that a patch replaces.
    pub fn patch_merge_key(&self, path: &[Seg]) -> Option<String> {
        let n = names(path);
        match (self.def.kind.as_str(), n.as_slice()) {
            (_, ["metadata", "finalizers"]) => Some(String::new()),
            (_, ["metadata", "ownerReferences"]) => Some("uid".into()),
            (_, [.., "conditions"]) => Some("type".into()),
            ("Service", ["spec", "ports"]) => Some("port".into()),
            (_, [.., "containers" | "initContainers" | "env" | "volumes"]) => Some("name".into()),
            _ => None,
        }
    }

    /// The CRD schema node at a path, if the kind has one.
    pub fn schema_at(&self, path: &[Seg]) -> Option<&Value> {
        match &self.def.schema {
            Schema::Crd(s) => resolve(s, path),
            Schema::Builtin => None,
        }
    }
}

/// Follow a path through an OpenAPI v3 schema.
pub fn resolve<'v>(mut schema: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    for seg in path {
        schema = match seg {
            Seg::Field(f) => {
                let p = &schema["properties"][f.as_str()];
                if p.is_object() {
                    p
                } else if schema["additionalProperties"].is_object() {
                    &schema["additionalProperties"]
                } else {
                    return None;
                }
            }
            Seg::Item => {
                let i = &schema["items"];
                if i.is_object() { i } else { return None }
            }
        };
    }
    Some(schema)
}
