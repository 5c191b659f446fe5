//! # metalgate-proxy
//!
//! The Pingora ingress. This crate is the seam's placeholder until that issue lands: it
//! provides no component yet, and `metalgate run` says so when asked to run it.
#![forbid(unsafe_code)]

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "proxy";
