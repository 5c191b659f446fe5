//! The objects the module works on: a rendered manifest (where it came from, what it says) and
//! the reference that names an object in the cluster.

use std::fmt;

use serde_json::Value;

/// Names one object: API group, kind, namespace (empty when cluster-scoped) and name. The
/// version is left out on purpose: an object is the same whichever version it is read at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// The reference of an object, from its `apiVersion`, `kind` and metadata.
    pub fn of(obj: &Value) -> ObjRef {
        let (group, _) = split_api_version(str_at(obj, &["apiVersion"]));
        ObjRef {
            group: group.to_string(),
            kind: str_at(obj, &["kind"]).to_string(),
            namespace: str_at(obj, &["metadata", "namespace"]).to_string(),
            name: str_at(obj, &["metadata", "name"]).to_string(),
        }
    }
}

/// `Kind namespace/name`, or `Kind name` for a cluster-scoped object: how messages name it.
impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The string at a path of object keys, or "" when absent or not a string.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// Where a rendered object came from: a file of the checkout and the document in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The file, relative to the repository's root (`apps/podinfo.yaml`); for a kustomize or
    /// Helm build, the directory that was built.
    pub file: String,
    /// The document's position in the file, from 1 (comment-only documents not counted).
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)
    }
}

/// One object Git asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it was read.
    pub origin: Origin,
    /// The object as written (after the destination namespace is filled in).
    pub object: Value,
}

impl Manifest {
    /// The object's reference.
    pub fn obj_ref(&self) -> ObjRef {
        ObjRef::of(&self.object)
    }
}
