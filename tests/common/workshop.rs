//! The workshop's Git side for the GitOps and UI tests: a bare repository and a clone made with
//! the `git` CLI, podinfo's colour pushed as a ConfigMap, and the podinfo Application.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Metalgate;

pub use metalgate_testkit::git;

pub fn push_color(work: &Path, color: &str) -> String {
    std::fs::create_dir_all(work.join("apps/podinfo")).unwrap();
    std::fs::write(
        work.join("apps/podinfo/ui.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-ui\ndata:\n  PODINFO_UI_COLOR: '{color}'\n"),
    )
    .unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", &format!("podinfo: {color}")]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}

/// A bare repository `ops-demo.git` and a clone `work` that pushed podinfo's first colour.
pub fn workshop_repo(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (work, bare) = (tmp.join("work"), tmp.join("ops-demo.git"));
    std::fs::create_dir_all(&work).unwrap();
    git(
        tmp,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    push_color(&work, "#34577c");
    (work, bare)
}

/// The podinfo Application on `repo`, with or without self-heal.
pub fn podinfo_app(repo: &str, self_heal: bool) -> String {
    format!(
        "apiVersion: metalgate.io/v1beta1
kind: Application
metadata: {{name: podinfo, namespace: metalgate-system}}
spec:
  source: {{repoURL: '{repo}', targetRevision: main, path: apps/podinfo}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: demo}}
  syncPolicy:
    automated: {{prune: true, selfHeal: {self_heal}}}
    syncOptions: [CreateNamespace=true]
"
    )
}

/// Wait (at most `limit`) until the ConfigMap has `color`; how long it took.
pub fn wait_color(mg: &Metalgate, color: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let out = mg.kubectl(&[
            "get",
            "configmap",
            "podinfo-ui",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.PODINFO_UI_COLOR}",
        ]);
        if String::from_utf8_lossy(&out.stdout) == color {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "podinfo-ui never turned {color} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `metalgate run` with the GitOps module only, a 10-minute poll (so only triggers apply) and
/// its admin listener (webhook, UI) on a free loopback port, which is returned.
pub fn start_gitops(tmp: &Path) -> (Metalgate, u16) {
    let admin = super::free_port();
    let mg = Metalgate::start_with(
        &tmp.join("data"),
        super::free_port(),
        "gitops",
        &[
            "--gitops-poll",
            "10m",
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ],
    );
    (mg, admin)
}
