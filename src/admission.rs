//! Admission for the embedded store: what a validating webhook does in a cluster. An
//! `IPAddressPool` that does not parse, is reversed, or overlaps another pool is refused with
//! the field named, before it can disturb any assignment.

use std::sync::Arc;

use metalgate_apiserver::{Admission, Cause};
use metalgate_ipam::Pool;
use metalgate_k8s::crd::IPAddressPool;
use serde_json::Value;

/// Validates `IPAddressPool` writes.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolAdmission;

fn pool_of(v: &Value) -> Option<(String, metalgate_ipam::PoolSpec)> {
    let p: IPAddressPool = serde_json::from_value(v.clone()).ok()?;
    let ns = v["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Some((ns, metalgate_controller::reconciler::pool_spec(&p)))
}

impl Admission for PoolAdmission {
    fn applies_to(&self, group: &str, kind: &str) -> bool {
        group == "metalgate.io" && kind == "IPAddressPool"
    }

    fn validate(&self, group: &str, kind: &str, obj: &Value, others: &[Arc<Value>]) -> Vec<Cause> {
        if !self.applies_to(group, kind) {
            return Vec::new();
        }
        let Some((_, spec)) = pool_of(obj) else {
            return Vec::new();
        };
        let pool = match Pool::from_spec(&spec) {
            Ok(p) => p,
            Err(errors) => {
                return errors
                    .into_iter()
                    .map(|e| {
                        let value = index_of(&e.field)
                            .and_then(|i| obj["spec"]["addresses"].get(i))
                            .cloned()
                            .unwrap_or(Value::Null);
                        Cause::invalid(e.field, &value, e.message)
                    })
                    .collect();
            }
        };
        let mut causes = Vec::new();
        for other in others {
            let Some((ns, other_spec)) = pool_of(other) else {
                continue;
            };
            let Ok(other_pool) = Pool::from_spec(&other_spec) else {
                continue;
            };
            for (i, r) in pool.ranges.iter().enumerate() {
                if other_pool.ranges.iter().any(|o| o.overlaps(r)) {
                    causes.push(Cause::invalid(
                        format!("spec.addresses[{i}]"),
                        &obj["spec"]["addresses"][i],
                        format!("overlaps IPAddressPool {ns}/{}", other_spec.name),
                    ));
                }
            }
        }
        causes
    }
}

fn index_of(field: &str) -> Option<usize> {
    field
        .strip_prefix("spec.addresses[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}
