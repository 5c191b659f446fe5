//! The admin endpoint (`metalgate run --admin-listen ADDR`, `metalgate proxy --admin-listen`): `/metrics` (Prometheus text
//! format, every registered component), `/healthz` and `/readyz` (every registered readiness
//! check; 503 while one is not ready).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ct, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            crate::metrics::render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => {
            let all = crate::metrics::ready();
            let body: String = all
                .iter()
                .map(|(n, r)| format!("{n}: {}\n", if *r { "ready" } else { "not ready" }))
                .collect();
            let ok = all.iter().all(|(_, r)| *r);
            (
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "text/plain",
                if body.is_empty() { "ok\n".into() } else { body },
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response"))
}

/// Serve until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin endpoint: /metrics, /healthz");
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => a?,
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(handle))
                .await;
        });
    }
}
