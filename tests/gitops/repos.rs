//! Repositories as users have them: private ones read with a repository Secret, and an
//! ArgoCD app-of-apps repository synced unchanged.

use std::time::Duration;

use crate::common::workshop::{git, podinfo_app, wait_color, workshop_repo};
use crate::common::{self, Metalgate, free_port, wait_for};

#[test]
fn a_private_repository_is_read_with_the_credentials_of_its_repository_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (_work, _bare) = workshop_repo(tmp.path());
    let (server, ca_pem) = common::git_http::GitHttp::start(tmp.path(), "ada", "t0ken");
    let ca = common::write(tmp.path(), "git-ca.pem", &ca_pem);
    let url = format!("https://{}/ops-demo.git", server.addr);
    // The module trusts the test's CA as it would a company CA: through SSL_CERT_FILE.
    let mg = Metalgate::start_with_env(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "10m"],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    mg.kubectl_stdin(&["apply", "-f", "-"], &podinfo_app(&url, false));
    // Without credentials: the app says why, and nothing is applied.
    let mut conditions = String::new();
    let refused = common::eventually(Duration::from_secs(15), || {
        conditions = mg.app_jsonpath("podinfo", "{.status.conditions[*].message}");
        conditions.contains(&url)
    });
    assert!(refused, "no condition naming the repository: {conditions}");
    assert!(
        conditions.contains("no repository Secret in metalgate-system matches"),
        "{conditions}"
    );
    let cm = mg.kubectl(&["get", "configmap", "podinfo-ui", "-n", "demo"]);
    assert!(!cm.status.success(), "applied without credentials?");

    // A wrong password is still refused; the right one, in an ArgoCD-style repository Secret,
    // is used on the next pass.
    let secret = |password: &str| {
        format!(
            "apiVersion: v1
kind: Secret
metadata:
  name: ops-demo-repo
  namespace: metalgate-system
  labels: {{argocd.argoproj.io/secret-type: repository}}
stringData: {{url: '{url}', username: ada, password: '{password}'}}
"
        )
    };
    mg.kubectl_stdin(&["apply", "-f", "-"], &secret("guess"));
    mg.kubectl_ok(&[
        "annotate",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "metalgate.io/refresh=1",
        "--overwrite",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !mg.kubectl(&["get", "configmap", "podinfo-ui", "-n", "demo"])
            .status
            .success()
    );
    mg.kubectl_stdin(&["apply", "-f", "-"], &secret("t0ken"));
    mg.kubectl_ok(&[
        "annotate",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "metalgate.io/refresh=2",
        "--overwrite",
    ]);
    let applied = common::eventually(Duration::from_secs(15), || {
        mg.kubectl(&[
            "get",
            "configmap",
            "podinfo-ui",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.PODINFO_UI_COLOR}",
        ])
        .stdout
            == b"#34577c"
    });
    let status = mg.app_jsonpath("podinfo", "{.status.conditions}");
    assert!(
        applied,
        "not applied with the repository Secret's credentials: {status}"
    );
}

/// An ArgoCD app-of-apps repository, unchanged (`argoproj.io/v1alpha1`, namespace `argocd`,
/// `project: default`), synced with `--gitops-argo-applications`: metalgate serves the CRD,
/// the root creates its child, the child its objects; an Argo field metalgate does not
/// implement is named in a condition. Where ArgoCD's own CRD is installed, its Applications
/// are left alone.
#[test]
fn an_argocd_repository_syncs_unchanged_with_the_migration_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let url = format!("file://{}", bare.display());
    let argo_app = |name: &str, path: &str, ns: &str, extra: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {url}
    targetRevision: HEAD
    path: {path}
  destination:
    server: https://kubernetes.default.svc
    namespace: {ns}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
{extra}"
        )
    };
    let root = argo_app("root", "argo-apps", "argocd", "");
    std::fs::create_dir_all(work.join("argo-apps")).unwrap();
    std::fs::write(work.join("argo-apps/root.yaml"), &root).unwrap();
    std::fs::write(
        work.join("argo-apps/podinfo.yaml"),
        argo_app(
            "podinfo",
            "apps/podinfo",
            "demo",
            "  ignoreDifferences:\n  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
        ),
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "argo app of apps"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);

    let mg = Metalgate::start_with(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "10m", "--gitops-argo-applications"],
    );
    mg.kubectl_ok(&["create", "namespace", "argocd"]);
    // The CRD is metalgate's, labelled so.
    wait_for(Duration::from_secs(20), || {
        let out = mg.kubectl(&[
            "get",
            "crd",
            "applications.argoproj.io",
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
        ]);
        (String::from_utf8_lossy(&out.stdout) == "metalgate")
            .then_some(())
            .ok_or("the argoproj.io CRD is not served".to_string())
    });
    // The workshop's one command, with the Argo root as written for ArgoCD.
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = |name: &str| {
        mg.kubectl_ok(&[
            "get",
            "applications.argoproj.io",
            name,
            "-n",
            "argocd",
            "--ignore-not-found",
            "-o",
            "jsonpath={.status.sync.status}/{.status.health.status}/{.status.sync.revision}",
        ])
    };
    let want = format!("Synced/Healthy/{sha}");
    wait_for(Duration::from_secs(30), || {
        let (root, podinfo) = (state("root"), state("podinfo"));
        (root == want && podinfo == want)
            .then_some(())
            .ok_or(format!("root: {root:?}, podinfo: {podinfo:?}"))
    });
    wait_color(&mg, "#34577c", Duration::from_secs(5));
    let conditions = mg.kubectl_ok(&[
        "get",
        "applications.argoproj.io",
        "podinfo",
        "-n",
        "argocd",
        "-o",
        "jsonpath={range .status.conditions[*]}{.type}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        conditions.contains("UnsupportedFieldWarning") && conditions.contains("ignoreDifferences"),
        "{conditions}"
    );
    // `metalgate gitops` shows and drives them as it does metalgate's (as `argocd app list`).
    let (ok, list) = mg.cli(&["gitops", "list", "-n", "argocd"]);
    assert!(ok, "{list}");
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["podinfo", "Synced", "Healthy", &sha[..7]],
            ["root", "Synced", "Healthy", &sha[..7]]
        ],
        "{list}"
    );
    let (ok, history) = mg.cli(&["gitops", "history", "podinfo", "-n", "argocd"]);
    assert!(ok && history.contains(&sha[..7]), "{history}");
    let (ok, synced) = mg.cli(&["gitops", "sync", "podinfo", "-n", "argocd"]);
    assert!(ok && synced.contains("Synced"), "{synced}");
    // `kubectl get` shows ArgoCD's columns for them.
    let table = mg.kubectl_ok(&["get", "applications.argoproj.io", "-n", "argocd"]);
    assert!(
        table.contains("SYNC STATUS") && table.contains("HEALTH"),
        "{table}"
    );
    drop(mg);

    // Where ArgoCD's own CRD is installed (no metalgate label), its Applications are ArgoCD's.
    let tmp2 = tempfile::tempdir().unwrap();
    let store = Metalgate::start(&tmp2.path().join("data"), free_port(), &[]);
    let crd = store.kubectl_ok(&["get", "crd", "applications.metalgate.io", "-o", "json"]);
    let mut crd: serde_json::Value = serde_json::from_str(&crd).unwrap();
    let meta = crd["metadata"].as_object_mut().unwrap();
    meta.retain(|k, _| k == "name");
    meta.insert("name".into(), "applications.argoproj.io".into());
    crd["spec"]["group"] = "argoproj.io".into();
    crd["spec"]["versions"][0]["name"] = "v1alpha1".into();
    crd.as_object_mut().unwrap().remove("status");
    store.kubectl_ok(&["create", "namespace", "argocd"]);
    let out = store.kubectl_stdin(&["create", "-f", "-"], &crd.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = Metalgate::start_with(
        &tmp2.path().join("gitops"),
        free_port(),
        "gitops",
        &[
            "--kubeconfig",
            store.kubeconfig().to_str().unwrap(),
            "--gitops-poll",
            "10m",
            "--gitops-argo-applications",
        ],
    );
    let out = store.kubectl_stdin(&["apply", "-f", "-"], &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warned = theirs.stderr_lines_with("", 200);
    assert!(
        warned.iter().any(|l| l.contains("ArgoCD's own CRD")),
        "{warned:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let status = store.kubectl_ok(&[
        "get",
        "applications.argoproj.io",
        "root",
        "-n",
        "argocd",
        "-o",
        "jsonpath={.status}",
    ]);
    assert_eq!(status, "", "ArgoCD's Application was touched");
    let label = store.kubectl_ok(&[
        "get",
        "crd",
        "applications.argoproj.io",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_eq!(label, "", "ArgoCD's CRD was changed");
}
