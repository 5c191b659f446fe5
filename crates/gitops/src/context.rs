//! What every pass shares: the client, the Git cache, where checkouts go, the Event recorder
//! and the drift counters — and how a pass's problems are joined into one condition message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::applier::FIELD_MANAGER;
use crate::git::Cache;

/// What a reconciler needs: a client, the Git cache and where checkouts go.
#[derive(Clone)]
pub struct Context {
    /// The API server.
    pub client: kube::Client,
    /// Bare repositories, one per URL.
    pub cache: Cache,
    /// Checkouts, one directory per commit.
    pub checkouts: PathBuf,
    /// Writes the app's Events (`Synced`, `DriftReverted`, `SyncFailed`).
    pub recorder: kube::runtime::events::Recorder,
    /// How long one wave may take to turn healthy before the next is applied anyway on a later
    /// pass (the sync stays Running meanwhile).
    pub wave_timeout: Duration,
    /// What the passes found and reverted, for `/metrics`.
    pub drift: Arc<DriftCounters>,
}

/// Drift as the passes saw it: only changes made in the cluster to what Git defines, never the
/// module's own applies.
#[derive(Debug, Default)]
pub struct DriftCounters {
    /// Passes that found an app which was in sync with its revision no longer in sync with it.
    pub detected: AtomicU64,
    /// Objects' fields put back to Git's values by self-heal.
    pub reverted: AtomicU64,
}

impl Context {
    /// A context keeping its Git data under `data_dir/gitops`.
    pub fn new(client: kube::Client, data_dir: &Path) -> Self {
        Context {
            recorder: metalgate_k8s::reflect::recorder(&client, FIELD_MANAGER, "gitops"),
            client,
            cache: Cache::new(data_dir.join("gitops/repos")),
            checkouts: data_dir.join("gitops/checkouts"),
            wave_timeout: Duration::from_secs(60),
            drift: Arc::default(),
        }
    }
}

/// Every problem in one condition message.
pub(crate) fn join<E: std::fmt::Display>(errs: &[E]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
