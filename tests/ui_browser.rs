//! The GitOps UI in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium-driver`, the `fantoccini` client) against `metalgate run` on loopback. It sees the
//! app Synced and Healthy, sees a pushed commit appear without reloading (the live stream),
//! logs in, clicks Refresh after another push and sees the new commit, sees the drift entry
//! after a hand edit, and is refused with a forged CSRF token. Screenshots go to
//! `target/ui-screenshots/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use browser::{click, decode_password, log_in, session, shot, sync_with_forged_csrf, until_text};
use common::free_port;
use common::workshop::{podinfo_app, push_color, start_gitops, wait_color, workshop_repo};
use fantoccini::{Client, Locator};

/// chromedriver, ended when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(dir: &std::path::Path) -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/deps.sh installs chromium-driver)"),
    );
    let c = session(&format!("http://127.0.0.1:{port}"), &dir.join("chromium")).await;
    (driver, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_apps_logs_in_refreshes_after_a_push_and_sees_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let (mg, admin) = start_gitops(tmp.path());
    let base = format!("http://127.0.0.1:{admin}");
    let repo = format!("file://{}", bare.display());
    mg.kubectl_stdin(&["apply", "-f", "-"], &podinfo_app(&repo, true));
    wait_color(&mg, "#34577c", Duration::from_secs(20));
    let (_driver, c) = browser(tmp.path()).await;

    // The list: podinfo, Synced and Healthy.
    c.goto(&format!("{base}/")).await.unwrap();
    let card = until_text(
        &c,
        r#"article[data-app="podinfo"]"#,
        &["Synced", "Healthy"],
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "1-list.png").await;
    assert!(
        card.contains("Synced") && card.contains("Healthy"),
        "{card}"
    );

    // The app's page, anonymous: no buttons. A push applied by a refresh from elsewhere shows
    // up without a reload (the page keeps a marker set before).
    c.goto(&format!("{base}/applications/podinfo"))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Id("sync")).await.is_err(),
        "buttons for an anonymous visitor"
    );
    c.execute("window.__kept = 'same page'; return 1;", vec![])
        .await
        .unwrap();
    push_color(&work, "#00aa00");
    mg.kubectl_ok(&[
        "annotate",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "metalgate.io/refresh=test",
        "--overwrite",
    ]);
    let message = until_text(
        &c,
        "#message",
        &["podinfo: #00aa00"],
        Duration::from_secs(10),
    )
    .await;
    let kept = c
        .execute("return window.__kept || 'reloaded';", vec![])
        .await
        .unwrap();
    shot(&c, "2-live-update.png").await;
    assert_eq!(
        message, "podinfo: #00aa00",
        "the page did not follow the push"
    );
    assert_eq!(
        kept,
        serde_json::json!("same page"),
        "the page was reloaded, not updated"
    );

    // Log in with the admin password.
    let password = mg.kubectl_ok(&[
        "get",
        "secret",
        "metalgate-gitops-admin",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.data.password}",
    ]);
    log_in(&c, &base, &decode_password(&password)).await;
    c.goto(&format!("{base}/applications/podinfo"))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Id("refresh")).await.is_ok(),
        "no Refresh button after login"
    );

    // Push, click Refresh: the notice, then the new commit.
    push_color(&work, "#ff00ff");
    click(&c, "refresh").await;
    let notice = until_text(
        &c,
        "#notice",
        &["Refresh requested"],
        Duration::from_secs(5),
    )
    .await;
    let message = until_text(
        &c,
        "#message",
        &["podinfo: #ff00ff"],
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "3-refreshed.png").await;
    assert!(notice.contains("Refresh requested"), "{notice}");
    assert_eq!(message, "podinfo: #ff00ff");
    let health = until_text(&c, "#health-status", &["Healthy"], Duration::from_secs(10)).await;
    assert_eq!(health, "Healthy");

    // A hand edit is reverted and the page names it.
    mg.kubectl_ok(&[
        "patch",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-p",
        r##"{"data":{"PODINFO_UI_COLOR":"#111111"}}"##,
    ]);
    let drift = until_text(
        &c,
        "#drift",
        &["changed by kubectl-patch"],
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "4-drift.png").await;
    assert!(
        drift.contains("data.PODINFO_UI_COLOR (changed by kubectl-patch)"),
        "{drift}"
    );

    // A forged CSRF token in the form is refused.
    let refused = sync_with_forged_csrf(&c).await;
    shot(&c, "5-forged-csrf.png").await;
    assert_eq!(refused, "Refused");
    let _ = c.close().await;
    mg.kill();
}
