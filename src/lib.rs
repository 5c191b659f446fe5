//! # metalgate
//!
//! Bare-metal networking for small Kubernetes clusters in one binary: LoadBalancer IPs
//! (controller), ARP announcements (speaker), ingress (proxy) and a GitOps sync, running
//! against kube-apiserver or against the embedded Kubernetes-API store of standalone mode.
//!
//! This crate is the command line: [`cli`] parses it, [`run`] is `metalgate run`, [`lab`] is
//! `metalgate lab` (the workshop's network in namespaces) and [`demo`] its backends.
#![forbid(unsafe_code)]

pub mod admission;
pub mod arp_probe;
pub mod cli;
pub mod demo;
pub mod lab;
pub mod lab_smoke;
pub mod run;
