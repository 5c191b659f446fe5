//! # metalgate
//!
//! Bare-metal networking for small Kubernetes clusters in one binary: LoadBalancer IPs
//! (controller), ARP announcements (speaker), ingress (proxy) and a GitOps sync, running
//! against kube-apiserver or against the embedded Kubernetes-API store of standalone mode.
//!
//! This crate is the command line: [`cli`] parses it, [`run`] is `metalgate run` and the
//! components run alone, [`gitops_cli`] is `metalgate gitops …`, [`lab`] is `metalgate lab`
//! (the workshop's network in namespaces; [`lab_smoke`] its check, [`arp_probe`] its arping
//! with a clock) and [`demo`] its backends; [`admission`] is metalgate's own validation of its
//! custom resources in the embedded store.
#![forbid(unsafe_code)]

pub mod admission;
pub mod arp_probe;
pub mod cli;
pub mod demo;
pub mod gitops_cli;
pub mod lab;
pub mod lab_smoke;
pub mod run;
