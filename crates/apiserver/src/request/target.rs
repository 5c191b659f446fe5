//! Which resource a URL names: group, version, plural, namespace, name and subresource, and
//! the storage key of an object.

use std::sync::Arc;

use serde_json::Value;

use super::state::Admission;
use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, ResourceDef};

/// A parsed resource path.
pub(super) struct ResourcePath {
    pub(super) admission: Vec<Arc<dyn Admission>>,
    pub(super) def: Arc<ResourceDef>,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
}

pub(super) fn parse_resource_path(
    reg: &Registry,
    g: &str,
    v: &str,
    rest: &[&str],
) -> ApiResult<ResourcePath> {
    let find = |plural: &str| {
        reg.by_plural(g, v, plural).ok_or_else(|| {
            let gv = if g.is_empty() {
                v.to_string()
            } else {
                format!("{g}/{v}")
            };
            ApiError::no_route(&format!("{gv}, resource {plural:?}"))
        })
    };
    let s = |x: &str| Some(x.to_string());
    match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            let def = find(plural)?;
            if !def.namespaced {
                return Err(ApiError::no_route(&format!(
                    "{} is not namespaced",
                    def.plural
                )));
            }
            match tail {
                [] => Ok(ResourcePath {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: None,
                    sub: None,
                }),
                [name] => Ok(ResourcePath {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: s(name),
                    sub: None,
                }),
                [name, sub] => Ok(ResourcePath {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: s(name),
                    sub: s(sub),
                }),
                _ => Err(ApiError::no_route(&rest.join("/"))),
            }
        }
        [plural] => Ok(ResourcePath {
            admission: Vec::new(),
            def: find(plural)?,
            namespace: None,
            name: None,
            sub: None,
        }),
        [plural, name] => {
            let def = find(plural)?;
            if def.namespaced {
                return Err(ApiError::no_route(&rest.join("/")));
            }
            Ok(ResourcePath {
                admission: Vec::new(),
                def,
                namespace: None,
                name: s(name),
                sub: None,
            })
        }
        [plural, name, sub] => {
            let def = find(plural)?;
            if def.namespaced {
                return Err(ApiError::no_route(&rest.join("/")));
            }
            Ok(ResourcePath {
                admission: Vec::new(),
                def,
                namespace: None,
                name: s(name),
                sub: s(sub),
            })
        }
        _ => Err(ApiError::no_route(&rest.join("/"))),
    }
}

pub(super) fn key_of(def: &ResourceDef, o: &Value) -> String {
    def.key(
        o["metadata"]["namespace"]
            .as_str()
            .filter(|_| def.namespaced),
        o["metadata"]["name"].as_str().unwrap_or_default(),
    )
}
