//! One Ingress compiled on its own: its policy, its rules with their backends, its certificates
//! and the problems of each — everything the table takes from it that does not depend on another
//! Ingress (conflicts between Ingresses are settled by the [`super::TableBuilder`]). The builder
//! keeps each result while the Ingress and everything it [`Read`] (its Services, their
//! EndpointSlices, its TLS Secrets) stay the same, so a change to one Ingress among 10 000
//! compiles one Ingress, not 10 000.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use rustls::sign::CertifiedKey;

use super::backend::BackendCtx;
use super::{Backend, Map, ObjKey, PathMatch, Problem, created, key, parse_tls_secret, path_match};
use super::{EndpointHealth, valid_host};
use crate::metrics::RouteStats;
use crate::policy;

/// Services, EndpointSlices (by Service, in name order) and TLS Secrets, by key.
#[derive(Default)]
pub(super) struct Lookups {
    pub(super) services: Map<ObjKey, Arc<Service>>,
    pub(super) slices: Map<ObjKey, Vec<Arc<EndpointSlice>>>,
    pub(super) secrets: Map<ObjKey, Arc<Secret>>,
}

/// Something an Ingress's compilation read besides the Ingress (found or not): when it
/// changes, the Ingress is compiled again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Read {
    /// A backend's Service, with that Service's EndpointSlices.
    Service(ObjKey),
    /// A TLS Secret.
    Secret(ObjKey),
}

/// One path of one rule, compiled.
pub(super) enum PathRule {
    /// A rule whose host, or a path that, cannot be used: reported, never routed.
    Invalid(Problem),
    /// A usable path; `backend` is `None` when its backend cannot be used at all.
    Rule {
        host: String,
        raw: String,
        field: String,
        path: PathMatch,
        backend: Option<Arc<Backend>>,
        /// The backend's problems: reported only when the rule is not lost to a conflict.
        problems: Vec<Problem>,
    },
}

/// One `spec.tls` entry, compiled.
pub(super) struct TlsRule {
    pub(super) field: String,
    /// The Secret's key, resourceVersion and parsed certificate, when the Secret exists.
    pub(super) parsed: Option<(ObjKey, String, Result<Arc<CertifiedKey>, String>)>,
    pub(super) cert: Result<Arc<CertifiedKey>, String>,
    /// Lowercase host names the certificate is for.
    pub(super) hosts: Vec<String>,
}

/// An Ingress, compiled.
pub(super) struct Compiled {
    /// The Ingress it was made from: held, so its address names this very object.
    pub(super) ingress: Arc<Ingress>,
    pub(super) key: ObjKey,
    pub(super) created: Option<i64>,
    /// Problems of the annotations and of the default backend.
    pub(super) head: Vec<Problem>,
    pub(super) default_backend: Option<Arc<Backend>>,
    pub(super) paths: Vec<PathRule>,
    pub(super) tls: Vec<TlsRule>,
    pub(super) read: Vec<Read>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("key", &self.key)
            .field("paths", &self.paths.len())
            .field("read", &self.read.len())
            .finish_non_exhaustive()
    }
}

/// Compile `ing`. `health` lends endpoints their passive health, `stats` each route its
/// counters, `parsed` already-parsed certificates by Secret and resourceVersion.
pub(super) fn compile(
    ing: &Arc<Ingress>,
    now: &Lookups,
    health: &mut Map<std::net::SocketAddr, Arc<EndpointHealth>>,
    stats: &dyn Fn(&str, &str) -> Arc<RouteStats>,
    parsed: Option<&super::ParsedSecrets>,
) -> Compiled {
    let ik = key(&ing.metadata);
    let mut head = Vec::new();
    let empty = Default::default();
    let (pol, probs) =
        policy::from_annotations(ing.metadata.annotations.as_ref().unwrap_or(&empty));
    for p in probs {
        let (field, reason) = match &p {
            policy::AnnotationProblem::Unsupported { key } => {
                (key.clone(), "UnsupportedAnnotation")
            }
            policy::AnnotationProblem::Invalid { key, .. } => (key.clone(), "InvalidAnnotation"),
            policy::AnnotationProblem::Denied { key, .. } => (key.clone(), "AccessDenied"),
        };
        head.push(Problem {
            ingress: ik.clone(),
            field: format!("metadata.annotations[{field}]"),
            message: p.to_string(),
            reason,
        });
    }
    let pol = Arc::new(pol);
    let mut c = Compiled {
        ingress: ing.clone(),
        key: ik.clone(),
        created: created(ing),
        head: Vec::new(),
        default_backend: None,
        paths: Vec::new(),
        tls: Vec::new(),
        read: Vec::new(),
    };
    let Some(spec) = &ing.spec else {
        c.head = head;
        return c;
    };
    // A backend reference resolved, its problems into `problems`, what it read into `read`.
    let mut resolve =
        |b: &IngressBackend, field: &str, problems: &mut Vec<Problem>, read: &mut Vec<Read>| {
            BackendCtx {
                ingress: &ik,
                policy: &pol,
                services: &now.services,
                slices: &now.slices,
                health: &mut *health,
                stats,
                problems,
                read,
            }
            .backend(b, field)
        };
    if let Some(db) = &spec.default_backend {
        c.default_backend = resolve(db, "spec.defaultBackend", &mut head, &mut c.read);
    }
    c.head = head;

    for (ri, rule) in spec.rules.iter().flatten().enumerate() {
        let host = rule
            .host
            .as_deref()
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if let Err(e) = valid_host(&host) {
            c.paths.push(PathRule::Invalid(Problem {
                ingress: ik.clone(),
                field: format!("spec.rules[{ri}].host"),
                message: e,
                reason: "InvalidHost",
            }));
            continue;
        }
        let Some(http) = &rule.http else { continue };
        for (pi, p) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{ri}].http.paths[{pi}]");
            let raw = p.path.clone().unwrap_or_else(|| "/".into());
            let path = match path_match(&raw, &p.path_type, &pol) {
                Ok(m) => m,
                Err(e) => {
                    c.paths.push(PathRule::Invalid(Problem {
                        ingress: ik.clone(),
                        field: format!("{field}.path"),
                        message: e,
                        reason: "InvalidPath",
                    }));
                    continue;
                }
            };
            let mut problems = Vec::new();
            let backend = resolve(
                &p.backend,
                &format!("{field}.backend"),
                &mut problems,
                &mut c.read,
            );
            c.paths.push(PathRule::Rule {
                host: host.clone(),
                raw,
                field,
                path,
                backend,
                problems,
            });
        }
    }

    // TLS: certificates by host, from Secrets in the Ingress's namespace.
    for (ti, tls) in spec.tls.iter().flatten().enumerate() {
        let Some(secret_name) = &tls.secret_name else {
            continue;
        };
        let sk = ObjKey {
            namespace: ik.namespace.clone(),
            name: secret_name.clone(),
        };
        let found = now.secrets.get(&sk);
        c.read.push(Read::Secret(sk.clone()));
        let mut cached = None;
        let cert = match found {
            None => Err(format!("Secret {sk} not found")),
            Some(s) => {
                let rv = s.metadata.resource_version.clone().unwrap_or_default();
                let r = parsed
                    .and_then(|p| p.get(&sk))
                    .filter(|(crv, _)| *crv == rv && !rv.is_empty())
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| parse_tls_secret(s).map(Arc::new));
                cached = Some((sk.clone(), rv, r.clone()));
                r
            }
        };
        let hosts: Vec<String> = match &tls.hosts {
            Some(h) if !h.is_empty() => h.clone(),
            _ => spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.clone())
                .collect(),
        };
        c.tls.push(TlsRule {
            field: format!("spec.tls[{ti}].secretName"),
            parsed: cached,
            cert,
            hosts: hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        });
    }
    c
}
