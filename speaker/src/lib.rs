//! # metalgate-speaker
//!
//! Answers ARP for LoadBalancer IPs on the node that owns them. This crate is the seam's
//! placeholder until that issue lands: it provides no component yet, and `metalgate run` says
//! so when asked to run it.

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "speaker";
