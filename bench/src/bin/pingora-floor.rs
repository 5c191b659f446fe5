//! The floor of the engine: the plainest reverse proxy Pingora 0.9 can be, for `bench/proxy.sh`
//! to run beside nginx and metalgate's proxy. One fixed upstream, no route table, no metrics,
//! no access log, no header deadline, no hop-by-hop clean-up — only the forwarding headers nginx
//! is configured to set, so the request the backend sees is the same. Same allocator (jemalloc)
//! as metalgate's proxy.
//!
//! What it measures: how much of metalgate's distance to nginx is Pingora itself and how much is
//! metalgate's own code on top of it. Not a product; not tested.
//!
//! Its layout is metalgate-proxy's (`proxy/src/server.rs`): a single-threaded tokio runtime per
//! core, each accepting from the one listening socket and keeping its own upstream pool. Built
//! with the feature `stock` (`pingora-floor-stock`), it is Pingora as released instead: its
//! `Server` with the work-stealing runtime, its own upstream pool and body buffers.
//!
//! With a TLS listener too (the per-core layout only), it is the floor over TLS and HTTP/2:
//! Pingora's rustls listener with one certificate, its own buffer sizes, h2 offered by ALPN —
//! how much of the distance over TLS is the engine's.
//!
//! Usage: `pingora-floor LISTEN UPSTREAM [TLS_LISTEN CERT KEY]` (addresses `IP:PORT`, PEM
//! files), until SIGTERM or SIGINT.

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds};
use pingora::services::Service as _;
use std::fmt::Write as _;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Floor {
    upstream: String,
    listen_port: String,
    ids: AtomicU64,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let host = session
            .req_header()
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        // nginx's $request_id: 32 hex digits, unique per request.
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(32);
        let _ = write!(id, "{:016x}{:016x}", std::process::id(), n);
        up.insert_header("x-request-id", id)?;
        up.insert_header("x-real-ip", client.as_str())?;
        up.insert_header("x-forwarded-for", client)?;
        up.insert_header("x-forwarded-host", host)?;
        up.insert_header("x-forwarded-port", self.listen_port.as_str())?;
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        up.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream, tls) = match args.as_slice() {
        [listen, upstream] => (listen, upstream, None),
        [listen, upstream, tls, cert, key] => (listen, upstream, Some((tls, cert, key))),
        _ => {
            eprintln!("usage: pingora-floor LISTEN UPSTREAM [TLS_LISTEN CERT KEY]");
            std::process::exit(2);
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let conf = ServerConf {
        threads,
        work_stealing: true,
        upstream_keepalive_pool_size: 512,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..Default::default()
    };
    let floor = || Floor {
        upstream: upstream.clone(),
        listen_port: listen.rsplit(':').next().unwrap_or("").to_string(),
        ids: AtomicU64::new(0),
    };
    if cfg!(feature = "stock") {
        assert!(tls.is_none(), "pingora-floor-stock serves plain HTTP only");
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let mut svc = http_proxy_service(&server.configuration, floor());
        svc.add_tcp(listen);
        server.add_service(svc);
        server.run_forever();
    }
    // metalgate-proxy's layout: every worker accepts from its own copy of one socket. Ends on
    // SIGTERM or SIGINT (their default action).
    let bind = |addr: &str| {
        let socket = std::net::TcpListener::bind(addr).expect("binding a listener");
        socket
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        socket
    };
    let socket = bind(listen);
    let tls_socket = tls.map(|(addr, _, _)| bind(addr));
    let conf = Arc::new(conf);
    let (_never, shutdown) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let fds: ListenFds = Arc::new(Mutex::new(Fds::new()));
            let copy = socket.try_clone().expect("copying the listener");
            fds.lock().add(listen.clone(), copy.into_raw_fd());
            let mut svc = http_proxy_service(&conf, floor());
            svc.add_tcp(listen);
            if let (Some((addr, cert, key)), Some(socket)) = (tls, &tls_socket) {
                let copy = socket.try_clone().expect("copying the TLS listener");
                fds.lock().add(addr.clone(), copy.into_raw_fd());
                let mut settings = TlsSettings::intermediate(cert, key).expect("CERT and KEY");
                settings.enable_h2();
                svc.add_tls_with_settings(addr, None, settings);
            }
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a worker's runtime")
                    .block_on(svc.start_service(Some(fds), shutdown, 1));
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
