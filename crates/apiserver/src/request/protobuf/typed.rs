//! How a decoded protobuf message becomes the JSON the store keeps: one table per message
//! type ([`to_json!`]) naming each field's JSON name, and which fields the store refuses to
//! read from protobuf. Every field of a message is named in its table (the destructuring is
//! exhaustive, so a field k8s-pb adds later is a compile error here, not silently dropped),
//! and a refused field that is set turns the request into a 415 naming its path — a body is
//! never stored with part of it missing.
//!
//! Go's protobuf encoder writes every non-pointer field, set or not, where its JSON encoder
//! omits empty ones (`omitempty`). So a field listed plainly is left out when it holds `""`,
//! `0` or `false`; a field listed under `exact` (a pointer in Go: `replicas`, `suspend`, …)
//! keeps its zero, which means something there (`--replicas=0`).

use std::collections::BTreeMap;

use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// A decoded protobuf value in its JSON form; `None` where JSON has nothing.
pub(super) trait ToJson {
    /// The value at `path` (for errors, as `spec.template.spec.containers[0]`).
    fn to_json(self, path: &str) -> ApiResult<Option<Value>>;
}

/// Whether a field holds nothing: absent, empty, or its type's zero.
pub(super) trait Unset {
    /// True when nothing is set.
    fn unset(&self) -> bool;
}

impl<T: Default + PartialEq> Unset for Option<T> {
    fn unset(&self) -> bool {
        self.as_ref().is_none_or(|v| *v == T::default())
    }
}

impl<T> Unset for Vec<T> {
    fn unset(&self) -> bool {
        self.is_empty()
    }
}

impl<K, V> Unset for BTreeMap<K, V> {
    fn unset(&self) -> bool {
        self.is_empty()
    }
}

/// `path.name`, or `name` at the top.
pub(super) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Puts a field's JSON form under `name`, leaving out what JSON would omit.
pub(super) fn put<T: ToJson>(
    o: &mut Map<String, Value>,
    path: &str,
    name: &str,
    v: T,
    omit_zero: bool,
) -> ApiResult<()> {
    let Some(v) = v.to_json(&join(path, name))? else {
        return Ok(());
    };
    let zero = match &v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    };
    if !(omit_zero && zero) {
        o.insert(name.to_string(), v);
    }
    Ok(())
}

/// Refuses a field this store does not read from protobuf, if it is set.
pub(super) fn refuse<T: Unset>(path: &str, name: &str, v: &T) -> ApiResult<()> {
    if v.unset() {
        return Ok(());
    }
    Err(ApiError::unsupported_body(format!(
        "the protobuf body sets {}, which this store does not decode from protobuf; send the object as JSON or YAML (kubectl apply -f, or kubectl create … -o yaml --dry-run=client | kubectl apply -f -)",
        join(path, name)
    )))
}

/// The JSON table of a protobuf message: `{ field: "jsonName", … ; exact … ; refused … ;
/// ignored … }` (see the module's comment for what each group means).
macro_rules! to_json {
    ($($ty:ident)::+ {
        $($f:ident : $json:literal),* $(,)?
        $(; exact $($e:ident : $ejson:literal),* $(,)?)?
        $(; refused $($r:ident : $rjson:literal),* $(,)?)?
        $(; ignored $($i:ident),* $(,)?)?
    }) => {
        impl $crate::request::protobuf::typed::ToJson for $($ty)::+ {
            fn to_json(
                self,
                path: &str,
            ) -> $crate::error::ApiResult<Option<serde_json::Value>> {
                #[allow(unused_imports)]
                use $crate::request::protobuf::typed::{put, refuse};
                let $($ty)::+ { $($f,)* $($($e,)*)? $($($r,)*)? $($($i: _,)*)? } = self;
                #[allow(unused_mut)]
                let mut o = serde_json::Map::new();
                $(put(&mut o, path, $json, $f, true)?;)*
                $($(put(&mut o, path, $ejson, $e, false)?;)*)?
                $($(refuse(path, $rjson, &$r)?;)*)?
                Ok(Some(serde_json::Value::Object(o)))
            }
        }
    };
}
pub(super) use to_json;

/// The tables of top-level objects: metadata and spec; status is the server's to write.
macro_rules! objects {
    ($($($ty:ident)::+),* $(,)?) => {
        $($crate::request::protobuf::typed::to_json!($($ty)::+ {
            metadata: "metadata",
            spec: "spec";
            ignored status,
        });)*
    };
}
pub(super) use objects;

impl ToJson for String {
    fn to_json(self, _: &str) -> ApiResult<Option<Value>> {
        Ok(Some(Value::String(self)))
    }
}

impl ToJson for bool {
    fn to_json(self, _: &str) -> ApiResult<Option<Value>> {
        Ok(Some(Value::Bool(self)))
    }
}

impl ToJson for i32 {
    fn to_json(self, _: &str) -> ApiResult<Option<Value>> {
        Ok(Some(json!(self)))
    }
}

impl ToJson for i64 {
    fn to_json(self, _: &str) -> ApiResult<Option<Value>> {
        Ok(Some(json!(self)))
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        match self {
            Some(v) => v.to_json(path),
            None => Ok(None),
        }
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.len());
        for (i, v) in self.into_iter().enumerate() {
            out.push(v.to_json(&format!("{path}[{i}]"))?.unwrap_or(Value::Null));
        }
        Ok(Some(Value::Array(out)))
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut out = Map::new();
        for (k, v) in self {
            let at = format!("{path}[{k:?}]");
            out.insert(k, v.to_json(&at)?.unwrap_or(Value::Null));
        }
        Ok(Some(Value::Object(out)))
    }
}

/// A quantity is its string (`"500m"`, `"64Mi"`).
impl ToJson for Quantity {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        self.string.unwrap_or_default().to_json(path)
    }
}

/// An int-or-string is the one it holds (type 1 is the string).
impl ToJson for IntOrString {
    fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
        if self.r#type == Some(1) {
            self.str_val.unwrap_or_default().to_json(path)
        } else {
            self.int_val.unwrap_or_default().to_json(path)
        }
    }
}

to_json!(meta::ObjectMeta {
    name: "name",
    generate_name: "generateName",
    namespace: "namespace",
    uid: "uid",
    resource_version: "resourceVersion",
    labels: "labels",
    annotations: "annotations",
    owner_references: "ownerReferences",
    finalizers: "finalizers";
    // What the server sets itself; a client's values are not kept on create.
    ignored self_link, generation, creation_timestamp, deletion_timestamp,
        deletion_grace_period_seconds, managed_fields,
});

to_json!(meta::OwnerReference {
    api_version: "apiVersion",
    kind: "kind",
    name: "name",
    uid: "uid";
    exact controller: "controller", block_owner_deletion: "blockOwnerDeletion",
});

to_json!(meta::LabelSelector {
    match_labels: "matchLabels",
    match_expressions: "matchExpressions",
});

to_json!(meta::LabelSelectorRequirement {
    key: "key",
    operator: "operator",
    values: "values",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_are_left_out_unless_the_field_is_exact() {
        let owner = meta::OwnerReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("web-1".into()),
            uid: Some(String::new()),
            controller: Some(false),
            block_owner_deletion: None,
        };
        assert_eq!(
            owner.to_json("").unwrap().unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                   "controller": false})
        );
    }

    #[test]
    fn int_or_string_and_quantity_are_their_value() {
        let port = |t, i, s: &str| IntOrString {
            r#type: Some(t),
            int_val: Some(i),
            str_val: Some(s.into()),
        };
        assert_eq!(port(0, 9898, "").to_json("").unwrap(), Some(json!(9898)));
        assert_eq!(port(1, 0, "http").to_json("").unwrap(), Some(json!("http")));
        let q = Quantity {
            string: Some("64Mi".into()),
        };
        assert_eq!(q.to_json("").unwrap(), Some(json!("64Mi")));
    }

    #[test]
    fn a_refused_field_is_named_only_when_set() {
        assert!(refuse("spec", "affinity", &None::<String>).is_ok());
        assert!(refuse("spec", "affinity", &Some(String::new())).is_ok());
        assert!(refuse("spec", "volumes", &Vec::<String>::new()).is_ok());
        let e = refuse("spec.template.spec", "volumes", &vec!["x".to_string()]).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message.contains("spec.template.spec.volumes"),
            "{}",
            e.message
        );
    }

    #[test]
    fn lists_and_maps_name_their_elements_in_errors() {
        struct Bad;
        impl ToJson for Bad {
            fn to_json(self, path: &str) -> ApiResult<Option<Value>> {
                Err(ApiError::unsupported_body(path.to_string()))
            }
        }
        let e = vec![Bad].to_json("spec.containers").unwrap_err();
        assert_eq!(e.message, "spec.containers[0]");
        let e = BTreeMap::from([("cpu".to_string(), Bad)])
            .to_json("resources.limits")
            .unwrap_err();
        assert_eq!(e.message, "resources.limits[\"cpu\"]");
    }
}
