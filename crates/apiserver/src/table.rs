//! Server-side `Table` responses: the columns `kubectl get` prints, computed here as
//! kube-apiserver does (EXTERNAL-IP, PORT(S), AGE, a CRD's printer columns…).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::ResourceDef;

/// Which object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// None.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parse the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// kubectl's HumanDuration.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(ts: &Value) -> String {
    match ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn service_row(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or("<none>").to_string();
    let ingress: Vec<String> = o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or(i["hostname"].as_str())
                .map(str::to_string)
        })
        .collect();
    let mut external: Vec<String> = strs(&spec["externalIPs"]);
    let external_ip = match ty {
        "LoadBalancer" => {
            external.extend(ingress);
            if external.is_empty() {
                "<pending>".into()
            } else {
                external.join(",")
            }
        }
        "ExternalName" => spec["externalName"]
            .as_str()
            .unwrap_or("<none>")
            .to_string(),
        _ => or_none(external.join(",")),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                _ => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector = spec["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        json!(ty),
        json!(cluster_ip),
        json!(external_ip),
        json!(or_none(ports.join(","))),
        json!(age(&o["metadata"]["creationTimestamp"])),
        json!(or_none(selector)),
    ]
}

fn node_row(o: &Value) -> Vec<Value> {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    let addr = |t: &str| {
        o["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == t)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        json!(status),
        json!(or_none(roles.join(","))),
        json!(age(&o["metadata"]["creationTimestamp"])),
        json!(info["kubeletVersion"].as_str().unwrap_or("")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info["osImage"].as_str().unwrap_or("<unknown>")),
        json!(info["kernelVersion"].as_str().unwrap_or("<unknown>")),
    ]
}

fn ingress_row(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> = o["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["host"].as_str().unwrap_or("*").to_string())
        .collect();
    let addrs: Vec<String> = o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or(i["hostname"].as_str())
                .map(str::to_string)
        })
        .collect();
    let ports = if o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>")),
        json!(or_none(hosts.join(","))),
        json!(addrs.join(",")),
        json!(ports),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

fn endpoints_row(o: &Value) -> Vec<Value> {
    let mut eps = Vec::new();
    for s in o["subsets"].as_array().into_iter().flatten() {
        for a in s["addresses"].as_array().into_iter().flatten() {
            for p in s["ports"].as_array().into_iter().flatten() {
                eps.push(format!(
                    "{}:{}",
                    a["ip"].as_str().unwrap_or_default(),
                    p["port"]
                ));
            }
        }
    }
    let shown = if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        eps.join(",")
    };
    vec![
        json!(or_none(shown)),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

fn slice_row(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["port"].to_string())
        .collect();
    let eps: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| strs(&e["addresses"]))
        .collect();
    let shown = if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        eps.join(",")
    };
    vec![
        json!(o["addressType"].as_str().unwrap_or_default()),
        json!(or_none(ports.join(","))),
        json!(or_none(shown)),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

fn event_row(o: &Value) -> Vec<Value> {
    let last = if o["lastTimestamp"].is_string() {
        &o["lastTimestamp"]
    } else {
        &o["eventTime"]
    };
    let inv = &o["involvedObject"];
    vec![
        json!(age(last)),
        json!(o["type"].as_str().unwrap_or_default()),
        json!(o["reason"].as_str().unwrap_or_default()),
        json!(format!(
            "{}/{}",
            inv["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            inv["name"].as_str().unwrap_or_default()
        )),
        json!(o["message"].as_str().unwrap_or_default()),
    ]
}

/// Evaluate the simple JSONPath of a printer column (`.status.assigned`, `.spec.items[0].x`).
pub fn json_path<'v>(o: &'v Value, path: &str) -> &'v Value {
    let mut v = o;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (name, idx) = match part.find('[') {
            Some(i) => (
                &part[..i],
                part[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (part, None),
        };
        v = &v[name];
        if let Some(i) = idx {
            v = &v[i];
        }
    }
    v
}

/// Computes a row's cells (after NAME) from an object.
type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

fn columns_and_cells(def: &ResourceDef) -> (Vec<Value>, Cells) {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let creation = |o: &Value| json!(age(&o["metadata"]["creationTimestamp"]));
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Service") => (
            vec![
                name,
                col("Type", "string", 0, ""),
                col("Cluster-IP", "string", 0, ""),
                col("External-IP", "string", 0, ""),
                col("Port(s)", "string", 0, ""),
                age_col,
                col("Selector", "string", 1, ""),
            ],
            Box::new(service_row),
        ),
        ("", "Node") => (
            vec![
                name,
                col("Status", "string", 0, ""),
                col("Roles", "string", 0, ""),
                age_col,
                col("Version", "string", 0, ""),
                col("Internal-IP", "string", 1, ""),
                col("External-IP", "string", 1, ""),
                col("OS-Image", "string", 1, ""),
                col("Kernel-Version", "string", 1, ""),
            ],
            Box::new(node_row),
        ),
        ("", "Namespace") => (
            vec![name, col("Status", "string", 0, ""), age_col],
            Box::new(move |o: &Value| {
                vec![
                    json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                    creation(o),
                ]
            }),
        ),
        ("", "Endpoints") => (
            vec![name, col("Endpoints", "string", 0, ""), age_col],
            Box::new(endpoints_row),
        ),
        ("", "Secret") => (
            vec![
                name,
                col("Type", "string", 0, ""),
                col("Data", "string", 0, ""),
                age_col,
            ],
            Box::new(move |o: &Value| {
                vec![
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(o["data"].as_object().map_or(0, |m| m.len())),
                    creation(o),
                ]
            }),
        ),
        ("", "ConfigMap") => (
            vec![name, col("Data", "string", 0, ""), age_col],
            Box::new(move |o: &Value| {
                let n = o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len());
                vec![json!(n), creation(o)]
            }),
        ),
        ("", "Event") => (
            vec![
                col("Last Seen", "string", 0, ""),
                col("Type", "string", 0, ""),
                col("Reason", "string", 0, ""),
                col("Object", "string", 0, ""),
                col("Message", "string", 0, ""),
                col("Name", "string", 1, ""),
            ],
            Box::new(|o: &Value| {
                let mut r = event_row(o);
                r.push(json!(o["metadata"]["name"].as_str().unwrap_or_default()));
                r
            }),
        ),
        ("discovery.k8s.io", "EndpointSlice") => (
            vec![
                name,
                col("AddressType", "string", 0, ""),
                col("Ports", "string", 0, ""),
                col("Endpoints", "string", 0, ""),
                age_col,
            ],
            Box::new(slice_row),
        ),
        ("networking.k8s.io", "Ingress") => (
            vec![
                name,
                col("Class", "string", 0, ""),
                col("Hosts", "string", 0, ""),
                col("Address", "string", 0, ""),
                col("Ports", "string", 0, ""),
                age_col,
            ],
            Box::new(ingress_row),
        ),
        ("networking.k8s.io", "IngressClass") => (
            vec![
                name,
                col("Controller", "string", 0, ""),
                col("Parameters", "string", 0, ""),
                age_col,
            ],
            Box::new(move |o: &Value| {
                let p = &o["spec"]["parameters"];
                let params = if p.is_object() {
                    format!(
                        "{}/{}",
                        p["kind"].as_str().unwrap_or_default(),
                        p["name"].as_str().unwrap_or_default()
                    )
                } else {
                    "<none>".into()
                };
                vec![
                    json!(o["spec"]["controller"].as_str().unwrap_or_default()),
                    json!(params),
                    creation(o),
                ]
            }),
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![name, col("Holder", "string", 0, ""), age_col],
            Box::new(move |o: &Value| {
                vec![
                    json!(o["spec"]["holderIdentity"].as_str().unwrap_or_default()),
                    creation(o),
                ]
            }),
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => (
            vec![name, col("Created At", "date", 0, "")],
            Box::new(|o: &Value| vec![o["metadata"]["creationTimestamp"].clone()]),
        ),
        _ if !def.printer_columns.is_empty() => {
            let mut cols = vec![name];
            let pcs = def.printer_columns.clone();
            for pc in &pcs {
                cols.push(col(&pc.name, &pc.type_, pc.priority, &pc.description));
            }
            let has_age = pcs.iter().any(|p| p.name.eq_ignore_ascii_case("age"));
            if !has_age {
                cols.push(age_col);
            }
            (
                cols,
                Box::new(move |o: &Value| {
                    let mut row: Vec<Value> = pcs
                        .iter()
                        .map(|pc| {
                            let v = json_path(o, &pc.json_path);
                            if pc.type_ == "date" {
                                json!(age(v))
                            } else if v.is_null() {
                                json!("")
                            } else if v.is_array() || v.is_object() {
                                // As kube-apiserver prints them: JSON.
                                json!(v.to_string())
                            } else {
                                v.clone()
                            }
                        })
                        .collect();
                    if !has_age {
                        row.push(creation(o));
                    }
                    row
                }),
            )
        }
        _ => (
            vec![name, age_col],
            Box::new(move |o: &Value| vec![creation(o)]),
        ),
    }
}

/// The `Table` for a list (or a single object) of one resource.
pub fn table(
    def: &ResourceDef,
    objects: &[Arc<Value>],
    include: Include,
    rv: u64,
    cont: Option<&str>,
) -> Value {
    let (columns, cells) = columns_and_cells(def);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(def, o, include, &cells))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(
    def: &ResourceDef,
    o: &Value,
    include: Include,
    cells: &dyn Fn(&Value) -> Vec<Value>,
) -> Value {
    let mut c = Vec::new();
    let is_event = def.kind == "Event" && def.group.is_empty();
    if !is_event {
        c.push(o["metadata"]["name"].clone());
    }
    c.extend(cells(o));
    let mut r = json!({"cells": c});
    match include {
        Include::None => {}
        Include::Object => r["object"] = o.clone(),
        Include::Metadata => {
            let mut meta = o["metadata"].clone();
            if let Some(m) = meta.as_object_mut() {
                m.shift_remove("managedFields");
            }
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
        }
    }
    r
}

/// A Table for one watch event's object.
pub fn table_for_one(def: &ResourceDef, o: &Value, include: Include) -> Value {
    let (columns, cells) = columns_and_cells(def);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": o["metadata"]["resourceVersion"]},
        "columnDefinitions": columns,
        "rows": [row(def, o, include, &cells)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn service_columns_show_pending_and_ports() {
        let o = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}, "status": {"loadBalancer": {}}});
        let r = service_row(&o);
        assert_eq!(r[2], json!("<pending>"));
        assert_eq!(r[3], json!("80:30080/TCP"));
        let o2 = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}});
        assert_eq!(service_row(&o2)[2], json!("192.168.56.200"));
    }
}
