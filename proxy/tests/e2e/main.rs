//! The proxy end to end: real HTTP clients through the running proxy (loopback) to real
//! backends, routes coming from Ingresses, Services, EndpointSlices and Secrets in the
//! embedded API store.
//!
//! Split by what is tried: routing (`routing`), TLS, websockets and h2c (`protocols`), requests
//! that must not pass as sent (`hardening`), random raw request heads (`random_heads`), failing
//! endpoints (`endpoints`), connections to backends kept and closed (`upstream_pool`), response
//! bodies around the body buffer's size (`bodies`), header names' case both ways
//! (`header_case`). The
//! helpers here make one route or one websocket, or send raw bytes.

#[path = "../common/mod.rs"]
mod common;

mod bodies;
mod endpoints;
mod hardening;
mod header_case;
mod protocols;
mod random_heads;
mod routing;
mod upstream_pool;

use std::io::{Read, Write};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use common::{Backend, Env};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

/// Reads from `tcp` into `pending` until a request head ends; returns the head (without its
/// blank line) and leaves whatever followed in `pending`. `None` when the peer closes first.
pub(crate) async fn read_request_head(
    tcp: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = pending[..end].to_vec();
            pending.drain(..end + 4);
            return Some(head);
        }
        match tcp.read(&mut buf).await {
            Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

pub(crate) fn rule(host: &str, paths: &[(&str, &str, &str)]) -> Value {
    json!({
        "host": host,
        "http": {"paths": paths.iter().map(|(t, p, svc)| json!({
            "path": p, "pathType": t,
            "backend": {"service": {"name": svc, "port": {"number": 80}}}
        })).collect::<Vec<_>>()}
    })
}

/// An Ingress spec sending every path of `host` to Service `svc`.
pub(crate) fn all_to_svc(host: &str) -> Value {
    json!({"rules": [rule(host, &[("Prefix", "/", "svc")])]})
}

/// Service `svc` in front of `be`, and Ingress `name` sending every path of `host` to it;
/// returns once the proxy routes `host`.
pub(crate) async fn one_route(env: &Env, be: &Backend, name: &str, host: &str) {
    route_to(env, &[be.addr], name, json!({}), host).await;
}

/// Service `svc` in front of `addrs`, and Ingress `name` with `annotations` sending every path
/// of `host` to it; returns once the proxy routes `host` (answers 200).
pub(crate) async fn route_to(
    env: &Env,
    addrs: &[std::net::SocketAddr],
    name: &str,
    annotations: Value,
    host: &str,
) {
    env.service("svc", addrs).await;
    env.ingress(name, annotations, all_to_svc(host)).await;
    env.eventually(host, "/", |c, _| c == 200).await;
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A websocket to `ws://{host}/ws` through the proxy's HTTP listener, its 101 checked.
pub(crate) async fn websocket(env: &Env, host: &str) -> Ws {
    let tcp = tokio::net::TcpStream::connect(env.http).await.unwrap();
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{host}/ws"),
    )
    .unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// Sends `msg` as text and returns what comes back (5 s at most); `None` when the stream ended.
pub(crate) async fn echo(
    ws: &mut Ws,
    msg: &str,
) -> Option<Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
{
    ws.send(tokio_tungstenite::tungstenite::Message::text(msg))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
}

/// Send raw bytes, read the answer until the proxy closes or 3 s pass.
pub(crate) fn raw(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
