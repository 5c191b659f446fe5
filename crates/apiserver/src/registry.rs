//! Which kinds the store serves: the built-in ones, and those that applied CRDs add.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

/// How objects of a resource are validated.
#[derive(Debug, Clone)]
pub enum Schema {
    /// A built-in kind, checked by its typed k8s-openapi struct and semantic rules.
    Builtin,
    /// A CRD version's `openAPIV3Schema`.
    Crd(Arc<Value>),
}

/// A CRD's `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type of the column.
    pub type_: String,
    /// Simple JSONPath, e.g. `.status.assigned`.
    pub json_path: String,
    /// 0 = shown by default, more = only with `-o wide`.
    pub priority: i64,
    /// Description of the column.
    pub description: String,
}

/// One served resource in one group version.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Plural resource name, e.g. `services`.
    pub plural: String,
    /// Singular name, e.g. `service`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl (`svc`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (spec and status written separately).
    pub has_status: bool,
    /// Whether `/scale` is a subresource (`spec.replicas` read and written as a `Scale`).
    pub has_scale: bool,
    /// Whether objects are only created and answered, never stored (access reviews).
    pub answered: bool,
    /// Validation.
    pub schema: Schema,
    /// Printer columns for a CRD's kind.
    pub printer_columns: Vec<PrinterColumn>,
    /// The name of the CRD that defines this kind, if any.
    pub crd: Option<String>,
}

impl ResourceDef {
    /// Structure of an object of a built-in kind: types and unknown fields (nothing for a
    /// custom kind: its schema is checked apart).
    pub fn builtin_structure(&self, obj: &Value) -> crate::validation::Findings {
        let mut f = crate::validation::Findings::default();
        if let Some(k) = crate::kinds::find(&self.group, &self.kind) {
            (k.structure)(obj, &mut f);
        }
        f
    }

    /// The documented rules of a built-in kind (none for custom kinds: their schema is the
    /// rule).
    pub fn builtin_rules(&self, obj: &Value, causes: &mut Vec<crate::error::Cause>) {
        if let (Schema::Builtin, Some(k)) =
            (&self.schema, crate::kinds::find(&self.group, &self.kind))
        {
            (k.rules)(obj, causes);
        }
    }

    /// Fill in what kube-apiserver defaults for a built-in kind.
    pub fn builtin_defaults(&self, obj: &mut Value) {
        if let (Schema::Builtin, Some(k)) =
            (&self.schema, crate::kinds::find(&self.group, &self.kind))
        {
            (k.defaults)(obj);
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage prefix: every version of a resource shares one storage, and `events.k8s.io`
    /// Events share the core Events' storage.
    pub fn storage_prefix(&self) -> String {
        if self.is_events_v1() {
            return "core/events/".into();
        }
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("{g}/{}/", self.plural)
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!(
            "{}{}/{}",
            self.storage_prefix(),
            namespace.unwrap_or(""),
            name
        )
    }

    /// Whether this is `events.k8s.io` Event, served from core Events' storage.
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.kind == "Event"
    }

    /// The entry in an `APIResourceList`.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let verbs = if self.answered {
            json!(["create"])
        } else {
            json!([
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ])
        };
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.has_status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.kind == "ServiceAccount" && self.group.is_empty() {
            out.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
        if self.has_scale {
            out.push(json!({
                "name": format!("{}/scale", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// The built-in kinds the store serves, from the table in `kinds`.
pub fn builtins() -> Vec<ResourceDef> {
    crate::kinds::BUILTINS
        .iter()
        .map(|k| ResourceDef {
            group: k.group.into(),
            version: k.version.into(),
            kind: k.kind.into(),
            plural: k.plural.into(),
            singular: k.kind.to_ascii_lowercase(),
            namespaced: k.namespaced,
            short_names: k.short.iter().map(|s| s.to_string()).collect(),
            categories: if k.in_all { vec!["all".into()] } else { vec![] },
            has_status: k.status,
            has_scale: k.scale,
            answered: k.answered,
            schema: Schema::Builtin,
            printer_columns: Vec::new(),
            crd: None,
        })
        .collect()
}

/// The resource definitions derived from one CRD object, one per served version.
pub fn defs_from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"].as_str().map(str::to_string);
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let printer_columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                type_: c["type"].as_str().unwrap_or("string").into(),
                json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                description: c["description"].as_str().unwrap_or_default().into(),
            })
            .collect();
        let schema = v["schema"]["openAPIV3Schema"].clone();
        out.push(ResourceDef {
            group: group.into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            has_status: v["subresources"]["status"].is_object(),
            has_scale: false,
            answered: false,
            schema: Schema::Crd(Arc::new(schema)),
            printer_columns,
            crd: crd_name.clone(),
        });
    }
    out
}

/// The table of served resources; CRDs add and remove entries while the server runs.
#[derive(Debug, Default)]
pub struct Registry {
    defs: RwLock<Vec<Arc<ResourceDef>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn new() -> Self {
        Registry {
            defs: RwLock::new(builtins().into_iter().map(Arc::new).collect()),
        }
    }

    /// Every served resource.
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.defs.read().unwrap().clone()
    }

    /// The resource at `group/version/plural`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .read()
            .unwrap()
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    /// Whether a group version is served at all.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.defs
            .read()
            .unwrap()
            .iter()
            .any(|d| d.group == group && d.version == version)
    }

    /// Groups (excluding core) with their versions, in a stable order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.read().unwrap().iter() {
            if d.group.is_empty() {
                continue;
            }
            let versions = out.entry(d.group.clone()).or_default();
            if !versions.contains(&d.version) {
                versions.push(d.version.clone());
            }
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Replace the definitions a CRD provides (none when it is deleted).
    pub fn set_crd(&self, crd_name: &str, defs: Vec<ResourceDef>) {
        let mut all = self.defs.write().unwrap();
        all.retain(|d| d.crd.as_deref() != Some(crd_name));
        all.extend(defs.into_iter().map(Arc::new));
    }
}

/// Kubernetes version ordering: v1 > v1beta2 > v1beta1 > v1alpha1.
pub fn version_priority(v: &str) -> (u32, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stability, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stability, major, minor)
}
