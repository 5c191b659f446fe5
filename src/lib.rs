//! # metalgate
//!
//! Bare-metal networking for small Kubernetes clusters in one binary: LoadBalancer IPs
//! (controller), ARP announcements (speaker), ingress (proxy) and a GitOps sync, running
//! against kube-apiserver or against the embedded Kubernetes-API store of standalone mode.
//!
//! This crate is the command line: [`cli`] parses it, [`commands`] hands it over, [`run`] is `metalgate run` and the
//! components run alone, [`gitops_cli`] is `metalgate gitops …`; [`admission`] is metalgate's
//! own validation of its custom resources in the embedded store. `metalgate lab` and
//! `demo-backend` live in the `metalgate-lab` crate, the lab's node agent in `metalgate-agent`.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cli;
pub mod commands;
pub mod gitops_cli;
pub mod run;
