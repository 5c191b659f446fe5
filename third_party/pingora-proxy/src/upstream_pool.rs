// metalgate patch: the upstream HTTP/1 connection pool (see README.metalgate.md).
//
// Pingora's own pool (pingora-core's `TransportConnector` over pingora-pool) keeps every idle
// upstream connection inside an `Arc<Mutex<Stream>>` watched by a task of its own: releasing a
// connection spawns that task, and taking it back wakes the task and waits for it to let go of
// the lock, then asks the kernel for the socket's peer address (`getpeername`) to check that
// the descriptor still belongs to the peer. Per proxied request that is a task spawn, a wake-up
// and hand-over between two tasks, a system call and a handful of allocations and locks.
//
// This pool keeps idle HTTP/1 connections in plain per-peer stacks behind a few mutexes:
// - taking one is a pop and a non-blocking look at the socket (a connection the server closed
//   or wrote to while idle is dropped, as Pingora does), with the peer's address compared in
//   memory, not asked of the kernel;
// - the most recently used connection is reused first, so a burst's extra connections are the
//   ones left to time out;
// - one sweeper task per pool (not one task per connection) drops, every second, connections
//   the server has closed and those idle past the peer's idle timeout, so no closed socket
//   lingers in CLOSE_WAIT until the next request;
// - at most `keepalive_pool_size` connections stay idle; past that, the longest idle goes.
//
// Peers that may speak HTTP/2 or a custom protocol keep Pingora's own connectors.

use futures::future::FutureExt;
use pingora_core::connectors::http::custom;
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::listeners::ALPN;
use pingora_core::protocols::http::client::HttpSession as ClientSession;
use pingora_core::protocols::http::v1::client::HttpSession as HttpSessionV1;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::Peer;
use pingora_error::Result;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How many locks the idle connections are spread over (by peer).
const SHARDS: usize = 8;
/// How often the sweeper looks at idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const DEFAULT_POOL_SIZE: usize = 128;

/// The pool's keys are already hashes (`Peer::reuse_hash`): one multiplication spreads them over
/// the map's buckets, where SipHash cost more than the rest of a take or a put.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Idle connections by peer.
type Stacks = HashMap<u64, Vec<Idle>, BuildHasherDefault<KeyHasher>>;

/// Pingora's connectors with this pool in front for HTTP/1-only peers.
pub(crate) struct Upstream<C: custom::Connector> {
    inner: Connector<C>,
    h1: H1Pool,
}

impl<C: custom::Connector> Upstream<C> {
    pub(crate) fn new(inner: Connector<C>, options: Option<ConnectorOptions>) -> Self {
        // Connections dropped for unexpected data count where Pingora's own do: one counter.
        let unexpected = inner.unexpected_data_connection_counter();
        Upstream {
            inner,
            h1: H1Pool::new(options, unexpected),
        }
    }

    /// A session to `peer`, reused when one is idle, and whether it was.
    pub(crate) async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(ClientSession<C::Session>, bool)> {
        if !pooled_here(peer) {
            return boxed!(self.inner.get_http_session(peer)).await;
        }
        let (stream, reused) = match self.h1.take(peer) {
            Some(stream) => (stream, true),
            None => (boxed!(self.h1.transport.new_stream(peer)).await?, false),
        };
        let session = HttpSessionV1::new_with_options(stream, peer);
        Ok((ClientSession::H1(session), reused))
    }

    /// Give a session back after its request: kept idle for the next one when it can be.
    pub(crate) async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        session: ClientSession<C::Session>,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) {
        match session {
            ClientSession::H1(mut h1) if pooled_here(peer) => {
                h1.respect_keepalive();
                if let Some(stream) = h1.reuse().await {
                    self.h1.put(stream, peer, idle_timeout);
                }
            }
            other => {
                boxed!(self.inner.release_http_session(other, peer, idle_timeout)).await
            }
        }
    }

    pub(crate) fn prefer_h1(&self, peer: &impl Peer) {
        self.inner.prefer_h1(peer);
    }

    pub(crate) fn unexpected_data_connection_count(&self) -> u64 {
        self.inner.unexpected_data_connection_count()
    }

    pub(crate) fn unexpected_data_connection_counter(&self) -> Arc<AtomicU64> {
        self.inner.unexpected_data_connection_counter()
    }
}

/// The peers whose connections this pool keeps: HTTP/1 only (no ALPN, or one that stops at 1),
/// as Pingora's `Connector` decides which of its connectors serves a peer.
/// With the `stock-pool` feature (for benchmarks of Pingora as released) none are.
fn pooled_here<P: Peer>(peer: &P) -> bool {
    !cfg!(feature = "stock-pool")
        && peer.get_peer_options().is_none_or(|o| {
        !matches!(o.alpn, ALPN::Custom(_)) && o.alpn.get_max_http_version() == 1
    })
}

struct Idle {
    stream: Stream,
    addr: SocketAddr,
    since: Instant,
    timeout: Option<Duration>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.timeout
            .is_some_and(|t| now.saturating_duration_since(self.since) >= t)
    }
}

struct Shared {
    shards: Box<[Mutex<Stacks>]>,
    idle: AtomicUsize,
    cap: usize,
    unexpected: Arc<AtomicU64>,
}

struct H1Pool {
    transport: TransportConnector,
    shared: Arc<Shared>,
    sweeper: std::sync::Once,
}

impl H1Pool {
    fn new(options: Option<ConnectorOptions>, unexpected: Arc<AtomicU64>) -> Self {
        let cap = options
            .as_ref()
            .map_or(DEFAULT_POOL_SIZE, |o| o.keepalive_pool_size);
        H1Pool {
            transport: TransportConnector::new(options),
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| Mutex::new(Stacks::default())).collect(),
                idle: AtomicUsize::new(0),
                cap,
                unexpected,
            }),
            sweeper: std::sync::Once::new(),
        }
    }

    /// The most recently released idle connection to `peer` that is still usable.
    fn take<P: Peer>(&self, peer: &P) -> Option<Stream> {
        let key = peer.reuse_hash();
        let mut closed = Vec::new();
        let found = {
            let mut shard = self.shared.shard(key);
            let stack = shard.get_mut(&key)?;
            let mut found = None;
            while let Some(mut idle) = stack.pop() {
                self.shared.idle.fetch_sub(1, Ordering::Relaxed);
                if idle.addr == *peer.address()
                    && !idle.expired(Instant::now())
                    && still_open(&mut idle.stream, &self.shared.unexpected)
                {
                    found = Some(idle.stream);
                    break;
                }
                closed.push(idle);
            }
            // An empty stack stays (with its allocation) for the next release; the sweeper
            // removes the ones still empty.
            found
        };
        drop(closed); // closing sockets outside the lock
        found
    }

    fn put<P: Peer>(&self, mut stream: Stream, peer: &P, timeout: Option<Duration>) {
        if self.shared.cap == 0 || !still_open(&mut stream, &self.shared.unexpected) {
            return;
        }
        self.start_sweeper();
        let key = peer.reuse_hash();
        let idle = Idle {
            stream,
            addr: peer.address().clone(),
            since: Instant::now(),
            timeout,
        };
        self.shared.shard(key).entry(key).or_default().push(idle);
        if self.shared.idle.fetch_add(1, Ordering::Relaxed) >= self.shared.cap {
            drop(self.shared.evict_oldest());
        }
    }

    /// One sweeper per pool, on the runtime of the first release; it ends with the pool.
    fn start_sweeper(&self) {
        self.sweeper.call_once(|| {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let weak: Weak<Shared> = Arc::downgrade(&self.shared);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(shared) = weak.upgrade() else { return };
                    shared.sweep(Instant::now());
                }
            });
        });
    }
}

impl Shared {
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Stacks> {
        // A poisoned shard only means a panic elsewhere while it was held; its map is intact.
        self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Drop idle connections that are closed, were written to, or are past their idle timeout.
    fn sweep(&self, now: Instant) {
        for i in 0..SHARDS {
            let mut gone = Vec::new();
            {
                let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
                shard.retain(|_, stack| {
                    gone.extend(stack.extract_if(.., |idle| {
                        idle.expired(now) || !still_open(&mut idle.stream, &self.unexpected)
                    }));
                    !stack.is_empty()
                });
            }
            self.idle.fetch_sub(gone.len(), Ordering::Relaxed);
        }
    }

    /// Remove the connection idle longest, over every peer (only when the pool is full).
    fn evict_oldest(&self) -> Option<Idle> {
        let mut oldest: Option<(usize, u64, Instant)> = None;
        for (i, shard) in self.shards.iter().enumerate() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, stack) in shard.iter() {
                if let Some(first) = stack.first() {
                    if oldest.is_none_or(|(_, _, since)| first.since < since) {
                        oldest = Some((i, *key, first.since));
                    }
                }
            }
        }
        let (i, key, _) = oldest?;
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let stack = shard.get_mut(&key)?;
        if stack.is_empty() {
            return None;
        }
        let idle = stack.remove(0);
        if stack.is_empty() {
            shard.remove(&key);
        }
        self.idle.fetch_sub(1, Ordering::Relaxed);
        Some(idle)
    }
}

/// Whether an idle connection can carry another request: nothing to read and no end of stream
/// (a server never speaks first on an idle HTTP/1 connection). A non-blocking look: tokio
/// asks the kernel only when the socket was reported readable since its last empty read.
fn still_open(stream: &mut Stream, unexpected: &AtomicU64) -> bool {
    let mut buf = [0u8; 1];
    match tokio::task::unconstrained(stream.read(&mut buf[..])).now_or_never() {
        None => true,
        Some(Ok(0)) | Some(Err(_)) => false,
        Some(Ok(_)) => {
            unexpected.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
