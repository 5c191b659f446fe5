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

/// Starts a component: its configuration is captured by the closure.
pub type Starter = std::sync::Arc<dyn Fn(ComponentContext) -> ComponentFuture + Send + Sync>;

/// A named component: a task started with a [`ComponentContext`].
#[derive(Clone)]
pub struct Component {
    /// Name used by `--components` (`controller`, `speaker`, `proxy`).
    pub name: &'static str,
    /// Starts it.
    pub run: Starter,
}

impl Component {
    /// A component from its name and what starts it.
    pub fn new(
        name: &'static str,
        run: impl Fn(ComponentContext) -> ComponentFuture + Send + Sync + 'static,
    ) -> Self {
        Component {
            name,
            run: std::sync::Arc::new(run),
        }
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .finish()
    }
}
