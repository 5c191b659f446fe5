//! What every metalgate binary does around its command: logging to stderr, a runtime, the
//! shutdown signal, and — for a component run on its own (`metalgate controller|speaker|gitops
//! run`, `metalgate proxy`, `metalgate-proxy`) — the one start-up path to its
//! [`ComponentContext`]. `metalgate run` builds its context around the embedded store but takes
//! the signal, the node's name and the admin endpoint from here too.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{ComponentContext, NodeIdentity, admin, client};

/// Set up logging from `RUST_LOG` (default `info`), to stderr.
pub fn init_tracing() {
    init_tracing_at("info");
}

/// [`init_tracing`] with another default level (`RUST_LOG` still wins): client commands log
/// only warnings, so their output is theirs.
pub fn init_tracing_at(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A closed stderr (the reader of a pipe gone) must not turn a log line into a panic:
    // tracing-subscriber reports its own write errors with eprintln!, which panics then.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

/// On which threads a command's main future runs ([`block_on_main`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainRuntime {
    /// tokio's work-stealing runtime, a worker thread per core.
    MultiThread,
    /// The main thread alone: for a command whose hot path runs on threads of its own (the
    /// proxy's workers), so its control plane — watches, table builds, the admin endpoint — needs
    /// no worker threads, nor their stacks and allocator caches.
    MainThread,
}

/// Run a binary's command on a multi-threaded runtime; an error is printed and fails the exit.
pub fn block_on_main(command: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    block_on_main_in(MainRuntime::MultiThread, command)
}

/// Run a binary's command on the runtime `flavor` names; an error is printed and fails the exit.
pub fn block_on_main_in(
    flavor: MainRuntime,
    command: impl Future<Output = anyhow::Result<ExitCode>>,
) -> ExitCode {
    let mut builder = match flavor {
        MainRuntime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        MainRuntime::MainThread => tokio::runtime::Builder::new_current_thread(),
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`), the default Node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Cancel `shutdown` on SIGTERM or SIGINT (or return when it is cancelled otherwise).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    // Cancel first, log second: nothing after the signal may stand between it and shutdown.
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = shutdown.cancelled() => return,
    };
    shutdown.cancel();
    tracing::info!("{name}: shutting down");
}

/// Serve `/metrics`, `/readyz` and `/healthz` on `addr` until `shutdown`; a failure is logged.
/// Each of the `components` the process runs is reported not ready before the listener starts,
/// until it registers its own readiness check ([`crate::metrics::report_starting`]).
pub fn spawn_admin(addr: SocketAddr, components: &[&str], shutdown: CancellationToken) {
    for name in components {
        crate::metrics::report_starting(name);
    }
    tokio::spawn(async move {
        if let Err(e) = admin::serve(addr, shutdown).await {
            tracing::error!(%addr, error = %format!("{e:#}"), "admin endpoint failed");
        }
    });
}

/// How a component run on its own reaches the API and says where it runs. Every field is named
/// at each call (no `Default`): a process that serves `/readyz` must say what it runs.
#[derive(Debug, Clone)]
pub struct Standalone<'a> {
    /// A kubeconfig; without one, the environment's (in-cluster, `KUBECONFIG`, `~/.kube`).
    pub kubeconfig: Option<&'a Path>,
    /// The Node's name; without one, [`hostname`].
    pub node_name: Option<String>,
    /// The node's address, when the component needs it.
    pub node_ip: Option<IpAddr>,
    /// Where to serve the admin endpoint, if anywhere.
    pub admin_listen: Option<SocketAddr>,
    /// The components the process runs: each is not ready on `/readyz` until it says so. Not
    /// empty when `admin_listen` is set: an admin endpoint with nothing to report would answer
    /// ready before any component has looked at the API.
    pub components: &'a [&'a str],
}

/// A component's context outside `metalgate run`: a client from the kubeconfig (or the
/// environment), this node, SIGTERM/SIGINT as the shutdown signal, and the admin endpoint.
pub async fn standalone(opts: Standalone<'_>) -> anyhow::Result<ComponentContext> {
    if let (Some(addr), []) = (opts.admin_listen, opts.components) {
        anyhow::bail!(
            "admin endpoint {addr}: no component named to report on /readyz (it would answer ready before anything ran)"
        );
    }
    let client = match opts.kubeconfig {
        Some(k) => client::from_kubeconfig(k).await?,
        None => client::infer().await?,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    if let Some(addr) = opts.admin_listen {
        spawn_admin(addr, opts.components, shutdown.clone());
    }
    Ok(ComponentContext {
        client,
        node: NodeIdentity {
            name: opts.node_name.unwrap_or_else(hostname),
            ip: opts.node_ip,
        },
        shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET /readyz` over a fresh connection: the status line's code and the body.
    async fn readyz(addr: SocketAddr) -> Option<(u16, String)> {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.ok()?;
        let code = out.split(' ').nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n")?.1.to_string();
        Some((code, body))
    }

    #[tokio::test]
    async fn an_admin_endpoint_without_components_is_refused_before_anything_starts() {
        let err = standalone(Standalone {
            kubeconfig: Some(Path::new("/nonexistent/kubeconfig")),
            node_name: None,
            node_ip: None,
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            components: &[],
        })
        .await
        .err()
        .expect("refused");
        let msg = format!("{err:#}");
        assert!(msg.contains("no component named"), "{msg}");
    }

    #[tokio::test]
    async fn a_component_is_not_ready_from_the_first_answer_until_it_says_so() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let stop = CancellationToken::new();
        spawn_admin(addr, &["starting-component"], stop.clone());
        // The first answer, however early, is 503: the component has registered nothing yet.
        let mut first = None;
        for _ in 0..200 {
            first = readyz(addr).await;
            if first.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (code, body) = first.expect("the admin endpoint answers");
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("starting-component: not ready"), "{body}");
        crate::metrics::register_readiness("starting-component", Arc::new(|| true));
        let (code, body) = readyz(addr).await.expect("answers");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("starting-component: ready"), "{body}");
        stop.cancel();
    }
}
