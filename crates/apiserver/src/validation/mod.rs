//! Validation tools, as kube-apiserver checks an object: structure (types and unknown fields)
//! from the kind's schema, then names and metadata. The rules of each built-in kind live with
//! the kind in `kinds`; this module holds what every kind shares.
//!
//! - `typed` — a built-in kind read as its k8s-openapi struct; pruning unknown fields.
//! - `schema` — a custom kind walked against its CRD's `openAPIV3Schema`.
//! - `names` — RFC 1123 names, qualified names, label values and `metadata`.
//! - `properties` (tests) — random objects of every built-in kind through all of the above.

mod names;
#[cfg(test)]
mod properties;
mod schema;
mod typed;

use crate::error::Cause;

pub use names::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, is_qualified_name, metadata,
};
pub use schema::structure_custom;
pub use typed::{prune, typed};

/// What structural checking found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Fields the schema does not know (reported under Strict, pruned otherwise).
    pub unknown: Vec<String>,
    /// Invalid values.
    pub causes: Vec<Cause>,
}
