//! Headless Chromium over WebDriver (Debian's `chromium-driver`, the `fantoccini` client) for
//! the UI tests — on loopback (`tests/ui_browser.rs`) and from the lab's laptop
//! (`tests/lab/ui.rs`): a session, waiting for text, clicking through live updates, logging
//! in, screenshots.
#![allow(dead_code)]

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A session on the chromedriver at `url`, Chromium with a fresh profile in `profile` and the
/// flags a closed network needs; retried while chromedriver starts (10 s at most).
pub async fn session(url: &str, profile: &std::path::Path) -> Client {
    // Both rustls providers are linked in this workspace: say which.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }))
    .unwrap();
    for _ in 0..100 {
        if let Ok(c) = ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(url)
            .await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not take a session on {url}");
}

/// The text of the first element matching `css` (empty when there is none).
pub async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Wait (bounded) until the element's text contains every one of `want`; the last text seen.
pub async fn until_text(c: &Client, css: &str, want: &[&str], limit: Duration) -> String {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let t = text_of(c, css).await;
        if want.iter().all(|w| t.contains(w)) || tokio::time::Instant::now() > end {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Click the element with this id; the page's live updates may swap it between finding and
/// clicking (a stale element), so find it again, a bounded number of times.
pub async fn click(c: &Client, id: &str) {
    let mut last = String::new();
    for _ in 0..10 {
        match c.find(Locator::Id(id)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click #{id}: {last}");
}

/// Log in on `base`'s login page with the admin password, and wait until the session is on.
pub async fn log_in(c: &Client, base: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click(c, "submit").await;
    // Logged in once the page that follows has a Log out button (the session cookie is set):
    // navigating on before that would race the form's answer.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Id("logout")).await.is_err() {
        assert!(
            tokio::time::Instant::now() < end,
            "no Log out button within 10 s of logging in: {:?}",
            text_of(c, "main").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forge the page's CSRF tokens and press Sync, in one script so a live update cannot swap
/// the form (and its token) in between; the page's heading after.
pub async fn sync_with_forged_csrf(c: &Client) -> String {
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(function (i) { i.value = 'forged'; }); document.getElementById('sync').click(); return 1;",
        vec![],
    )
    .await
    .unwrap();
    until_text(c, "h1", &["Refused"], Duration::from_secs(5)).await
}

/// Save a screenshot as `target/ui-screenshots/NAME` (best effort: an artifact, not a check).
pub async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(std::path::Path::new("target"))
        .join("ui-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(name), png);
    }
}

/// The admin password, base64 as the Secret holds it, decoded.
pub fn decode_password(b64: &str) -> String {
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .expect("the Secret's password is base64"),
    )
    .expect("the password is text")
}
