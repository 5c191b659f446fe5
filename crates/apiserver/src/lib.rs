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
//! Where to start reading: [`ApiServer::start`] (server.rs) → `handler.rs` (routing and the
//! write pipeline) → `store.rs` (persistence and watch history) → `fields.rs` (server-side
//! apply) → `validation.rs`.
#![forbid(unsafe_code)]

mod convert;
mod defaults;
mod error;
mod fields;
mod handler;
mod openapi;
mod patch;
mod registry;
mod selectors;
mod server;
mod shape;
mod store;
mod table;
mod tls;
mod validation;

pub use error::{ApiError, Cause};
pub use handler::{Admission, KUBE_VERSION};
pub use server::{ApiServer, Config};
pub use tls::write_kubeconfig;
