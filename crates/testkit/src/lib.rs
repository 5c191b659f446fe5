//! # metalgate-testkit — what the tests of every crate start from
//!
//! One copy of the set-up the component crates' tests share (a dev-dependency only):
//!
//! - [`Store`]: the embedded API store on a loopback port with a client, and the namespaces
//!   and CRDs a test asks for — in-process, dropped with the test;
//! - [`free_port`]: a loopback port for a child process to listen on;
//! - [`git`]: git with a fixed author and neither the user's nor the system's configuration.
//!
//! The root package's `tests/common` (which drives the `metalgate` binary, network namespaces
//! and the lab) uses the last two as well.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

use kube::api::{Api, Patch, PatchParams};
use metalgate_apiserver::{ApiServer, Config};

/// The embedded API store on `127.0.0.1`, a client of it, and its data directory. Fields drop
/// in order: the server stops before its directory is removed.
pub struct Store {
    /// A client with the admin's token.
    pub client: kube::Client,
    /// The running store.
    pub server: ApiServer,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

impl Store {
    /// A store with the default configuration.
    pub async fn start() -> Store {
        Self::start_with(|_| {}).await
    }

    /// A store whose configuration `tweak` adjusts (the listen address is a free loopback
    /// port unless `tweak` says otherwise).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(dir.path());
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut cfg);
        let server = ApiServer::start(cfg).await.unwrap();
        let client = metalgate_k8s::client::from_kubeconfig_str(&server.kubeconfig(None))
            .await
            .unwrap();
        Store {
            client,
            server,
            dir,
        }
    }

    /// The admin's kubeconfig, as text.
    pub fn kubeconfig(&self) -> String {
        self.server.kubeconfig(None)
    }

    /// The admin's kubeconfig, written into the data directory (for a child process).
    pub fn kubeconfig_file(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("test-kubeconfig");
        std::fs::write(&path, self.kubeconfig()).unwrap();
        path
    }

    /// Create (server-side apply) these namespaces.
    pub async fn namespaces(&self, names: &[&str]) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        for ns in names {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            api.patch(ns, &PatchParams::apply("test"), &Patch::Apply(body))
                .await
                .unwrap();
        }
    }

    /// Server-side apply every document of `yaml`; any bad document or refused apply fails
    /// the test, naming it.
    pub async fn apply(&self, yaml: &str) {
        let (docs, errors) = metalgate_k8s::manifests::parse(Path::new("test.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        let report = metalgate_k8s::manifests::apply(&self.client, &docs, "test").await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }

    /// metalgate's CRDs and its namespace, as `kubectl apply -k manifests/` installs them.
    pub async fn with_metalgate(self) -> Store {
        self.apply(&metalgate_k8s::crd::yaml().unwrap()).await;
        self.namespaces(&[metalgate_k8s::NAMESPACE]).await;
        self
    }
}

/// A free loopback port (bound, then released for a child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run git in `dir` as "Ada Ops", without the user's or the system's configuration; its
/// trimmed standard output, or the test fails with git's error.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada Ops")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Ops")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
