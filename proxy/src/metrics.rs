//! The proxy's Prometheus metrics: requests by ingress/service/code, latency histograms,
//! upstream errors, and the route table's generation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets in seconds (upper bounds).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    upstream_errors: BTreeMap<(String, String), u64>,
}

/// The counters. Updated once per request (in the logging phase), read by `/metrics`.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// The route table's generation.
    pub generation: AtomicU64,
    /// Routes (host/path rules) in the table.
    pub routes: AtomicU64,
    /// Hosts with a certificate.
    pub certificates: AtomicU64,
    /// Requests being served right now.
    pub in_flight: AtomicU64,
}

impl Metrics {
    /// Count a finished request; `ingress`/`service` are empty when nothing matched.
    pub fn request(&self, ingress: &str, service: &str, code: u16, took: Duration) {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *i.requests
            .entry((ingress.to_string(), service.to_string(), code))
            .or_default() += 1;
        let h = i
            .latency
            .entry((ingress.to_string(), service.to_string()))
            .or_default();
        let s = took.as_secs_f64();
        for (n, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[n] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// Count an upstream failure of a kind (`connect`, `timeout`, `reset`, …).
    pub fn upstream_error(&self, service: &str, kind: &str) {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *i.upstream_errors
            .entry((service.to_string(), kind.to_string()))
            .or_default() += 1;
    }

    /// How many requests with this status were counted (all ingresses).
    pub fn count_code(&self, code: u16) -> u64 {
        let i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        i.requests
            .iter()
            .filter(|((_, _, c), _)| *c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = String::new();
        o.push_str("# HELP metalgate_proxy_requests_total Requests served, by Ingress, Service and status code.\n# TYPE metalgate_proxy_requests_total counter\n");
        for ((ing, svc, code), n) in &i.requests {
            let _ = writeln!(
                o,
                "metalgate_proxy_requests_total{{ingress=\"{ing}\",service=\"{svc}\",code=\"{code}\"}} {n}"
            );
        }
        o.push_str("# HELP metalgate_proxy_request_duration_seconds Time from request to the end of the response.\n# TYPE metalgate_proxy_request_duration_seconds histogram\n");
        for ((ing, svc), h) in &i.latency {
            let l = format!("ingress=\"{ing}\",service=\"{svc}\"");
            for (n, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {}",
                    h.counts[n]
                );
            }
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                o,
                "metalgate_proxy_request_duration_seconds_count{{{l}}} {}",
                h.count
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
