//! Listeners: HTTP and HTTPS on Pingora inside the process's own tokio runtime, certificates
//! per SNI from the current table, graceful drain; each connection behind the request-header
//! deadline ([`crate::deadline`]).

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service as _;
use pingora::services::listening::Service;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::deadline::HeaderDeadlineApp;
use crate::service::{IngressProxy, ProxyState};

/// Picks the certificate for a TLS handshake from the current table; a self-signed default
/// when no Ingress has one for the name (as ingress-nginx's "fake certificate").
pub struct SniResolver {
    shared: Arc<ProxyState>,
    fallback: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A resolver over `shared`'s table, with a freshly made default certificate.
    pub fn new(shared: Arc<ProxyState>) -> anyhow::Result<Self> {
        let made = rcgen::generate_simple_self_signed(vec!["metalgate.invalid".to_string()])
            .context("making the default certificate")?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let fallback = CertifiedKey::from_der(
            vec![made.cert.der().clone()],
            key,
            &rustls::crypto::ring::default_provider(),
        )
        .context("loading the default certificate")?;
        Ok(SniResolver {
            shared,
            fallback: Arc::new(fallback),
        })
    }
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.shared.table.load();
        hello
            .server_name()
            .and_then(|n| table.certs.get(n).cloned())
            .or_else(|| Some(self.fallback.clone()))
    }
}

/// Where to listen and how long to wait.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Plain HTTP addresses (port 0: any free port).
    pub http: Vec<SocketAddr>,
    /// HTTPS addresses.
    pub https: Vec<SocketAddr>,
    /// A request's headers must arrive within this time from its first byte (slowloris).
    pub header_timeout: Duration,
}

/// A running set of listeners.
pub struct Server {
    /// Bound HTTP addresses.
    pub http: Vec<SocketAddr>,
    /// Bound HTTPS addresses.
    pub https: Vec<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<ProxyState>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How many workers the proxy runs: one per core (2 where the core count is unknown). Each keeps
/// its own upstream pool, so this bounds how many backend connections sequential requests use.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The proxy's workers: one single-threaded tokio runtime per core, each running its own accept
/// loops over every listener, the connections it accepted and its own upstream pool — nginx's
/// worker model. A request and its upstream connection stay on one thread from accept to
/// response, so no request waits for another thread to wake (tokio's work-stealing runtime woke
/// an idle worker whenever a task was queued) and no socket's readiness comes from another
/// thread's reactor. Measured (2 cores, `oha -c 50`, 5 interleaved rounds, `bench/RESULTS.md`
/// 2026-12-06 (c)): `metalgate-proxy` served 1.11× the req/s over HTTP/1.1 and 1.19× over TLS
/// of the work-stealing build, at 0.96× and 0.88× its CPU per request.
/// Pingora's own "no-steal" runtime is not used: it spawns each accepted connection on a random
/// thread, away from the reactor its socket is registered with. Every worker accepts from one
/// shared socket rather than a `SO_REUSEPORT` socket of its own: the kernel's hash hands new
/// connections to a busy worker as readily as to an idle one, while on a shared socket whichever
/// worker is free accepts (`SO_REUSEPORT` per worker: 0.88× the req/s, 1.17× the CPU).
/// Started once per process, never shut down; proxies started one after another (the tests)
/// share the workers.
fn workers() -> &'static [tokio::runtime::Handle] {
    static WORKERS: std::sync::OnceLock<Vec<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    WORKERS.get_or_init(|| {
        (0..worker_count())
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("mg-proxy-{i}"))
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("building a proxy worker's runtime");
                        let _ = tx.send(rt.handle().clone());
                        rt.block_on(std::future::pending::<()>());
                    })
                    .expect("starting a proxy worker thread");
                rx.recv().expect("a proxy worker's runtime")
            })
            .collect()
    })
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // The VIP may not be on this node's interfaces yet (another node owns it now).
    s.set_freebind_v4(true).ok();
    s.bind(&addr.into())
        .with_context(|| format!("binding the proxy listener {addr}"))?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl Server {
    /// Bind every listener (a clear error when one cannot be bound) and start serving: every
    /// worker accepts on every listener (its own copy of the socket) and serves what it accepted.
    pub fn start(shared: Arc<ProxyState>, listen: &Listen) -> anyhow::Result<Server> {
        let mut bound = Vec::new();
        let mut http = Vec::new();
        let mut https = Vec::new();
        for (addrs, tls) in [(&listen.http, false), (&listen.https, true)] {
            for a in addrs {
                let l = bind(*a)?;
                let actual = l.local_addr()?;
                if tls {
                    if https.is_empty() {
                        shared.https_port.store(actual.port(), Ordering::Relaxed);
                    }
                    https.push(actual);
                } else {
                    http.push(actual);
                }
                bound.push((actual.to_string(), l, tls));
            }
        }
        let resolver = Arc::new(SniResolver::new(shared.clone())?);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for worker in workers() {
            let fds: ListenFds = Arc::new(parking_lot::Mutex::new(Fds::new()));
            let mut svc = Service::new(
                "metalgate-proxy".into(),
                proxy_app(&shared, listen.header_timeout),
            );
            for (key, l, tls) in &bound {
                let copy = l
                    .try_clone()
                    .with_context(|| format!("sharing the proxy listener {key}"))?;
                fds.lock().add(key.clone(), copy.into_raw_fd());
                svc.add_listener(listener_config(key, *tls, &resolver)?);
            }
            let watch: ShutdownWatch = rx.clone();
            tasks.push(worker.spawn(async move {
                svc.start_service(Some(fds), watch, 1).await;
            }));
        }
        tracing::info!(?http, ?https, workers = tasks.len(), "proxy listening");
        Ok(Server {
            http,
            https,
            stop,
            tasks,
            shared,
        })
    }

    /// Stop accepting, let requests in flight finish (up to `grace`), then return.
    pub async fn drain(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for task in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        while self.shared.metrics.in_flight.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!("proxy drained");
    }
}

/// One worker's application: Pingora's HTTP proxy over the shared table, with its own upstream
/// connection pool, behind the request-header deadline.
fn proxy_app(
    shared: &Arc<ProxyState>,
    header_timeout: Duration,
) -> HeaderDeadlineApp<pingora::proxy::HttpProxy<IngressProxy>> {
    let conf = Arc::new(ServerConf {
        upstream_keepalive_pool_size: 512,
        ..Default::default()
    });
    let mut proxy = pingora::proxy::http_proxy(
        &conf,
        IngressProxy {
            shared: shared.clone(),
        },
    );
    let mut opts = HttpServerOptions::default();
    // No h2c on plain HTTP (ingress-nginx has none either): Pingora would wait for 24 bytes
    // of a possible preface before reading a request, so a short request would hang.
    // HTTP/2 reaches clients through ALPN on the TLS listeners.
    opts.h2c = false;
    // ingress-nginx closes a client connection after 1000 requests.
    opts.keepalive_request_limit = Some(1000);
    proxy.server_options = Some(opts);
    HeaderDeadlineApp {
        inner: Arc::new(proxy),
        timeout: header_timeout,
    }
}

/// A listener's settings: TLS with certificates by SNI, or plain HTTP.
fn listener_config(
    key: &str,
    tls: bool,
    resolver: &Arc<SniResolver>,
) -> anyhow::Result<ListenerConfig> {
    if !tls {
        // No read buffer for plain HTTP: Pingora reads request headers into its own buffer,
        // so a 64 KiB one per connection would only cost memory and a copy. Writes stay
        // buffered, so a response's header and a small body leave in one send.
        return Ok(
            ListenerConfig::tcp(key.to_string()).l4_buffer(L4BufferSettings::default().read(0))
        );
    }
    let mut settings =
        TlsSettings::intermediate("", "").map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?;
    settings.set_cert_resolver(resolver.clone());
    settings.enable_h2();
    // One TLS record (16 KiB) of read buffer per connection instead of Pingora's 64 KiB:
    // rustls reads record by record anyway.
    Ok(ListenerConfig::tcp(key.to_string())
        .tls(settings)
        .l4_buffer(L4BufferSettings::default().read(16 * 1024)))
}
