//! What a container is given before it starts: its ServiceAccount token (a TokenRequest,
//! mounted where kube-rs looks), its environment (values, the downward API, ConfigMap and
//! Secret keys) and its volumes.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{Config, sandbox};

pub(super) async fn service_account(
    client: &Client,
    cfg: &Config,
    p: &Pod,
    dir: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let ns = p.namespace().unwrap_or_default();
    let sa = p
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3607}});
    let url = format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token");
    let http = http::Request::post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&req)?)?;
    let answer: serde_json::Value = client.request(http).await.with_context(|| {
        format!("serviceaccount {sa:?} in namespace {ns:?}: requesting a token")
    })?;
    let token = answer["status"]["token"]
        .as_str()
        .context("the TokenRequest answer holds no token")?;
    let sa_dir = dir.join("serviceaccount");
    std::fs::create_dir_all(&sa_dir)?;
    std::fs::write(sa_dir.join("token"), token)?;
    std::fs::write(sa_dir.join("namespace"), &ns)?;
    if let Some(ca) = &cfg.ca_file {
        std::fs::copy(ca, sa_dir.join("ca.crt"))
            .with_context(|| format!("copying {}", ca.display()))?;
    }
    Ok(sa_dir)
}

pub(super) async fn environment(
    client: &Client,
    cfg: &Config,
    p: &Pod,
    c: &Container,
    ip: &str,
) -> Result<Vec<(String, String)>, String> {
    let ns = p.namespace().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![("HOSTNAME".into(), p.name_any())];
    if let Some((host, port)) = &cfg.api {
        env.push(("KUBERNETES_SERVICE_HOST".into(), host.clone()));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.to_string()));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match cms.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(cm) => env.extend(
                    cm.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(s) => env.extend(s.data.unwrap_or_default().into_iter().map(|(k, v)| {
                    (
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v.0).into_owned(),
                    )
                })),
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field(p, &f.field_path, ip, &cfg.node_ip).ok_or_else(|| {
                        format!("env {:?}: unsupported fieldPath {:?}", e.name, f.field_path)
                    })?
                } else if let Some(k) = &from.config_map_key_ref {
                    let cm = cms.get_opt(&k.name).await.map_err(|e| e.to_string())?;
                    match cm.and_then(|cm| cm.data.and_then(|d| d.get(&k.key).cloned())) {
                        Some(v) => v,
                        None if k.optional == Some(true) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                k.key, k.name
                            ));
                        }
                    }
                } else if let Some(k) = &from.secret_key_ref {
                    let s = secrets.get_opt(&k.name).await.map_err(|e| e.to_string())?;
                    match s.and_then(|s| s.data.and_then(|d| d.get(&k.key).cloned())) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if k.optional == Some(true) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                k.key, k.name
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {:?}: only fieldRef, configMapKeyRef and secretKeyRef are supported in the lab",
                        e.name
                    ));
                }
            }
        };
        env.push((e.name.clone(), value));
    }
    Ok(env)
}

/// The volumes container `c` mounts, as directories of the node under the pod's directory:
/// `emptyDir` (empty, the pod's own), `configMap` and `secret` (their keys as files, or the
/// `items` asked for), `hostPath` (the node's path itself); `subPath` picks a part. Other
/// volume types say they are not supported in the lab.
pub(super) async fn volumes(
    client: &Client,
    p: &Pod,
    c: &Container,
    dir: &std::path::Path,
) -> Result<Vec<sandbox::Mount>, String> {
    let ns = p.namespace().unwrap_or_default();
    let declared = p
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = declared
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| format!("volumeMount {:?}: no volume of that name", m.name))?;
        let own = dir.join("volumes").join(&v.name);
        let files = |data: Vec<(String, Vec<u8>)>,
                     items: Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>|
         -> Result<(), String> {
            std::fs::create_dir_all(&own).map_err(|e| e.to_string())?;
            for (k, bytes) in data {
                let path = match &items {
                    None => Some(k.clone()),
                    Some(list) => list.iter().find(|i| i.key == k).map(|i| i.path.clone()),
                };
                if let Some(path) = path.filter(|p| !p.contains("..")) {
                    let file = own.join(path);
                    if let Some(parent) = file.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        };
        let source = if v.empty_dir.is_some() {
            std::fs::create_dir_all(&own).map_err(|e| e.to_string())?;
            own.clone()
        } else if let Some(cm) = &v.config_map {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&cm.name).await.map_err(|e| e.to_string())? {
                Some(o) => {
                    let mut data: Vec<(String, Vec<u8>)> = o
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(
                        o.binary_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0)),
                    );
                    files(data, cm.items.clone())?;
                }
                None if cm.optional == Some(true) => files(vec![], None)?,
                None => return Err(format!("configmap \"{}\" not found", cm.name)),
            }
            own.clone()
        } else if let Some(sec) = &v.secret {
            let name = sec.secret_name.clone().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                Some(o) => files(
                    o.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                    sec.items.clone(),
                )?,
                None if sec.optional == Some(true) => files(vec![], None)?,
                None => return Err(format!("secret \"{name}\" not found")),
            }
            own.clone()
        } else if let Some(h) = &v.host_path {
            PathBuf::from(&h.path)
        } else {
            return Err(format!(
                "volume {:?}: only emptyDir, configMap, secret and hostPath volumes are supported in the lab",
                v.name
            ));
        };
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if !sub.contains("..") => source.join(sub),
            Some(sub) => {
                return Err(format!(
                    "volumeMount {:?}: subPath {sub:?} may not contain '..'",
                    m.name
                ));
            }
            None => source,
        };
        out.push(sandbox::Mount {
            source,
            target: m.mount_path.clone(),
        });
    }
    Ok(out)
}

/// A downward-API field of pod `p`.
fn field(p: &Pod, path: &str, ip: &str, host_ip: &str) -> Option<String> {
    let spec = p.spec.clone().unwrap_or_default();
    Some(match path {
        "metadata.name" => p.name_any(),
        "metadata.namespace" => p.namespace().unwrap_or_default(),
        "metadata.uid" => p.metadata.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .service_account_name
            .unwrap_or_else(|| "default".into()),
        "status.podIP" => ip.into(),
        "status.hostIP" => host_ip.into(),
        _ => {
            let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
            p.labels().get(key).cloned().unwrap_or_default()
        }
    })
}
