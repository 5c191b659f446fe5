//! The GitOps module as a user runs it: `metalgate run` with the gitops component, a Git
//! repository, `kubectl apply` of an Application — then a push is applied (on the refresh
//! annotation at once, and on the poll), and `kubectl get applications` tells the state.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::workshop::{git, podinfo_app, push_color, start_gitops, wait_color, workshop_repo};
use common::{Metalgate, free_port, wait_for};

#[test]
fn a_push_is_applied_on_refresh_and_on_the_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());

    let mg = Metalgate::start_with(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "5s"],
    );
    let app = format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: metalgate-system}}
---
apiVersion: metalgate.io/v1beta1
kind: Application
metadata: {{name: podinfo, namespace: metalgate-system}}
spec:
  source: {{repoURL: 'file://{}', targetRevision: main, path: apps/podinfo}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: demo}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
",
        bare.display()
    );
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_color(&mg, "#34577c", Duration::from_secs(20));

    // A push and the refresh annotation: applied without waiting for the poll.
    let sha = push_color(&work, "#ff0000");
    mg.kubectl_ok(&[
        "annotate",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "metalgate.io/refresh=now",
    ]);
    let took = wait_color(&mg, "#ff0000", Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(3),
        "refresh took {took:?}, longer than the poll"
    );

    // kubectl shows it synced at that commit.
    wait_for(Duration::from_secs(10), || {
        let table = mg.kubectl_ok(&["get", "applications", "-n", "metalgate-system"]);
        let synced = table.contains("Synced") && table.contains("Healthy") && table.contains(&sha);
        synced.then_some(()).ok_or(table)
    });
    let annotated = mg.app_jsonpath("podinfo", "{.metadata.annotations}");
    assert!(
        !annotated.contains("metalgate.io/refresh"),
        "the annotation is cleared: {annotated}"
    );

    // A push alone is found by the poll.
    push_color(&work, "#00ff00");
    wait_color(&mg, "#00ff00", Duration::from_secs(20));
}

#[test]
fn a_hand_edit_is_reverted_within_seconds_not_at_the_next_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let (_work, bare) = workshop_repo(tmp.path());
    // A poll far longer than the test: only the drift watch can bring the colour back.
    let mg = Metalgate::start_with(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "10m"],
    );
    let app = podinfo_app(&format!("file://{}", bare.display()), true);
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_color(&mg, "#34577c", Duration::from_secs(20));
    // Let the first pass's own writes settle before the edit.
    std::thread::sleep(Duration::from_secs(2));

    mg.kubectl_ok(&[
        "patch",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r##"{"data":{"PODINFO_UI_COLOR":"#ff00ff"}}"##,
    ]);
    let took = wait_color(&mg, "#34577c", Duration::from_secs(10));
    assert!(took < Duration::from_secs(3), "reverted after {took:?}");
    // And reported: a history entry started by self-heal naming the field and who changed it.
    wait_for(Duration::from_secs(10), || {
        let history = mg.app_jsonpath(
            "podinfo",
            "{.status.history[-1].initiatedBy} {.status.history[-1].reverted}",
        );
        let reported = history.contains("self-heal") && history.contains("data.PODINFO_UI_COLOR");
        reported.then_some(()).ok_or(history)
    });
}

/// POST a GitHub push for `repo` to the admin endpoint; the status code and body.
fn github_push(admin: u16, repo: &str, secret: Option<&str>) -> (String, String) {
    let body = format!(
        r#"{{"ref": "refs/heads/main", "repository": {{"clone_url": "{repo}", "html_url": "{repo}"}}}}"#
    );
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"])
        .args([
            "-H",
            "X-GitHub-Event: push",
            "-H",
            "Content-Type: application/json",
        ]);
    if let Some(s) = secret {
        let sig = metalgate_gitops::webhook::github_signature(s, body.as_bytes());
        cmd.args(["-H", &format!("X-Hub-Signature-256: {sig}")]);
    }
    let out = cmd
        .args(["--data-binary", &body])
        .arg(format!("http://127.0.0.1:{admin}/api/webhook"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

#[test]
fn a_webhook_push_is_applied_at_once_and_a_bad_signature_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let (mg, admin) = start_gitops(tmp.path());
    let repo = format!("file://{}", bare.display());
    let app = podinfo_app(&repo, false);
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_color(&mg, "#34577c", Duration::from_secs(20));

    // No secret set: the push is taken, and applied without waiting for the 10-minute poll.
    push_color(&work, "#00ff00");
    let (code, body) = github_push(admin, &format!("{repo}/"), None);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("podinfo"), "{body}");
    let took = wait_color(&mg, "#00ff00", Duration::from_secs(10));
    assert!(took < Duration::from_secs(3), "applied after {took:?}");
    let (code, body) = github_push(admin, "https://github.com/someone/else.git", None);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", r#"{"refreshed":[]}"#)
    );

    // With a secret: unsigned and wrongly signed pushes are refused; nothing moves.
    mg.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "metalgate-gitops-webhook",
        "-n",
        "metalgate-system",
        "--from-literal=github=s3cret",
    ]);
    push_color(&work, "#0000ff");
    assert_eq!(github_push(admin, &repo, None).0, "401");
    assert_eq!(github_push(admin, &repo, Some("guess")).0, "401");
    std::thread::sleep(Duration::from_secs(2));
    let still = mg.kubectl_ok(&[
        "get",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.PODINFO_UI_COLOR}",
    ]);
    assert_eq!(still, "#00ff00", "a refused push changed nothing");
    let (code, body) = github_push(admin, &repo, Some("s3cret"));
    assert_eq!(code, "200", "{body}");
    wait_color(&mg, "#0000ff", Duration::from_secs(5));
}

#[test]
fn a_failed_sync_is_retried_with_back_off_as_syncpolicy_retry_says() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    // A revision that cannot apply yet: its ConfigMap's namespace does not exist.
    std::fs::write(
        work.join("apps/podinfo/ui.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-ui\n  namespace: later\ndata:\n  PODINFO_UI_COLOR: '#123456'\n",
    )
    .unwrap();
    git(
        &work,
        &["commit", "-qam", "podinfo: into a namespace made later"],
    );
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let (mg, _) = start_gitops(tmp.path());
    let app = podinfo_app(&format!("file://{}", bare.display()), false).replace(
        "    syncOptions: [CreateNamespace=true]\n",
        "    syncOptions: [CreateNamespace=true]\n    retry: {limit: 5, backoff: {duration: 1s, factor: 2, maxDuration: 2s}}\n",
    );
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let condition = || mg.app_jsonpath("podinfo", "{.status.conditions[*].type}");
    wait_for(Duration::from_secs(20), || {
        let c = condition();
        c.contains("ComparisonError")
            .then_some(())
            .ok_or(format!("never failed: {c}"))
    });
    // The namespace appears; a retry (1 s, then 2 s) applies the revision — long before the poll.
    mg.kubectl_ok(&["create", "namespace", "later"]);
    wait_for(Duration::from_secs(8), || {
        let color = mg.kubectl(&[
            "get",
            "configmap",
            "podinfo-ui",
            "-n",
            "later",
            "-o",
            "jsonpath={.data.PODINFO_UI_COLOR}",
        ]);
        (String::from_utf8_lossy(&color.stdout) == "#123456")
            .then_some(())
            .ok_or_else(|| format!("no retry applied it; {}", condition()))
    });
}

fn metalgate(mg: &Metalgate, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(args)
        .args(["--kubeconfig", mg.kubeconfig().to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_gitops_cli_lists_shows_history_and_syncs_on_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let mg = Metalgate::start_with(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "10m"],
    );
    // No automated sync: only `metalgate gitops sync` applies.
    let app = podinfo_app(&format!("file://{}", bare.display()), false)
        .replace("    automated: {prune: true, selfHeal: false}\n", "");
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, said) = metalgate(&mg, &["gitops", "sync", "podinfo"]);
    assert!(ok, "{said}");
    assert!(said.contains("Sync:       Synced"), "{said}");
    assert!(
        said.contains("ConfigMap") && said.contains("podinfo-ui"),
        "{said}"
    );
    wait_color(&mg, "#34577c", Duration::from_secs(5));

    let sha = push_color(&work, "#ff8800");
    let (ok, said) = metalgate(&mg, &["gitops", "refresh", "podinfo"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("OutOfSync"),
        "a new commit without auto-sync: {said}"
    );
    let (ok, said) = metalgate(&mg, &["gitops", "sync", "podinfo"]);
    assert!(ok, "{said}");
    wait_color(&mg, "#ff8800", Duration::from_secs(5));

    let (ok, list) = metalgate(&mg, &["gitops", "list"]);
    assert!(ok, "{list}");
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["podinfo", "Synced", "Healthy", &sha[..7]],
        "{list}"
    );
    let (ok, history) = metalgate(&mg, &["gitops", "history", "podinfo"]);
    assert!(ok, "{history}");
    let newest = history.lines().nth(1).unwrap();
    assert!(
        newest.contains(&sha[..7])
            && newest.contains("Ada Ops")
            && newest.contains("podinfo: #ff8800"),
        "{history}"
    );

    // diff: nothing differs after the sync; a hand edit is named by field, values and manager,
    // and the exit code says so (as `argocd app diff`).
    let (ok, diff) = metalgate(&mg, &["gitops", "diff", "podinfo"]);
    assert!(ok, "{diff}");
    assert!(
        diff.contains("0 changed, 0 missing, 0 not in Git"),
        "{diff}"
    );
    mg.kubectl_ok(&[
        "patch",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-p",
        r##"{"data":{"PODINFO_UI_COLOR":"#abcdef"}}"##,
    ]);
    let (ok, diff) = metalgate(&mg, &["gitops", "diff", "podinfo"]);
    assert!(!ok, "diff exits 1 when something differs: {diff}");
    assert!(
        diff.contains(r##"data.PODINFO_UI_COLOR: Git "#ff8800", cluster "#abcdef"  (changed by kubectl-patch)"##),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("revision {} podinfo: #ff8800", &sha[..7])),
        "{diff}"
    );

    // validate: a directory as the module would read it, problems named.
    std::fs::write(
        work.join("apps/podinfo/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, map]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["gitops", "validate"])
        .arg(work.join("apps/podinfo"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yaml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    validate_checks_schemas_and_renders_charts(&mg, tmp.path());
}

/// `metalgate gitops validate` (the seed's CI step): offline it still knows the built-in kinds'
/// schemas; a Helm chart is rendered as the module renders it; with --kubeconfig it dry-runs
/// against that cluster; exit 1 and the file, object and field when something is wrong.
fn validate_checks_schemas_and_renders_charts(mg: &Metalgate, tmp: &std::path::Path) {
    let validate = |args: &[&str], path: &std::path::Path, envs: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(["gitops", "validate"])
            .args(args)
            .arg(path)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let svc = tmp.join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: podinfo}\nspec:\n  ports: [{port: 80}]\n  colour: red\n",
    )
    .unwrap();
    let (ok, said) = validate(&[], &svc, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("svc/svc.yaml: document 1: Service default/podinfo")
            && said.contains("spec.colour"),
        "{said}"
    );
    assert!(
        !said.contains(" INFO "),
        "a client command logs warnings only: {said}"
    );
    let kubeconfig = mg.kubeconfig();
    let (ok, said) = validate(&["--kubeconfig", kubeconfig.to_str().unwrap()], &svc, &[]);
    assert!(!ok && said.contains("spec.colour"), "{said}");

    let chart = tmp.join("podinfo-chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: podinfo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "color: '#34577c'\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo-ui}\ndata:\n  PODINFO_UI_COLOR: {{ .Values.color | quote }}\n",
    )
    .unwrap();
    let (ok, said) = validate(&["-n", "demo"], &chart, &[]);
    assert!(ok, "{said}");
    assert!(said.contains("1 object(s), all valid"), "{said}");
    // Without helm on PATH: the condition the module would show.
    let (ok, said) = validate(&[], &chart, &[("PATH", "/usr/bin:/bin")]);
    assert!(!ok && said.contains("cannot run helm"), "{said}");
}

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

/// An app's health follows its objects' as they change, not at the next poll (ArgoCD refreshes
/// an app when its resources change): a Deployment whose rollout finishes turns the app Healthy
/// within seconds, with a 10-minute poll. Nothing runs pods here, so the test writes the
/// Deployment's status as kube-controller-manager would.
#[test]
fn an_apps_health_follows_its_objects_without_waiting_for_the_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    std::fs::write(
        work.join("apps/podinfo/deployment.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.7.1}]
",
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "podinfo: a Deployment"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let (mg, _) = start_gitops(tmp.path());
    let app = podinfo_app(&format!("file://{}", bare.display()), true);
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let health = || mg.app_jsonpath("podinfo", "{.status.sync.status}/{.status.health.status}");
    wait_for(Duration::from_secs(20), || {
        let h = health();
        (h == "Synced/Progressing").then_some(()).ok_or(h)
    });
    let generation = mg.kubectl_ok(&[
        "get",
        "deployment",
        "podinfo",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    mg.kubectl_ok(&[
        "patch",
        "deployment",
        "podinfo",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"observedGeneration":{generation},"replicas":1,"updatedReplicas":1,"readyReplicas":1,"availableReplicas":1}}}}"#
        ),
    ]);
    let start = Instant::now();
    while health() != "Synced/Healthy" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the rollout finished {:?} ago and the app still says {}",
            start.elapsed(),
            health()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The GitOps module killed (SIGKILL) in the middle of a sync, while a later wave waits for an
/// earlier one, and started again: the sync resumes from Git and ends with every object of the
/// revision exactly once, the revision recorded once in history, nothing lost.
#[test]
fn a_restart_in_the_middle_of_a_sync_loses_nothing_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    // Wave 0: a LoadBalancer Service (healthy once it has an address; nothing assigns one
    // here) and ten ConfigMaps; wave 1: forty ConfigMaps, applied only after wave 0 is healthy.
    let mut files = vec![(
        "apps/podinfo/gate.yaml".to_string(),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: gate\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n".to_string(),
    )];
    for i in 0..50 {
        let wave = if i < 10 { 0 } else { 1 };
        files.push((
            format!("apps/podinfo/cm-{i:02}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  annotations: {{metalgate.io/sync-wave: '{wave}'}}\ndata:\n  i: '{i}'\n"),
        ));
    }
    for (p, t) in &files {
        std::fs::write(work.join(p), t).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "gate and fifty ConfigMaps"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);

    // The store in one process, the GitOps module in another, so only the module is killed.
    let store = Metalgate::start(&tmp.path().join("store"), free_port(), &[]);
    let kubeconfig = store.kubeconfig();
    let gitops = || {
        Metalgate::start_with(
            &tmp.path().join("gitops"),
            free_port(),
            "gitops",
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--gitops-poll",
                "10m",
            ],
        )
    };
    let first = gitops();
    let out = store.kubectl_stdin(
        &["apply", "-f", "-"],
        &podinfo_app(&format!("file://{}", bare.display()), true),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cms = || -> Vec<String> {
        let out = store.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ]);
        out.lines()
            .filter(|n| n.starts_with("cm-"))
            .map(str::to_string)
            .collect()
    };
    // Wait until wave 0 is in and wave 1 waits for it.
    wait_for(Duration::from_secs(30), || {
        let names = cms();
        (names.len() >= 10)
            .then_some(())
            .ok_or(format!("wave 0 never applied: {names:?}"))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cms().len(), 10, "wave 1 must wait for the Service");
    first.kill();

    // Started again; the Service gets its address while it is down or just after.
    let second = gitops();
    store.kubectl_ok(&[
        "patch",
        "service",
        "gate",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}"#,
    ]);
    let state = || {
        store.app_jsonpath(
            "podinfo",
            "{.status.sync.status}/{.status.health.status}/{.status.sync.revision}",
        )
    };
    // A leader's lease outlives the killed process (15 s), so allow for it.
    wait_for(Duration::from_secs(60), || {
        let now = state();
        (now == format!("Synced/Healthy/{sha}"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "never synced after the restart: {now} with {} ConfigMaps",
                    cms().len()
                )
            })
    });
    let mut names = cms();
    assert_eq!(names.len(), 50, "{names:?}");
    names.dedup();
    assert_eq!(names.len(), 50, "each object exactly once");
    let services = store.kubectl_ok(&["get", "services", "-n", "demo", "-o", "name"]);
    assert_eq!(services.trim(), "service/gate");
    // Every object is the app's (tracked), and the revision is in history once.
    let tracked = store.kubectl_ok(&[
        "get",
        "configmaps",
        "-n",
        "demo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.metalgate\\.io/tracking-id}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        tracked
            .lines()
            .filter(|l| l.starts_with("podinfo:/ConfigMap:demo/cm-"))
            .count(),
        50,
        "{tracked}"
    );
    let history = store.app_jsonpath(
        "podinfo",
        "{range .status.history[*]}{.revision}{\"\\n\"}{end}",
    );
    assert_eq!(
        history.lines().filter(|r| *r == sha).count(),
        1,
        "{history}"
    );
    let inventory = store.app_jsonpath(
        "podinfo",
        "{range .status.resources[*]}{.kind}/{.name}{\"\\n\"}{end}",
    );
    assert_eq!(
        inventory
            .lines()
            .filter(|l| l.starts_with("ConfigMap/cm-"))
            .count(),
        50,
        "{inventory}"
    );
    drop(second);
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

/// A leader that is stopped (SIGTERM, as a rolling update does) hands its Lease back: the next
/// replica leads at once, not after the Lease's 15 s.
#[test]
fn a_stopped_leader_hands_its_lease_to_the_next_replica_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Metalgate::start(&tmp.path().join("store"), free_port(), &[]);
    let kubeconfig = store.kubeconfig();
    let replica = |name: &str| {
        Metalgate::start_with(
            &tmp.path().join(name),
            free_port(),
            "gitops",
            &["--kubeconfig", kubeconfig.to_str().unwrap()],
        )
    };
    let holder = || {
        store.kubectl_ok(&[
            "get",
            "lease",
            "metalgate-gitops",
            "-n",
            "metalgate-system",
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let mut first = replica("a");
    let first_id = format!("test-node-{}", first.child.id());
    wait_for(Duration::from_secs(20), || {
        let h = holder();
        (h == first_id)
            .then_some(())
            .ok_or(format!("the first replica never led: {h}"))
    });
    let second = replica("b");
    let second_id = format!("test-node-{}", second.child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(holder(), first_id, "a standby does not take a held Lease");

    let stopped = Instant::now();
    Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    let _ = first.child.wait();
    while holder() != second_id {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the standby did not take over within 5 s: {:?}",
            holder()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(second);
}

/// Two pushes in quick succession, each announced by a webhook while the first one's sync may
/// still run: the app ends in the later commit's state — every object of it, none of the
/// earlier one's — and history records the later commit last.
#[test]
fn two_quick_pushes_end_in_the_later_commits_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let (mg, admin) = start_gitops(tmp.path());
    let repo = format!("file://{}", bare.display());
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &podinfo_app(&repo, true));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_color(&mg, "#34577c", Duration::from_secs(20));
    // Each commit sets 30 ConfigMaps to its own value.
    let commit = |value: &str| {
        for i in 0..30 {
            std::fs::write(
                work.join(format!("apps/podinfo/cm-{i:02}.yaml")),
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\ndata:\n  v: '{value}'\n"),
            )
            .unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", &format!("all {value}")]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"])
    };
    let _first = commit("first");
    assert_eq!(github_push(admin, &repo, None).0, "200");
    let second = commit("second");
    assert_eq!(github_push(admin, &repo, None).0, "200");
    let values = || {
        mg.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-o",
            "jsonpath={range .items[*]}{.data.v}{\"\\n\"}{end}",
        ])
    };
    wait_for(Duration::from_secs(20), || {
        let v = values();
        let second_count = v.lines().filter(|l| *l == "second").count();
        (second_count == 30)
            .then_some(())
            .ok_or(format!("never all second: {v}"))
    });
    let revision = || {
        mg.app_jsonpath(
            "podinfo",
            "{.status.sync.revision} {.status.history[-1:].revision}",
        )
    };
    wait_for(Duration::from_secs(10), || {
        let r = revision();
        (r == format!("{second} {second}")).then_some(()).ok_or(r)
    });
}
