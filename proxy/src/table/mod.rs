//! The route table: built from Ingresses, IngressClasses, Services, EndpointSlices and TLS
//! Secrets by a [`TableBuilder`] (each table from the last: only what changed is compiled and
//! settled again), then only read. Pure: no client, socket or clock in here.
//!
//! - Ingresses of our class only: `ingressClassName` naming one of our IngressClasses (or
//!   `metalgate`), no class when our IngressClass is the default, and `nginx` when
//!   migration mode is on.
//! - Hosts exact or `*.` wildcard (one DNS label, per the Ingress spec), case-insensitive, the
//!   port ignored. Rules without a host serve every host that has no rule of its own.
//! - Paths `Exact`, `Prefix` (element-wise), `ImplementationSpecific` as `Prefix`; longest
//!   match wins, `Exact` before `Prefix` at equal length; on a conflict the oldest Ingress wins
//!   and the newer rule is reported.
//! - Endpoints: ready ones; terminating-but-serving ones only when nothing is ready.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use regex::Regex;
use rustls::sign::CertifiedKey;

use crate::metrics::RouteStats;
use crate::policy::Policy;

mod backend;
mod builder;
mod class;
mod compile;
mod tls;

pub use builder::TableBuilder;
pub use class::{CONTROLLER, ClassSettings};
pub use tls::{CertTable, parse_tls_secret};

/// The table's maps: foldhash (seeded per process) instead of SipHash — a build of 10 000
/// Ingresses hashes every host, path and key, and a request hashes its host.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// TLS Secrets parsed, by key: the resourceVersion parsed and the result.
type ParsedSecrets = HashMap<ObjKey, (String, Result<Arc<CertifiedKey>, String>)>;

/// Everything the table is built from.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// All Ingresses (the builder picks ours).
    pub ingresses: Vec<Arc<Ingress>>,
    /// All IngressClasses.
    pub classes: Vec<Arc<IngressClass>>,
    /// All Services.
    pub services: Vec<Arc<Service>>,
    /// All EndpointSlices.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// All Secrets the proxy may use for TLS.
    pub secrets: Vec<Arc<Secret>>,
}

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Something in the input that could not be honoured, naming the object and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The Ingress it concerns.
    pub ingress: ObjKey,
    /// The field (`spec.rules[0].http.paths[1].backend.service.port`), or the annotation.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Short reason for an Event (`UnsupportedAnnotation`, `ServiceNotFound`, …).
    pub reason: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ingress {} {}: {}",
            self.ingress, self.field, self.message
        )
    }
}

/// Passive health of one endpoint, shared by every table that lists it.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    /// Consecutive failures.
    pub failures: AtomicU32,
    /// Ejected until this many milliseconds after the proxy's clock origin (0: not ejected).
    pub ejected_until_ms: AtomicU64,
}

/// One backend address.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its passive health.
    pub health: Arc<EndpointHealth>,
}

/// Where a route sends requests.
#[derive(Debug)]
pub struct Backend {
    /// The Ingress it comes from.
    pub ingress: ObjKey,
    /// The Service.
    pub service: ObjKey,
    /// Its endpoints (empty: the Service has none ready → 503).
    pub endpoints: Vec<Endpoint>,
    /// What the Ingress's annotations ask for.
    pub policy: Arc<Policy>,
    /// Round-robin cursor.
    pub cursor: AtomicUsize,
    /// Its request counters.
    pub stats: Arc<RouteStats>,
}

/// How a rule's path matches.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path, exactly.
    Exact(String),
    /// Element-wise prefix; stored without a trailing `/` (`""` for `/`).
    Prefix(String),
    /// ingress-nginx's regex locations (a `rewrite-target` with `$n` groups): anchored at the
    /// start, case-insensitive.
    Regex(Regex, String),
}

impl PathMatch {
    fn rank_len(&self) -> usize {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) | PathMatch::Regex(_, p) => p.len(),
        }
    }
    fn kind_rank(&self) -> u8 {
        match self {
            PathMatch::Exact(_) => 0,
            PathMatch::Regex(..) => 1,
            PathMatch::Prefix(_) => 2,
        }
    }
    fn identity(&self) -> (u8, &str) {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) | PathMatch::Regex(_, p) => {
                (self.kind_rank(), p.as_str())
            }
        }
    }

    /// Whether `path` (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                if p.is_empty() {
                    return true;
                }
                match path.strip_prefix(p.as_str()) {
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
            PathMatch::Regex(re, _) => re.is_match(path),
        }
    }
}

/// One path rule of a host.
#[derive(Debug, Clone)]
pub struct Route {
    /// How it matches.
    pub path: PathMatch,
    /// Where it goes.
    pub backend: Arc<Backend>,
    created: Option<i64>,
}

/// The rules of one host, longest match first.
#[derive(Debug, Default, Clone)]
pub struct HostRoutes {
    /// Sorted: longest path first, `Exact` before others at equal length, then oldest.
    pub routes: Vec<Route>,
}

impl HostRoutes {
    fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path.matches(path))
    }
}

/// What a request matched.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The backend.
    pub backend: &'a Arc<Backend>,
    /// The path to send upstream when the route rewrites it.
    pub upstream_path: Option<String>,
    /// Whether the host has a certificate of ours (HTTP → HTTPS redirect candidate).
    pub tls_host: bool,
}

/// The whole table. Built by a [`TableBuilder`], then shared read-only.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Counts rebuilds; shown in `/metrics`.
    pub generation: u64,
    exact: Map<String, Arc<HostRoutes>>,
    wildcard: Map<String, Arc<HostRoutes>>,
    any_host: Arc<HostRoutes>,
    default_backend: Option<Arc<Backend>>,
    /// Certificates for SNI.
    pub certs: CertTable,
    /// What could not be honoured, oldest Ingress first.
    pub problems: Vec<Problem>,
    ingresses: usize,
    routes: usize,
}

/// Lowercase, without port and trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        // host:port — one colon; more is an IPv6 address without brackets, kept whole.
        match h.bytes().position(|b| b == b':') {
            Some(i) if !h.as_bytes()[i + 1..].contains(&b':') => &h[..i],
            _ => h,
        }
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl RouteTable {
    /// Route a request: host (any case, maybe with a port) and path (no query).
    pub fn find(&self, host: &str, path: &str) -> Option<Matched<'_>> {
        self.find_normalized(&normalize_host(host), path)
    }

    /// [`RouteTable::find`] for a host already through [`normalize_host`].
    pub fn find_normalized(&self, host: &str, path: &str) -> Option<Matched<'_>> {
        let tls_host = self.certs.get_normalized(host).is_some();
        let routes = self.exact.get(host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        });
        let route = match routes {
            Some(r) => r.find(path),
            None => self.any_host.find(path),
        };
        match route {
            Some(r) => Some(Matched {
                backend: &r.backend,
                upstream_path: rewrite(&r.path, &r.backend.policy, path),
                tls_host,
            }),
            None => self.default_backend.as_ref().map(|b| Matched {
                backend: b,
                upstream_path: None,
                tls_host,
            }),
        }
    }

    /// Every backend of the table (for metrics and tests).
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(std::iter::once(&self.any_host))
            .flat_map(|h| h.routes.iter().map(|r| &r.backend))
            .chain(self.default_backend.iter())
    }

    /// How many Ingresses of ours the table holds.
    pub fn ingress_count(&self) -> usize {
        self.ingresses
    }

    /// How many routes (host and path rules in use) the table holds.
    pub fn route_count(&self) -> usize {
        self.routes
    }

    /// Host names with rules (exact, `*.` wildcards), sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .exact
            .keys()
            .cloned()
            .chain(self.wildcard.keys().map(|k| format!("*.{k}")))
            .collect();
        v.sort();
        v
    }

    /// Build a table afresh; `prev` lends each route its counters. (Discovery keeps a
    /// [`TableBuilder`] instead, which builds each table from the last.)
    pub fn build(
        snap: &Snapshot,
        settings: &ClassSettings,
        prev: Option<&RouteTable>,
    ) -> RouteTable {
        let old: HashMap<(String, String), Arc<RouteStats>> = prev
            .map(|p| {
                p.backends()
                    .map(|b| {
                        (
                            (b.stats.ingress.clone(), b.stats.service.clone()),
                            b.stats.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        TableBuilder::new(settings.clone()).build(snap, &|i, s| {
            old.get(&(i.to_string(), s.to_string()))
                .cloned()
                .unwrap_or_else(|| Arc::new(RouteStats::new(i, s)))
        })
    }
}

fn rewrite(m: &PathMatch, policy: &Policy, path: &str) -> Option<String> {
    let target = policy.rewrite_target.as_ref()?;
    match m {
        PathMatch::Regex(re, _) => {
            let caps = re.captures(path)?;
            let mut out = String::new();
            caps.expand(target, &mut out);
            Some(out)
        }
        // ingress-nginx replaces the whole URI when the target has no groups.
        _ => Some(target.clone()),
    }
}

fn path_match(raw: &str, kind: &str, pol: &Policy) -> Result<PathMatch, String> {
    if !raw.starts_with('/') {
        return Err(format!("{raw:?} must start with /"));
    }
    if pol
        .rewrite_target
        .as_deref()
        .is_some_and(|t| t.contains('$'))
    {
        // ingress-nginx: a rewrite with capture groups turns the rule paths into regexes.
        return Regex::new(&format!("(?i)^{raw}"))
            .map(|re| PathMatch::Regex(re, raw.to_string()))
            .map_err(|e| format!("{raw:?} is not a valid regular expression: {e}"));
    }
    match kind {
        "Exact" => Ok(PathMatch::Exact(raw.to_string())),
        "Prefix" | "ImplementationSpecific" | "" => {
            Ok(PathMatch::Prefix(raw.trim_end_matches('/').to_string()))
        }
        other => Err(format!(
            "pathType {other:?} is not one of Exact, Prefix, ImplementationSpecific"
        )),
    }
}

fn valid_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Ok(());
    }
    let bare = h.strip_prefix("*.").unwrap_or(h);
    if bare.contains('*') {
        return Err(format!(
            "{h:?}: a wildcard may only be the whole first label (*.example.com)"
        ));
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!("{h:?}: a host must be a DNS name, not an IP"));
    }
    let ok = bare.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{h:?} is not a valid DNS name"))
    }
}

/// `namespace/name` of an Ingress.
pub fn key_of(ing: &Ingress) -> ObjKey {
    key(&ing.metadata)
}

pub(super) fn key(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjKey {
    ObjKey {
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
    }
}

/// When an Ingress was created, in seconds; one without a timestamp counts as oldest.
fn created(i: &Ingress) -> Option<i64> {
    i.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
}
