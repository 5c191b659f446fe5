//! # metalgate-controller
//!
//! Gives LoadBalancer Services their IPs: `kubectl get svc` shows `EXTERNAL-IP 192.168.56.200`.
//! In the data flow it is the `controller/ipam` stage: Service → IP, written to
//! `status.loadBalancer.ingress`.
//!
//! - [`desired`]: what a Service asks for (spec and annotations, MetalLB's included) — pure;
//! - `metalgate_ipam`: who gets which IP — pure;
//! - [`reconciler`]: the loop that watches, allocates and writes (status, annotation, Events,
//!   pool status), after rebuilding the allocation from Service status so no IP moves;
//! - [`memberlist`]: creates the speakers' gossip-key Secret when it is missing;
//! - a coordination Lease ([`reconciler::LEASE`], via `metalgate_k8s::leader`) so two replicas
//!   never both write.
#![forbid(unsafe_code)]

pub mod desired;
pub mod memberlist;
pub mod reconciler;

use metalgate_k8s::{Component, ComponentContext};

pub use reconciler::Config;

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "controller";

/// The controller as a `metalgate run` component, with the default configuration.
pub fn component() -> Component {
    Component::new(NAME, |ctx: ComponentContext| {
        Box::pin(reconciler::run(ctx, Config::default()))
    })
}
