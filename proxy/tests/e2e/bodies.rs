//! Response bodies framed by Content-Length (third_party/pingora-core's body buffer, sized to
//! the body): every byte arrives, whatever the size around the 64 KiB buffer and however the
//! backend's writes split head and body, and the backend connection stays in use after each
//! (a body read too far or too short would end it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::all_to_svc;
use crate::common::Env;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The body the backend sends for `size`: bytes that differ with the position and the size.
fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + size) % 251) as u8).collect()
}

/// How the backend writes one response.
#[derive(Clone, Copy, Debug)]
enum Writes {
    /// Head and body in one write.
    Together,
    /// The head, then 20 ms later the body.
    HeadThenBody,
    /// The head with the body's first byte, then the rest in three parts 10 ms apart.
    Dribbled,
}

/// A raw HTTP/1.1 keep-alive backend answering `GET /{size}/{writes}`; counts its connections.
async fn backend() -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp));
        }
    });
    (addr, accepted, task)
}

async fn serve(mut tcp: TcpStream) {
    let mut pending = Vec::new();
    while let Some(head) = crate::read_request_head(&mut tcp, &mut pending).await {
        let line = String::from_utf8_lossy(&head).to_string();
        // "GET /65536/Dribbled HTTP/1.1"
        let path = line.split(' ').nth(1).unwrap_or("/");
        let mut parts = path.trim_start_matches('/').split('/');
        let size: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let writes = parts.next().unwrap_or("");
        let b = body(size);
        let h = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").into_bytes();
        let ok = match writes {
            "HeadThenBody" => {
                let a = tcp.write_all(&h).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                a.and(tcp.write_all(&b).await)
            }
            "Dribbled" if size > 1 => {
                let first = [&h[..], &b[..1]].concat();
                let mut r = tcp.write_all(&first).await;
                let rest = &b[1..];
                let third = rest.len().div_ceil(3);
                for part in rest.chunks(third.max(1)) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    r = r.and(tcp.write_all(part).await);
                }
                r
            }
            _ => tcp.write_all(&[&h[..], &b[..]].concat()).await,
        };
        if ok.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_bodies_arrive_whole_around_the_buffer_size() {
    let env = Env::start().await;
    let (addr, accepted, task) = backend().await;
    env.service("svc", &[addr]).await;
    env.ingress("r", json!({}), all_to_svc("bodies.test")).await;
    env.eventually("bodies.test", "/1/Together", |c, _| c == 200)
        .await;
    let before = accepted.load(Ordering::SeqCst);
    let client = reqwest::Client::new();
    let sizes = [
        0usize, 1, 2, 64, 4095, 4096, 16_384, 65_535, 65_536, 65_537, 200_000,
    ];
    for writes in [Writes::Together, Writes::HeadThenBody, Writes::Dribbled] {
        for size in sizes {
            let r = client
                .get(format!("http://{}/{size}/{writes:?}", env.http))
                .header("host", "bodies.test")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{size} bytes, {writes:?}");
            let got = r.bytes().await.unwrap();
            assert_eq!(got.len(), size, "{size} bytes, {writes:?}: length");
            assert!(
                got[..] == body(size)[..],
                "{size} bytes, {writes:?}: content"
            );
        }
    }
    // One request at a time: each response framed right leaves the backend connection idle in
    // the pool for the next request. Each proxy worker (one per core) has its own pool, and the
    // warm-up may have been served by another worker than these requests: at most one backend
    // connection per worker, where a response framed wrong would cost one per request after it.
    let workers = metalgate_proxy::server::worker_count();
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n <= workers.max(before),
        "{n} backend connections for one client's requests, more than one per worker \
         ({workers}): a response was framed wrong"
    );
    task.abort();
}

/// Request bodies go from the client's half of the proxy to the backend's through a task pipe
/// of four slots: a backend that reads slowly fills it, and the client's half must wait for
/// room, then go on, and never drop, repeat or reorder a piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_arrive_whole_and_in_order_when_the_backend_reads_slowly() {
    let env = Env::start().await;
    let be = crate::common::Backend::start("slow").await;
    let annotations = json!({ "nginx.ingress.kubernetes.io/proxy-body-size": "8m" });
    crate::route_to(&env, &[be.addr], "r", annotations, "uploads.test").await;
    let client = reqwest::Client::new();
    let upload = body(3 << 20);
    // A Content-Length body, then the same bytes chunked as the client streams them in pieces
    // of 1 to 9 KiB.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = upload
        .chunks(9 * 1024)
        .enumerate()
        .flat_map(|(i, c)| c.chunks(1024 * (1 + i % 9)).map(|p| Ok(p.to_vec())))
        .collect();
    for (how, request_body) in [
        ("content-length", reqwest::Body::from(upload.clone())),
        (
            "chunked",
            reqwest::Body::wrap_stream(futures::stream::iter(pieces)),
        ),
    ] {
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            client
                .post(format!("http://{}/slow-read/{how}", env.http))
                .header("host", "uploads.test")
                .body(request_body)
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{how}: no answer in 30 s"))
        .unwrap();
        assert_eq!(r.status(), 200, "{how}");
        let seen: serde_json::Value = r.json().await.unwrap();
        assert_eq!(seen["body_len"], upload.len(), "{how}: length");
        assert_eq!(
            seen["body_sum"],
            crate::common::body_sum(&upload),
            "{how}: the bytes arrived changed or out of order"
        );
    }
}
