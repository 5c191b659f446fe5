//! Structure of custom kinds: an object walked against its CRD version's `openAPIV3Schema` —
//! types, enums, bounds, patterns, formats, list sets, required fields and unknown fields — with
//! the schema's defaults filled in.

use std::net::IpAddr;

use regex::Regex;
use serde_json::Value;

use super::Findings;
use super::names::is_dns1123_subdomain;
use crate::error::Cause;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["addresses"], "properties": {
            "addresses": {"type": "array", "minItems": 1, "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "autoAssign": {"type": "boolean", "default": true},
            "mode": {"type": "string", "enum": ["layer2", "bgp"]},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "ip": {"type": "string", "format": "ipv4"},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}
        }}}})
    }

    fn fields(f: &Findings) -> Vec<&str> {
        f.causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn a_good_object_gets_its_defaults() {
        let mut o = json!({"spec": {"addresses": ["192.168.56.200/32"]}});
        let f = structure_custom(&schema(), &mut o);
        assert!(f.causes.is_empty() && f.unknown.is_empty(), "{f:?}");
        assert_eq!(o["spec"]["autoAssign"], json!(true));
    }

    #[test]
    fn each_rule_names_its_field() {
        for (spec, field) in [
            (json!({}), "spec.addresses"),
            (json!({"addresses": []}), "spec.addresses"),
            (json!({"addresses": ["a", "a"]}), "spec.addresses[1]"),
            (json!({"addresses": ["a"], "mode": "ospf"}), "spec.mode"),
            (json!({"addresses": ["a"], "port": 0}), "spec.port"),
            (json!({"addresses": ["a"], "port": "80"}), "spec.port"),
            (json!({"addresses": ["a"], "ip": "300.1.1.1"}), "spec.ip"),
            (json!({"addresses": ["a"], "name": "abc1"}), "spec.name"),
            (json!({"addresses": ["a"], "name": "abcdef"}), "spec.name"),
            (
                json!({"addresses": ["a"], "autoAssign": null}),
                "spec.autoAssign",
            ),
        ] {
            let mut o = json!({"spec": spec});
            let f = structure_custom(&schema(), &mut o);
            assert_eq!(fields(&f), [field], "{spec}");
        }
    }

    #[test]
    fn unknown_fields_are_found_unless_preserved() {
        let mut o = json!({"spec": {"addresses": ["a"], "colour": "red"}, "extra": 1});
        let f = structure_custom(&schema(), &mut o);
        assert_eq!(f.unknown, ["spec.colour", "extra"]);
        let mut s = schema();
        s["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] = json!(true);
        let f = structure_custom(
            &s,
            &mut json!({"spec": {"addresses": ["a"], "colour": "red"}}),
        );
        assert!(f.unknown.is_empty());
    }
}
