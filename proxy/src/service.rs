//! The Pingora side: a `ProxyHttp` that reads the current route table (one `ArcSwap` load per
//! request, no lock), hardens what reaches a backend, picks endpoints, retries and ejects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader, StaticHeaderName};
use pingora::prelude::*;
use pingora::protocols::ALPN;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::forwarded;
use crate::metrics::Metrics;
use crate::policy::{Access, BackendProtocol};
use crate::table::{Backend, RouteTable};

/// Limits applied to every request before it can reach a backend.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most header fields a request may carry (431 beyond).
    pub max_headers: usize,
    /// Most bytes of header names and values together (431 beyond).
    pub max_header_bytes: usize,
    /// Longest request target (414 beyond).
    pub max_uri_bytes: usize,
    /// Endpoint failures in a row before it is ejected.
    pub eject_after: u32,
    /// How long an ejected endpoint is left out.
    pub eject_for: Duration,
    /// Attempts per request on connection failures (idempotent requests only).
    pub max_attempts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // ingress-nginx: 4 × 8 KiB large header buffers.
        Limits {
            max_headers: 100,
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

/// State shared by the request path, discovery and the admin endpoint.
pub struct ProxyState {
    /// The current route table; swapped whole on every change.
    pub table: ArcSwap<RouteTable>,
    /// Counters.
    pub metrics: Metrics,
    /// Request limits.
    pub limits: Limits,
    /// Write one JSON line per request to stdout.
    pub access_log: bool,
    /// The HTTPS port redirects point to (443 is left out of the URL); set by the listener.
    pub https_port: std::sync::atomic::AtomicU16,
    /// Set once the first complete table is in place.
    pub ready: std::sync::atomic::AtomicBool,
    origin: Instant,
}

impl ProxyState {
    /// Fresh state with an empty table.
    pub fn new(limits: Limits, access_log: bool) -> Self {
        ProxyState {
            table: ArcSwap::from_pointee(RouteTable::default()),
            metrics: Metrics::default(),
            limits,
            access_log,
            https_port: 443.into(),
            ready: false.into(),
            origin: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    backend: Option<Arc<Backend>>,
    upstream_path: Option<String>,
    tried: Vec<SocketAddr>,
    current: Option<SocketAddr>,
    tls: bool,
    client: Option<IpAddr>,
    request_id: forwarded::RequestId,
    host: String,
    body_bytes: u64,
    status: u16,
    counted: bool,
}

/// An answer the proxy gives itself: status, extra headers, body.
type Refusal = (u16, Vec<(header::HeaderName, String)>, String);

/// The ingress proxy.
pub struct IngressProxy {
    /// The route table, counters and limits it shares with discovery and the admin endpoint.
    pub shared: Arc<ProxyState>,
}

// The forwarding headers as names made once. A `&str` name is checked and made into the map's
// key on every insert (~250 instructions; six per request) and lowercased and parsed on every
// `get` (~450); a `StaticHeaderName` is its own key, and its static text the name sent.
static X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: header::HeaderName = header::HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: header::HeaderName = header::HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: header::HeaderName = header::HeaderName::from_static("x-forwarded-port");
static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

impl IngressProxy {
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        code: u16,
        extra: &[(header::HeaderName, String)],
        body: String,
    ) -> Result<bool> {
        let mut resp = ResponseHeader::build(code, Some(4))?;
        resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        for (k, v) in extra {
            resp.insert_header(k.clone(), v.as_str())?;
        }
        if code >= 400 {
            // Whatever else the client sent on this connection is not read as a next request.
            session.set_keepalive(None);
            resp.insert_header(header::CONNECTION, "close")?;
        }
        ctx.status = code;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
        Ok(true)
    }

    /// Framing and size checks that must pass before anything is forwarded.
    fn reject_reason(&self, session: &Session) -> Option<(u16, String)> {
        let req = session.req_header();
        let lim = &self.shared.limits;
        let h = &req.headers;
        if h.len() > lim.max_headers {
            return Some((
                431,
                format!("too many header fields (limit {})\n", lim.max_headers),
            ));
        }
        let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if bytes > lim.max_header_bytes {
            return Some((
                431,
                format!(
                    "request headers too large (limit {} bytes)\n",
                    lim.max_header_bytes
                ),
            ));
        }
        if req.raw_path().len() > lim.max_uri_bytes {
            return Some((414, "request target too long\n".into()));
        }
        let te: Vec<&HeaderValue> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
        let cl: Vec<&HeaderValue> = h.get_all(header::CONTENT_LENGTH).iter().collect();
        // Pingora drops Content-Length when Transfer-Encoding is present (RFC 9112 §6.3); the
        // raw header block still shows whether the client sent both.
        let both = !te.is_empty()
            && (!cl.is_empty()
                || session.as_http1().is_some_and(|h1| {
                    raw_has_header(&h1.get_headers_raw_bytes(), b"content-length")
                }));
        if both {
            return Some((
                400,
                "both Content-Length and Transfer-Encoding: refused (request smuggling)\n".into(),
            ));
        }
        if !te.is_empty() {
            let ok = te.len() == 1
                && te[0]
                    .to_str()
                    .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            if !ok || req.version < http::Version::HTTP_11 {
                return Some((400, "unsupported Transfer-Encoding\n".into()));
            }
        }
        if cl.len() > 1
            || cl.iter().any(|v| {
                v.to_str()
                    .ok()
                    .map(str::trim)
                    // Digits only: Rust's parse would take "+6", which no HTTP parser should.
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_none()
            })
        {
            return Some((400, "invalid Content-Length\n".into()));
        }
        None
    }

    /// Why a routed request is answered here instead of going to `backend`: its guard
    /// annotations, an HTTPS redirect, a declared body over the limit, no ready endpoint.
    fn refusal(
        &self,
        session: &Session,
        ctx: &Ctx,
        backend: &Backend,
        tls_host: bool,
    ) -> Option<Refusal> {
        let pol = &backend.policy;
        match &pol.access {
            Access::Denied { reason } => {
                tracing::debug!(host = %ctx.host, %reason, "denied: a guard annotation is bad");
                let why = "service unavailable: this Ingress's access annotations are invalid\n";
                return Some((503, Vec::new(), why.into()));
            }
            access if !access.admits(ctx.client) => {
                return Some((403, Vec::new(), "forbidden\n".into()));
            }
            _ => {}
        }
        if !ctx.tls && ((tls_host && pol.ssl_redirect) || pol.force_ssl_redirect) {
            let pq = session
                .req_header()
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            let port = match self.shared.https_port.load(Ordering::Relaxed) {
                443 => String::new(),
                p => format!(":{p}"),
            };
            let location = format!("https://{}{port}{pq}", ctx.host);
            let body = format!("moved to {location}\n");
            return Some((308, vec![(header::LOCATION, location)], body));
        }
        if let Some(limit) = pol.body_limit {
            let declared = session
                .req_header()
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                let body = format!("request body larger than {limit} bytes\n");
                return Some((413, Vec::new(), body));
            }
        }
        if backend.endpoints.is_empty() {
            let body = format!("no ready endpoints for Service {}\n", backend.service);
            return Some((503, Vec::new(), body));
        }
        None
    }

    fn pick(&self, backend: &Backend, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let eps = &backend.endpoints;
        if eps.is_empty() {
            return None;
        }
        let now = self.shared.now_ms();
        let n = eps.len();
        // Round robin; a single endpoint needs no turn (and no write every core shares).
        let start = if n == 1 {
            0
        } else {
            backend.cursor.fetch_add(1, Ordering::Relaxed)
        };
        // Healthy and untried first; then untried even if ejected (better than nothing).
        let candidates = (0..n).map(|i| &eps[(start + i) % n]);
        let mut fallback = None;
        for ep in candidates {
            if tried.contains(&ep.addr) {
                continue;
            }
            if ep.health.ejected_until_ms.load(Ordering::Relaxed) > now {
                fallback.get_or_insert(ep.addr);
                continue;
            }
            return Some(ep.addr);
        }
        fallback
    }

    /// Whether a failed request may go to another endpoint: one not tried yet, within the
    /// attempts allowed.
    fn more_to_try(&self, backend: &Backend, ctx: &Ctx) -> bool {
        ctx.tried.len() < backend.endpoints.len().min(self.shared.limits.max_attempts)
    }

    fn record_failure(&self, backend: &Backend, addr: SocketAddr, kind: &str) {
        self.shared
            .metrics
            .upstream_error(&backend.service.to_string(), kind);
        if let Some(ep) = backend.endpoints.iter().find(|e| e.addr == addr) {
            let f = ep.health.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if f >= self.shared.limits.eject_after {
                let until = self.shared.now_ms() + self.shared.limits.eject_for.as_millis() as u64;
                ep.health.ejected_until_ms.store(until, Ordering::Relaxed);
                tracing::warn!(endpoint = %addr, service = %backend.service, failures = f, "endpoint ejected");
            }
        }
    }
}

/// Whether a raw HTTP/1 header block has a field called `name` (lowercase).
fn raw_has_header(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        let line = line.trim_ascii_start();
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].trim_ascii_start().first() == Some(&b':')
    })
}

fn request_host(session: &Session) -> Option<&str> {
    let req = session.req_header();
    req.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

#[async_trait]
impl ProxyHttp for IngressProxy {
    type CTX = Ctx;

    /// No downstream modules. Pingora's default adds its response compression, disabled, which
    /// still built a module context per request (two allocations) and ran four filters through
    /// it (~700 instructions); the proxy compresses nothing, as ingress-nginx does by default
    /// (`use-gzip: false`).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            backend: None,
            upstream_path: None,
            tried: Vec::new(),
            current: None,
            tls: false,
            client: None,
            request_id: forwarded::RequestId::default(),
            host: String::new(),
            body_bytes: 0,
            status: 0,
            counted: false,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.counted = true;
        self.shared.metrics.in_flight.inc();
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        ctx.client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id =
            forwarded::RequestId::from_client(session.req_header().headers.get(&X_REQUEST_ID));
        if let Some((code, why)) = self.reject_reason(session) {
            return self.respond(session, ctx, code, &[], why).await;
        }
        let Some(host) = request_host(session) else {
            return self
                .respond(session, ctx, 400, &[], "missing Host header\n".into())
                .await;
        };
        ctx.host = crate::table::normalize_host(host);
        // Routed (and so guarded) by the normalised path, as nginx matches locations; the
        // backend gets the request as the client sent it.
        let path = match crate::uri::normalize_path(session.req_header().uri.path()) {
            Ok(p) => p,
            Err(why) => {
                let msg = format!("bad request path ({why:?})\n");
                return self.respond(session, ctx, 400, &[], msg).await;
            }
        };
        // A guard, not a clone of the table's Arc: no reference count shared by every core
        // touched per request. The backend's Arc is cloned once, into the context, and lent
        // from there (each clone is an atomic write to a line both cores share).
        let found = self
            .shared
            .table
            .load()
            .find_normalized(&ctx.host, &path)
            .map(|m| (m.backend.clone(), m.upstream_path, m.tls_host));
        drop(path);
        let Some((backend, upstream_path, tls_host)) = found else {
            return self
                .respond(
                    session,
                    ctx,
                    404,
                    &[],
                    format!(
                        "no route for host {:?} path {:?}\n",
                        ctx.host,
                        session.req_header().uri.path()
                    ),
                )
                .await;
        };
        ctx.upstream_path = upstream_path;
        let refused = self.refusal(session, ctx, &backend, tls_host);
        ctx.backend = Some(backend);
        match refused {
            Some((code, extra, body)) => self.respond(session, ctx, code, &extra, body).await,
            None => Ok(false),
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
        }
        if let Some(limit) = ctx.backend.as_ref().and_then(|b| b.policy.body_limit) {
            if ctx.body_bytes > limit {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    format!("request body larger than {limit} bytes"),
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let backend = ctx
            .backend
            .as_deref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no backend chosen"))?;
        let Some(addr) = self.pick(backend, &ctx.tried) else {
            return Error::e_explain(
                ErrorType::HTTPStatus(502),
                format!("no endpoint of {} left to try", backend.service),
            );
        };
        ctx.tried.push(addr);
        ctx.current = Some(addr);
        let pol = &backend.policy;
        let tls = matches!(
            pol.protocol,
            BackendProtocol::Https | BackendProtocol::H2Tls
        );
        let sni = if tls { ctx.host.clone() } else { String::new() };
        let mut peer = HttpPeer::new(addr, tls, sni);
        let o = &mut peer.options;
        o.connection_timeout = Some(pol.connect_timeout);
        o.read_timeout = Some(pol.read_timeout);
        o.write_timeout = Some(pol.send_timeout);
        // ingress-nginx keeps upstream connections for 60 s.
        o.idle_timeout = Some(Duration::from_secs(60));
        o.verify_cert = false;
        o.verify_hostname = false;
        match pol.protocol {
            BackendProtocol::H2c | BackendProtocol::H2Tls => {
                o.alpn = ALPN::H2;
                o.set_http_version(2, 2);
            }
            _ => o.set_http_version(1, 1),
        }
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(b), Some(addr)) = (&ctx.backend, ctx.current) {
            let kind = match e.etype() {
                ErrorType::ConnectTimedout => "connect_timeout",
                ErrorType::ConnectRefused => "connect_refused",
                _ => "connect",
            };
            self.record_failure(b, addr, kind);
            let idempotent = session.req_header().method.is_idempotent();
            let more = self.more_to_try(b, ctx);
            if idempotent && more {
                e.set_retry(true);
            }
        }
        e
    }

    /// As nginx's default `proxy_next_upstream error timeout`: an idempotent request that failed
    /// after the connection was made (the endpoint reset it, closed it, or went away during a
    /// rollout) goes to the next endpoint, as long as nothing of the answer was sent yet and the
    /// body can be replayed. Other requests (POST, PATCH) are not repeated.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let replayable = session.req_header().method.is_idempotent()
            && session.response_written().is_none()
            && !session.as_ref().retry_buffer_truncated();
        let mut more = false;
        if let (Some(b), Some(addr)) = (&ctx.backend, ctx.current) {
            self.record_failure(b, addr, "proxy");
            more = self.more_to_try(b, ctx);
        }
        if !replayable {
            e.set_retry(false);
        } else if more {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(b), Some(addr)) = (&ctx.backend, ctx.current) {
            if let Some(ep) = b.endpoints.iter().find(|e| e.addr == addr) {
                // Written only when not already clear: a store, even of the same value, takes
                // the line from the other core on every request.
                if ep.health.failures.load(Ordering::Relaxed) != 0 {
                    ep.health.failures.store(0, Ordering::Relaxed);
                }
                if ep.health.ejected_until_ms.load(Ordering::Relaxed) != 0 {
                    ep.health.ejected_until_ms.store(0, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Hop-by-hop headers and whatever Connection names are already gone: Pingora 0.9
        // strips them before this filter (its default `HttpUpstreamRequestPolicy`, which keeps
        // a websocket's Upgrade and Connection).
        if let Some(path) = &ctx.upstream_path {
            let q = up.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            let uri: http::Uri = format!("{path}{q}")
                .parse()
                .map_err(|e| Error::because(ErrorType::InternalError, "rewritten path", e))?;
            up.set_uri(uri);
        }
        if up.headers.get(header::HOST).is_none() && !ctx.host.is_empty() {
            up.insert_header(header::HOST, ctx.host.as_str())?;
        }
        // The values are written without `core::fmt` (see `forwarded`): this runs per request.
        let previous = up.headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes);
        let (xff, real_ip) = match ctx.client {
            Some(ip) => forwarded::client_values(previous, ip),
            // Not an IP client (a Unix socket): the chain as it came, no address added.
            None => (
                previous
                    .and_then(|p| HeaderValue::from_bytes(p).ok())
                    .unwrap_or_else(|| HeaderValue::from_static("")),
                HeaderValue::from_static(""),
            ),
        };
        up.insert_header(StaticHeaderName(&X_FORWARDED_FOR), xff)?;
        up.insert_header(StaticHeaderName(&X_REAL_IP), real_ip)?;
        let proto = HeaderValue::from_static(if ctx.tls { "https" } else { "http" });
        up.insert_header(StaticHeaderName(&X_FORWARDED_PROTO), proto)?;
        up.insert_header(
            StaticHeaderName(&X_FORWARDED_HOST),
            forwarded::host_value(&ctx.host),
        )?;
        let port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port())
            .unwrap_or(if ctx.tls { 443 } else { 80 });
        up.insert_header(
            StaticHeaderName(&X_FORWARDED_PORT),
            forwarded::port_value(port),
        )?;
        up.insert_header(
            StaticHeaderName(&X_REQUEST_ID),
            ctx.request_id.header_value(),
        )?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        const HOP: [&str; 3] = ["keep-alive", "proxy-connection", "trailer"];
        if resp.status != StatusCode::SWITCHING_PROTOCOLS || !session.is_upgrade_req() {
            // One look over the few names a response has (usually none of these) instead of
            // three lookups, each parsing its name, per response.
            if resp.headers.keys().any(|k| HOP.contains(&k.as_str())) {
                for k in HOP {
                    resp.remove_header(k);
                }
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError => 502,
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if let (Some(b), Some(addr)) = (&ctx.backend, ctx.current) {
            if matches!(e.esource(), pingora::ErrorSource::Upstream) && code != 413 {
                let kind = match e.etype() {
                    ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
                    ErrorType::ConnectTimedout
                    | ErrorType::ConnectRefused
                    | ErrorType::ConnectNoRoute
                    | ErrorType::ConnectError => "",
                    _ => "reset",
                };
                if !kind.is_empty() {
                    self.record_failure(b, addr, kind);
                }
            }
        }
        if code > 0 && session.response_written().is_none() {
            let body = Bytes::from(format!(
                "{} {}\n",
                code,
                StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
            ));
            session.set_keepalive(None);
            let _ = session.respond_error_with_body(code, body).await;
        }
        ctx.status = code;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if ctx.counted {
            self.shared.metrics.in_flight.dec();
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let took = ctx.start.elapsed();
        match &ctx.backend {
            Some(b) => b.stats.record(status, took),
            None => self.shared.metrics.unmatched.record(status, took),
        }
        if self.shared.access_log {
            let (ing, svc) = match &ctx.backend {
                Some(b) => (b.ingress.to_string(), b.service.to_string()),
                None => (String::new(), String::new()),
            };
            let req = session.req_header();
            let line = serde_json::json!({
                "time": jiff::Timestamp::now().to_string(),
                "remote_addr": ctx.client.map(|c| c.to_string()),
                "request_id": ctx.request_id.as_str(),
                "method": req.method.as_str(),
                "host": ctx.host,
                "path": req.uri.path(),
                "protocol": format!("{:?}", req.version),
                "status": status,
                "bytes_sent": session.body_bytes_sent(),
                "duration_ms": took.as_secs_f64() * 1000.0,
                "upstream_addr": ctx.current.map(|a| a.to_string()),
                "ingress": ing,
                "service": svc,
                "error": e.map(|e| e.to_string()),
            });
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}
