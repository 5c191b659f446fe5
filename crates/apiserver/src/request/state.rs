//! What every request shares: the store, the served kinds, the token, admission plug-ins, and
//! the clock as Kubernetes writes it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::registry::Registry;
use crate::store::Store;

/// Shared state of a running store.
pub struct State {
    /// Objects.
    pub store: Store,
    /// Served kinds.
    pub registry: Registry,
    /// The admin's bearer token.
    pub token: String,
    /// The key ServiceAccount tokens are signed with.
    pub sa_key: ring::hmac::Key,
    /// Bookmark period for watches that ask for them.
    pub bookmark_interval: Duration,
    /// Extra validation of writes (admission).
    pub admission: Vec<Arc<dyn Admission>>,
}

/// Validation a write must pass beyond its schema, like a validating admission webhook.
pub trait Admission: Send + Sync {
    /// Whether writes of `group`/`kind` concern this check at all (the store then lists the
    /// other objects of the resource for it — a cost on every write of a kind with many).
    fn applies_to(&self, group: &str, kind: &str) -> bool {
        let _ = (group, kind);
        true
    }

    /// Problems with `obj` (a create or update of `group`/`kind`, spec part), given the other
    /// objects of the same resource; empty when it may be written.
    fn validate(
        &self,
        group: &str,
        kind: &str,
        obj: &Value,
        others: &[Arc<Value>],
    ) -> Vec<crate::Cause>;
}

pub use crate::store::now;

/// The garbage collector runs on the store alone.
impl AsRef<Store> for State {
    fn as_ref(&self) -> &Store {
        &self.store
    }
}
