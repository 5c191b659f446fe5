//! The admin endpoint (`--admin-listen ADDR` of every command): `/metrics` (Prometheus text
//! format, every registered component), `/healthz` and `/readyz` (every registered readiness
//! check; 503 while one is not ready), routes components register (the GitOps webhook), and
//! handlers for every path under a prefix (the GitOps web UI under `/`).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// What a registered route answers: status code and a body (JSON or text).
pub type Answer = (StatusCode, String);

/// A route a component adds to the admin endpoint (`POST /api/webhook`): it gets the request's
/// headers and body (1 MiB at most).
pub type Route = std::sync::Arc<
    dyn Fn(hyper::HeaderMap, Bytes) -> futures::future::BoxFuture<'static, Answer> + Send + Sync,
>;

static ROUTES: std::sync::Mutex<Vec<(String, String, Route)>> = std::sync::Mutex::new(Vec::new());

/// Add (or replace) the handler of `method path`.
pub fn register_route(method: &str, path: &str, route: Route) {
    let mut all = ROUTES.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(m, p, _)| !(m == method && p == path));
    all.push((method.to_string(), path.to_string(), route));
}

/// A response body: whole ([`full`]) or streamed (server-sent events).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A whole response body.
pub fn full(body: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(body.into()).boxed_unsync()
}

/// A handler for every path under a prefix: the request with its body read (1 MiB at most),
/// any response (headers, cookies, a streamed body).
pub type Handler = std::sync::Arc<
    dyn Fn(Request<Bytes>) -> futures::future::BoxFuture<'static, Response<Body>> + Send + Sync,
>;

static HANDLERS: std::sync::Mutex<Vec<(String, Handler)>> = std::sync::Mutex::new(Vec::new());

/// Add (or replace) the handler of every path under `prefix` that no route, `/metrics`,
/// `/healthz` or `/readyz` answers; the longest prefix wins.
pub fn register_handler(prefix: &str, handler: Handler) {
    let mut all = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(p, _)| p != prefix);
    all.push((prefix.to_string(), handler));
    all.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
}

/// The largest body a registered route is given.
const MAX_BODY: usize = 1024 * 1024;

async fn handle(
    req: Request<hyper::body::Incoming>,
    builtin_paths: bool,
) -> Result<Response<Body>, Infallible> {
    let route = {
        let all = ROUTES.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .find(|(_, p, _)| p == req.uri().path())
            .map(|(m, _, r)| (m.clone(), r.clone()))
    };
    if let Some((method, route)) = route {
        let (status, body) = if req.method().as_str() != method {
            (StatusCode::METHOD_NOT_ALLOWED, format!("{} only\n", method))
        } else {
            use http_body_util::BodyExt;
            let (parts, body) = req.into_parts();
            match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => route(parts.headers, b.to_bytes()).await,
                Err(e) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("reading the body: {e}\n"),
                ),
            }
        };
        let ct = if body.starts_with('{') {
            "application/json"
        } else {
            "text/plain"
        };
        return Ok(Response::builder()
            .status(status)
            .header("content-type", ct)
            .body(full(body))
            .expect("valid response"));
    }
    let builtin = matches!(req.uri().path(), "/metrics" | "/healthz" | "/readyz");
    let handler = (!builtin)
        .then(|| {
            let all = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            all.iter()
                .find(|(p, _)| req.uri().path().starts_with(p.as_str()))
                .map(|(_, h)| h.clone())
        })
        .flatten();
    if let Some(h) = handler {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        return Ok(
            match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => h(Request::from_parts(parts, b.to_bytes())).await,
                Err(e) => Response::builder()
                    .status(StatusCode::PAYLOAD_TOO_LARGE)
                    .header("content-type", "text/plain")
                    .body(full(format!("reading the body: {e}\n")))
                    .expect("valid response"),
            },
        );
    }
    let (status, ct, body) = match req.uri().path() {
        _ if !builtin_paths => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
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
        .body(full(body))
        .expect("valid response"))
}

/// Serve everything — `/metrics`, `/healthz`, `/readyz` and what components registered —
/// until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(%addr, "admin endpoint: /metrics, /healthz");
    serve_with(addr, shutdown, true).await
}

/// Serve only what components registered (a web UI, a webhook), not `/metrics`, `/healthz` or
/// `/readyz`: the listener to put behind an Ingress, as ArgoCD serves its UI and its metrics on
/// different ports.
pub async fn serve_public(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(%addr, "public endpoint: registered routes only");
    serve_with(addr, shutdown, false).await
}

async fn serve_with(
    addr: SocketAddr,
    shutdown: CancellationToken,
    builtin_paths: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => a?,
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(
                    TokioIo::new(tcp),
                    hyper::service::service_fn(move |req| handle(req, builtin_paths)),
                )
                .await;
        });
    }
}
