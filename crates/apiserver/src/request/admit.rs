//! The write pipeline every create, update, patch and apply goes through, as kube-apiserver's
//! admission chain: identity checks, system metadata, structure, defaults, the kind's rules,
//! admission plug-ins, generation, and managed fields.

use std::sync::Arc;

use serde_json::{Value, json};

use super::decode::FieldValidation;
use super::state::now;
use super::target::ResourcePath;
use crate::defaults;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Part};
use crate::kinds;
use crate::registry::Schema;
use crate::shape::Shape;
use crate::store::Txn;
use crate::validation;

pub(super) fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

pub(super) fn check_identity(
    t: &ResourcePath,
    obj: &mut Value,
    name_from_url: Option<&str>,
) -> ApiResult<()> {
    let want_av = t.def.api_version();
    if let Some(av) = obj["apiVersion"].as_str() {
        if av != want_av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    if let Some(k) = obj["kind"].as_str() {
        if k != t.def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.def.kind
            )));
        }
    }
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    obj["apiVersion"] = json!(want_av);
    obj["kind"] = json!(t.def.kind);
    if t.def.is_events_v1() {
        *obj = crate::convert::event_to_core(obj);
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if let Some(n) = name_from_url {
        match obj["metadata"]["name"].as_str() {
            None => obj["metadata"]["name"] = json!(n),
            Some(b) if b != n => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({b}) does not match the name on the URL ({n})"
                )));
            }
            _ => {}
        }
    }
    if t.def.namespaced {
        let ns = t.namespace.clone().unwrap_or_default();
        match obj["metadata"]["namespace"].as_str() {
            None => obj["metadata"]["namespace"] = json!(ns),
            Some("") => obj["metadata"]["namespace"] = json!(ns),
            Some(b) if b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.shift_remove("namespace");
    }
    Ok(())
}

pub(super) fn namespace_must_exist(txn: &Txn, t: &ResourcePath) -> ApiResult<()> {
    if let Some(ns) = &t.namespace {
        match txn.get(&format!("core/namespaces//{ns}")) {
            None => return Err(ApiError::not_found("namespaces", "", ns)),
            Some(n) if n["status"]["phase"] == "Terminating" => {
                let mut e = ApiError::bad_request(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ));
                e.code = 403;
                e.reason = "Forbidden";
                return Err(e);
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn strip_meta_status(v: &Value) -> Value {
    let mut o = v.clone();
    if let Some(m) = o.as_object_mut() {
        m.shift_remove("metadata");
        m.shift_remove("status");
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
    }
    o
}

pub(super) fn normalized_for_noop(v: &Value) -> Value {
    let mut o = v.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.shift_remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf {
                if let Some(em) = e.as_object_mut() {
                    em.shift_remove("time");
                }
            }
        }
    }
    o
}

pub(super) struct Admitted {
    pub(super) obj: Value,
    pub(super) warnings: Vec<String>,
    pub(super) noop: bool,
    pub(super) delete: bool,
}

/// The write pipeline every create, update, patch and apply goes through.
#[allow(clippy::too_many_arguments)]
pub(super) fn admit_write(
    txn: &Txn,
    t: &ResourcePath,
    part: Part,
    old: Option<&Value>,
    mut new: Value,
    manager: &str,
    validation_mode: FieldValidation,
    track: bool,
) -> ApiResult<Admitted> {
    let def = &t.def;
    let now = now();
    let name = new["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Which part of the object this write may change.
    match (part, old) {
        (Part::Status, Some(o)) => {
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            let mf = new["metadata"]["managedFields"].clone();
            new = o.clone();
            new["status"] = status;
            if !mf.is_null() {
                new["metadata"]["managedFields"] = mf;
            }
        }
        (Part::Status, None) => return Err(ApiError::not_found(&def.plural, &def.group, &name)),
        (Part::Spec, Some(o)) => match o.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        },
        (Part::Spec, None) => {
            if !matches!(def.kind.as_str(), "Node" | "Namespace") {
                if let Some(m) = new.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        }
        (Part::Whole, _) => {}
    }

    // System metadata.
    {
        let meta = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        match old {
            Some(o) => {
                for k in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    match o["metadata"].get(k) {
                        Some(v) => {
                            meta.insert(k.into(), v.clone());
                        }
                        None => {
                            meta.shift_remove(k);
                        }
                    }
                }
            }
            None => {
                meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                meta.insert("creationTimestamp".into(), json!(now));
                meta.shift_remove("deletionTimestamp");
                meta.shift_remove("deletionGracePeriodSeconds");
                meta.shift_remove("generation");
            }
        }
        meta.shift_remove("resourceVersion");
        meta.shift_remove("selfLink");
    }

    // Structure: types and unknown fields.
    let findings = match &def.schema {
        Schema::Builtin => def.builtin_structure(&new),
        Schema::Crd(schema) => validation::structure_custom(schema, &mut new),
    };
    if !findings.unknown.is_empty() && validation_mode == FieldValidation::Strict {
        return Err(ApiError::strict_decoding(&findings.unknown));
    }
    if !findings.causes.is_empty() {
        return Err(ApiError::invalid(&def.kind, &name, findings.causes));
    }
    let mut warnings = Vec::new();
    if !findings.unknown.is_empty() {
        match validation_mode {
            FieldValidation::Strict => return Err(ApiError::strict_decoding(&findings.unknown)),
            FieldValidation::Warn => warnings.extend(
                findings
                    .unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}")),
            ),
            FieldValidation::Ignore => {}
        }
        validation::prune(&mut new, &findings.unknown);
    }

    // Defaults and allocation.
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Service") if part != Part::Status => {
            let key = t.def.key(t.namespace.as_deref(), &name);
            let others: Vec<Arc<Value>> = txn
                .list(&def.storage_prefix())
                .into_iter()
                .filter(|(k, _)| *k != key)
                .map(|(_, o)| o)
                .collect();
            defaults::service(&mut new, old, &others)?;
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") if part != Part::Status => {
            defaults::crd_status(&mut new, &now)
        }
        _ => {}
    }
    def.builtin_defaults(&mut new);

    // Documented rules.
    let mut causes = Vec::new();
    validation::metadata(&def.kind, &new, &mut causes);
    def.builtin_rules(&new, &mut causes);
    let checks: Vec<_> = t
        .admission
        .iter()
        .filter(|a| a.applies_to(&def.group, &def.kind))
        .collect();
    if causes.is_empty() && part != Part::Status && !checks.is_empty() {
        let key = def.key(t.namespace.as_deref(), &name);
        let others: Vec<Arc<Value>> = txn
            .list(&def.storage_prefix())
            .into_iter()
            .filter(|(k, _)| *k != key)
            .map(|(_, o)| o)
            .collect();
        for a in checks {
            causes.extend(a.validate(&def.group, &def.kind, &new, &others));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&def.kind, &name, causes));
    }

    // generation moves when anything outside metadata and status changes.
    let has_spec = match def.schema {
        Schema::Builtin => kinds::find(&def.group, &def.kind).is_none_or(|k| k.spec),
        Schema::Crd(_) => true,
    };
    if has_spec {
        let generation = match old {
            None => 1,
            Some(o) => {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                if strip_meta_status(o) != strip_meta_status(&new) {
                    g + 1
                } else {
                    g
                }
            }
        };
        new["metadata"]["generation"] = json!(generation);
    }

    if track {
        let shape = Shape::new(def);
        fields::track_update(old, &mut new, &shape, part, manager, &now);
    }

    let delete = new["metadata"]["deletionTimestamp"].is_string()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    let noop = old.is_some_and(|o| normalized_for_noop(o) == normalized_for_noop(&new));
    Ok(Admitted {
        obj: new,
        warnings,
        noop,
        delete,
    })
}
