//! The route table kept from one build to the next: a [`TableBuilder`] remembers every object of
//! the last snapshot by address, so a build finds what changed without looking into the objects
//! that did not, compiles only the Ingresses that changed or read something that changed, and
//! settles again only the hosts, certificates and problems those Ingresses touch. A change to one
//! Ingress among 10 000 is then a few map updates, not a pass over 10 000 Ingresses.
//!
//! Pure, like the rest of the table: the caller (discovery) owns the builder and hands it each
//! snapshot; the [`RouteTable`] it returns is what requests read.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rustls::sign::CertifiedKey;

use super::class::{is_ours, our_classes};
use super::compile::{self, Compiled, Lookups, PathRule, Read};
use super::{
    Backend, CertTable, ClassSettings, EndpointHealth, HostRoutes, Map, ObjKey, ParsedSecrets,
    Problem, Route, RouteTable, Snapshot, key,
};
use crate::metrics::RouteStats;

/// Where an Ingress stands among the others: oldest first, then by namespace and name. On a
/// conflict the first one wins.
type Order = (Option<i64>, ObjKey);

/// One Service, EndpointSlice or Secret of the last snapshot.
struct Dep {
    /// What it is filed under (`None`: an EndpointSlice of no Service, read by nobody).
    key: Option<Read>,
    /// The build that last saw it.
    seen: u64,
}

/// One Ingress of the last snapshot.
struct Entry {
    ingress: Arc<Ingress>,
    /// Its compiled form when it is ours.
    compiled: Option<Arc<Compiled>>,
    /// The build that last saw it.
    seen: u64,
}

/// The path rules a host's routes came from: per (path kind, path), the Ingress and the index
/// of its rule that claimed it.
type Owners = Map<(u8, String), (Order, usize)>;

/// Builds [`RouteTable`]s, each from the last (see the module documentation).
pub struct TableBuilder {
    settings: ClassSettings,
    generation: u64,
    /// The IngressClasses of the last snapshot: when they change, everything is built anew.
    classes: Vec<Arc<IngressClass>>,
    ingresses: Map<usize, Entry>,
    deps: Map<usize, Dep>,
    lookups: Lookups,
    /// Which Ingresses (by address) read each Service and Secret.
    readers: Map<Read, HashSet<usize>>,
    /// The Ingresses with rules for each host (`""`: any host, `*.example.com`: wildcard).
    by_host: Map<String, BTreeMap<Order, usize>>,
    /// The Ingresses with a certificate for each host.
    tls_by_host: Map<String, BTreeMap<Order, usize>>,
    /// The Ingresses with a default backend.
    defaults: BTreeMap<Order, usize>,
    owners: Map<String, Owners>,
    exact: Map<String, Arc<HostRoutes>>,
    wildcard: Map<String, Arc<HostRoutes>>,
    any_host: Arc<HostRoutes>,
    default_backend: Option<Arc<Backend>>,
    certs: CertTable,
    /// The problems of each Ingress that has any.
    problems: BTreeMap<Order, Vec<Problem>>,
    routes: usize,
    parsed_secrets: ParsedSecrets,
    health: Map<SocketAddr, Arc<EndpointHealth>>,
}

impl TableBuilder {
    /// A builder that has seen nothing yet: its first build compiles every Ingress of ours.
    pub fn new(settings: ClassSettings) -> Self {
        TableBuilder {
            settings,
            generation: 0,
            classes: Vec::new(),
            ingresses: Map::default(),
            deps: Map::default(),
            lookups: Lookups::default(),
            readers: Map::default(),
            by_host: Map::default(),
            tls_by_host: Map::default(),
            defaults: BTreeMap::new(),
            owners: Map::default(),
            exact: Map::default(),
            wildcard: Map::default(),
            any_host: Arc::default(),
            default_backend: None,
            certs: CertTable::default(),
            problems: BTreeMap::new(),
            routes: 0,
            parsed_secrets: ParsedSecrets::default(),
            health: Map::default(),
        }
    }

    /// How many Ingresses of ours the last build held.
    pub fn ingress_count(&self) -> usize {
        self.ingresses
            .values()
            .filter(|e| e.compiled.is_some())
            .count()
    }

    /// The Ingresses of ours in the last build, in no particular order.
    pub fn our_ingresses(&self) -> impl Iterator<Item = &Arc<Ingress>> {
        self.ingresses
            .values()
            .filter(|e| e.compiled.is_some())
            .map(|e| &e.ingress)
    }

    /// The table for `snap`, built from the last one; each newly compiled route's counters from
    /// `stats(ingress, service)`.
    pub fn build(
        &mut self,
        snap: &Snapshot,
        stats: &dyn Fn(&str, &str) -> Arc<RouteStats>,
    ) -> RouteTable {
        let same_classes = self.classes.len() == snap.classes.len()
            && self
                .classes
                .iter()
                .zip(&snap.classes)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same_classes {
            // Which Ingresses are ours may have changed: start over, keeping only what does not
            // depend on it (parsed certificates, endpoint health, the generation).
            let mut fresh = TableBuilder::new(self.settings.clone());
            fresh.generation = self.generation;
            fresh.parsed_secrets = std::mem::take(&mut self.parsed_secrets);
            fresh.health = std::mem::take(&mut self.health);
            fresh.classes = snap.classes.clone();
            *self = fresh;
        }
        self.generation += 1;
        let changed_deps = self.diff_deps(snap);
        let (dirty, gone) = self.diff_ingresses(snap, &changed_deps);
        let mut touched = Touched::default();
        let recompiled: Vec<Arc<Compiled>> = dirty
            .iter()
            .filter_map(|id| self.ingresses.get(id)?.compiled.clone())
            .collect();
        for c in gone.iter().chain(&recompiled) {
            self.retract(c, &mut touched);
        }
        let classes = our_classes(&self.classes, &self.settings);
        for id in &dirty {
            let Some(entry) = self.ingresses.get(id) else {
                continue;
            };
            let ing = entry.ingress.clone();
            let compiled = is_ours(&ing, &classes).then(|| {
                Arc::new(compile::compile(
                    &ing,
                    &self.lookups,
                    &mut self.health,
                    stats,
                    Some(&self.parsed_secrets),
                ))
            });
            if let Some(c) = &compiled {
                self.enter(*id, c, &mut touched);
            }
            if let Some(e) = self.ingresses.get_mut(id) {
                e.compiled = compiled;
            }
        }
        for host in std::mem::take(&mut touched.hosts) {
            self.settle_host(&host, &mut touched.problems);
        }
        for host in std::mem::take(&mut touched.tls) {
            self.settle_certificate(&host);
        }
        if touched.defaults {
            self.default_backend = self
                .defaults
                .values()
                .next()
                .and_then(|id| self.compiled(*id)?.default_backend.clone());
            touched
                .problems
                .extend(self.defaults.iter().map(|(o, id)| (o.clone(), *id)));
        }
        for (order, id) in std::mem::take(&mut touched.problems) {
            self.settle_problems(order, id);
        }
        if !gone.is_empty() || !dirty.is_empty() {
            // An address no backend holds any more is forgotten.
            self.health.retain(|_, h| Arc::strong_count(h) > 1);
        }
        drop((gone, recompiled));
        RouteTable {
            generation: self.generation,
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            any_host: self.any_host.clone(),
            default_backend: self.default_backend.clone(),
            certs: self.certs.clone(),
            problems: self.problems.values().flatten().cloned().collect(),
            ingresses: self
                .ingresses
                .values()
                .filter(|e| e.compiled.is_some())
                .count(),
            routes: self.routes,
        }
    }

    fn compiled(&self, id: usize) -> Option<&Arc<Compiled>> {
        self.ingresses.get(&id)?.compiled.as_ref()
    }

    /// Take in the snapshot's Services, EndpointSlices and Secrets; what was added, replaced
    /// or removed, by key.
    fn diff_deps(&mut self, snap: &Snapshot) -> HashSet<Read> {
        let generation = self.generation;
        let mut changed = HashSet::new();
        for s in &snap.services {
            let id = Arc::as_ptr(s) as usize;
            if self.see(id) {
                continue;
            }
            let k = key(&s.metadata);
            self.lookups.services.insert(k.clone(), s.clone());
            self.file(id, Some(Read::Service(k)), &mut changed);
        }
        for s in &snap.slices {
            let id = Arc::as_ptr(s) as usize;
            if self.see(id) {
                continue;
            }
            let service = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(|svc| ObjKey {
                    namespace: s.metadata.namespace.clone().unwrap_or_default(),
                    name: svc.clone(),
                });
            if let Some(k) = &service {
                let list = self.lookups.slices.entry(k.clone()).or_default();
                list.push(s.clone());
                list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            }
            self.file(id, service.map(Read::Service), &mut changed);
        }
        for s in &snap.secrets {
            let id = Arc::as_ptr(s) as usize;
            if self.see(id) {
                continue;
            }
            let k = key(&s.metadata);
            self.lookups.secrets.insert(k.clone(), s.clone());
            self.file(id, Some(Read::Secret(k)), &mut changed);
        }
        // What the snapshot no longer has: out of the lookups, unless a newer object of the
        // same key took its place there already.
        let lookups = &mut self.lookups;
        let parsed = &mut self.parsed_secrets;
        self.deps.retain(|id, dep| {
            if dep.seen == generation {
                return true;
            }
            let is_it = |p: *const ()| p as usize == *id;
            match &dep.key {
                Some(Read::Service(k)) => {
                    if lookups
                        .services
                        .get(k)
                        .is_some_and(|s| is_it(Arc::as_ptr(s).cast()))
                    {
                        lookups.services.remove(k);
                    }
                    if let Some(list) = lookups.slices.get_mut(k) {
                        list.retain(|s| !is_it(Arc::as_ptr(s).cast()));
                        if list.is_empty() {
                            lookups.slices.remove(k);
                        }
                    }
                    changed.insert(Read::Service(k.clone()));
                }
                Some(Read::Secret(k)) => {
                    if lookups
                        .secrets
                        .get(k)
                        .is_some_and(|s| is_it(Arc::as_ptr(s).cast()))
                    {
                        lookups.secrets.remove(k);
                        parsed.remove(k);
                    }
                    changed.insert(Read::Secret(k.clone()));
                }
                None => {}
            }
            false
        });
        changed
    }

    /// Remember a new Service, EndpointSlice or Secret under `key` (what its readers read),
    /// seen by this build, and note the key as changed.
    fn file(&mut self, id: usize, key: Option<Read>, changed: &mut HashSet<Read>) {
        changed.extend(key.clone());
        let seen = self.generation;
        self.deps.insert(id, Dep { key, seen });
    }

    /// Mark a known Service, EndpointSlice or Secret as seen by this build; false when new.
    fn see(&mut self, id: usize) -> bool {
        match self.deps.get_mut(&id) {
            Some(d) => {
                d.seen = self.generation;
                true
            }
            None => false,
        }
    }

    /// Take in the snapshot's Ingresses: which to compile (new ones, and known ones of ours
    /// that read something in `changed`), and the compiled forms of the ones gone.
    fn diff_ingresses(
        &mut self,
        snap: &Snapshot,
        changed: &HashSet<Read>,
    ) -> (Vec<usize>, Vec<Arc<Compiled>>) {
        let generation = self.generation;
        let mut dirty: HashSet<usize> = HashSet::new();
        for ing in &snap.ingresses {
            let id = Arc::as_ptr(ing) as usize;
            match self.ingresses.get_mut(&id) {
                Some(e) => e.seen = generation,
                None => {
                    self.ingresses.insert(
                        id,
                        Entry {
                            ingress: ing.clone(),
                            compiled: None,
                            seen: generation,
                        },
                    );
                    dirty.insert(id);
                }
            }
        }
        let mut gone = Vec::new();
        self.ingresses.retain(|_, e| {
            if e.seen == generation {
                return true;
            }
            gone.extend(e.compiled.take());
            false
        });
        for k in changed {
            if let Some(readers) = self.readers.get(k) {
                dirty.extend(readers.iter().filter(|id| self.ingresses.contains_key(id)));
            }
        }
        let mut dirty: Vec<usize> = dirty.into_iter().collect();
        dirty.sort_unstable();
        (dirty, gone)
    }

    /// Take a compiled Ingress out of the indexes, noting what it touched.
    fn retract(&mut self, c: &Compiled, touched: &mut Touched) {
        let order = (c.created, c.key.clone());
        let id = Arc::as_ptr(&c.ingress) as usize;
        for host in hosts_of(c) {
            if let Some(list) = self.by_host.get_mut(host) {
                list.remove(&order);
                if list.is_empty() {
                    self.by_host.remove(host);
                }
            }
            touched.hosts.insert(host.to_string());
        }
        for host in c.tls.iter().flat_map(|t| &t.hosts) {
            if let Some(list) = self.tls_by_host.get_mut(host) {
                list.remove(&order);
                if list.is_empty() {
                    self.tls_by_host.remove(host);
                }
            }
            touched.tls.insert(host.clone());
        }
        if c.default_backend.is_some() {
            self.defaults.remove(&order);
            touched.defaults = true;
        }
        for k in &c.read {
            if let Some(r) = self.readers.get_mut(k) {
                r.remove(&id);
                if r.is_empty() {
                    self.readers.remove(k);
                }
            }
        }
        self.problems.remove(&order);
    }

    /// Put a compiled Ingress into the indexes, noting what it touches.
    fn enter(&mut self, id: usize, c: &Compiled, touched: &mut Touched) {
        let order = (c.created, c.key.clone());
        for host in hosts_of(c) {
            self.by_host
                .entry(host.to_string())
                .or_default()
                .insert(order.clone(), id);
            touched.hosts.insert(host.to_string());
        }
        for tls in &c.tls {
            if let Some((sk, rv, r)) = &tls.parsed {
                self.parsed_secrets
                    .insert(sk.clone(), (rv.clone(), r.clone()));
            }
            for host in &tls.hosts {
                self.tls_by_host
                    .entry(host.clone())
                    .or_default()
                    .insert(order.clone(), id);
                touched.tls.insert(host.clone());
            }
        }
        if c.default_backend.is_some() {
            self.defaults.insert(order.clone(), id);
            touched.defaults = true;
        }
        for k in c.read.iter().cloned() {
            self.readers.entry(k).or_default().insert(id);
        }
        touched.problems.insert(order, id);
    }

    /// Settle one host: its routes (the oldest Ingress wins each path) and who owns each path;
    /// every Ingress with rules for it has its problems looked at again.
    fn settle_host(&mut self, host: &str, problems: &mut Map<Order, usize>) {
        let mut owners = Owners::default();
        let mut routes = Vec::new();
        for (order, id) in self.by_host.get(host).into_iter().flatten() {
            problems.insert(order.clone(), *id);
            let Some(c) = self.compiled(*id) else {
                continue;
            };
            for (i, rule) in c.paths.iter().enumerate() {
                let PathRule::Rule {
                    host: h,
                    path,
                    backend,
                    ..
                } = rule
                else {
                    continue;
                };
                if h != host {
                    continue;
                }
                let (rank, p) = path.identity();
                let Some(b) = backend else { continue };
                if owners.contains_key(&(rank, p.to_string())) {
                    continue;
                }
                owners.insert((rank, p.to_string()), (order.clone(), i));
                routes.push(Route {
                    path: path.clone(),
                    backend: b.clone(),
                    created: c.created,
                });
            }
        }
        // Longest path first, `Exact` before the others at equal length, then oldest (stable).
        routes.sort_by(|a, b| {
            b.path
                .rank_len()
                .cmp(&a.path.rank_len())
                .then(a.path.kind_rank().cmp(&b.path.kind_rank()))
                .then_with(|| a.created.cmp(&b.created))
        });
        let count = routes.len();
        let routes = Arc::new(HostRoutes { routes });
        let before = if host.is_empty() {
            std::mem::replace(&mut self.any_host, routes).routes.len()
        } else {
            let (map, name) = match host.strip_prefix("*.") {
                Some(parent) => (&mut self.wildcard, parent),
                None => (&mut self.exact, host),
            };
            let before = if count == 0 {
                map.remove(name)
            } else {
                map.insert(name.to_string(), routes)
            };
            before.map_or(0, |r| r.routes.len())
        };
        self.routes = self.routes + count - before;
        if owners.is_empty() {
            self.owners.remove(host);
        } else {
            self.owners.insert(host.to_string(), owners);
        }
    }

    /// Settle one host's certificate: the oldest Ingress with a usable one for it.
    fn settle_certificate(&mut self, host: &str) {
        let (map, name) = match host.strip_prefix("*.") {
            Some(parent) => (&mut self.certs.wildcard, parent),
            None if host.is_empty() => return,
            None => (&mut self.certs.exact, host),
        };
        let ingresses = &self.ingresses;
        let winner: Option<Arc<CertifiedKey>> = self
            .tls_by_host
            .get(host)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| ingresses.get(id)?.compiled.as_ref())
            .flat_map(|c| &c.tls)
            .find_map(|t| match &t.cert {
                Ok(cert) if t.hosts.iter().any(|h| h == host) => Some(cert.clone()),
                _ => None,
            });
        match winner {
            Some(cert) => {
                map.insert(name.to_string(), cert);
            }
            None => {
                map.remove(name);
            }
        }
    }

    /// Settle one Ingress's problems: its own, and the rules it lost to older Ingresses.
    fn settle_problems(&mut self, order: Order, id: usize) {
        let Some(c) = self.compiled(id).cloned() else {
            self.problems.remove(&order);
            return;
        };
        let ik = &c.key;
        let conflict = |field: String, message: String| Problem {
            ingress: ik.clone(),
            field,
            message,
            reason: "Conflict",
        };
        let mut out: Vec<Problem> = c.head.clone();
        if c.default_backend.is_some()
            && let Some(first) = self.defaults.keys().next()
            && *first != order
        {
            out.push(conflict(
                "spec.defaultBackend".into(),
                format!(
                    "the default backend is already set by the older Ingress {}; this one is ignored",
                    first.1
                ),
            ));
        }
        for (i, rule) in c.paths.iter().enumerate() {
            let (host, raw, field, path, problems) = match rule {
                PathRule::Invalid(p) => {
                    out.push(p.clone());
                    continue;
                }
                PathRule::Rule {
                    host,
                    raw,
                    field,
                    path,
                    problems,
                    ..
                } => (host, raw, field, path, problems),
            };
            let (rank, p) = path.identity();
            let owner = self
                .owners
                .get(host.as_str())
                .and_then(|o| o.get(&(rank, p.to_string())));
            match owner {
                // Its own rule: an earlier duplicate of this path (with no backend) still
                // reports its problems; a later one is ignored quietly.
                Some((o, claimed)) if *o == order => {
                    if i <= *claimed {
                        out.extend(problems.iter().cloned());
                    }
                }
                Some((o, _)) if *o < order => out.push(conflict(
                    format!("{field}.path"),
                    format!(
                        "host {:?} path {raw:?} is already served by the older Ingress {}; this rule is ignored",
                        if host.is_empty() { "*" } else { host },
                        o.1
                    ),
                )),
                _ => out.extend(problems.iter().cloned()),
            }
        }
        for tls in &c.tls {
            if let Err(e) = &tls.cert {
                out.push(Problem {
                    ingress: ik.clone(),
                    field: tls.field.clone(),
                    message: e.clone(),
                    reason: "InvalidCertificate",
                });
            }
        }
        if out.is_empty() {
            self.problems.remove(&order);
        } else {
            self.problems.insert(order, out);
        }
    }
}

/// What a build has to settle again.
#[derive(Default)]
struct Touched {
    hosts: HashSet<String>,
    tls: HashSet<String>,
    defaults: bool,
    problems: Map<Order, usize>,
}

/// The hosts (rule hosts, `""` for any) a compiled Ingress has rules for, each once.
fn hosts_of(c: &Compiled) -> Vec<&str> {
    let mut hosts: Vec<&str> = c
        .paths
        .iter()
        .filter_map(|r| match r {
            PathRule::Rule { host, .. } => Some(host.as_str()),
            PathRule::Invalid(_) => None,
        })
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}
