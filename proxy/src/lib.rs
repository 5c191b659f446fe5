//! # metalgate-proxy
//!
//! The ingress: `podinfo.192.168.56.200.nip.io` → podinfo's endpoints, on Pingora with rustls.
//! In the data flow it is the `proxy/route table` stage:
//!
//! - [`policy`]: what an Ingress's annotations ask for (ingress-nginx's names) — pure;
//! - [`table`]: the route table built from Ingresses, EndpointSlices and TLS Secrets — pure;
//! - [`uri`]: the path a request is routed by, normalised as nginx does (`..`, `%2e`, `//`) —
//!   pure;
//! - [`discovery`]: watches those objects, rebuilds the table on every change and swaps it in
//!   (`ArcSwap`: requests in flight keep the table they started with), writes Ingress status;
//! - [`forwarded`]: the forwarding headers' values, written without `core::fmt` — pure;
//! - [`service`]: Pingora's `ProxyHttp` — matching, hardening, headers, endpoints, retries;
//! - [`server`]: the HTTP/HTTPS listeners (certificates per SNI), drain;
//! - [`deadline`]: the request-header deadline (slowloris) and the 400 for a malformed request
//!   line, around every plain HTTP/1 connection;
//! - [`head`]: a header block read by read — its end, its request line's check — pure;
//! - [`metrics`]: the Prometheus metrics — requests by ingress, service and code, latency,
//!   upstream errors, the route table's generation;
//! - [`cli`]: its flags, and the proxy alone (`metalgate proxy`, the `metalgate-proxy` binary).
#![forbid(unsafe_code)]

pub mod cli;
pub mod deadline;
pub mod discovery;
pub mod forwarded;
pub mod head;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod service;
pub mod table;
pub mod uri;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metalgate_k8s::{Component, ComponentContext};

pub use server::{Listen, Server};
pub use service::{Limits, ProxyState};
pub use table::{ClassSettings, ObjKey};

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "proxy";

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners.
    pub listen: Listen,
    /// Which Ingresses are ours.
    pub classes: ClassSettings,
    /// The proxy's own Service, whose address each Ingress's status shows.
    pub publish_service: Option<ObjKey>,
    /// One JSON line per request on stdout.
    pub access_log: bool,
    /// Request limits.
    pub limits: Limits,
    /// How long requests in flight may take to finish on shutdown.
    pub drain: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen {
                http: vec![SocketAddr::from(([0, 0, 0, 0], 80))],
                https: vec![SocketAddr::from(([0, 0, 0, 0], 443))],
                header_timeout: Duration::from_secs(10),
            },
            classes: ClassSettings::default(),
            publish_service: Some(ObjKey {
                namespace: metalgate_k8s::NAMESPACE.into(),
                name: "metalgate-proxy".into(),
            }),
            access_log: true,
            limits: Limits::default(),
            drain: Duration::from_secs(10),
        }
    }
}

/// The proxy as a `metalgate run` component.
pub fn component(cfg: Config) -> Component {
    Component::new(NAME, move |ctx: ComponentContext| {
        Box::pin(run(ctx, cfg.clone()))
    })
}

/// Run until `ctx.shutdown`, then drain.
pub async fn run(ctx: ComponentContext, cfg: Config) -> anyhow::Result<()> {
    metalgate_k8s::client::install_crypto_provider();
    let shared = Arc::new(ProxyState::new(cfg.limits.clone(), cfg.access_log));
    let server = Server::start(shared.clone(), &cfg.listen)?;
    start_with(ctx, cfg, shared, server).await
}

/// Run with listeners already started (tests start them on port 0 and read the addresses).
pub async fn start_with(
    ctx: ComponentContext,
    cfg: Config,
    shared: Arc<ProxyState>,
    server: Server,
) -> anyhow::Result<()> {
    let m = shared.clone();
    metalgate_k8s::metrics::register(NAME, Arc::new(move || m.metrics.render()));
    let r = shared.clone();
    metalgate_k8s::metrics::register_readiness(
        NAME,
        Arc::new(move || r.ready.load(Ordering::Relaxed)),
    );
    let stop = ctx.shutdown.child_token();
    let settings = discovery::Settings {
        classes: cfg.classes.clone(),
        publish_service: cfg.publish_service.clone(),
    };
    let mut disc = tokio::spawn(discovery::run(
        ctx.client.clone(),
        shared.clone(),
        settings,
        format!("{}-{}", ctx.node.name, std::process::id()),
        stop.clone(),
    ));
    let result = tokio::select! {
        _ = ctx.shutdown.cancelled() => Ok(()),
        r = &mut disc => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("proxy discovery panicked: {e}")),
        },
    };
    // Not ready while draining: a load balancer in front stops sending new connections.
    shared.ready.store(false, Ordering::Relaxed);
    stop.cancel();
    server.drain(cfg.drain).await;
    result
}
