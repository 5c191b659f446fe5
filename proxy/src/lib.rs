//! # metalgate-proxy
//!
//! The ingress: `podinfo.192.168.56.200.nip.io` → podinfo's endpoints, on Pingora with rustls.
//! In the data flow it is the `proxy/route table` stage:
//!
//! - [`policy`]: what an Ingress's annotations ask for (ingress-nginx's names) — pure;
//! - [`table`]: the route table built from Ingresses, EndpointSlices and TLS Secrets — pure;
#![forbid(unsafe_code)]

pub mod policy;
pub mod table;

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "proxy";
