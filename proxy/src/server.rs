//! Listeners: HTTP and HTTPS on Pingora inside the process's own tokio runtime, certificates
//! per SNI from the current table, a deadline for request headers, graceful drain.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType, raw_connect::ProxyDigest, tls::SslDigest,
    tls::TlsRef,
};
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service as _;
use pingora::services::listening::Service;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// Wraps the proxy so every connection's request headers must arrive in time.
struct HeaderDeadlineApp<A> {
    inner: Arc<A>,
    timeout: Duration,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // h2 frames are binary: its own flow control and idle limits apply instead.
        let stream: Stream = if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            stream
        } else {
            Box::new(HeaderDeadline::new(stream, self.timeout))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// A stream whose reads fail once a request's header block (up to the blank line) has taken
/// longer than the deadline since its first byte. Re-armed after each response. A header that
/// arrives in one read (the usual case) costs a scan and no clock read: the clock is read when a
/// block goes on past a read, and the timer is only made when a read has to wait mid-block.
///
/// The same scan checks the request line as RFC 9112 has it — `method SP target SP version`,
/// no control characters — and answers 400 itself, closing the connection, when it is not:
/// Pingora would percent-escape a control character, space or tab in the target and forward the
/// request (nginx answers 400 to all of them).
#[derive(Debug)]
struct HeaderDeadline {
    inner: Stream,
    timeout: Duration,
    /// When the current header block's first byte arrived.
    started: Option<tokio::time::Instant>,
    /// Wakes a read waiting in the middle of a header block at the deadline.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Looking for the end of a header block.
    in_header: bool,
    /// The last bytes seen, to find `\r\n\r\n` across reads.
    tail: u32,
    /// The current header block's request line, as far as it has arrived.
    line: RequestLine,
    /// A malformed request line was read: how much of the 400 has been written (then EOF).
    rejecting: Option<usize>,
}

/// The end of a header block, `\r\n\r\n`, as the last four bytes seen (newest lowest).
const CRLF_CRLF: u32 = 0x0d0a_0d0a;

/// Where the first `\r\n\r\n` ends in `data` (the index after it), given the bytes read before
/// it (`tail`, the newest in the low byte). Only line ends are looked at, found by memchr.
fn blank_line_end(tail: u32, data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data).find_map(|p| {
        let window = (0..4).fold(0u32, |w, k| {
            let b = match (p + k).checked_sub(3) {
                Some(i) => data[i],
                None => (tail >> (8 * (2 - p - k))) as u8,
            };
            (w << 8) | u32::from(b)
        });
        (window == CRLF_CRLF).then_some(p + 1)
    })
}

/// `tail` after `data`: its last four bytes, earlier ones from `tail` when `data` is shorter.
fn last_bytes(tail: u32, data: &[u8]) -> u32 {
    data[data.len().saturating_sub(4)..]
        .iter()
        .fold(tail, |t, b| (t << 8) | u32::from(*b))
}

/// The answer to a malformed request line; the connection closes after it.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\
Cache-Control: private, no-store\r\nConnection: close\r\n\r\n";

/// Checks a request line byte by byte, across reads: leading empty lines are skipped (RFC 9112
/// §2.2), then at most two spaces, no control character, CR only right before LF.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RequestLine {
    started: bool,
    done: bool,
    spaces: u8,
    cr: bool,
}

impl RequestLine {
    /// Takes the next byte; false when the line is malformed. Bytes after the line are ignored.
    fn feed(&mut self, b: u8) -> bool {
        if self.done {
            return true;
        }
        if !self.started {
            if b == b'\r' || b == b'\n' {
                return true;
            }
            self.started = true;
        }
        if self.cr {
            self.done = b == b'\n';
            return self.done;
        }
        match b {
            b'\n' => self.done = true,
            b'\r' => self.cr = true,
            b' ' => {
                self.spaces += 1;
                return self.spaces <= 2;
            }
            0..=0x1f | 0x7f => return false,
            _ => {}
        }
        true
    }
}

impl HeaderDeadline {
    fn new(inner: Stream, timeout: Duration) -> Self {
        HeaderDeadline {
            inner,
            timeout,
            started: None,
            sleep: None,
            in_header: true,
            tail: 0,
            line: RequestLine::default(),
            rejecting: None,
        }
    }

    /// Writes the 400 for a malformed request line, then reads end (Pingora sees the client
    /// gone and closes the connection).
    fn poll_reject(&mut self, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let done = self.rejecting.unwrap_or(usize::MAX);
            if done < BAD_REQUEST.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &BAD_REQUEST[done..]) {
                    Poll::Ready(Ok(0)) => self.rejecting = Some(usize::MAX),
                    Poll::Ready(Ok(n)) => self.rejecting = Some(done + n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            } else if done == BAD_REQUEST.len() {
                match Pin::new(&mut self.inner).poll_flush(cx) {
                    Poll::Ready(r) => {
                        self.rejecting = Some(usize::MAX);
                        r?;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// `data` is about to be written: when a final (non-1xx) response starts, the next bytes
    /// read begin a new request.
    fn writing(&mut self, data: &[u8]) {
        if !self.in_header
            && data.starts_with(b"HTTP/1.")
            && data.get(9..10).is_none_or(|c| c != b"1")
        {
            self.in_header = true;
            self.tail = 0;
            self.line = RequestLine::default();
            self.sleep = None;
        }
    }

    fn expired() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request headers not received in time",
        )
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.rejecting.is_some() {
            return this.poll_reject(cx);
        }
        if let Some(start) = this.started {
            if start.elapsed() > this.timeout {
                return Poll::Ready(Err(Self::expired()));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if this.in_header => {
                let new = &buf.filled()[before..];
                let first_bytes = !new.is_empty() && this.started.is_none();
                // The request line byte by byte; the rest of the block only at its line ends.
                let mut rest = new.len();
                for (i, b) in new.iter().enumerate() {
                    if this.line.done {
                        rest = i;
                        break;
                    }
                    if !this.line.feed(*b) {
                        tracing::debug!("malformed request line: answering 400");
                        buf.set_filled(before);
                        this.in_header = false;
                        this.started = None;
                        this.sleep = None;
                        this.rejecting = Some(0);
                        return this.poll_reject(cx);
                    }
                    this.tail = (this.tail << 8) | u32::from(*b);
                    if this.tail == CRLF_CRLF {
                        rest = new.len();
                        this.in_header = false;
                        break;
                    }
                }
                let rest = &new[rest..];
                if this.in_header && !rest.is_empty() {
                    if blank_line_end(this.tail, rest).is_some() {
                        this.in_header = false;
                    } else {
                        this.tail = last_bytes(this.tail, rest);
                    }
                }
                if !this.in_header {
                    this.started = None;
                    this.sleep = None;
                } else if first_bytes {
                    // The block's first bytes arrived in this read and it goes on: its clock
                    // starts now. A block whole in one read (the usual case) never reads it.
                    this.started = Some(tokio::time::Instant::now());
                }
            }
            Poll::Pending if this.in_header => {
                if let Some(start) = this.started {
                    let deadline = start + this.timeout;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Self::expired()));
                    }
                }
            }
            _ => {}
        }
        r
    }
}

use std::future::Future as _;

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writing(data);
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match bufs.iter().find(|b| !b.is_empty()) {
            // The same check as `poll_write`, on what would be written first.
            Some(first) => {
                self.writing(first);
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            None => Poll::Ready(Ok(0)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}
impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}
impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}
impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}
impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, d: ProxyDigest) {
        self.inner.set_proxy_digest(d)
    }
}
impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}
#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::{RequestLine, blank_line_end, last_bytes};

    /// Where the first `\r\n\r\n` ends, byte by byte: what the scan did before memchr.
    fn reference(all: &[u8]) -> Option<usize> {
        let mut t = 0u32;
        all.iter()
            .position(|b| {
                t = (t << 8) | u32::from(*b);
                t == 0x0d0a_0d0a
            })
            .map(|p| p + 1)
    }

    #[test]
    fn the_end_of_a_header_block_is_found_however_the_reads_split_it() {
        for block in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX-B: c\r\n\r\n"[..],
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \n\r\n\nB: c\r\r\n\r\n\r\nbody",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
            b"\n\n\n\r\n\r",
        ] {
            let want = reference(block);
            for i in 0..=block.len() {
                for j in i..=block.len() {
                    let mut tail = 0;
                    let mut offset = 0;
                    let mut got = None;
                    for chunk in [&block[..i], &block[i..j], &block[j..]] {
                        if let Some(p) = blank_line_end(tail, chunk) {
                            got = Some(offset + p);
                            break;
                        }
                        tail = last_bytes(tail, chunk);
                        offset += chunk.len();
                    }
                    assert_eq!(
                        got,
                        want,
                        "{:?} split at {i}, {j}",
                        block.escape_ascii().to_string()
                    );
                }
            }
        }
    }

    fn ok(bytes: &[u8]) -> bool {
        let mut l = RequestLine::default();
        bytes.iter().all(|b| l.feed(*b))
    }

    #[test]
    fn request_lines_as_rfc_9112_has_them() {
        for good in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /a?b=c%20d HTTP/1.1\r\n",
            b"\r\nGET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\n",
            b"OPTIONS * HTTP/1.1\r\n",
            // What follows the line (headers, a body) is not the line's business.
            b"POST / HTTP/1.1\r\nX-A: b c d\r\n\r\n\x01\x02",
        ] {
            assert!(ok(good), "{:?}", good.escape_ascii().to_string());
        }
        for bad in [
            &b"GET /a\x01b HTTP/1.1\r\n"[..],
            b"GET /a\x7fb HTTP/1.1\r\n",
            b"GET /a\x00 HTTP/1.1\r\n",
            b"GET /a b HTTP/1.1\r\n",
            b"GET /a\tb HTTP/1.1\r\n",
            b"GET / HTTP/1.1\rX",
            b"GE\x1bT / HTTP/1.1\r\n",
        ] {
            assert!(!ok(bad), "{:?}", bad.escape_ascii().to_string());
        }
    }

    #[test]
    fn a_line_split_across_reads_is_the_same_line() {
        let mut l = RequestLine::default();
        assert!(b"GET /a".iter().all(|b| l.feed(*b)));
        assert!(!b" b HTTP/1.1\r\n".iter().all(|b| l.feed(*b)));
    }
}
