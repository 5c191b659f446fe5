//! The GitOps web UI as a visitor and an admin use it, over HTTP on the admin listener of
//! `metalgate run`: the list and an app's page show what the module did; actions need a login
//! and the session's CSRF token; Refresh after a push shows the new commit; Pause self-heal
//! leaves a hand edit in place, Resume reverts it and the page names the drift; the JSON API
//! at ArgoCD's paths and the live-update stream.

mod common;

use std::time::Duration;

use common::eventually;
use common::workshop::{podinfo_app, push_color, start_gitops, wait_color, workshop_repo};

/// A response: status code, headers (lower-cased names), body.
struct Answer {
    code: u16,
    headers: String,
    body: String,
}

/// One request with curl (cookies from and to `jar`).
fn http(
    method: &str,
    url: &str,
    jar: &std::path::Path,
    extra: &[&str],
    body: Option<&str>,
) -> Answer {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "5", "-X", method])
        .arg("-b")
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(extra);
    if let Some(b) = body {
        cmd.args(["--data-raw", b]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        code,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

fn csrf_of(html: &str) -> String {
    html.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn visitors_read_admins_act_with_csrf_and_the_page_follows_git_and_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let (mg, admin) = start_gitops(tmp.path());
    let base = format!("http://127.0.0.1:{admin}");
    let repo = format!("file://{}", bare.display());
    mg.kubectl_stdin(&["apply", "-f", "-"], &podinfo_app(&repo, true));
    wait_color(&mg, "#34577c", Duration::from_secs(20));
    let jar = tmp.path().join("cookies");
    let anon = tmp.path().join("anon-cookies");

    // A visitor sees the app Synced and Healthy, read-only.
    let mut list = http("GET", &format!("{base}/"), &anon, &[], None);
    assert!(
        eventually(Duration::from_secs(10), || {
            list = http("GET", &format!("{base}/"), &anon, &[], None);
            list.body.contains(r#"data-sync="Synced""#)
                && list.body.contains(r#"data-health="Healthy""#)
        }),
        "the list does not show podinfo Synced and Healthy:\n{}",
        list.body
    );
    assert!(list.body.contains(r#"data-app="podinfo""#));
    assert!(
        list.body.contains("podinfo: #34577c"),
        "the commit message: {}",
        list.body
    );
    let page = http(
        "GET",
        &format!("{base}/applications/podinfo"),
        &anon,
        &[],
        None,
    );
    assert_eq!(page.code, 200);
    assert!(
        !page.body.contains(r#"id="sync""#),
        "buttons for an anonymous visitor"
    );
    assert!(
        page.body.contains("ConfigMap</span> podinfo-ui"),
        "{}",
        page.body
    );

    // Actions without a login are refused, by form and by API; nothing is written.
    let refused = http(
        "POST",
        &format!("{base}/applications/podinfo/sync"),
        &anon,
        &[],
        Some("csrf=x"),
    );
    assert_eq!(refused.code, 401, "{}", refused.body);
    let refused = http(
        "POST",
        &format!("{base}/api/v1/applications/podinfo/sync"),
        &anon,
        &[],
        None,
    );
    assert_eq!(refused.code, 401, "{}", refused.body);
    let bad_bearer = http(
        "POST",
        &format!("{base}/api/v1/applications/podinfo/sync"),
        &anon,
        &["-H", "Authorization: Bearer guess"],
        None,
    );
    assert_eq!(bad_bearer.code, 401);
    let annotations = mg.kubectl_ok(&[
        "get",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(!annotations.contains("metalgate.io/sync"), "{annotations}");

    // Log in with the password the module put in its Secret.
    let password = mg.kubectl_ok(&[
        "get",
        "secret",
        "metalgate-gitops-admin",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.data.password}",
    ]);
    use base64::Engine;
    let password = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(password.trim())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(password.len(), 64, "a random admin password");
    let wrong = http(
        "POST",
        &format!("{base}/login"),
        &jar,
        &[],
        Some("password=guess"),
    );
    assert_eq!(wrong.code, 401);
    assert!(!wrong.headers.contains("set-cookie"));
    let ok = http(
        "POST",
        &format!("{base}/login"),
        &jar,
        &[],
        Some(&format!("password={password}")),
    );
    assert_eq!(ok.code, 303, "{}", ok.body);
    assert!(
        ok.headers.contains("httponly") && ok.headers.contains("samesite=strict"),
        "{}",
        ok.headers
    );
    let page = http(
        "GET",
        &format!("{base}/applications/podinfo"),
        &jar,
        &[],
        None,
    );
    let csrf = csrf_of(&page.body);
    assert_eq!(csrf.len(), 64, "a CSRF token in the page:\n{}", page.body);
    assert!(page.body.contains(r#"id="refresh""#) && page.body.contains(r#"id="pause""#));

    // A wrong CSRF token is refused even with the session.
    let forged = http(
        "POST",
        &format!("{base}/applications/podinfo/refresh"),
        &jar,
        &[],
        Some("csrf=0000"),
    );
    assert_eq!(forged.code, 403, "{}", forged.body);

    // Push, click Refresh: the new commit is applied and shown.
    let sha = push_color(&work, "#ff0000");
    let clicked = http(
        "POST",
        &format!("{base}/applications/podinfo/refresh"),
        &jar,
        &[],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(clicked.code, 303);
    assert!(
        clicked
            .headers
            .contains("location: /applications/podinfo?done=refresh"),
        "{}",
        clicked.headers
    );
    wait_color(&mg, "#ff0000", Duration::from_secs(5));
    let mut page = http(
        "GET",
        &format!("{base}/applications/podinfo?done=refresh"),
        &jar,
        &[],
        None,
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            page = http(
                "GET",
                &format!("{base}/applications/podinfo?done=refresh"),
                &jar,
                &[],
                None,
            );
            page.body
                .contains(&format!(r#"<code id="revision">{}</code>"#, &sha[..7]))
        }),
        "the page does not show {sha}:\n{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<span id="message">podinfo: #ff0000</span>"#)
    );
    assert!(page.body.contains("Refresh requested"));

    // Pause self-heal: a hand edit stays, the app turns OutOfSync.
    let paused = http(
        "POST",
        &format!("{base}/applications/podinfo/pause"),
        &jar,
        &[],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(paused.code, 303);
    mg.kubectl_ok(&[
        "patch",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-p",
        r##"{"data":{"PODINFO_UI_COLOR":"#123456"}}"##,
    ]);
    let out_of_sync = eventually(Duration::from_secs(5), || {
        http(
            "GET",
            &format!("{base}/applications/podinfo"),
            &jar,
            &[],
            None,
        )
        .body
        .contains(r#"data-sync="OutOfSync""#)
    });
    assert!(
        out_of_sync,
        "a paused app with a hand edit is not shown OutOfSync"
    );
    std::thread::sleep(Duration::from_secs(2));
    let kept = mg.kubectl_ok(&[
        "get",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.PODINFO_UI_COLOR}",
    ]);
    assert_eq!(
        kept, "#123456",
        "self-heal reverted a hand edit while paused"
    );

    // Resume: reverted, and the page names the object, the field and who changed it.
    let resumed = http(
        "POST",
        &format!("{base}/applications/podinfo/resume"),
        &jar,
        &[],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(resumed.code, 303);
    wait_color(&mg, "#ff0000", Duration::from_secs(5));
    let mut page = http(
        "GET",
        &format!("{base}/applications/podinfo"),
        &jar,
        &[],
        None,
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            page = http(
                "GET",
                &format!("{base}/applications/podinfo"),
                &jar,
                &[],
                None,
            );
            page.body
                .contains("data.PODINFO_UI_COLOR (changed by kubectl-patch)")
        }),
        "no drift entry:\n{}",
        page.body
    );

    // The JSON API: the list, one app, and a sync by bearer token.
    let apps = http(
        "GET",
        &format!("{base}/api/v1/applications"),
        &anon,
        &[],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&apps.body).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "podinfo");
    assert_eq!(v["items"][0]["status"]["sync"]["revision"], sha.as_str());
    let synced = http(
        "POST",
        &format!("{base}/api/v1/applications/podinfo/sync"),
        &anon,
        &["-H", &format!("Authorization: Bearer {password}")],
        None,
    );
    assert_eq!(synced.code, 200, "{}", synced.body);

    // The live-update stream says something at once, and again when an app changes.
    let stream = std::process::Command::new("curl")
        .args(["-s", "-N", "--max-time", "2"])
        .arg(format!("{base}/api/v1/stream/applications"))
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&stream.stdout);
    assert!(events.starts_with("data: "), "{events}");

    // Logging out ends the session: the buttons are gone.
    http(
        "POST",
        &format!("{base}/logout"),
        &jar,
        &[],
        Some(&format!("csrf={csrf}")),
    );
    let page = http(
        "GET",
        &format!("{base}/applications/podinfo"),
        &jar,
        &[],
        None,
    );
    assert!(!page.body.contains(r#"id="sync""#));
    mg.kill();
}
