//! The proxy's Prometheus metrics: requests by ingress/service/code, latency histograms,
//! upstream errors, and the route table's generation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Latency buckets in seconds (upper bounds).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One route's counters (an Ingress and Service pair): updated without a lock, one atomic add
/// per counter per request.
#[derive(Debug)]
pub struct RouteStats {
    /// `ingress` label.
    pub ingress: String,
    /// `service` label.
    pub service: String,
    codes: Box<[AtomicU64]>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl RouteStats {
    /// Fresh counters for a route.
    pub fn new(ingress: &str, service: &str) -> Self {
        RouteStats {
            ingress: ingress.to_string(),
            service: service.to_string(),
            codes: (0..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Count a finished request.
    pub fn record(&self, code: u16, took: Duration) {
        if let Some(c) = self.codes.get(usize::from(code)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let s = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    routes: BTreeMap<(String, String), Arc<RouteStats>>,
    upstream_errors: BTreeMap<(String, String), u64>,
}

/// The counters: per-route atomics (found through the route table, no lock per request) and
/// a registry of them for `/metrics`, so a route's counters survive its removal.
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Requests that matched no route (404s, refused requests).
    pub unmatched: Arc<RouteStats>,
    /// The route table's generation.
    pub generation: AtomicU64,
    /// Routes (host/path rules) in the table.
    pub routes: AtomicU64,
    /// Hosts with a certificate.
    pub certificates: AtomicU64,
    /// Requests being served right now.
    pub in_flight: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::default(),
            unmatched: Arc::new(RouteStats::new("", "")),
            generation: AtomicU64::new(0),
            routes: AtomicU64::new(0),
            certificates: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The counters of a route, made on first use.
    pub fn route(&self, ingress: &str, service: &str) -> Arc<RouteStats> {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        i.routes
            .entry((ingress.to_string(), service.to_string()))
            .or_insert_with(|| Arc::new(RouteStats::new(ingress, service)))
            .clone()
    }

    /// Count an upstream failure of a kind (`connect`, `timeout`, `reset`, …).
    pub fn upstream_error(&self, service: &str, kind: &str) {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *i.upstream_errors
            .entry((service.to_string(), kind.to_string()))
            .or_default() += 1;
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<&Arc<RouteStats>> = std::iter::once(&self.unmatched)
            .chain(i.routes.values())
            .collect();
        let mut o = String::new();
        o.push_str("# HELP metalgate_proxy_requests_total Requests served, by Ingress, Service and status code.\n# TYPE metalgate_proxy_requests_total counter\n");
        for r in &all {
            for (code, n) in r.codes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "metalgate_proxy_requests_total{{ingress=\"{}\",service=\"{}\",code=\"{code}\"}} {n}",
                        r.ingress, r.service
                    );
                }
            }
        }
        o.push_str("# HELP metalgate_proxy_request_duration_seconds Time from request to the end of the response.\n# TYPE metalgate_proxy_request_duration_seconds histogram\n");
        for r in &all {
            let count = r.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let l = format!("ingress=\"{}\",service=\"{}\"", r.ingress, r.service);
            let mut cumulative = 0;
            for (n, b) in BUCKETS.iter().enumerate() {
                cumulative += r.buckets[n].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_sum{{{l}}} {}",
                r.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_count{{{l}}} {count}"
            );
        }
        o.push_str("# HELP metalgate_proxy_upstream_errors_total Failed attempts to reach an endpoint, by Service and kind.\n# TYPE metalgate_proxy_upstream_errors_total counter\n");
        for ((svc, kind), n) in &i.upstream_errors {
            let _ = writeln!(
                o,
                "metalgate_proxy_upstream_errors_total{{service=\"{svc}\",kind=\"{kind}\"}} {n}"
            );
        }
        for (name, help, v) in [
            (
                "metalgate_proxy_route_table_generation",
                "Rebuilds of the route table since start.",
                &self.generation,
            ),
            (
                "metalgate_proxy_routes",
                "Host/path rules in the route table.",
                &self.routes,
            ),
            (
                "metalgate_proxy_certificates",
                "Host names with a certificate.",
                &self.certificates,
            ),
            (
                "metalgate_proxy_requests_in_flight",
                "Requests being served.",
                &self.in_flight,
            ),
        ] {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        o
    }
}
