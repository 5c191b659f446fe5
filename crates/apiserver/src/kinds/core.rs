//! core/v1 kinds other than Services and Pods: their rules and their columns.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::print::{AGE, age, created, or_none, strs};
use super::{Col, Printer, col, wide};
use crate::error::Cause;

/// A TLS Secret carries a certificate and a key.
pub fn secret_rules(obj: &Value, c: &mut Vec<Cause>) {
    if obj["type"].as_str() == Some("kubernetes.io/tls") {
        for k in ["tls.crt", "tls.key"] {
            if obj["data"][k].is_null() && obj["stringData"][k].is_null() {
                c.push(Cause::required(format!("data[{k}]")));
            }
        }
    }
}

/// A Node's internal addresses are IP addresses.
pub fn node_rules(obj: &Value, c: &mut Vec<Cause>) {
    for (i, a) in obj["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ip = a["address"]
            .as_str()
            .is_some_and(|s| s.parse::<IpAddr>().is_ok());
        if a["type"].as_str() == Some("InternalIP") && !ip {
            c.push(Cause::invalid(
                format!("status.addresses[{i}].address"),
                &a["address"],
                "must be a valid IP address",
            ));
        }
    }
}

/// A claim names its access modes and the storage it requests.
pub fn pvc_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let modes = strs(&spec["accessModes"]);
    if modes.is_empty() {
        c.push(Cause::required("spec.accessModes"));
    }
    for (i, m) in modes.iter().enumerate() {
        let allowed = [
            "ReadWriteOnce",
            "ReadOnlyMany",
            "ReadWriteMany",
            "ReadWriteOncePod",
        ];
        if !allowed.contains(&m.as_str()) {
            c.push(Cause::not_supported(
                format!("spec.accessModes[{i}]"),
                &json!(m),
                &allowed,
            ));
        }
    }
    if spec["resources"]["requests"]["storage"].is_null() {
        c.push(Cause::required("spec.resources[storage]"));
    }
}

/// `volumeMode: Filesystem` unless asked otherwise.
pub fn pvc_defaults(obj: &mut Value) {
    if obj["spec"].is_object() && obj["spec"]["volumeMode"].is_null() {
        obj["spec"]["volumeMode"] = json!("Filesystem");
    }
}

/// Namespaces: STATUS, AGE.
pub const NAMESPACE: Printer = Printer {
    named: true,
    columns: &[col("Status"), col("Age")],
    row: |o| {
        vec![
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            created(o),
        ]
    },
};

/// Endpoints: ENDPOINTS (three, then `+ N more...`), AGE.
pub const ENDPOINTS: Printer = Printer {
    named: true,
    columns: &[col("Endpoints"), col("Age")],
    row: endpoints_row,
};

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
    vec![json!(or_none(first_three(&eps))), created(o)]
}

/// Three entries, then `+ N more...`, as kubectl shortens endpoint lists.
pub fn first_three(items: &[String]) -> String {
    if items.len() > 3 {
        format!("{} + {} more...", items[..3].join(","), items.len() - 3)
    } else {
        items.join(",")
    }
}

/// Secrets: TYPE, DATA, AGE.
pub const SECRET: Printer = Printer {
    named: true,
    columns: &[col("Type"), col("Data"), col("Age")],
    row: |o| {
        vec![
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            created(o),
        ]
    },
};

/// ConfigMaps: DATA, AGE.
pub const CONFIG_MAP: Printer = Printer {
    named: true,
    columns: &[col("Data"), col("Age")],
    row: |o| {
        let n = o["data"].as_object().map_or(0, |m| m.len())
            + o["binaryData"].as_object().map_or(0, |m| m.len());
        vec![json!(n), created(o)]
    },
};

/// ServiceAccounts: SECRETS, AGE.
pub const SERVICE_ACCOUNT: Printer = Printer {
    named: true,
    columns: &[col("Secrets"), col("Age")],
    row: |o| {
        vec![
            json!(o["secrets"].as_array().map_or(0, Vec::len)),
            created(o),
        ]
    },
};

/// PersistentVolumeClaims: STATUS, VOLUME, CAPACITY, ACCESS MODES, STORAGECLASS, AGE.
pub const PVC: Printer = Printer {
    named: true,
    columns: &[
        col("Status"),
        col("Volume"),
        col("Capacity"),
        col("Access Modes"),
        col("StorageClass"),
        col("Age"),
        wide("VolumeMode"),
    ],
    row: |o| {
        let short = |m: &str| {
            match m {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            }
            .to_string()
        };
        let modes: Vec<String> = strs(&o["status"]["accessModes"])
            .iter()
            .map(|m| short(m))
            .collect();
        vec![
            json!(o["status"]["phase"].as_str().unwrap_or("Pending")),
            json!(o["spec"]["volumeName"].as_str().unwrap_or_default()),
            json!(
                o["status"]["capacity"]["storage"]
                    .as_str()
                    .unwrap_or_default()
            ),
            json!(modes.join(",")),
            json!(o["spec"]["storageClassName"].as_str().unwrap_or("<unset>")),
            created(o),
            json!(o["spec"]["volumeMode"].as_str().unwrap_or("Filesystem")),
        ]
    },
};

/// ResourceQuotas: AGE, REQUEST, LIMIT (`used/hard` per resource).
pub const RESOURCE_QUOTA: Printer = Printer {
    named: true,
    columns: &[col("Age"), col("Request"), col("Limit")],
    row: |o| {
        let mut request = Vec::new();
        let mut limit = Vec::new();
        for (k, hard) in o["spec"]["hard"].as_object().into_iter().flatten() {
            let used = o["status"]["used"][k.as_str()].as_str().unwrap_or("0");
            let cell = format!("{k}: {used}/{}", hard.as_str().unwrap_or_default());
            if k.starts_with("limits.") {
                limit.push(cell);
            } else {
                request.push(cell);
            }
        }
        vec![
            created(o),
            json!(request.join(", ")),
            json!(limit.join(", ")),
        ]
    },
};

/// Nodes: STATUS, ROLES, AGE, VERSION; wide: addresses, OS and kernel.
pub const NODE: Printer = Printer {
    named: true,
    columns: &[
        col("Status"),
        col("Roles"),
        col("Age"),
        col("Version"),
        wide("Internal-IP"),
        wide("External-IP"),
        wide("OS-Image"),
        wide("Kernel-Version"),
    ],
    row: node_row,
};

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
        created(o),
        json!(info["kubeletVersion"].as_str().unwrap_or("")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info["osImage"].as_str().unwrap_or("<unknown>")),
        json!(info["kernelVersion"].as_str().unwrap_or("<unknown>")),
    ]
}

const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen"),
    col("Type"),
    col("Reason"),
    col("Object"),
    col("Message"),
    wide("Name"),
];

/// core Events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE — no NAME first, as kubectl prints.
pub const EVENT: Printer = Printer {
    named: false,
    columns: EVENT_COLUMNS,
    row: event_row,
};

/// events.k8s.io Events: NAME and AGE.
pub const EVENT_V1: Printer = Printer {
    named: true,
    columns: AGE,
    row: |o| vec![created(o)],
};

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
        json!(o["metadata"]["name"].as_str().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_secret_needs_its_certificate_and_key() {
        let mut c = Vec::new();
        secret_rules(
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
            &mut c,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "data[tls.key]");
        let mut c = Vec::new();
        secret_rules(&json!({"type": "Opaque"}), &mut c);
        assert!(c.is_empty());
    }

    #[test]
    fn a_node_internal_ip_is_an_address() {
        let mut c = Vec::new();
        let n = json!({"status": {"addresses": [{"type": "Hostname", "address": "mg-a"}, {"type": "InternalIP", "address": "mg-a"}]}});
        node_rules(&n, &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "status.addresses[1].address");
    }

    #[test]
    fn a_claim_needs_modes_and_storage() {
        let mut c = Vec::new();
        pvc_rules(
            &json!({"spec": {"accessModes": ["ReadWriteSometimes"]}}),
            &mut c,
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.accessModes[0]", "spec.resources[storage]"]);
        let mut c = Vec::new();
        pvc_rules(
            &json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            &mut c,
        );
        assert!(c.is_empty());
    }

    #[test]
    fn endpoints_show_three_then_a_count() {
        let o = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints_row(&o)[0],
            json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...")
        );
    }
}
