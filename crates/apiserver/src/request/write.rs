//! Writes: create, update, patch (merge, JSON, strategic, server-side apply), committed with
//! what follows from them (a CRD's kinds served or withdrawn).

use std::sync::Arc;

use http::StatusCode;
use hyper::Response;
use serde_json::{Value, json};

use super::admit::{Admitted, admit_write, check_identity, generate_name, namespace_must_exist};
use super::cascade::{cascade, deleted_keys, finish_namespace};
use super::decode::{Ctx, FieldValidation};
use super::read::present;
use super::response::{Body, json_response};
use super::state::{State, now};
use super::target::ResourcePath;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, ApplyOutcome, Part};
use crate::patch;
use crate::registry::{ResourceDef, Schema, defs_from_crd};
use crate::shape::Shape;
use crate::store::{Txn, Write};
use crate::validation;

/// After a CRD changes, serve (or stop serving) its kinds.
pub(super) fn crd_side_effects(state: &State, def: &ResourceDef, obj: &Value, deleted: bool) {
    if def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition" {
        if let Some(name) = obj["metadata"]["name"].as_str() {
            let defs = if deleted {
                Vec::new()
            } else {
                defs_from_crd(obj)
            };
            state.registry.set_crd(name, defs);
        }
    }
}
pub(super) async fn commit_one(
    state: &State,
    txn: &mut Txn<'_>,
    t: &ResourcePath,
    key: String,
    p: Admitted,
) -> ApiResult<Value> {
    let now = now();
    let mut writes = Vec::new();
    let deleted = p.delete;
    if deleted {
        writes.extend(cascade(txn, &state.registry, &t.def, &p.obj, &now));
        writes.push(Write::Delete(key.clone()));
        if let Some(ns) = p.obj["metadata"]["namespace"].as_str() {
            let removing = deleted_keys(&writes);
            if let Some(w) = finish_namespace(txn, &state.registry, ns, &removing) {
                writes.push(w);
            }
        }
    } else {
        writes.push(Write::Put(key.clone(), p.obj.clone()));
    }
    let stored = txn.commit(writes)?;
    let obj = stored
        .into_iter()
        .find(|o| {
            o["metadata"]["name"] == p.obj["metadata"]["name"]
                && o["kind"] == p.obj["kind"]
                && o["metadata"]["namespace"] == p.obj["metadata"]["namespace"]
        })
        .map(|o| (*o).clone())
        .unwrap_or(p.obj);
    crd_side_effects(state, &t.def, &obj, deleted);
    Ok(obj)
}

pub(super) async fn create(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
) -> ApiResult<Response<Body>> {
    let mut obj = ctx.body_value()?;
    check_identity(t, &mut obj, None)?;
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        if let Some(g) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| !g.is_empty())
        {
            obj["metadata"]["name"] = json!(generate_name(g));
        }
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut txn = state.store.txn().await;
    namespace_must_exist(&txn, t)?;
    let key = t.def.key(t.namespace.as_deref(), &name);
    if !name.is_empty() && txn.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.def.plural, &t.def.group, &name));
    }
    let manager = ctx.manager("create");
    let part = if t.def.has_status {
        Part::Spec
    } else {
        Part::Whole
    };
    let p = admit_write(&txn, t, part, None, obj, &manager, ctx.validation(), true)?;
    let warnings = p.warnings.clone();
    if ctx.dry_run() {
        return Ok(json_response(
            StatusCode::CREATED,
            &present(&t.def, &p.obj),
            &warnings,
        ));
    }
    let obj = commit_one(state, &mut txn, t, key, p).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &present(&t.def, &obj),
        &warnings,
    ))
}

pub(super) fn check_precondition(
    t: &ResourcePath,
    name: &str,
    body: &Value,
    old: &Value,
) -> ApiResult<()> {
    if let Some(rv) = body["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    if let Some(uid) = body["metadata"]["uid"].as_str().filter(|s| !s.is_empty()) {
        if Some(uid) != old["metadata"]["uid"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    Ok(())
}

pub(super) async fn update(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
    part: Part,
) -> ApiResult<Response<Body>> {
    let mut obj = ctx.body_value()?;
    check_identity(t, &mut obj, Some(name))?;
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn.get(&key);
    let manager = ctx.manager("update");
    let create_on_update =
        matches!(t.def.kind.as_str(), "Endpoints" | "Lease" | "Event") && part != Part::Status;
    let old = match old {
        Some(o) => {
            check_precondition(t, name, &obj, &o)?;
            Some(o)
        }
        None if create_on_update => {
            namespace_must_exist(&txn, t)?;
            None
        }
        None => return Err(ApiError::not_found(&t.def.plural, &t.def.group, name)),
    };
    let p = admit_write(
        &txn,
        t,
        part,
        old.as_deref(),
        obj,
        &manager,
        ctx.validation(),
        true,
    )?;
    finish_write(state, ctx, &mut txn, t, key, p, old.is_none()).await
}

pub(super) async fn finish_write(
    state: &Arc<State>,
    ctx: &Ctx,
    txn: &mut Txn<'_>,
    t: &ResourcePath,
    key: String,
    p: Admitted,
    created: bool,
) -> ApiResult<Response<Body>> {
    let (status, obj, warnings) = commit_write(state, ctx, txn, t, key, p, created).await?;
    Ok(json_response(status, &obj, &warnings))
}

/// Commit an admitted write (nothing for a dry run or a no-op) and say what the client sees:
/// the status code, the object as its version serves it, and warnings.
pub(super) async fn commit_write(
    state: &Arc<State>,
    ctx: &Ctx,
    txn: &mut Txn<'_>,
    t: &ResourcePath,
    key: String,
    p: Admitted,
    created: bool,
) -> ApiResult<(StatusCode, Value, Vec<String>)> {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let warnings = p.warnings.clone();
    if ctx.dry_run() {
        // Nothing is stored, so the object keeps the version it has (kube-apiserver's dry run
        // answers with the current resourceVersion): `kubectl diff` shows no version change.
        let mut obj = p.obj;
        if let Some(rv) = txn
            .get(&key)
            .and_then(|o| o["metadata"]["resourceVersion"].as_str().map(str::to_owned))
        {
            obj["metadata"]["resourceVersion"] = Value::String(rv);
        }
        return Ok((status, present(&t.def, &obj), warnings));
    }
    if p.noop {
        let current = txn.get(&key).map(|o| (*o).clone()).unwrap_or(p.obj);
        return Ok((status, present(&t.def, &current), warnings));
    }
    let obj = commit_one(state, txn, t, key, p).await?;
    Ok((status, present(&t.def, &obj), warnings))
}

pub(super) async fn patch_object(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
    part: Part,
) -> ApiResult<Response<Body>> {
    let ct = ctx.content_type();
    let body = ctx.body_value()?;
    let shape = Shape::new(&t.def);
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn.get(&key);

    if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+json" {
        let manager = ctx
            .q("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::bad_request("PATCH /apply requires fieldManager to be set"))?;
        let force = ctx.q("force") == Some("true");
        let mut applied = body;
        check_identity(t, &mut applied, Some(name))?;
        if let Some(o) = &old {
            check_precondition(t, name, &applied, o)?;
        } else {
            if part == Part::Status {
                return Err(ApiError::not_found(&t.def.plural, &t.def.group, name));
            }
            namespace_must_exist(&txn, t)?;
        }
        let base = match &old {
            Some(o) => (**o).clone(),
            None => {
                let mut b = json!({"apiVersion": t.def.api_version(), "kind": t.def.kind, "metadata": {"name": name}});
                if let Some(ns) = &t.namespace {
                    b["metadata"]["namespace"] = json!(ns);
                }
                b
            }
        };
        // Validate the applied configuration itself: unknown fields there are the user's.
        let mut probe = applied.clone();
        let findings = match &t.def.schema {
            Schema::Builtin => t.def.builtin_structure(&probe),
            Schema::Crd(s) => validation::structure_custom(s, &mut probe),
        };
        if !findings.unknown.is_empty() && ctx.validation() == FieldValidation::Strict {
            return Err(ApiError::strict_decoding(&findings.unknown));
        }
        if !findings.unknown.is_empty() {
            validation::prune(&mut applied, &findings.unknown);
        }
        let merged = match fields::apply(&base, &applied, &shape, part, manager, force, &now()) {
            ApplyOutcome::Applied(m) => m,
            ApplyOutcome::Conflicts(c) => {
                return Err(ApiError::apply_conflict(&t.def.plural, name, c));
            }
        };
        let mut p = admit_write(
            &txn,
            t,
            part,
            old.as_deref(),
            merged,
            manager,
            ctx.validation(),
            false,
        )?;
        p.warnings.extend(
            findings
                .unknown
                .iter()
                .map(|f| format!("unknown field {f:?}")),
        );
        return finish_write(state, ctx, &mut txn, t, key, p, old.is_none()).await;
    }

    let old = old.ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
    // Patches address the object as the requested version serves it.
    let mut obj = present(&t.def, &old);
    match ct.as_str() {
        "application/merge-patch+json" => patch::merge_patch(&mut obj, &body),
        "application/json-patch+json" => patch::json_patch(&mut obj, &body)?,
        "application/strategic-merge-patch+json" => {
            if shape.is_custom() {
                return Err(ApiError::unsupported_media(
                    "application/strategic-merge-patch+json (strategic merge patch is not supported for custom resources)",
                ));
            }
            patch::strategic_merge_patch(&mut obj, &body, &shape)?;
        }
        other => return Err(ApiError::unsupported_media(other)),
    }
    check_precondition(t, name, &body, &old)?;
    check_identity(t, &mut obj, Some(name))?;
    let manager = ctx.manager("patch");
    let p = admit_write(
        &txn,
        t,
        part,
        Some(&old),
        obj,
        &manager,
        ctx.validation(),
        true,
    )?;
    finish_write(state, ctx, &mut txn, t, key, p, false).await
}
