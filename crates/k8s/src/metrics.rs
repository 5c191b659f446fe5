//! A process-wide registry of Prometheus text-format sources. Components register a function
//! that renders their metrics; `metalgate run --admin-listen` serves them all at `/metrics`.

use std::sync::{Arc, Mutex};

/// Components' entries by name, in registration order; registering a name again replaces it.
struct Named<T>(Mutex<Vec<(String, T)>>);

impl<T: Clone> Named<T> {
    const fn new() -> Self {
        Named(Mutex::new(Vec::new()))
    }

    fn register(&self, name: &str, entry: T) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(n, _)| n != name);
        all.push((name.to_string(), entry));
    }

    /// A copy, so callers run the entries without holding the lock.
    fn all(&self) -> Vec<(String, T)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Renders one component's metrics in the Prometheus text format.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

static SOURCES: Named<Source> = Named::new();

/// Register (or replace) the metrics of a component.
pub fn register(name: &str, source: Source) {
    SOURCES.register(name, source);
}

/// Everything registered, in the Prometheus text format.
pub fn render() -> String {
    SOURCES.all().iter().map(|(_, s)| s()).collect()
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

static READY: Named<Readiness> = Named::new();

/// Register (or replace) a component's readiness check, served by `/readyz`.
pub fn register_readiness(name: &str, check: Readiness) {
    READY.register(name, check);
}

/// Report a component not ready until it registers its own check. A process calls this for
/// each component it runs before its admin endpoint listens: `/readyz` with nothing registered
/// answers "ok", so without it a probe (or a test) that asks while the component is still
/// starting would see it ready before it has even looked at the API.
pub fn report_starting(name: &str) {
    register_readiness(name, Arc::new(|| false));
}

/// Every registered component with whether it is ready now.
pub fn ready() -> Vec<(String, bool)> {
    READY.all().into_iter().map(|(n, c)| (n, c())).collect()
}
