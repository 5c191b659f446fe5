//! # metalgate-ipam — the LoadBalancer IP allocator
//!
//! The first stage of the controller's data flow: Service → IP. Plain data in, plain data
//! out — no Kubernetes client, no sockets, no clock — so it is property-tested on its own.
//!
//! - [`pool`]: MetalLB's `IPAddressPool` semantics: CIDRs and `a-b` ranges, IPv4 and IPv6,
//!   `autoAssign`, `avoidBuggyIPs`, `serviceAllocation`; validation naming the field.
//! - [`allocator`]: who holds which IP: requested IPs, pools by name, sharing by key on
//!   distinct ports, release, and pool changes that clear only what no longer fits.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod pool;

pub use allocator::{AllocError, Allocator, Assignment, PoolStats, Port, Request, ServiceKey};
pub use pool::{
    Accepted, Family, FieldError, Pool, PoolSpec, Requirement, Selector, ServiceAllocation,
    ServiceInfo, accept, validate_all,
};
