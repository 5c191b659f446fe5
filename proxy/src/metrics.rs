//! The proxy's Prometheus metrics: requests by ingress/service/code, latency histograms,
//! upstream errors, and the route table's generation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Latency buckets in seconds (upper bounds).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Status codes counted without a lock (what a proxy answers nearly always); any other code
/// goes to a small map behind a lock, so every code is still reported exactly.
const COMMON: [u16; 24] = [
    200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 413, 414, 429, 431,
    499, 500, 502, 503, 504,
];

/// How many copies of each counter there are: requests on different threads add to different
/// cache lines, and a scrape sums them. One per core, up to 16.
fn shard_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 16)
    })
}

/// This thread's copy of a sharded counter.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|m| *m) % shard_count()
}

/// One thread's share of a route's counters, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    codes: [AtomicU64; COMMON.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// One route's counters (an Ingress and Service pair): updated without a lock and without
/// sharing a cache line with another core, four atomic adds per request.
#[derive(Debug)]
pub struct RouteStats {
    /// `ingress` label.
    pub ingress: String,
    /// `service` label.
    pub service: String,
    shards: Box<[Shard]>,
    rare: Mutex<BTreeMap<u16, u64>>,
}

impl RouteStats {
    /// Fresh counters for a route.
    pub fn new(ingress: &str, service: &str) -> Self {
        RouteStats {
            ingress: ingress.to_string(),
            service: service.to_string(),
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
            rare: Mutex::default(),
        }
    }

    /// Count a finished request.
    pub fn record(&self, code: u16, took: Duration) {
        let sh = &self.shards[my_shard()];
        match COMMON.iter().position(|c| *c == code) {
            Some(i) => {
                sh.codes[i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let mut rare = self.rare.lock().unwrap_or_else(|e| e.into_inner());
                *rare.entry(code).or_default() += 1;
            }
        }
        let s = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            sh.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        sh.count.fetch_add(1, Ordering::Relaxed);
        sh.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Requests by status code, every code seen, in order.
    pub fn codes(&self) -> BTreeMap<u16, u64> {
        let mut out = self.rare.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (i, code) in COMMON.iter().enumerate() {
            let n = self.sum(|s| &s.codes[i]);
            if n > 0 {
                *out.entry(*code).or_default() += n;
            }
        }
        out
    }
}

/// A gauge many threads move up and down (requests in flight): each thread on its own cache
/// line, summed when read.
#[derive(Debug)]
pub struct ShardedGauge(Box<[Slot]>);

#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(std::sync::atomic::AtomicI64);

impl Default for ShardedGauge {
    fn default() -> Self {
        ShardedGauge((0..shard_count()).map(|_| Slot::default()).collect())
    }
}

impl ShardedGauge {
    /// Add one.
    pub fn inc(&self) {
        self.0[my_shard()].0.fetch_add(1, Ordering::Relaxed);
    }
    /// Take one away (maybe on another thread than the one that added it).
    pub fn dec(&self) {
        self.0[my_shard()].0.fetch_sub(1, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        let v: i64 = self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        v.max(0) as u64
    }
}

#[derive(Default)]
struct Inner {
    /// By Ingress, then Service: looked up without making a key.
    routes: BTreeMap<String, BTreeMap<String, Arc<RouteStats>>>,
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
    pub in_flight: ShardedGauge,
    /// How long the last route table build took, in microseconds.
    pub build_us: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::default(),
            unmatched: Arc::new(RouteStats::new("", "")),
            generation: AtomicU64::new(0),
            routes: AtomicU64::new(0),
            certificates: AtomicU64::new(0),
            in_flight: ShardedGauge::default(),
            build_us: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The counters of a route, made on first use.
    pub fn route(&self, ingress: &str, service: &str) -> Arc<RouteStats> {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = i.routes.get(ingress).and_then(|s| s.get(service)) {
            return r.clone();
        }
        let r = Arc::new(RouteStats::new(ingress, service));
        i.routes
            .entry(ingress.to_string())
            .or_default()
            .insert(service.to_string(), r.clone());
        r
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
            .chain(i.routes.values().flat_map(|s| s.values()))
            .collect();
        let mut o = String::new();
        o.push_str("# HELP metalgate_proxy_requests_total Requests served, by Ingress, Service and status code.\n# TYPE metalgate_proxy_requests_total counter\n");
        for r in &all {
            for (code, n) in r.codes() {
                let _ = writeln!(
                    o,
                    "metalgate_proxy_requests_total{{ingress=\"{}\",service=\"{}\",code=\"{code}\"}} {n}",
                    r.ingress, r.service
                );
            }
        }
        o.push_str("# HELP metalgate_proxy_request_duration_seconds Time from request to the end of the response.\n# TYPE metalgate_proxy_request_duration_seconds histogram\n");
        for r in &all {
            let count = r.sum(|s| &s.count);
            if count == 0 {
                continue;
            }
            let l = format!("ingress=\"{}\",service=\"{}\"", r.ingress, r.service);
            let mut cumulative = 0;
            for (n, b) in BUCKETS.iter().enumerate() {
                cumulative += r.sum(|s| &s.buckets[n]);
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
                r.sum(|s| &s.sum_us) as f64 / 1e6
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
                self.generation.load(Ordering::Relaxed),
            ),
            (
                "metalgate_proxy_routes",
                "Host/path rules in the route table.",
                self.routes.load(Ordering::Relaxed),
            ),
            (
                "metalgate_proxy_certificates",
                "Host names with a certificate.",
                self.certificates.load(Ordering::Relaxed),
            ),
            (
                "metalgate_proxy_requests_in_flight",
                "Requests being served.",
                self.in_flight.get(),
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP metalgate_proxy_route_table_build_seconds How long the last route table build took.\n# TYPE metalgate_proxy_route_table_build_seconds gauge\nmetalgate_proxy_route_table_build_seconds {}",
            self.build_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_and_every_code_add_up_in_the_scrape() {
        let m = Arc::new(Metrics::default());
        let r = m.route("ns/web", "ns/be");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        r.record(200, Duration::from_millis(2));
                    }
                    r.record(418, Duration::from_millis(30));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        m.in_flight.inc();
        let text = m.render();
        let l = "ingress=\"ns/web\",service=\"ns/be\"";
        for want in [
            format!("metalgate_proxy_requests_total{{{l},code=\"200\"}} 1000"),
            format!("metalgate_proxy_requests_total{{{l},code=\"418\"}} 4"),
            format!("metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"0.0025\"}} 1000"),
            format!("metalgate_proxy_request_duration_seconds_bucket{{{l},le=\"0.05\"}} 1004"),
            format!("metalgate_proxy_request_duration_seconds_count{{{l}}} 1004"),
            "metalgate_proxy_requests_in_flight 1".to_string(),
        ] {
            assert!(text.lines().any(|x| x == want), "{want} not in\n{text}");
        }
        // The same route's counters come back for the same pair.
        assert!(Arc::ptr_eq(&r, &m.route("ns/web", "ns/be")));
    }
}
