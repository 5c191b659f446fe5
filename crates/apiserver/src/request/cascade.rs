//! Garbage collection: what deleting an object takes with it — a CRD's objects, a terminating
//! namespace's contents, and the namespace once empty.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceDef};
use crate::store::{Txn, Write};

/// Writes that follow from deleting an object: a CRD's objects, a namespace's contents.
pub(super) fn cascade(
    txn: &Txn,
    reg: &Registry,
    def: &ResourceDef,
    obj: &Value,
    now: &str,
) -> Vec<Write> {
    let mut out = Vec::new();
    if def.kind == "CustomResourceDefinition" {
        let group = obj["spec"]["group"].as_str().unwrap_or_default();
        let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
        for (k, _) in txn.list(&format!("{group}/{plural}/")) {
            out.push(Write::Delete(k));
        }
    }
    if def.kind == "Namespace" && def.group.is_empty() {
        let ns = obj["metadata"]["name"].as_str().unwrap_or_default();
        for p in namespaced_prefixes(reg, ns) {
            for (k, o) in txn.list(&p) {
                if o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
                {
                    if o["metadata"]["deletionTimestamp"].is_null() {
                        let mut o = (*o).clone();
                        o["metadata"]["deletionTimestamp"] = json!(now);
                        out.push(Write::Put(k, o));
                    }
                } else {
                    out.push(Write::Delete(k));
                }
            }
        }
    }
    out
}

/// The keys a list of writes deletes.
pub(super) fn deleted_keys(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Delete(k) => Some(k.clone()),
            Write::Put(..) => None,
        })
        .collect()
}

/// The storage prefixes of everything namespaced in `ns`.
pub(super) fn namespaced_prefixes(reg: &Registry, ns: &str) -> Vec<String> {
    let mut prefixes: Vec<String> = reg
        .all()
        .iter()
        .filter(|d| d.namespaced)
        .map(|d| format!("{}{ns}/", d.storage_prefix()))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Whether `ns` holds nothing once the keys in `removing` are gone.
pub(super) fn empty_after(txn: &Txn, reg: &Registry, ns: &str, removing: &[String]) -> bool {
    !namespaced_prefixes(reg, ns)
        .iter()
        .flat_map(|p| txn.list(p))
        .any(|(k, _)| !removing.contains(&k))
}

/// If `ns` is terminating and holds nothing more, it can go.
pub(super) fn finish_namespace(
    txn: &Txn,
    reg: &Registry,
    ns: &str,
    removing: &[String],
) -> Option<Write> {
    let key = format!("core/namespaces//{ns}");
    let n = txn.get(&key)?;
    if n["status"]["phase"] != "Terminating" {
        return None;
    }
    empty_after(txn, reg, ns, removing).then_some(Write::Delete(key))
}
