//! What the GitOps tests share: Git repositories made with the `git` CLI, and the embedded API
//! store with metalgate's CRDs.
#![allow(dead_code)]

pub mod apps;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A work tree with a bare "remote" beside it, committed to with fixed author data.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
}

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

impl Repo {
    pub fn new(root: &Path) -> Repo {
        let work = root.join("work");
        let bare = root.join("remote.git");
        std::fs::create_dir_all(&work).unwrap();
        git(
            root,
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo { work, bare }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Write files, commit them with `message`, push; the new SHA.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "HEAD"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// The embedded API store on a loopback port, with metalgate's CRDs and a namespace for
/// Applications; dropped with the returned guard.
pub async fn store() -> (
    tempfile::TempDir,
    metalgate_apiserver::ApiServer,
    kube::Client,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = metalgate_apiserver::Config::new(dir.path());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let server = metalgate_apiserver::ApiServer::start(cfg).await.unwrap();
    let client = metalgate_k8s::client::from_kubeconfig_str(&server.kubeconfig(None))
        .await
        .unwrap();
    let mut text = metalgate_k8s::crd::yaml().unwrap();
    text.push_str("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: metalgate-system}\n");
    let (docs, errors) = metalgate_k8s::manifests::parse(Path::new("crds.yaml"), &text);
    assert!(errors.is_empty(), "{errors:?}");
    let report = metalgate_k8s::manifests::apply(&client, &docs, "test").await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    (dir, server, client)
}
