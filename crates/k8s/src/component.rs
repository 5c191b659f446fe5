//! The component seam: what `metalgate run` hands each part it runs in-process.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

/// The node a component runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The Node object's name.
    pub name: String,
    /// The node's address on the network it serves (InternalIP), when known.
    pub ip: Option<IpAddr>,
}

/// Everything a component gets.
#[derive(Clone)]
pub struct ComponentContext {
    /// A client of the API server (kube-apiserver or the embedded store).
    pub client: kube::Client,
    /// Where it runs.
    pub node: NodeIdentity,
    /// Cancelled when the process shuts down; a component finishes its work and returns.
    pub shutdown: CancellationToken,
}

/// A boxed component future.
pub type ComponentFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A named component: a task started with a [`ComponentContext`].
#[derive(Clone, Copy)]
pub struct Component {
    /// Name used by `--components` (`controller`, `speaker`, `proxy`).
    pub name: &'static str,
    /// Starts it.
    pub run: fn(ComponentContext) -> ComponentFuture,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .finish()
    }
}
