//! # metalgate-apiserver — the embedded Kubernetes-API store
//!
//! Standalone mode (`metalgate run`) and the tests need an API server without a cluster.
//! This crate is that server: it speaks the part of the Kubernetes API that metalgate's
//! components and `kubectl` use — discovery, OpenAPI v3, get / list / watch / create /
//! update / patch / delete with selectors, paging, resourceVersion semantics (409 on stale
//! writes, watch resumption, bookmarks, 410 Gone), the status subresource, merge / JSON /
//! strategic merge patches, server-side apply with field managers, finalizers, dry runs,
//! server-side `Table`s, schema validation, and CRDs that make their kinds served — over
//! HTTPS with a bearer token, persisted in redb.
//!
//! Where to start reading: [`ApiServer::start`] (`server`) → `request` (the chain every request
//! goes through) → `kinds` (what each built-in kind is) → `store`.
//!
//! - `server` — the HTTPS listener and the handle that starts and stops the store.
//! - `request` — authentication, decoding, routing, reads, the write pipeline, deletes, `/scale`.
//! - `auth` — who a token is (the admin, ServiceAccount tokens, TokenRequest) and what RBAC
//!   lets them do, as kube-apiserver's RBAC authorizer decides.
//! - `kinds` — the built-in kinds as table entries: names, subresources, typed checks, rules,
//!   defaults and `kubectl get` columns.
//! - `registry` — the kinds served now: the built-ins and those applied CRDs add.
//! - `validation` — structure (typed forms and CRD schemas), names and metadata.
//! - `defaults` — ClusterIP and NodePort allocation, Namespace, Secret and CRD status defaults.
//! - `gc` — the garbage collector: dependents by ownerReferences (background, foreground,
//!   orphan).
//! - `fields` — server-side apply: managed fields, ownership and conflicts.
//! - `patch` — merge, JSON and strategic merge patches; `shape` — how lists merge.
//! - `selectors` — label and field selectors; `table` — server-side `Table`s.
//! - `openapi` — OpenAPI v3 documents; `convert` — core ↔ events.k8s.io Events.
//! - `store` — persistence in redb, resourceVersions and watch history.
//! - `tls` — the CA, serving certificate, token and kubeconfig; `error` — `Status` errors.
//! - [`node_auth`] — how the store signs what it forwards to a node's agent (`kubectl logs`).
#![forbid(unsafe_code)]

mod auth;
mod convert;
mod defaults;
mod error;
mod fields;
mod gc;
mod kinds;
pub mod node_auth;
mod openapi;
mod patch;
mod registry;
mod request;
mod selectors;
mod server;
mod shape;
mod store;
mod table;
mod tls;
mod validation;

pub use error::{ApiError, Cause};
pub use request::{Admission, KUBE_VERSION};
pub use server::{ApiServer, Config};
pub use tls::write_kubeconfig;
