//! # metalgate-k8s — how metalgate's parts meet Kubernetes
//!
//! Every component talks to Kubernetes through a `kube::Client`, whether kube-apiserver or the
//! embedded store answers. This crate holds what they share at that edge:
//!
//! - [`component`]: the seam — a component is a task given a client, the node it runs on and
//!   a shutdown signal;
//! - [`manifests`]: loading Kubernetes YAML from files and directories and server-side applying
//!   it, reporting every bad document at once (file, document, kind/name, field);
//! - [`node`]: registering this machine as a Node and keeping its heartbeat;
//! - [`client`]: building a client from a kubeconfig or an API server URL;
//! - [`metrics`]: the registry behind `/metrics` (and `/readyz`);
//! - [`admin`]: the HTTP endpoint serving them;
//! - [`process`]: logging, the runtime and the shutdown signal around each binary's command,
//!   and the one start-up path of a component run on its own;
//! - [`crd`]: metalgate's custom resources (`IPAddressPool`, `L2Advertisement`, `Application`);
//! - [`leader`]: one active replica per component, by a coordination Lease;
//! - [`reflect`]: cached watches that wake a component on any change, and its Event recorder;
//! - [`secrets`]: Secrets a component creates for itself, with a generated value, when missing;
//! - [`selector`]: label selectors evaluated as kube-apiserver does.
#![forbid(unsafe_code)]

pub mod admin;
pub mod client;
pub mod component;
pub mod crd;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod node;
pub mod process;
pub mod reflect;
pub mod secrets;
pub mod selector;

pub use component::{Component, ComponentContext, NodeIdentity};

/// The namespace metalgate's own objects live in (pools, advertisements, Applications, Leases),
/// unless a command's `--namespace` says otherwise.
pub const NAMESPACE: &str = "metalgate-system";

/// The Secret (in [`NAMESPACE`]) holding the speakers' gossip keys: the controller creates it
/// with a random key when missing, the speakers read it.
pub const MEMBERLIST_SECRET: &str = "metalgate-memberlist";
