//! The loop a user watches: a push applied on the refresh annotation, the poll or a webhook
//! (and a bad signature refused), a hand edit reverted within seconds, health following the
//! objects, two quick pushes ending in the later commit.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::workshop::{
    git, podinfo_app, push_color, start_gitops, wait_color, workshop_repo,
};
use crate::common::{Metalgate, free_port, wait_for};

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

    // A push that leaves the app's objects as they are (a file outside its path): as ArgoCD,
    // the app moves to the new revision, Synced, without a sync — no history entry.
    let entries = || mg.app_jsonpath("podinfo", "{.status.history[*].id}");
    wait_for(Duration::from_secs(10), || {
        let e = entries();
        (e.split_whitespace().count() == 3).then_some(()).ok_or(e)
    });
    let before = entries();
    std::fs::write(work.join("NOTES.md"), "not part of any app\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "notes"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let notes = git(&work, &["rev-parse", "HEAD"]);
    assert_eq!(github_push(admin, &repo, Some("s3cret")).0, "200");
    wait_for(Duration::from_secs(10), || {
        let r = mg.app_jsonpath("podinfo", "{.status.sync.revision} {.status.sync.status}");
        (r == format!("{notes} Synced")).then_some(()).ok_or(r)
    });
    assert_eq!(
        entries(),
        before,
        "a commit that changes nothing of the app synced it"
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
