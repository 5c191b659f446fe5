//! Endpoints that fail: dead ones retried around and ejected, one that resets a request
//! (retried only when idempotent).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::all_to_svc;
use crate::common::{Backend, Env, backend_of};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoints_are_retried_around_and_ejected() {
    let env = Env::start().await;
    let live = Backend::start("live").await;
    // An address nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap()
    };
    let dead = std::net::SocketAddr::new(dead.ip(), live.addr.port());
    env.service("svc", &[live.addr, dead]).await;
    env.ingress("r", json!({}), all_to_svc("r.test")).await;
    env.eventually("r.test", "/", |c, _| c == 200).await;
    for _ in 0..20 {
        let (c, body) = env.get("r.test", "/").await;
        assert_eq!((c, backend_of(&body).as_str()), (200, "live"));
    }
    let metrics = env.shared.metrics.render();
    let refused: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("metalgate_proxy_upstream_errors_total") && l.contains("svc"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        (1..=4).contains(&refused),
        "the dead endpoint is tried a few times, then ejected: {refused} failures"
    );

    // Only a dead endpoint: a POST is not retried and gets 502.
    env.endpoints("svc", &[dead]).await;
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c
            .post(format!("http://{}/", env.http))
            .header("host", "r.test")
            .body("x")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 502 {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", r.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An endpoint at 127.0.0.2:`port` (an EndpointSlice has one port) that takes the connection
/// and the request, then resets it — a pod killed in a rollout. Counts the requests it took.
async fn resetting_endpoint(port: u16) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            if matches!(c.read(&mut buf).await, Ok(n) if n > 0) {
                t.fetch_add(1, Ordering::Relaxed);
            }
            let _ = c.set_zero_linger();
            drop(c);
        }
    });
    (addr, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_an_endpoint_resets_is_retried_when_idempotent() {
    let env = Env::start().await;
    let live = Backend::start("live").await;
    let (broken, taken) = resetting_endpoint(live.addr.port()).await;
    env.service("svc", &[live.addr, broken]).await;
    env.ingress("r", json!({}), all_to_svc("r.test")).await;
    env.eventually("r.test", "/", |c, _| c == 200).await;
    for _ in 0..20 {
        let (c, body) = env.get("r.test", "/").await;
        assert_eq!((c, backend_of(&body).as_str()), (200, "live"));
    }
    assert!(
        taken.load(Ordering::Relaxed) >= 1,
        "the resetting endpoint was never tried: the test proved nothing"
    );

    // A POST is not repeated: with only the resetting endpoint it gets 502, sent once.
    env.endpoints("svc", &[broken]).await;
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = taken.load(Ordering::Relaxed);
        let r = c
            .post(format!("http://{}/", env.http))
            .header("host", "r.test")
            .body("x")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 502 {
            assert_eq!(
                taken.load(Ordering::Relaxed) - before,
                1,
                "the POST was sent once"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still {}", r.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
