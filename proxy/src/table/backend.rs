//! An Ingress backend resolved to endpoints: the Service and its port, the ready (or else
//! serving) endpoints of its EndpointSlices, shared passive health — each thing missing a
//! [`Problem`] naming the field.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressBackend;

use super::compile::Read;
use super::{Backend, Endpoint, EndpointHealth, Map, ObjKey, Problem};
use crate::metrics::RouteStats;
use crate::policy::Policy;

pub(super) struct BackendCtx<'a> {
    pub(super) ingress: &'a ObjKey,
    pub(super) policy: &'a Arc<Policy>,
    pub(super) services: &'a Map<ObjKey, Arc<Service>>,
    pub(super) slices: &'a Map<ObjKey, Vec<Arc<EndpointSlice>>>,
    pub(super) health: &'a mut Map<SocketAddr, Arc<EndpointHealth>>,
    pub(super) stats: &'a dyn Fn(&str, &str) -> Arc<RouteStats>,
    pub(super) problems: &'a mut Vec<Problem>,
    /// What was read besides the Ingress (the compiled result holds while it is unchanged).
    pub(super) read: &'a mut Vec<Read>,
}

impl BackendCtx<'_> {
    pub(super) fn problem(&mut self, field: String, message: String, reason: &'static str) {
        self.problems.push(Problem {
            ingress: self.ingress.clone(),
            field,
            message,
            reason,
        });
    }

    /// The backend of an Ingress backend reference; `None` (and a problem) when it cannot be
    /// used at all. A Service without ready endpoints still gives a backend (503 until it has).
    pub(super) fn backend(&mut self, b: &IngressBackend, field: &str) -> Option<Arc<Backend>> {
        let Some(svc_ref) = &b.service else {
            self.problem(
                field.to_string(),
                "only service backends are supported (resource backends are not)".into(),
                "UnsupportedBackend",
            );
            return None;
        };
        let sk = ObjKey {
            namespace: self.ingress.namespace.clone(),
            name: svc_ref.name.clone(),
        };
        self.read.push(Read::Service(sk.clone()));
        let mut endpoints = Vec::new();
        match self.services.get(&sk) {
            None => self.problem(
                format!("{field}.service.name"),
                format!("Service {sk} not found; requests get 503 until it exists"),
                "ServiceNotFound",
            ),
            Some(svc) => {
                let ports = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.clone())
                    .unwrap_or_default();
                let want = svc_ref.port.as_ref();
                let sp = ports.iter().find(|p| match want {
                    Some(w) => match (&w.number, &w.name) {
                        (Some(n), _) => p.port == *n,
                        (None, Some(name)) => p.name.as_deref() == Some(name.as_str()),
                        (None, None) => ports.len() == 1,
                    },
                    None => ports.len() == 1,
                });
                match sp {
                    None => self.problem(
                        format!("{field}.service.port"),
                        format!("Service {sk} has no such port"),
                        "ServicePortNotFound",
                    ),
                    Some(sp) => {
                        let name = sp.name.clone().unwrap_or_default();
                        endpoints = self.endpoints(&sk, &name);
                    }
                }
            }
        }
        let stats = (self.stats)(&self.ingress.to_string(), &sk.to_string());
        Some(Arc::new(Backend {
            ingress: self.ingress.clone(),
            service: sk,
            endpoints,
            policy: self.policy.clone(),
            cursor: AtomicUsize::new(0),
            stats,
        }))
    }

    pub(super) fn endpoints(&mut self, svc: &ObjKey, port_name: &str) -> Vec<Endpoint> {
        let mut ready = Vec::new();
        let mut serving = Vec::new();
        for slice in self.slices.get(svc).into_iter().flatten() {
            if slice.address_type == "FQDN" {
                continue;
            }
            let Some(port) = slice.ports.iter().flatten().find_map(|p| {
                (p.name.clone().unwrap_or_default() == port_name)
                    .then_some(p.port)
                    .flatten()
            }) else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            for ep in &slice.endpoints {
                let c = ep.conditions.clone().unwrap_or_default();
                let list = if c.ready.unwrap_or(true) {
                    &mut ready
                } else if c.serving == Some(true) && c.terminating == Some(true) {
                    &mut serving
                } else {
                    continue;
                };
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        list.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        let mut chosen = if ready.is_empty() { serving } else { ready };
        let mut seen = HashSet::new();
        chosen.retain(|a| seen.insert(*a));
        chosen
            .into_iter()
            .map(|addr| Endpoint {
                addr,
                health: self.health.entry(addr).or_default().clone(),
            })
            .collect()
    }
}
