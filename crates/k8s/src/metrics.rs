//! A process-wide registry of Prometheus text-format sources. Components register a function
//! that renders their metrics; `metalgate run --metrics-listen` serves them all at `/metrics`.

use std::sync::{Arc, Mutex, OnceLock};

/// Renders one component's metrics in the Prometheus text format.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

fn sources() -> &'static Mutex<Vec<(String, Source)>> {
    static SOURCES: OnceLock<Mutex<Vec<(String, Source)>>> = OnceLock::new();
    SOURCES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Register (or replace) the metrics of a component.
pub fn register(name: &str, source: Source) {
    let mut all = sources().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(n, _)| n != name);
    all.push((name.to_string(), source));
}

/// Everything registered, in the Prometheus text format.
pub fn render() -> String {
    let all = sources().lock().unwrap_or_else(|e| e.into_inner()).clone();
    all.iter().map(|(_, s)| s()).collect()
}

/// One counter family with a single label, in the text format.
pub fn counter_family(name: &str, help: &str, label: &str, values: &[(&str, u64)]) -> String {
    let mut out = format!("# HELP {name} {help}\n# TYPE {name} counter\n");
    for (l, v) in values {
        out.push_str(&format!("{name}{{{label}=\"{l}\"}} {v}\n"));
    }
    out
}

/// Whether a component is ready to serve.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

fn readiness() -> &'static Mutex<Vec<(String, Readiness)>> {
    static READY: OnceLock<Mutex<Vec<(String, Readiness)>>> = OnceLock::new();
    READY.get_or_init(|| Mutex::new(Vec::new()))
}

/// Register (or replace) a component's readiness check, served by `/readyz`.
pub fn register_readiness(name: &str, check: Readiness) {
    let mut all = readiness().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(n, _)| n != name);
    all.push((name.to_string(), check));
}

/// Every registered component with whether it is ready now.
pub fn ready() -> Vec<(String, bool)> {
    let all = readiness()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    all.iter().map(|(n, c)| (n.clone(), c())).collect()
}
