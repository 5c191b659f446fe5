//! The GitOps module as a user runs it: `metalgate run` with the gitops component, a Git
//! repository, `kubectl apply` of an Application — then a push is applied (on the refresh
//! annotation at once, and on the poll), and `kubectl get applications` tells the state.

//! Split by what is tried: the push-to-cluster loop (`follow`), faults (`faults`), the CLI
//! (`cli`), private and Argo repositories (`repos`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod faults;
mod follow;
mod repos;
