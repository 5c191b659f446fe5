//! Connections to backends (third_party/pingora-proxy's upstream pool): kept open and reused
//! between requests, not reused once the backend has closed them, and closed on the proxy's side
//! soon after the backend closes them while idle (no socket left in CLOSE_WAIT).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::all_to_svc;
use crate::common::Env;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the backend does with a connection after each answer.
#[derive(Clone, Copy)]
enum After {
    /// Keep it open for the next request.
    KeepAlive,
    /// Close it 100 ms later (as a backend with a short keep-alive timeout does).
    Close,
    /// Shut down its sending side 100 ms later and report (on the channel) how long the proxy
    /// takes to close its own.
    HalfClose,
    /// Answer with `Connection: close` but keep the connection open and go on serving it (a
    /// backend slow to close): only the proxy's reading of that header keeps it from reuse.
    SaysClose,
}

/// A raw HTTP/1.1 backend: answers every request with the number of the connection it came on
/// (1, 2, …) in a keep-alive response, with hop-by-hop headers of its own (`Keep-Alive`,
/// `Proxy-Connection`) and an end-to-end one (`X-Kept`).
struct RawBackend {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed_by_proxy: mpsc::UnboundedReceiver<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawBackend {
    async fn start(after: After) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, closed_by_proxy) = mpsc::unbounded_channel();
        let n = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let id = n.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(tcp, id, after, tx.clone()));
            }
        });
        RawBackend {
            addr,
            accepted,
            closed_by_proxy,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut tcp: TcpStream, id: usize, after: After, tx: mpsc::UnboundedSender<Duration>) {
    let mut pending = Vec::new();
    // GETs only: the head's end is the request's end.
    while crate::read_request_head(&mut tcp, &mut pending)
        .await
        .is_some()
    {
        let body = id.to_string();
        let hop = match after {
            After::SaysClose => "connection: close\r\n",
            _ => {
                "connection: keep-alive\r\nkeep-alive: timeout=60\r\nproxy-connection: keep-alive\r\n"
            }
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{hop}x-kept: yes\r\n\r\n{body}",
            body.len()
        );
        if tcp.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        match after {
            After::KeepAlive | After::SaysClose => {}
            After::Close => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return; // dropped: closed
            }
            After::HalfClose => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tcp.shutdown().await;
                let since = Instant::now();
                // The proxy's end of the connection: closed (0) within 5 s, or reported late.
                let r =
                    tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut [0u8; 64])).await;
                let took = match r {
                    Ok(Ok(0)) | Ok(Err(_)) => since.elapsed(),
                    _ => Duration::MAX,
                };
                let _ = tx.send(took);
                return;
            }
        }
    }
}

async fn route_to(env: &Env, be: &RawBackend, host: &str) {
    env.service("svc", &[be.addr]).await;
    env.ingress("r", json!({}), all_to_svc(host)).await;
    env.eventually(host, "/", |c, _| c == 200).await;
}

/// Each of the proxy's workers (one per core) keeps its own pool, as nginx's workers do: 20
/// requests one after another, each from a new client connection, travel on at most one backend
/// connection per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_carry_request_after_request() {
    let env = Env::start().await;
    let be = RawBackend::start(After::KeepAlive).await;
    route_to(&env, &be, "pool.test").await;
    let workers = metalgate_proxy::server::worker_count();
    for i in 0..20 {
        // Each request from a new client connection, one after another.
        let (c, body) = env.get("pool.test", &format!("/{i}")).await;
        assert_eq!(c, 200);
        let conn: usize = body.parse().expect("the backend connection's number");
        assert!(
            conn <= workers,
            "request {i} came on backend connection {conn}: more than one per worker ({workers})"
        );
    }
    assert!(
        be.accepted() <= workers,
        "{} backend connections for 20 requests, more than one per worker ({workers})",
        be.accepted()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_backend_closed_is_not_reused() {
    let env = Env::start().await;
    let be = RawBackend::start(After::Close).await;
    route_to(&env, &be, "close.test").await;
    for i in 0..5 {
        // Past the backend's 100 ms: the connection of the last request is closed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = be.accepted();
        let (c, body) = env.get("close.test", &format!("/{i}")).await;
        assert_eq!(c, 200, "request {i}: {body}");
        assert_eq!(
            body,
            (before + 1).to_string(),
            "request {i} went on a new connection"
        );
        assert_eq!(be.accepted(), before + 1);
    }
    // A stale connection tried first would show as a failed attempt (and a POST would get 502).
    let failures: Vec<String> = env
        .shared
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("metalgate_proxy_upstream_errors_total{"))
        .map(str::to_string)
        .collect();
    assert!(failures.is_empty(), "failed attempts: {failures:?}");
}

/// A response that says `Connection: close` ends its connection's use, even while the backend
/// keeps it open: every request goes on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_backend_said_it_would_close_is_not_reused() {
    let env = Env::start().await;
    let be = RawBackend::start(After::SaysClose).await;
    route_to(&env, &be, "says-close.test").await;
    for i in 0..5 {
        let before = be.accepted();
        let (c, body) = env.get("says-close.test", &format!("/{i}")).await;
        assert_eq!(c, 200, "request {i}: {body}");
        assert_eq!(
            body,
            (before + 1).to_string(),
            "request {i} went on a new connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_closes_its_end_soon_after_the_backend_does() {
    let env = Env::start().await;
    let mut be = RawBackend::start(After::HalfClose).await;
    route_to(&env, &be, "half.test").await;
    // The request `eventually` made: its connection is idle in the pool now.
    let took = tokio::time::timeout(Duration::from_secs(8), be.closed_by_proxy.recv())
        .await
        .expect("the backend reports")
        .unwrap();
    assert!(
        took < Duration::from_secs(3),
        "the proxy kept a connection the backend had closed for {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_hop_by_hop_headers_stay_on_its_hop() {
    let env = Env::start().await;
    let be = RawBackend::start(After::KeepAlive).await;
    route_to(&env, &be, "hop.test").await;
    let r = reqwest::Client::new()
        .get(format!("http://{}/", env.http))
        .header("host", "hop.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h.get("x-kept").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    assert!(h.get("proxy-connection").is_none(), "{h:?}");
    assert!(h.get("keep-alive").is_none(), "{h:?}");
}
