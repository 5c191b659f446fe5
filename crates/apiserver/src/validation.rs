//! Validation, as kube-apiserver does it: structure (types and unknown fields) from the kind's
//! schema — the typed k8s-openapi struct for built-in kinds, the `openAPIV3Schema` for custom
//! ones — then the rules the API documents for each built-in kind. Every problem is reported
//! with its field path.

use std::net::IpAddr;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::{ResourceDef, Schema};

/// What structural checking found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Fields the schema does not know (reported under Strict, pruned otherwise).
    pub unknown: Vec<String>,
    /// Invalid values.
    pub causes: Vec<Cause>,
}

fn render_ignored(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        Path::Map { parent, key } => {
            let p = render_ignored(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_ignored(parent),
    }
}

fn render_tracked(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Enum { variant } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    s
}

fn typed<T: DeserializeOwned>(obj: &Value, out: &mut Findings) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(obj, &mut track);
    let res: Result<T, _> = serde_ignored::deserialize(de, |p| unknown.push(render_ignored(&p)));
    if let Err(e) = res {
        let path = render_tracked(&track.path());
        let value = crate::fields::value_at(obj, &path_to_fieldpath(&path))
            .cloned()
            .unwrap_or(Value::Null);
        out.causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            field: path,
            message: format!("Invalid value: {value}: {e}"),
        });
    }
    out.unknown.extend(unknown);
}

fn path_to_fieldpath(path: &str) -> Vec<String> {
    // Good enough to look the offending value up for a message; list indices are skipped.
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("f:{}", s.split('[').next().unwrap_or(s)))
        .collect()
}

/// Structural check of a built-in kind.
pub fn structure_builtin(def: &ResourceDef, obj: &Value) -> Findings {
    let mut f = Findings::default();
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => typed::<api::core::v1::Namespace>(obj, &mut f),
        ("", "Service") => typed::<api::core::v1::Service>(obj, &mut f),
        ("", "Endpoints") => typed::<api::core::v1::Endpoints>(obj, &mut f),
        ("", "Secret") => typed::<api::core::v1::Secret>(obj, &mut f),
        ("", "ConfigMap") => typed::<api::core::v1::ConfigMap>(obj, &mut f),
        ("", "Node") => typed::<api::core::v1::Node>(obj, &mut f),
        ("", "Event") => typed::<api::core::v1::Event>(obj, &mut f),
        // Stored (and so checked) in the core form.
        ("events.k8s.io", "Event") => typed::<api::core::v1::Event>(obj, &mut f),
        ("discovery.k8s.io", "EndpointSlice") => {
            typed::<api::discovery::v1::EndpointSlice>(obj, &mut f)
        }
        ("networking.k8s.io", "Ingress") => typed::<api::networking::v1::Ingress>(obj, &mut f),
        ("networking.k8s.io", "IngressClass") => {
            typed::<api::networking::v1::IngressClass>(obj, &mut f)
        }
        ("coordination.k8s.io", "Lease") => typed::<api::coordination::v1::Lease>(obj, &mut f),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            typed::<apiext::CustomResourceDefinition>(obj, &mut f)
        }
        _ => {}
    }
    f
}

/// Remove fields named by dotted paths (`spec.foo`, `spec.ports[0].bar`).
pub fn prune(obj: &mut Value, paths: &[String]) {
    for p in paths {
        let mut parts: Vec<Step> = Vec::new();
        for piece in p.split('.') {
            let mut rest = piece;
            if let Some(i) = rest.find('[') {
                parts.push(Step::Key(rest[..i].to_string()));
                rest = &rest[i..];
                while let Some(end) = rest.find(']') {
                    if let Ok(n) = rest[1..end].parse() {
                        parts.push(Step::Index(n));
                    }
                    rest = &rest[end + 1..];
                }
            } else {
                parts.push(Step::Key(rest.to_string()));
            }
        }
        remove_steps(obj, &parts);
    }
}

enum Step {
    Key(String),
    Index(usize),
}

fn remove_steps(v: &mut Value, steps: &[Step]) {
    match steps {
        [] => {}
        [Step::Key(k)] => {
            if let Value::Object(m) = v {
                m.shift_remove(k);
            }
        }
        [Step::Key(k), rest @ ..] => {
            if let Some(c) = v.get_mut(k.as_str()) {
                remove_steps(c, rest);
            }
        }
        [Step::Index(i), rest @ ..] => {
            if let Some(c) = v.get_mut(*i) {
                remove_steps(c, rest);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CRD schemas

/// Structural check of a custom resource against its version's schema; applies the schema's
/// defaults to missing fields.
pub fn structure_custom(schema: &Value, obj: &mut Value) -> Findings {
    let mut f = Findings::default();
    if let Value::Object(m) = obj {
        for (k, v) in m.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let sub = &schema["properties"][k.as_str()];
            if sub.is_object() {
                check_schema(sub, v, k, &mut f);
            } else if schema["x-kubernetes-preserve-unknown-fields"].as_bool() != Some(true) {
                f.unknown.push(k.clone());
            }
        }
        apply_defaults(schema, m, "", &mut f);
        for req in schema["required"].as_array().into_iter().flatten() {
            if let Some(r) = req.as_str() {
                if !m.contains_key(r) {
                    f.causes.push(Cause::required(r));
                }
            }
        }
    }
    f
}

fn apply_defaults(
    schema: &Value,
    m: &mut serde_json::Map<String, Value>,
    path: &str,
    _f: &mut Findings,
) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, sub) in props {
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if !m.contains_key(k) {
                if let Some(d) = sub.get("default") {
                    m.insert(k.clone(), d.clone());
                }
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_schema(schema: &Value, v: &mut Value, path: &str, f: &mut Findings) {
    if v.is_null() {
        if schema["nullable"].as_bool() == Some(true) {
            return;
        }
        f.causes.push(Cause::invalid(path, v, "must not be null"));
        return;
    }
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            f.causes
                .push(Cause::invalid(path, v, "must be an integer or a string"));
        }
        return;
    }
    let want = schema["type"].as_str().unwrap_or("");
    let got = type_name(v);
    let ok = match want {
        "" => true,
        "number" => got == "number" || got == "integer",
        w => w == got,
    };
    if !ok {
        f.causes.push(Cause {
            reason: "FieldValueTypeInvalid".into(),
            field: path.into(),
            message: format!(
                "Invalid value: {}: {path} in body must be of type {want}: \"{got}\"",
                short(v)
            ),
        });
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            let names: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            f.causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                field: path.into(),
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    short(v),
                    names.join(", ")
                ),
            });
        }
    }
    match v {
        Value::Object(m) => {
            let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
            let props = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.sort();
            for k in keys {
                let child_path = format!("{path}.{k}");
                let sub = props.and_then(|p| p.get(&k));
                let child = m.get_mut(&k).expect("key from this map");
                match sub {
                    Some(s) => check_schema(s, child, &child_path, f),
                    None if additional.is_object() => {
                        check_schema(additional, child, &child_path, f)
                    }
                    None if additional.as_bool() == Some(true) || preserve => {}
                    None if props.is_none()
                        && schema["x-kubernetes-embedded-resource"].is_null()
                        && schema["type"].as_str() == Some("object")
                        && additional.is_null() =>
                    {
                        // An object with no properties listed and no additionalProperties keeps
                        // nothing in a structural schema: the field is unknown.
                        f.unknown.push(child_path);
                    }
                    None => f.unknown.push(child_path),
                }
            }
            apply_defaults(schema, m, path, f);
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = req.as_str() {
                    if !m.contains_key(r) {
                        f.causes.push(Cause::required(format!("{path}.{r}")));
                    }
                }
            }
            bound(
                schema,
                "minProperties",
                "maxProperties",
                m.len(),
                path,
                "properties",
                v_clone(m),
                f,
            );
        }
        Value::Array(items) => {
            let n = items.len();
            if schema["items"].is_object() {
                for (i, item) in items.iter_mut().enumerate() {
                    check_schema(&schema["items"], item, &format!("{path}[{i}]"), f);
                }
            }
            bound(
                schema,
                "minItems",
                "maxItems",
                n,
                path,
                "items",
                Value::Array(items.clone()),
                f,
            );
            let list_type = schema["x-kubernetes-list-type"].as_str();
            if list_type == Some("set") {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        f.causes.push(Cause {
                            reason: "FieldValueDuplicate".into(),
                            field: format!("{path}[{i}]"),
                            message: format!("Duplicate value: {}", short(item)),
                        });
                    }
                }
            }
        }
        Value::String(s) => {
            let s = s.clone();
            let v = &Value::String(s.clone());
            let n = s.chars().count();
            bound(
                schema,
                "minLength",
                "maxLength",
                n,
                path,
                "characters",
                v.clone(),
                f,
            );
            if let Some(p) = schema["pattern"].as_str() {
                match Regex::new(p) {
                    Ok(re) if !re.is_match(&s) => f.causes.push(Cause::invalid(
                        path,
                        v,
                        format!("{path} in body should match '{p}'"),
                    )),
                    _ => {}
                }
            }
            if let Some(fmt) = schema["format"].as_str() {
                if let Some(why) = check_format(fmt, &s) {
                    f.causes.push(Cause::invalid(path, v, why));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema["minimum"].as_f64() {
                let excl = schema["exclusiveMinimum"].as_bool() == Some(true);
                if x < min || (excl && x == min) {
                    f.causes.push(Cause::invalid(
                        path,
                        v,
                        format!("{path} in body should be greater than or equal to {min}"),
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let excl = schema["exclusiveMaximum"].as_bool() == Some(true);
                if x > max || (excl && x == max) {
                    f.causes.push(Cause::invalid(
                        path,
                        v,
                        format!("{path} in body should be less than or equal to {max}"),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn v_clone(m: &serde_json::Map<String, Value>) -> Value {
    Value::Object(m.clone())
}

#[allow(clippy::too_many_arguments)]
fn bound(
    schema: &Value,
    min_key: &str,
    max_key: &str,
    n: usize,
    path: &str,
    unit: &str,
    v: Value,
    f: &mut Findings,
) {
    if let Some(min) = schema[min_key].as_u64() {
        if (n as u64) < min {
            f.causes.push(Cause::invalid(
                path,
                &v,
                format!("{path} in body should have at least {min} {unit}"),
            ));
        }
    }
    if let Some(max) = schema[max_key].as_u64() {
        if (n as u64) > max {
            f.causes.push(Cause::invalid(
                path,
                &v,
                format!("{path} in body should have at most {max} {unit}"),
            ));
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..80])
    } else {
        s
    }
}

fn check_format(fmt: &str, s: &str) -> Option<String> {
    let ok = match fmt {
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "ip" => s.parse::<IpAddr>().is_ok(),
        "cidr" => s.parse::<ipnet::IpNet>().is_ok(),
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "hostname" => is_dns1123_subdomain(s),
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        _ => true,
    };
    (!ok).then(|| format!("must be of format {fmt}"))
}

// ---------------------------------------------------------------------------------------------
// Names and metadata

/// RFC 1123 label: lower case alphanumerics and '-', 63 at most.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: labels joined by '.', 253 at most.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return false;
        }
    }
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// Checks of `metadata` common to every kind.
pub fn metadata(def: &ResourceDef, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let label_names = matches!(def.kind.as_str(), "Namespace" | "Service");
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else if label_names && !is_dns1123_label(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &meta["name"],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    } else if !label_names && def.kind != "Event" && !is_dns1123_subdomain(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &meta["name"],
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid("metadata.labels", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid(
                    format!("metadata.labels.{k}"),
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )),
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        for (k, v) in ann {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            if !v.is_string() {
                causes.push(Cause::invalid(
                    format!("metadata.annotations.{k}"),
                    v,
                    "must be a string",
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules of built-in kinds

fn ip_ok(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok())
}

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

fn check_one_of(v: &Value, field: &str, allowed: &[&str], causes: &mut Vec<Cause>) {
    if let Some(s) = v.as_str() {
        if !allowed.contains(&s) {
            causes.push(Cause::not_supported(field, v, allowed));
        }
    }
}

/// The documented rules of each built-in kind.
pub fn semantics(def: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    metadata(def, obj, &mut c);
    if !matches!(def.schema, Schema::Builtin) {
        return c;
    }
    let spec = &obj["spec"];
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Service") => service(spec, &mut c),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(obj, &mut c),
        ("networking.k8s.io", "Ingress") => ingress(spec, &mut c),
        ("", "Secret") if obj["type"].as_str() == Some("kubernetes.io/tls") => {
            for k in ["tls.crt", "tls.key"] {
                if obj["data"][k].is_null() && obj["stringData"][k].is_null() {
                    c.push(Cause::required(format!("data[{k}]")));
                }
            }
        }
        ("", "Node") => {
            for (i, a) in obj["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if a["type"].as_str() == Some("InternalIP") && !ip_ok(&a["address"]) {
                    c.push(Cause::invalid(
                        format!("status.addresses[{i}].address"),
                        &a["address"],
                        "must be a valid IP address",
                    ));
                }
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj, &mut c),
        _ => {}
    }
    c
}

fn service(spec: &Value, c: &mut Vec<Cause>) {
    check_one_of(
        &spec["type"],
        "spec.type",
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        c,
    );
    check_one_of(
        &spec["externalTrafficPolicy"],
        "spec.externalTrafficPolicy",
        &["Cluster", "Local"],
        c,
    );
    check_one_of(
        &spec["internalTrafficPolicy"],
        "spec.internalTrafficPolicy",
        &["Cluster", "Local"],
        c,
    );
    check_one_of(
        &spec["sessionAffinity"],
        "spec.sessionAffinity",
        &["None", "ClientIP"],
        c,
    );
    check_one_of(
        &spec["ipFamilyPolicy"],
        "spec.ipFamilyPolicy",
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
        c,
    );
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if let Some(ip) = spec.get("clusterIP") {
        if ip.as_str().is_some_and(|s| !s.is_empty() && s != "None") && !ip_ok(ip) {
            c.push(Cause::invalid(
                "spec.clusterIP",
                ip,
                "must be empty, 'None', or a valid IP address",
            ));
        }
    }
    for (i, ip) in spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if ip.as_str() != Some("None") && !ip_ok(ip) {
            c.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip,
                "must be 'None' or a valid IP address",
            ));
        }
    }
    if let Some(ip) = spec.get("loadBalancerIP") {
        if ip.as_str().is_some_and(|s| !s.is_empty()) && !ip_ok(ip) {
            c.push(Cause::invalid(
                "spec.loadBalancerIP",
                ip,
                "must be a valid IP address",
            ));
        }
    }
    for (i, ip) in spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !ip_ok(ip) {
            c.push(Cause::invalid(
                format!("spec.externalIPs[{i}]"),
                ip,
                "must be a valid IP address",
            ));
        }
    }
    for (i, r) in spec["loadBalancerSourceRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if r.as_str()
            .and_then(|s| s.parse::<ipnet::IpNet>().ok())
            .is_none()
        {
            c.push(Cause::invalid(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                r,
                "must be a valid CIDR",
            ));
        }
    }
    if ty == "ExternalName" {
        if !spec["externalName"]
            .as_str()
            .is_some_and(is_dns1123_subdomain)
        {
            c.push(Cause::required("spec.externalName"));
        }
        return;
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && !headless {
        c.push(Cause::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        if !port_ok(&p["port"]) {
            c.push(Cause::invalid(
                format!("{f}.port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        check_one_of(
            &p["protocol"],
            &format!("{f}.protocol"),
            &["TCP", "UDP", "SCTP"],
            c,
        );
        match &p["targetPort"] {
            Value::Number(_) if !port_ok(&p["targetPort"]) => c.push(Cause::invalid(format!("{f}.targetPort"), &p["targetPort"], "must be between 1 and 65535, inclusive")),
            Value::String(s) if !is_dns1123_label(s) || s.len() > 15 => c.push(Cause::invalid(format!("{f}.targetPort"), &p["targetPort"], "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15")),
            _ => {}
        }
        if let Some(np) = p.get("nodePort").filter(|v| !v.is_null()) {
            if !np.as_i64().is_some_and(|n| (30000..=32767).contains(&n)) && np.as_i64() != Some(0)
            {
                c.push(Cause::invalid(format!("{f}.nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            }
        }
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            c.push(Cause::required(format!("{f}.name")));
        } else if !name.is_empty() {
            if !is_dns1123_label(name) {
                c.push(Cause::invalid(format!("{f}.name"), &p["name"], "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"));
            }
            if names.contains(&name) {
                c.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    field: format!("{f}.name"),
                    message: format!("Duplicate value: {name:?}"),
                });
            }
            names.push(name);
        }
    }
    if let Some(sel) = spec["selector"].as_object() {
        for (k, v) in sel {
            if !is_qualified_name(k) || !v.as_str().is_some_and(is_label_value) {
                c.push(Cause::invalid(
                    format!("spec.selector.{k}"),
                    v,
                    "must be a valid label selector entry",
                ));
            }
        }
    }
}

fn endpoint_slice(obj: &Value, c: &mut Vec<Cause>) {
    let at = &obj["addressType"];
    if at.is_null() {
        c.push(Cause::required("addressType"));
    }
    check_one_of(at, "addressType", &["IPv4", "IPv6", "FQDN"], c);
    for (i, ep) in obj["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let addrs = ep["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() {
            c.push(Cause::required(format!("endpoints[{i}].addresses")));
        }
        for (j, a) in addrs.iter().enumerate() {
            let ok = match at.as_str() {
                Some("IPv4") => a
                    .as_str()
                    .is_some_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok()),
                Some("IPv6") => a
                    .as_str()
                    .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
                _ => a.as_str().is_some_and(is_dns1123_subdomain),
            };
            if !ok {
                c.push(Cause::invalid(
                    format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    format!("must be a valid {} address", at.as_str().unwrap_or("FQDN")),
                ));
            }
        }
    }
    for (i, p) in obj["ports"].as_array().into_iter().flatten().enumerate() {
        if !p["port"].is_null() && !port_ok(&p["port"]) {
            c.push(Cause::invalid(
                format!("ports[{i}].port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

fn ingress(spec: &Value, c: &mut Vec<Cause>) {
    let backend = |b: &Value, f: &str, c: &mut Vec<Cause>| {
        let svc = &b["service"];
        match (svc.is_object(), b["resource"].is_object()) {
            (true, true) => c.push(Cause::invalid(
                f,
                b,
                "cannot set both service and resource backends",
            )),
            (false, false) => c.push(Cause::required(format!("{f}.service"))),
            (true, false) => {
                if svc["name"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(format!("{f}.service.name")));
                }
                let port = &svc["port"];
                match (&port["number"], &port["name"]) {
                    (Value::Null, Value::Null) => {
                        c.push(Cause::required(format!("{f}.service.port")))
                    }
                    (n, Value::Null) if !port_ok(n) => c.push(Cause::invalid(
                        format!("{f}.service.port.number"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    )),
                    (Value::Null, _) => {}
                    (_, Value::Null) => {}
                    _ => c.push(Cause::invalid(
                        format!("{f}.service.port"),
                        port,
                        "cannot set both port name & port number",
                    )),
                }
            }
            (false, true) => {}
        }
    };
    if spec["defaultBackend"].is_object() {
        backend(&spec["defaultBackend"], "spec.defaultBackend", c);
    }
    for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        if let Some(h) = r["host"].as_str() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if h.parse::<IpAddr>().is_ok() {
                c.push(Cause::invalid(
                    format!("spec.rules[{i}].host"),
                    &r["host"],
                    "must be a DNS name, not an IP address",
                ));
            } else if !is_dns1123_subdomain(bare) {
                c.push(Cause::invalid(format!("spec.rules[{i}].host"), &r["host"], "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.' (a wildcard '*.' may lead)"));
            }
        }
        for (j, p) in r["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = format!("spec.rules[{i}].http.paths[{j}]");
            match p["pathType"].as_str() {
                None => c.push(Cause::required(format!("{f}.pathType"))),
                Some(_) => check_one_of(
                    &p["pathType"],
                    &format!("{f}.pathType"),
                    &["Exact", "Prefix", "ImplementationSpecific"],
                    c,
                ),
            }
            if let Some(path) = p["path"].as_str() {
                if !path.starts_with('/') {
                    c.push(Cause::invalid(
                        format!("{f}.path"),
                        &p["path"],
                        "must be an absolute path",
                    ));
                }
            } else if p["pathType"].as_str() != Some("ImplementationSpecific") {
                c.push(Cause::required(format!("{f}.path")));
            }
            backend(&p["backend"], &format!("{f}.backend"), c);
        }
    }
    for (i, t) in spec["tls"].as_array().into_iter().flatten().enumerate() {
        for (j, h) in t["hosts"].as_array().into_iter().flatten().enumerate() {
            let bare = h.as_str().map(|s| s.strip_prefix("*.").unwrap_or(s));
            if !bare.is_some_and(is_dns1123_subdomain) {
                c.push(Cause::invalid(
                    format!("spec.tls[{i}].hosts[{j}]"),
                    h,
                    "must be a DNS name",
                ));
            }
        }
    }
}

fn crd(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            &spec["group"],
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() || !is_dns1123_label(plural) {
        c.push(Cause::invalid(
            "spec.names.plural",
            &spec["names"]["plural"],
            "a lowercase RFC 1123 label is required",
        ));
    }
    if spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
        c.push(Cause::required("spec.names.kind"));
    }
    let want = format!("{plural}.{group}");
    if obj["metadata"]["name"].as_str() != Some(want.as_str()) {
        c.push(Cause::invalid(
            "metadata.name",
            &obj["metadata"]["name"],
            format!("must be spec.names.plural+\".\"+spec.group ({want:?})"),
        ));
    }
    check_one_of(&spec["scope"], "spec.scope", &["Cluster", "Namespaced"], c);
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        c.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        c.push(Cause::invalid(
            "spec.versions",
            &Value::from(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["schema"]["openAPIV3Schema"].is_null() {
            c.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        }
    }
}
