//! The OpenAPI v3 documents `kubectl` reads before `apply`: one path per resource, whose PATCH
//! operation names its group-version-kind and declares `fieldValidation`, so kubectl leaves
//! validation to this server (which then answers unknown fields with the field named).
//!
//! Component schemas are deliberately left out: with none, kubectl computes strategic merge
//! patches from its compiled-in types (built-in kinds) or JSON merge patches (custom kinds),
//! exactly as it does against kube-apiserver.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceDef};

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

fn hash_of(reg: &Registry, group: &str, version: &str) -> String {
    let doc = document(reg, group, version).to_string();
    let h = doc.bytes().fold(1469598103934665603u64, |h, b| {
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
        "components": {"schemas": {}},
    })
}
