//! `metalgate demo-backend`: stand-ins for the workshop's podinfo, argocd-server and grafana,
//! so the lab has real HTTP backends without containers.
//!
//! The podinfo stand-in speaks podinfo's API where users touch it: `GET /` (JSON, or an HTML
//! page when a browser asks, coloured by `PODINFO_UI_COLOR`), `/healthz`, `/readyz`,
//! `/version`, `/headers`, `/status/{code}`, `/delay/{seconds}`, `/echo` and the websocket
//! `/ws/echo`. The argocd and grafana stand-ins answer every path with a page that says what
//! they are. Every answer says plainly that it comes from a metalgate stand-in.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// Which application a stand-in plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// stefanprodan/podinfo.
    Podinfo,
    /// argocd-server.
    Argocd,
    /// grafana.
    Grafana,
}

/// The podinfo version the stand-in reports (the workshop's).
pub const PODINFO_VERSION: &str = "6.7.1";
const MAX_DELAY_SECS: u64 = 60;
const MAX_ECHO: usize = 1024 * 1024;

/// What a stand-in knows about itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which application.
    pub kind: Kind,
    /// The host name it reports (podinfo's `hostname`).
    pub hostname: String,
    /// podinfo's UI colour (`PODINFO_UI_COLOR`).
    pub color: String,
    /// podinfo's UI message (`PODINFO_UI_MESSAGE`).
    pub message: String,
}

impl Settings {
    /// From the environment, as podinfo reads it.
    pub fn from_env(kind: Kind, hostname: Option<String>) -> Self {
        let hostname = hostname.unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        });
        Settings {
            kind,
            hostname,
            color: std::env::var("PODINFO_UI_COLOR").unwrap_or_else(|_| "#34577c".into()),
            message: std::env::var("PODINFO_UI_MESSAGE")
                .unwrap_or_else(|_| "greetings from podinfo (a metalgate stand-in)".into()),
        }
    }
}

fn full(status: StatusCode, ct: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r.headers_mut()
        .insert("x-metalgate-stand-in", HeaderValue::from_static("true"));
    r
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    full(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )
}

/// Serve until the process ends.
pub async fn serve(listen: SocketAddr, settings: Settings) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, kind = ?settings.kind, "demo backend listening");
    let settings = Arc::new(settings);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let settings = settings.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let settings = settings.clone();
                async move { Ok::<_, Infallible>(handle(&settings, req, peer).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Answer one request.
pub async fn handle(s: &Settings, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    match s.kind {
        Kind::Podinfo => podinfo(s, req, peer).await,
        Kind::Argocd => app_page(s, "Argo CD", "argocd-server", &req),
        Kind::Grafana => app_page(s, "Grafana", "grafana", &req),
    }
}

fn app_page(s: &Settings, title: &str, app: &str, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" || path == "/api/health" {
        return json_reply(
            StatusCode::OK,
            json!({"status": "ok", "app": app, "standIn": true}),
        );
    }
    let body = format!(
        "<!doctype html><html><head><title>{title} (metalgate stand-in)</title></head>\
         <body><h1>{title}</h1><p>This is metalgate's stand-in for <b>{app}</b> in the lab, \
         served by {host}. Path: <code>{path}</code></p></body></html>\n",
        host = s.hostname
    );
    full(StatusCode::OK, "text/html; charset=utf-8", body)
}

fn wants_html(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn info(s: &Settings) -> serde_json::Value {
    json!({
        "hostname": s.hostname,
        "version": PODINFO_VERSION,
        "revision": "metalgate-stand-in",
        "color": s.color,
        "logo": "",
        "message": s.message,
        "goos": "linux",
        "goarch": std::env::consts::ARCH,
        "runtime": "metalgate demo-backend",
        "num_goroutine": "0",
        "num_cpu": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string(),
        "standIn": "podinfo, played by metalgate demo-backend",
    })
}

async fn podinfo(s: &Settings, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segs.as_slice()) {
        (Method::GET, [""]) if wants_html(&req) => {
            let body = format!(
                "<!doctype html><html><head><title>podinfo</title></head>\
                 <body style=\"background:{color};color:white;font-family:sans-serif\">\
                 <h1>podinfo v{v}</h1><p>{msg}</p><p>hostname: {host}</p>\
                 <p><small>metalgate's stand-in for podinfo</small></p></body></html>\n",
                color = html_escape(&s.color),
                v = PODINFO_VERSION,
                msg = html_escape(&s.message),
                host = html_escape(&s.hostname)
            );
            full(StatusCode::OK, "text/html; charset=utf-8", body)
        }
        (Method::GET, [""]) => json_reply(StatusCode::OK, info(s)),
        (Method::GET, ["healthz"]) | (Method::GET, ["readyz"]) => {
            json_reply(StatusCode::OK, json!({"status": "OK"}))
        }
        (Method::GET, ["version"]) => json_reply(
            StatusCode::OK,
            json!({"version": PODINFO_VERSION, "commit": "metalgate-stand-in"}),
        ),
        (Method::GET, ["headers"]) => {
            let mut map = serde_json::Map::new();
            for (k, v) in req.headers() {
                let entry = map
                    .entry(k.as_str().to_string())
                    .or_insert_with(|| json!([]));
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!(v.to_str().unwrap_or("")));
                }
            }
            map.insert("x-remote-addr".into(), json!([peer.to_string()]));
            json_reply(StatusCode::OK, serde_json::Value::Object(map))
        }
        (_, ["status", code]) => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(c) => json_reply(c, json!({"status": c.as_u16()})),
            None => json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not a status code: {code}")}),
            ),
        },
        (_, ["delay", secs]) => match secs.parse::<u64>() {
            Ok(n) if n <= MAX_DELAY_SECS => {
                tokio::time::sleep(Duration::from_secs(n)).await;
                json_reply(StatusCode::OK, json!({"delay": n}))
            }
            _ => json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("delay must be 0..={MAX_DELAY_SECS} seconds")}),
            ),
        },
        (Method::POST | Method::PUT, ["echo"]) => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_string();
            match Limited::new(req.into_body(), MAX_ECHO).collect().await {
                Ok(b) => full(StatusCode::ACCEPTED, &ct, b.to_bytes()),
                Err(_) => json_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({"error": "body too large"}),
                ),
            }
        }
        (Method::GET, ["ws", "echo"]) if hyper_tungstenite::is_upgrade_request(&req) => {
            match hyper_tungstenite::upgrade(&mut req, None) {
                Ok((resp, ws)) => {
                    tokio::spawn(async move {
                        if let Ok(mut ws) = ws.await {
                            while let Some(Ok(msg)) = ws.next().await {
                                if msg.is_close() {
                                    break;
                                }
                                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err()
                                {
                                    break;
                                }
                            }
                        }
                    });
                    let (parts, body) = resp.into_parts();
                    Response::from_parts(parts, body.map_err(|e: Infallible| match e {}).boxed())
                }
                Err(e) => json_reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
            }
        }
        _ => json_reply(
            StatusCode::NOT_FOUND,
            json!({"code": 404, "message": "not found (podinfo stand-in)"}),
        ),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
