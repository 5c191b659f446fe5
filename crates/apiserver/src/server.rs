//! The HTTPS listener and the handle that starts and stops the store.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::registry::{Registry, defs_from_crd};
use crate::request::{self, Body, State};
use crate::store::{DEFAULT_HISTORY, Store, Write};
use crate::tls::{self, Credentials};

/// How to run the store.
#[derive(Clone)]
pub struct Config {
    /// Where the database and credentials live.
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:6443` by default; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Extra names and addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// How many recent changes a watch can resume from (older versions get 410 Gone).
    pub history: usize,
    /// How often open watches that asked for bookmarks get one.
    pub bookmark_interval: std::time::Duration,
    /// Extra validation of writes, like validating admission webhooks.
    pub admission: Vec<Arc<dyn crate::Admission>>,
}

impl Config {
    /// Defaults for a data directory: `127.0.0.1:6443`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            extra_sans: Vec::new(),
            history: DEFAULT_HISTORY,
            bookmark_interval: std::time::Duration::from_secs(5),
            admission: Vec::new(),
        }
    }
}

/// A running store.
pub struct ApiServer {
    state: Arc<State>,
    addr: SocketAddr,
    creds: Credentials,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    gc: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Open the data directory, load every object, and start serving.
    pub async fn start(cfg: Config) -> anyhow::Result<ApiServer> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
        let mut sans = cfg.extra_sans.clone();
        sans.push(cfg.listen.ip().to_string());
        let creds = tls::load_or_create(&cfg.data_dir.join("tls"), &sans)?;
        let db_path = cfg.data_dir.join("store.redb");
        let store = tokio::task::block_in_place(|| Store::open(&db_path, cfg.history))
            .with_context(|| format!("opening {}", db_path.display()))?;
        let registry = Registry::new();
        let (crds, _) = store
            .list("apiextensions.k8s.io/customresourcedefinitions/")
            .await;
        for (_, crd) in crds {
            if let Some(name) = crd["metadata"]["name"].as_str() {
                registry.set_crd(name, defs_from_crd(&crd));
            }
        }
        let state = Arc::new(State {
            store,
            registry,
            token: creds.token.clone(),
            sa_key: crate::auth::tokens::key(&creds.sa_secret),
            bookmark_interval: cfg.bookmark_interval,
            admission: cfg.admission.clone(),
        });
        seed_namespaces(&state).await?;

        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&creds)?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, acceptor, state.clone(), stop.clone()));
        let gc = tokio::spawn(crate::gc::run(state.clone(), stop.clone()));
        tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "API store listening");
        Ok(ApiServer {
            state,
            addr,
            creds,
            stop,
            task,
            gc,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bearer token clients use.
    pub fn token(&self) -> &str {
        &self.creds.token
    }

    /// PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.creds.ca_pem
    }

    /// A kubeconfig pointing at this server (or at `server_url`, e.g. another address of it).
    pub fn kubeconfig(&self, server_url: Option<&str>) -> String {
        tls::kubeconfig(&self.creds, server_url.unwrap_or(&self.url()))
    }

    /// End every open watch stream, as a restarting API server would.
    pub fn drop_watches(&self) {
        self.state.store.drop_watches();
    }

    /// Forget the change history: resuming a watch from any version up to now gets 410 Gone.
    pub async fn compact(&self) -> Result<(), crate::ApiError> {
        self.state.store.compact().await
    }

    /// The current resourceVersion.
    pub async fn resource_version(&self) -> u64 {
        self.state.store.resource_version().await
    }

    /// Stop serving and close every connection.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
        // The collector holds the database too: it must be gone before a restart opens it.
        let _ = self.gc.await;
    }
}

async fn seed_namespaces(state: &State) -> anyhow::Result<()> {
    let now = request::now();
    let mut txn = state.store.txn().await;
    let mut writes = Vec::new();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = format!("core/namespaces//{ns}");
        if txn.get(&key).is_none() {
            writes.push(Write::Put(
                key,
                json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": ns,
                        "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": now,
                        "labels": {"kubernetes.io/metadata.name": ns},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }),
            ));
        }
    }
    txn.commit(writes)
        .map_err(|e| anyhow::anyhow!("seeding namespaces: {e}"))?;
    Ok(())
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        conns.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<Response<Body>, Infallible>(request::handle(state, req).await) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
