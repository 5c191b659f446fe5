//! The OpenAPI v3 documents `kubectl` reads: one path per resource, whose PATCH operation names
//! its group-version-kind and declares `fieldValidation`, so kubectl leaves validation to this
//! server (which then answers unknown fields with the field named); and the schema of every
//! kind served, which `kubectl explain` renders.
//!
//! Built-in kinds' schemas come from their typed k8s-openapi forms (the same types that check
//! their structure), named as kube-apiserver names them (`io.k8s.api.apps.v1.Deployment`); a
//! custom kind's is its CRD's `openAPIV3Schema` with `metadata` pointing at `ObjectMeta`, as
//! kube-apiserver publishes it.
//!
//! No PATCH operation declares a request body type. kubectl's `apply` computes a strategic
//! merge patch from a served schema only when the operation accepts
//! `application/strategic-merge-patch+json`; without that it uses its compiled-in types
//! (built-in kinds) or a JSON merge patch (custom kinds), as against kube-apiserver — the
//! schemas here carry no `x-kubernetes-patch-merge-key`, so they must not drive patches.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::kinds;
use crate::registry::{Registry, ResourceDef, Schema};

/// Registers `T`'s schema (and every schema it refers to) in `g`; returns its component name.
pub fn component<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// A custom kind's component name, as kube-apiserver forms it: the group reversed, then the
/// version and kind (`io.metalgate.v1beta1.Application`).
fn crd_component_name(d: &ResourceDef) -> String {
    let mut parts: Vec<&str> = d.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), d.version, d.kind)
}

/// A CRD version's schema as a component: `metadata` is `ObjectMeta`, `apiVersion` and `kind`
/// described as on every kind.
fn crd_component(g: &mut SchemaGenerator, d: &ResourceDef, schema: &Value) -> String {
    let meta = component::<ObjectMeta>(g);
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object"});
    }
    let props = s
        .as_object_mut()
        .expect("an object")
        .entry("properties")
        .or_insert_with(|| json!({}));
    if let Some(props) = props.as_object_mut() {
        props.insert(
            "metadata".into(),
            json!({
                "allOf": [{"$ref": format!("#/components/schemas/{meta}")}],
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            }),
        );
        props.entry("apiVersion").or_insert_with(|| json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.entry("kind").or_insert_with(|| json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
    }
    let name = crd_component_name(d);
    g.definitions_mut().insert(name.clone(), s);
    name
}

/// The component schemas of one group version's kinds, each marked with its
/// `x-kubernetes-group-version-kind`, and every schema they refer to.
fn components(reg: &Registry, group: &str, version: &str) -> Map<String, Value> {
    let mut g = SchemaSettings::openapi3().into_generator();
    let mut kinds_of: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in reg.all() {
        if d.group != group || d.version != version {
            continue;
        }
        let name = match &d.schema {
            Schema::Builtin => kinds::find(&d.group, &d.kind)
                .and_then(|k| k.openapi)
                .map(|f| f(&mut g)),
            Schema::Crd(s) => Some(crd_component(&mut g, &d, s)),
        };
        if let Some(name) = name {
            kinds_of
                .entry(name)
                .or_default()
                .push(json!({"group": d.group, "version": d.version, "kind": d.kind}));
        }
    }
    let mut schemas = g.take_definitions(true);
    for (name, gvks) in kinds_of {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
            // The typed forms hold `metadata` as a plain field, so it comes out required; the
            // API defaults it (`generateName`, a name from the URL), as kube-apiserver says.
            if let Some(Value::Array(req)) = s.get_mut("required") {
                req.retain(|f| f != "metadata");
                if req.is_empty() {
                    s.remove("required");
                }
            }
        }
    }
    schemas
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut seen = Vec::new();
    for d in reg.all() {
        let p = gv_path(&d.group, &d.version);
        if seen.contains(&p) {
            continue;
        }
        seen.push(p.clone());
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(reg, &d.group, &d.version))}));
    }
    json!({"paths": paths})
}

/// The version of one group version's document kubectl caches it under: what can change while
/// this binary runs is the set of kinds served and custom kinds' schemas; built-in schemas are
/// fixed per build, so the crate's version stands for them. Cheap: no schema is generated.
pub fn hash_of(reg: &Registry, group: &str, version: &str) -> String {
    let mut text = String::from(env!("CARGO_PKG_VERSION"));
    for d in reg.all() {
        if d.group != group || d.version != version {
            continue;
        }
        text.push_str(&format!(
            "|{}/{}/{}/{}",
            d.kind, d.plural, d.namespaced, d.has_status
        ));
        if let Schema::Crd(s) = &d.schema {
            text.push_str(&s.to_string());
        }
    }
    let h = text.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    format!("{h:016X}")
}

fn params() -> Value {
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}});
    json!([
        q("dryRun", "When present, indicates that modifications should not be persisted."),
        q("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        q("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict."),
        {"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}},
    ])
}

fn ops(d: &ResourceDef, item: bool) -> Value {
    let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
    let op = |verb: &str, id: &str| {
        json!({
            "operationId": format!("{verb}{}{}", d.kind, id),
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params(),
            "responses": {"200": {"description": "OK"}},
        })
    };
    if item {
        json!({"get": op("get", ""), "put": op("put", ""), "patch": op("patch", ""), "delete": op("delete", "")})
    } else {
        json!({"get": op("list", ""), "post": op("post", "")})
    }
}

/// The document of one group version.
pub fn document(reg: &Registry, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for d in reg.all() {
        if d.group != group || d.version != version {
            continue;
        }
        let coll = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        paths.insert(coll.clone(), ops(&d, false));
        paths.insert(format!("{coll}/{{name}}"), ops(&d, true));
        if d.has_status {
            paths.insert(format!("{coll}/{{name}}/status"), ops(&d, true));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "metalgate", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": components(reg, group, version)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd(size: Value) -> Value {
        json!({
            "metadata": {"name": "widgets.example.io"},
            "spec": {
                "group": "example.io", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": size}}}}}}]
            }
        })
    }

    #[test]
    fn every_built_in_kind_has_a_component_marked_with_its_gvk() {
        let reg = Registry::new();
        let gvs: std::collections::BTreeSet<(String, String)> = reg
            .all()
            .iter()
            .map(|d| (d.group.clone(), d.version.clone()))
            .collect();
        assert!(gvs.contains(&(String::new(), "v1".into())));
        for (group, version) in &gvs {
            let (group, version) = (group.as_str(), version.as_str());
            let doc = document(&reg, group, version);
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            for d in reg.all() {
                if d.group != group || d.version != version {
                    continue;
                }
                let marked = schemas.values().any(|s| {
                    s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|gvks| gvks.iter().any(|g| g["kind"] == d.kind.as_str()))
                });
                assert!(marked, "{group}/{version} {}: no schema", d.kind);
            }
            // Every reference resolves inside the document.
            let text = doc.to_string();
            for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
                let name = &r[..r.find('"').unwrap()];
                assert!(
                    schemas.contains_key(name),
                    "{group}/{version}: {name} dangling"
                );
            }
        }
    }

    #[test]
    fn a_custom_kind_is_its_crds_schema_and_its_hash_follows_that_schema() {
        let reg = Registry::new();
        reg.set_crd(
            "widgets.example.io",
            crate::registry::defs_from_crd(&widget_crd(json!({"type": "integer"}))),
        );
        let doc = document(&reg, "example.io", "v1");
        let widget = &doc["components"]["schemas"]["io.example.v1.Widget"];
        assert_eq!(
            widget["properties"]["spec"]["properties"]["size"]["type"],
            "integer"
        );
        assert_eq!(
            widget["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            widget["x-kubernetes-group-version-kind"][0]["kind"],
            "Widget"
        );

        let before = hash_of(&reg, "example.io", "v1");
        assert_eq!(before, hash_of(&reg, "example.io", "v1"));
        reg.set_crd(
            "widgets.example.io",
            crate::registry::defs_from_crd(&widget_crd(json!({"type": "string"}))),
        );
        assert_ne!(before, hash_of(&reg, "example.io", "v1"));
    }
}
