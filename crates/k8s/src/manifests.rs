//! Kubernetes YAML in, server-side apply out.
//!
//! [`load`] reads files and directories (recursively; `.yaml`, `.yml`, `.json`), splits
//! multi-document files, and parses each document on its own, so one broken document does not
//! hide the others. [`apply`] server-side applies the good ones — Namespaces and CRDs first —
//! and returns every failure, each naming file, document, kind/name and the field at fault.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

/// One parsed YAML document.
#[derive(Debug, Clone)]
pub struct Document {
    /// File it came from.
    pub file: PathBuf,
    /// 1-based position in the file.
    pub index: usize,
    /// First line of the document in the file (1-based).
    pub line: usize,
    /// The object.
    pub object: Value,
}

impl Document {
    /// `Kind namespace/name` for messages.
    pub fn describe(&self) -> String {
        describe(&self.object)
    }
}

fn describe(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("<no kind>");
    let name = o["metadata"]["name"].as_str().unwrap_or("<no name>");
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A document that could not be loaded or applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file.
    pub file: PathBuf,
    /// 1-based document index in the file (0 when the file itself failed).
    pub index: usize,
    /// `Kind namespace/name`, when the document got that far.
    pub object: Option<String>,
    /// What is wrong, naming the field where there is one.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.index > 0 {
            write!(f, ": document {}", self.index)?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every manifest file under the given paths, sorted for a stable order.
pub fn files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ManifestError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut entries: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    entries.sort();
                    for e in entries {
                        if e.is_dir() {
                            walk(&e, out, errors);
                        } else if matches!(
                            e.extension().and_then(|x| x.to_str()),
                            Some("yaml" | "yml" | "json")
                        ) {
                            out.push(e);
                        }
                    }
                }
                Err(e) => errors.push(ManifestError {
                    file: p.into(),
                    index: 0,
                    object: None,
                    message: format!("cannot read directory: {e}"),
                }),
            },
            Ok(_) => out.push(p.into()),
            Err(e) => errors.push(ManifestError {
                file: p.into(),
                index: 0,
                object: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    for p in paths {
        walk(p, &mut out, &mut errors);
    }
    (out, errors)
}

/// Split YAML text into documents at `---` lines: (first line, text).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---"
            || line.starts_with("--- ")
            || line.starts_with("---\t")
            || line.starts_with("---#");
        if is_sep {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        if line.trim() == "..." {
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs
}

/// Parse the documents of one file's text.
pub fn parse(file: &Path, text: &str) -> (Vec<Document>, Vec<ManifestError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut index = 0;
    for (line, chunk) in split_documents(text) {
        let meaningful = chunk.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if !meaningful {
            continue;
        }
        index += 1;
        let err = |message: String, object: Option<String>| ManifestError {
            file: file.into(),
            index,
            object,
            message,
        };
        let value: Value = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&chunk) {
            Ok(v) => match serde_json::to_value(v) {
                Ok(j) => j,
                Err(e) => {
                    errors.push(err(format!("not representable as JSON: {e}"), None));
                    continue;
                }
            },
            Err(e) => {
                let msg = match e.location() {
                    Some(loc) => format!(
                        "invalid YAML at line {}, column {}: {e}",
                        line + loc.line() - 1,
                        loc.column()
                    ),
                    None => format!("invalid YAML: {e}"),
                };
                errors.push(err(msg, None));
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        // A v1 List holds objects of its own.
        if value["kind"] == "List" && value["items"].is_array() {
            for item in value["items"].as_array().into_iter().flatten() {
                match check_shape(item) {
                    Ok(()) => docs.push(Document {
                        file: file.into(),
                        index,
                        line,
                        object: item.clone(),
                    }),
                    Err(m) => errors.push(err(m, Some(describe(item)))),
                }
            }
            continue;
        }
        match check_shape(&value) {
            Ok(()) => docs.push(Document {
                file: file.into(),
                index,
                line,
                object: value,
            }),
            Err(m) => errors.push(err(m, Some(describe(&value)))),
        }
    }
    (docs, errors)
}

fn check_shape(v: &Value) -> Result<(), String> {
    if !v.is_object() {
        return Err("a Kubernetes object must be a mapping".into());
    }
    match v["apiVersion"].as_str() {
        None | Some("") => return Err("apiVersion: Required value".into()),
        _ => {}
    }
    match v["kind"].as_str() {
        None | Some("") => return Err("kind: Required value".into()),
        _ => {}
    }
    match v["metadata"]["name"].as_str() {
        None | Some("") => return Err("metadata.name: Required value".into()),
        _ => {}
    }
    Ok(())
}

/// Read and parse everything under `paths`.
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<ManifestError>) {
    let (files, mut errors) = files(paths);
    let mut docs = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let (d, e) = parse(&f, &text);
                docs.extend(d);
                errors.extend(e);
            }
            Err(e) => errors.push(ManifestError {
                file: f,
                index: 0,
                object: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (docs, errors)
}

fn rank(o: &Value) -> u8 {
    match (o["apiVersion"].as_str(), o["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => 0,
        (Some(av), Some("CustomResourceDefinition")) if av.starts_with("apiextensions.k8s.io/") => {
            1
        }
        _ => 2,
    }
}

/// The message a user should see for a failed API call: the server's Status message (which
/// names the field), or the client's error.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// `Kind namespace/name` of each object applied.
    pub applied: Vec<String>,
    /// Every document that failed.
    pub errors: Vec<ManifestError>,
}

/// Server-side apply every document with `field_manager`, Namespaces and CRDs first.
/// Failures are collected, never fatal: the good documents still apply.
pub async fn apply(client: &kube::Client, docs: &[Document], field_manager: &str) -> ApplyReport {
    let mut report = ApplyReport::default();
    let mut ordered: Vec<&Document> = docs.iter().collect();
    ordered.sort_by_key(|d| rank(&d.object));
    let mut cache: HashMap<(String, String), Result<(ApiResource, ApiCapabilities), String>> =
        HashMap::new();
    let mut crds_applied = false;
    let mut params = PatchParams::apply(field_manager).force();
    params.field_validation = Some(ValidationDirective::Strict);
    for d in ordered {
        if crds_applied && rank(&d.object) == 2 {
            // New kinds are served once their CRDs are established; look them up afresh.
            cache.retain(|_, v| v.is_ok());
            crds_applied = false;
        }
        let err = |message: String| ManifestError {
            file: d.file.clone(),
            index: d.index,
            object: Some(d.describe()),
            message,
        };
        let av = d.object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = d.object["kind"].as_str().unwrap_or_default().to_string();
        let key = (av.clone(), kind.clone());
        if !cache.contains_key(&key) || cache.get(&key).is_some_and(|r| r.is_err()) {
            let (group, version) = match av.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), av.clone()),
            };
            let gvk = GroupVersionKind::gvk(&group, &version, &kind);
            let found = resolve_kind(client, &gvk).await;
            cache.insert(key.clone(), found);
        }
        let (ar, caps) = match cache.get(&key).expect("just inserted") {
            Ok(x) => x.clone(),
            Err(m) => {
                report.errors.push(err(m.clone()));
                continue;
            }
        };
        let name = d.object["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = d.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        match api.patch(name, &params, &Patch::Apply(&d.object)).await {
            Ok(_) => {
                tracing::info!(object = %d.describe(), file = %d.file.display(), "applied");
                report.applied.push(d.describe());
                if rank(&d.object) == 1 {
                    crds_applied = true;
                    wait_established(client, name).await;
                }
            }
            Err(e) => report.errors.push(err(api_message(&e))),
        }
    }
    report
}

/// The resource and scope that serve `gvk`, or a message saying it is not served.
pub async fn resolve_kind(
    client: &kube::Client,
    gvk: &GroupVersionKind,
) -> Result<(ApiResource, ApiCapabilities), String> {
    match kube::discovery::pinned_kind(client, gvk).await {
        Ok(x) => Ok(x),
        Err(_) => {
            let av = if gvk.group.is_empty() {
                gvk.version.clone()
            } else {
                format!("{}/{}", gvk.group, gvk.version)
            };
            Err(format!(
                "apiVersion {av:?} with kind {:?} is not served by the API server (no such kind, or wrong apiVersion)",
                gvk.kind
            ))
        }
    }
}

/// Wait (30 s at most) until CRD `name` is established, so its kind can be used.
pub async fn wait_established(client: &kube::Client, name: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let cond = kube::runtime::conditions::is_crd_established();
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(api, name, cond),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_document_is_named_and_good_ones_survive() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: good}
---
# a comment only
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: [broken
---
kind: Service
metadata: {name: noversion}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: also-good}
";
        let (docs, errors) = parse(Path::new("x.yaml"), text);
        let names: Vec<String> = docs.iter().map(Document::describe).collect();
        assert_eq!(names, ["ConfigMap good", "ConfigMap also-good"]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].index, 2);
        assert!(
            errors[0].message.contains("invalid YAML at line"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[1].index, 3);
        assert_eq!(errors[1].object.as_deref(), Some("Service noversion"));
        assert!(
            errors[1].message.starts_with("apiVersion: Required"),
            "{}",
            errors[1]
        );
        assert_eq!(docs[1].index, 4);
    }

    #[test]
    fn lists_expand_into_their_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let (docs, errors) = parse(Path::new("l.yaml"), text);
        assert!(errors.is_empty());
        assert_eq!(docs.len(), 2);
    }
}
