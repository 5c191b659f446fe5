//! The GitOps UI as the workshop's audience sees it: headless Chromium on the laptop, driven over
//! WebDriver, at `http://argocd.192.168.56.200.nip.io/` through the VIP, with the workshop's
//! apps synced from the lab's Git repository. chromedriver (and so Chromium) runs in the laptop's
//! namespace; the test's WebDriver client runs on a thread that joined that namespace, so the
//! host never talks to the lab's addresses. Screenshots go to `target/ui-screenshots/lab-*.png`.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::Locator;

use crate::browser::{
    click, decode_password, log_in, session, shot, sync_with_forged_csrf, text_of, until_text,
};

use crate::*;

const UI: &str = "http://argocd.192.168.56.200.nip.io";
/// chromedriver's port in the laptop's namespace (nothing else listens there).
const DRIVER_PORT: u16 = 9515;

/// chromedriver in the laptop's namespace; it and every browser process it started are ended
/// when dropped, also when the test fails.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let mut tree = vec![self.0.id() as i32];
        let mut i = 0;
        while i < tree.len() {
            let kids = children_of(&tree[i..=i]);
            tree.extend(kids);
            i += 1;
        }
        for pid in tree {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

fn chromedriver(profile: &std::path::Path) -> Driver {
    assert!(
        Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "chromedriver must be installed (scripts/deps.sh installs chromium-driver)"
    );
    // `ip netns exec` gives it the laptop's /etc/hosts (the nip.io names); it execs, so the
    // child's PID is chromedriver's.
    let _ = std::fs::set_permissions(profile, std::fs::Permissions::from_mode(0o700));
    Driver(
        Command::new("ip")
            .args(["netns", "exec", "mg-laptop", "chromedriver"])
            .arg(format!("--port={DRIVER_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip netns exec mg-laptop chromedriver"),
    )
}

/// Join the laptop's network namespace (this thread only).
fn join_laptop() {
    let ns = std::fs::File::open("/run/netns/mg-laptop").expect("the lab's laptop namespace");
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into mg-laptop");
}

/// `kubectl ARGS` from the laptop with `env` (`NAME=value`) set, which must succeed; its stdout.
fn laptop_kubectl_with(env: &[&str], args: &[&str]) -> String {
    let mut argv = vec!["lab", "exec", "--", "env"];
    argv.extend_from_slice(env);
    argv.push("kubectl");
    argv.extend_from_slice(args);
    let out = metalgate(&argv);
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTTP status of a POST from the laptop, without a session.
fn anonymous_post(path: &str) -> String {
    anonymous("POST", path)
}

/// The HTTP status of a request from the laptop, without a session.
fn anonymous(method: &str, path: &str) -> String {
    let out = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "-X",
        method,
        &format!("{UI}{path}"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_gitops_ui_from_the_laptop_lists_the_apps_and_acts_only_for_a_logged_in_admin() {
    let (_lab, _teardown) = lab_up(1);
    let profile = tempfile::tempdir().unwrap();
    let _driver = chromedriver(profile.path());
    let dir = profile.path().to_path_buf();
    let run = std::thread::spawn(move || {
        join_laptop();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario(&dir))
    });
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(profile: &std::path::Path) {
    let c = session(
        &format!("http://127.0.0.1:{DRIVER_PORT}"),
        &profile.join("chromium"),
    )
    .await;

    // Every app of the workshop, Synced and Healthy.
    c.goto(&format!("{UI}/")).await.unwrap();
    for app in ["root", "metalgate", "podinfo", "prometheus-grafana"] {
        let card = until_text(
            &c,
            &format!(r#"article[data-app="{app}"]"#),
            &["Synced", "Healthy"],
            Duration::from_secs(20),
        )
        .await;
        assert!(
            card.contains("Synced") && card.contains("Healthy"),
            "{app}: {card:?}"
        );
    }
    shot(&c, "lab-1-apps.png").await;

    // Anonymous: no buttons, and the API refuses an action.
    c.goto(&format!("{UI}/applications/podinfo")).await.unwrap();
    assert!(
        c.find(Locator::Id("refresh")).await.is_err(),
        "a Refresh button for an anonymous visitor"
    );
    assert_eq!(
        anonymous_post("/api/v1/applications/podinfo/sync"),
        "401",
        "an action without a session"
    );
    // The module's metrics and probes are not behind the Ingress (their own port, as ArgoCD's).
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(anonymous("GET", path), "404", "{path} through the Ingress");
    }

    // Log in with the admin password from its Secret, as the login page says.
    let password = laptop_kubectl_with(
        &[],
        &[
            "-n",
            "metalgate-system",
            "get",
            "secret",
            "metalgate-gitops-admin",
            "-o",
            "jsonpath={.data.password}",
        ],
    );
    log_in(&c, UI, &decode_password(&password)).await;
    c.goto(&format!("{UI}/applications/podinfo")).await.unwrap();
    assert!(
        c.find(Locator::Id("refresh")).await.is_ok(),
        "no Refresh button after logging in"
    );

    // A push from the laptop's clone, then Refresh: the commit's message and Healthy again.
    let deployment = lab_dir().join("laptop/ops-demo/manifests/apps/podinfo/deployment.yaml");
    let before = std::fs::read_to_string(&deployment).unwrap();
    let after = before.replace("value: \"#34577c\"", "value: \"#2e8b57\"");
    assert_ne!(after, before, "podinfo's colour in the workshop repository");
    std::fs::write(&deployment, after).unwrap();
    laptop_git(&["commit", "-qam", "podinfo: sea green from the UI test"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    click(&c, "refresh").await;
    let notice = until_text(
        &c,
        "#notice",
        &["Refresh requested"],
        Duration::from_secs(5),
    )
    .await;
    assert!(notice.contains("Refresh requested"), "{notice:?}");
    let message = until_text(
        &c,
        "#message",
        &["sea green from the UI test"],
        Duration::from_secs(15),
    )
    .await;
    let health = until_text(&c, "#health-status", &["Healthy"], Duration::from_secs(30)).await;
    shot(&c, "lab-2-pushed.png").await;
    assert!(
        message.contains("sea green from the UI test"),
        "the page shows the commit {message:?}"
    );
    assert_eq!(health, "Healthy", "the app after the rollout");
    let history = text_of(&c, "#history").await;
    assert!(
        history.contains("Attendee") && history.contains("sea green"),
        "the history names the commit and its author: {history:?}"
    );

    // A `kubectl edit` from the laptop (the editor a script): reverted, and the page names the
    // field and who changed it.
    // The editor: a script that scales podinfo from 2 to 5 replicas.
    let editor = "KUBE_EDITOR=sed -i 's/^  replicas: 2$/  replicas: 5/'";
    laptop_kubectl_with(
        &[editor],
        &["-n", "podinfo", "edit", "deployment", "podinfo"],
    );
    let drift = until_text(
        &c,
        "#drift",
        &["spec.replicas", "kubectl-edit"],
        Duration::from_secs(15),
    )
    .await;
    shot(&c, "lab-3-drift.png").await;
    assert!(
        drift.contains("spec.replicas (changed by kubectl-edit)"),
        "{drift:?}"
    );

    // A forged CSRF token in the form is refused.
    let refused = sync_with_forged_csrf(&c).await;
    shot(&c, "lab-4-forged-csrf.png").await;
    assert_eq!(refused, "Refused");
    let _ = c.close().await;
}
