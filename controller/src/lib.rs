//! # metalgate-controller
//!
//! Allocates LoadBalancer IPs from address pools into Service status, and runs the GitOps sync.
//! This crate is the seam's placeholder until those issues land: it provides no component yet,
//! and `metalgate run` says so when asked to run it.
#![forbid(unsafe_code)]

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "controller";
