//! # metalgate-gitops — the cluster follows a Git repository
//!
//! The GitOps module's decisions, as pure functions over objects (gitops-engine's split by
//! question, Flux's `ssa` verbs). A sync reads as a recipe over them:
//! fetch a revision → [`render`] it → [`plan`] the applies and prunes → apply → [`health`] →
//! status; self-heal is [`diff`] on every change of an applied object.
//!
//! - [`object`]: a rendered manifest (file, document, object) and [`ObjRef`], an object's name;
//! - [`render`]: a checkout's directory → manifests, every bad file and document named, nothing
//!   outside the repository read;
//! - [`spec`]: an Application's spec → one validated [`spec::AppConfig`], every field without
//!   effect named;
//! - [`tracking`]: the `metalgate.io/tracking-id` annotation — which Application owns an object;
//! - [`live`]: what a pass keeps of each live object — owner, resourceVersion, the fields off
//!   Git — judged as it is read;
//! - [`plan`]: definitions first, then sync waves in ArgoCD's kind order; prune last, behind the
//!   allow-empty and mass-deletion guards;
//! - [`git`]: gix — list a remote's refs without fetching, one shallow fetch per repository,
//!   check a commit out; [`git::resolve`] reads `targetRevision` (pure);
//! - [`repo_creds`]: which repository Secret's credentials a URL gets (ArgoCD's rules, pure);
//! - [`diff`]: the fields Git sets that the cluster does not match, and who changed them;
//! - [`health`]: ArgoCD's health rules per kind; an app is as healthy as its worst object;
//! - [`applier`]: the one writer — server-side apply with the tracking id, an all-or-nothing dry
//!   run, live reads, prune deletes.
//! - [`source`]: a revision checked out (credentials, known hosts, one fetch per repository)
//!   and its path rendered (directory, kustomize, Helm);
//! - [`compare`]: `metalgate gitops diff` — Git against the cluster, read only;
//! - [`context`]: what every pass shares (client, Git cache, checkouts, Events, drift counters);
//! - [`reconciler`]: one pass over one Application, the recipe over all of the above, ending in
//!   the status `kubectl get applications` shows.
//! - [`drift`]: a watch per kind in the apps' inventories; a hand edit marks its app at once;
//! - [`webhook`]: pushes from GitHub, Gitea or GitLab, signatures checked, matched to apps
//!   by repository URL (pure);
//! - [`kinds`]: metalgate's Application and, for migrating, ArgoCD's (`argoproj.io`), whose
//!   CRD the module serves only where ArgoCD has not installed it;
//! - [`ui`]: the web UI and ArgoCD's JSON paths, on the admin listener under `/`;
//! - [`runner`]: the leader-elected loop deciding when each app gets a pass (poll, a change,
//!   the refresh annotation, drift, a webhook).
//!
//! Start reading at [`reconciler::reconcile`] for the order of things, then [`plan::plan`] for
//! what one sync decides.
#![forbid(unsafe_code)]

pub mod applier;
pub mod compare;
pub mod context;
pub mod diff;
pub mod drift;
pub mod git;
pub mod health;
pub mod kinds;
pub mod live;
pub mod object;
pub mod plan;
pub mod reconciler;
pub mod render;
pub mod repo_creds;
pub mod runner;
pub mod source;
pub mod spec;
pub mod tracking;
pub mod ui;
pub mod webhook;

pub use object::{Manifest, ObjRef, Origin};
