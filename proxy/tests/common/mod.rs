//! The proxy's end-to-end harness: the embedded API store, the proxy in-process on loopback
//! ports, real backends (HTTP/1, h2c, websocket) that say who they are and what they received.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use metalgate_k8s::{ComponentContext, NodeIdentity};
use metalgate_proxy::{Config, Listen, ProxyState, Server};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A backend: answers JSON describing the request (its body by length and by [`body_sum`]),
/// echoes websockets on `/ws`, sleeps on `/sleep/{ms}`, reads bodies slowly on `/slow-read/…`;
/// counts what reached it.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer(
    id: String,
    hits: Arc<AtomicUsize>,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/ws" && hyper_tungstenite::is_upgrade_request(&req) {
        let (resp, ws) = hyper_tungstenite::upgrade(&mut req, None).expect("upgrade");
        tokio::spawn(async move {
            if let Ok(mut ws) = ws.await {
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Full::new(Bytes::new())));
    }
    if let Some(ms) = req.uri().path().strip_prefix("/sleep/") {
        let ms: u64 = ms.parse().unwrap_or(0).min(10_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let uri = req.uri().to_string();
    // `/slow-read/…` takes the body a frame at a time, 2 ms apart: the proxy's writes upstream
    // wait, and what it reads from the client queues up behind them.
    let slow = req.uri().path().starts_with("/slow-read/");
    let mut body = req.into_body();
    let mut received = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
            if slow {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    let v = json!({
        "backend": id, "method": method, "uri": uri, "version": version,
        "headers": headers, "body_len": received.len(), "body_sum": body_sum(&received),
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap())
}

impl Backend {
    pub async fn start(id: &str) -> Backend {
        Self::start_at(id, "127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address (another loopback IP with the same port shares a slice port).
    pub async fn start_at(id: &str, at: SocketAddr) -> Backend {
        let listener = tokio::net::TcpListener::bind(at).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (h, s, id) = (hits.clone(), stop.clone(), id.to_string());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (h, id, s) = (h.clone(), id.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r| answer(id.clone(), h.clone(), r));
                    let b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = b.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                    tokio::select! { _ = conn => {}, _ = s.cancelled() => {} }
                });
            }
        });
        Backend { addr, hits, stop }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The backend's `body_sum`: each byte times its position from 1, wrapping — a byte lost,
/// added or moved changes it.
pub fn body_sum(body: &[u8]) -> u64 {
    body.iter().enumerate().fold(0u64, |sum, (i, &b)| {
        sum.wrapping_add((i as u64 + 1) * u64::from(b))
    })
}

/// The store, a client, and the proxy on loopback.
pub struct Env {
    pub client: kube::Client,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub shared: Arc<ProxyState>,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _store: metalgate_testkit::Store,
}

pub const NS: &str = "apps";

impl Env {
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
        let store = metalgate_testkit::Store::start().await;
        store.namespaces(&[NS, "metalgate-system"]).await;
        let client = store.client.clone();
        let mut pc = Config {
            listen: Listen {
                http: vec!["127.0.0.1:0".parse().unwrap()],
                https: vec!["127.0.0.1:0".parse().unwrap()],
                header_timeout: Duration::from_secs(1),
            },
            access_log: false,
            drain: Duration::from_secs(5),
            ..Default::default()
        };
        tweak(&mut pc);
        let shared = Arc::new(ProxyState::new(pc.limits.clone(), pc.access_log));
        let srv = Server::start(shared.clone(), &pc.listen).unwrap();
        let (http, https) = (srv.http[0], srv.https[0]);
        let shutdown = CancellationToken::new();
        let ctx = ComponentContext {
            client: client.clone(),
            node: NodeIdentity {
                name: "test".into(),
                ip: None,
            },
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(metalgate_proxy::start_with(ctx, pc, shared.clone(), srv));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shared.ready.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "proxy not ready in 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Env {
            client,
            http,
            https,
            shared,
            shutdown,
            task: Some(task),
            _store: store,
        }
    }

    /// Server-side apply a namespaced object given as JSON (apiVersion/kind/metadata.name).
    pub async fn apply<K>(&self, obj: Value)
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or(NS)
            .to_string();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        api.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    pub async fn delete<K>(&self, name: &str)
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        api.delete(name, &Default::default()).await.unwrap();
    }

    /// A Service `name` (port 80 named http) and its EndpointSlice listing `addrs`.
    pub async fn service(&self, name: &str, addrs: &[SocketAddr]) {
        self.apply::<k8s_openapi::api::core::v1::Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80}]}
        }))
        .await;
        self.endpoints(name, addrs).await;
    }

    /// Replace the Service's endpoints (one slice; all on the first address's port).
    pub async fn endpoints(&self, name: &str, addrs: &[SocketAddr]) {
        let port = addrs.first().map_or(1, |a| a.port());
        let eps: Vec<Value> = addrs
            .iter()
            .map(|a| {
                assert_eq!(a.port(), port, "one port per slice");
                json!({"addresses": [a.ip().to_string()], "conditions": {"ready": true}})
            })
            .collect();
        self.apply::<k8s_openapi::api::discovery::v1::EndpointSlice>(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": NS,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": eps,
        }))
        .await;
    }

    /// An Ingress of our class: `rules` is the spec.rules JSON.
    pub async fn ingress(&self, name: &str, annotations: Value, spec: Value) {
        let mut spec = spec;
        spec["ingressClassName"] = json!("metalgate");
        self.apply::<k8s_openapi::api::networking::v1::Ingress>(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations},
            "spec": spec,
        }))
        .await;
    }

    /// A `kubernetes.io/tls` Secret.
    pub async fn tls_secret(&self, name: &str, cert_pem: &str, key_pem: &str) {
        self.apply::<k8s_openapi::api::core::v1::Secret>(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": NS},
            "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
        }))
        .await;
    }

    /// The table generation now; `wait_generation` waits for a later one.
    pub fn generation(&self) -> u64 {
        self.shared.table.load().generation
    }

    /// A plain-HTTP client that sends every request to the proxy, whatever the host.
    pub fn client_for(&self, hosts: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            // A fresh connection (and handshake) per request: certificates are what we look at.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10));
        for h in hosts {
            b = b.resolve(h, self.http).resolve(h, self.https);
        }
        b.build().unwrap()
    }

    /// `http://{host}{path}` through the proxy: status and body.
    pub async fn get(&self, host: &str, path: &str) -> (u16, String) {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let r = c
            .get(format!("http://{}{path}", self.http))
            .header("host", host)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Poll `get` until `ok` holds (5 s at most).
    pub async fn eventually(
        &self,
        host: &str,
        path: &str,
        ok: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (c, b) = self.get(host, path).await;
            if ok(c, &b) {
                return (c, b);
            }
            assert!(
                Instant::now() < deadline,
                "http://{host}{path}: still {c} {b} after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait (5 s at most) for an Event on Ingress `ingress` with `reason` whose message contains
    /// `text`, and return it.
    pub async fn event_eventually(
        &self,
        ingress: &str,
        reason: &str,
        text: &str,
    ) -> k8s_openapi::api::core::v1::Event {
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let list = events.list(&Default::default()).await.unwrap();
            let found = list.items.iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.involved_object.name.as_deref() == Some(ingress)
                    && e.message.as_deref().is_some_and(|m| m.contains(text))
            });
            if let Some(e) = found {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {reason} event on {ingress} naming {text}: {:?}",
                list.items
                    .iter()
                    .map(|e| (&e.reason, &e.message))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The backend id of a JSON answer, or "" when the body is not one.
pub fn backend_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["backend"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A self-signed certificate for `host`: (cert PEM, key PEM, cert DER).
pub fn cert(host: &str) -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().to_vec(),
    )
}
