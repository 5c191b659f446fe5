//! The pages, server-rendered: pure functions from the view to HTML, every value escaped. A
//! small script (`assets/app.js`) swaps `<main>` when the server says something changed; the
//! pages work without it (buttons are plain forms).

use std::fmt::Write;

use super::view::{AppDetail, AppSummary, Entry, Node};

/// Who is looking: anonymous (read-only) or logged in, with the session's CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The CSRF token of the session; `None` when anonymous.
    pub csrf: Option<String>,
}

/// Text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment (an app's name is a DNS label, but never trust it).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn badge(kind: &str, value: &str) -> String {
    let class: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!(
        r#"<span class="badge {kind}-{class}" data-{kind}="{v}">{v}</span>"#,
        v = esc(value)
    )
}

fn page(title: &str, viewer: &Viewer, main: &str) -> String {
    let who = match &viewer.csrf {
        Some(csrf) => format!(
            r#"<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button id="logout">Log out</button></form>"#,
            esc(csrf)
        ),
        None => r#"<a id="login" href="/login">Log in</a>"#.to_string(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · metalgate</title><link rel="stylesheet" href="/assets/app.css"><script src="/assets/app.js" defer></script></head>
<body data-stream="/api/v1/stream/applications"><header><a class="brand" href="/">metalgate <span>GitOps</span></a><span id="live" class="live" title="live updates"></span>{who}</header>
<main id="main">{main}</main></body></html>
"#,
        title = esc(title)
    )
}

fn card(a: &AppSummary) -> String {
    format!(
        r#"<article class="app" data-app="{name}"><h2><a href="/applications/{path}">{name}</a></h2><p>{sync} {health}</p><p class="rev"><code>{rev}</code> {msg}</p><p class="meta">{author}{when}</p></article>"#,
        name = esc(&a.name),
        path = seg(&a.name),
        sync = badge("sync", &a.sync),
        health = badge("health", &a.health),
        rev = esc(short(&a.revision)),
        msg = esc(&a.message),
        author = if a.author.is_empty() {
            String::new()
        } else {
            format!("by {} · ", esc(&a.author))
        },
        when = if a.synced_at.is_empty() {
            "never synced".to_string()
        } else {
            format!("synced {}", esc(&a.synced_at))
        },
    )
}

/// The app list.
pub fn list(apps: &[AppSummary], viewer: &Viewer) -> String {
    let mut main = String::from("<h1>Applications</h1>");
    let (synced, healthy) = (
        apps.iter().filter(|a| a.sync == "Synced").count(),
        apps.iter().filter(|a| a.health == "Healthy").count(),
    );
    let _ = write!(
        main,
        r#"<p class="totals" id="totals">{} apps · {synced} Synced · {healthy} Healthy</p><section class="apps">"#,
        apps.len()
    );
    if apps.is_empty() {
        main.push_str("<p>No Applications yet: <code>kubectl apply -f apps/root.yaml</code>.</p>");
    }
    for a in apps {
        main.push_str(&card(a));
    }
    main.push_str("</section>");
    page("Applications", viewer, &main)
}

/// A notice after an action (fixed texts: nothing from the request is echoed).
pub fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "refresh" => "Refresh requested: the module compares the app with Git now.",
        "sync" => "Sync requested: the module applies Git's state now.",
        "pause" => {
            "Self-heal paused: hand edits stay in place (the app shows OutOfSync) until resumed."
        }
        "resume" => "Self-heal resumed: drift is reverted again.",
        _ => return None,
    })
}

fn action(app: &str, verb: &str, label: &str, csrf: &str) -> String {
    format!(
        r#"<form method="post" action="/applications/{app}/{verb}" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button id="{verb}">{label}</button></form>"#,
        app = seg(app),
        csrf = esc(csrf),
    )
}

fn tree(nodes: &[Node]) -> String {
    let mut out = String::from(r#"<ul class="tree" id="tree">"#);
    let mut ns: Option<&str> = None;
    for n in nodes {
        if ns != Some(n.namespace.as_str()) {
            if ns.is_some() {
                out.push_str("</ul></li>");
            }
            let label = if n.namespace.is_empty() {
                "(cluster)".to_string()
            } else {
                format!("namespace {}", esc(&n.namespace))
            };
            let _ = write!(out, r#"<li><span class="ns">{label}</span><ul>"#);
            ns = Some(n.namespace.as_str());
        }
        let name = if n.kind == "Application" {
            format!(
                r#"<a href="/applications/{}">{}</a>"#,
                seg(&n.name),
                esc(&n.name)
            )
        } else {
            esc(&n.name)
        };
        let health = if n.health.is_empty() {
            String::new()
        } else {
            badge("health", &n.health)
        };
        let why = if n.health_message.is_empty() {
            String::new()
        } else {
            format!(r#" <span class="why">{}</span>"#, esc(&n.health_message))
        };
        let _ = write!(
            out,
            r#"<li class="obj"><span class="kind">{}</span> {name} {} {health}{why}</li>"#,
            esc(&n.kind),
            badge("sync", &n.sync),
        );
    }
    if ns.is_some() {
        out.push_str("</ul></li>");
    }
    out.push_str("</ul>");
    out
}

fn changes(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let li: String = items
        .iter()
        .map(|i| format!("<li>{}</li>", esc(i)))
        .collect();
    format!(r#"<div class="changes"><b>{label}</b><ul>{li}</ul></div>"#)
}

fn history_row(h: &Entry) -> String {
    format!(
        r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}{}{}</td></tr>"#,
        h.id,
        esc(short(&h.revision)),
        esc(&h.message),
        esc(&h.author),
        esc(&h.at),
        esc(&h.by),
        changes("created", &h.created),
        changes("updated", &h.updated),
        changes("pruned", &h.pruned),
        changes("reverted", &h.reverted),
    )
}

/// What a condition type means, in plain words.
fn plain(kind: &str) -> &str {
    match kind {
        "ComparisonError" => "Git's state could not be compared with the cluster",
        "SyncError" => "The last sync failed",
        "InvalidSpecError" => "The Application's spec is invalid",
        "UnsupportedFieldWarning" => "A field has no effect here",
        "SharedResourceWarning" => "An object belongs to another Application",
        "PruneGuard" | "MassPruneGuard" => "Pruning was held back",
        "RepeatedResourceWarning" => "An object is defined twice",
        _ => kind,
    }
}

/// An app's page.
pub fn app(d: &AppDetail, viewer: &Viewer, done: Option<&str>) -> String {
    let s = &d.summary;
    let mut main = String::new();
    let _ = write!(
        main,
        r#"<p class="crumbs"><a href="/">Applications</a> / {name}</p><h1>{name}</h1><p class="status"><span id="sync-status">{sync}</span> <span id="health-status">{health}</span></p><p class="rev">revision <code id="revision">{rev}</code> <span id="message">{msg}</span>{author}</p><p class="meta">{src} · {policy} · <span id="operation">{op}</span></p>"#,
        name = esc(&s.name),
        sync = badge("sync", &s.sync),
        health = badge("health", &s.health),
        rev = esc(short(&s.revision)),
        msg = esc(&s.message),
        author = if s.author.is_empty() {
            String::new()
        } else {
            format!(r#" by <span id="author">{}</span>"#, esc(&s.author))
        },
        src = esc(&s.source),
        policy = match (s.automated, s.self_heal, s.paused) {
            (false, _, _) => "manual sync",
            (true, false, _) => "auto-sync",
            (true, true, false) => "auto-sync, self-heal",
            (true, true, true) => "auto-sync, self-heal paused",
        },
        op = esc(&s.operation),
    );
    if let Some(text) = done.and_then(notice) {
        let _ = write!(main, r#"<p class="notice" id="notice">{}</p>"#, esc(text));
    }
    match &viewer.csrf {
        Some(csrf) => {
            main.push_str(r#"<div class="actions">"#);
            main.push_str(&action(&s.name, "refresh", "Refresh", csrf));
            main.push_str(&action(&s.name, "sync", "Sync", csrf));
            if s.paused {
                main.push_str(&action(&s.name, "resume", "Resume self-heal", csrf));
            } else {
                main.push_str(&action(&s.name, "pause", "Pause self-heal", csrf));
            }
            main.push_str("</div>");
        }
        None => main.push_str(
            r#"<p class="actions"><a href="/login">Log in</a> to Refresh, Sync or Pause self-heal.</p>"#,
        ),
    }
    if !d.conditions.is_empty() {
        main.push_str(r#"<h2>Conditions</h2><ul class="conditions" id="conditions">"#);
        for (t, m) in &d.conditions {
            let _ = write!(
                main,
                r#"<li><b>{}</b> ({}): {}</li>"#,
                esc(plain(t)),
                esc(t),
                esc(m)
            );
        }
        main.push_str("</ul>");
    }
    let _ = write!(main, "<h2>Objects ({})</h2>", d.nodes.len());
    main.push_str(&tree(&d.nodes));
    let drift: Vec<&Entry> = d
        .history
        .iter()
        .filter(|h| !h.reverted.is_empty())
        .collect();
    main.push_str(r#"<h2>Drift reverted</h2><ul class="drift" id="drift">"#);
    if drift.is_empty() {
        main.push_str("<li>None: the cluster has matched Git.</li>");
    }
    for h in drift {
        for r in &h.reverted {
            let _ = write!(main, r#"<li><time>{}</time> {}</li>"#, esc(&h.at), esc(r));
        }
    }
    main.push_str("</ul>");
    main.push_str(r#"<h2>History</h2><table class="history" id="history"><thead><tr><th>#</th><th>commit</th><th>message</th><th>author</th><th>deployed</th><th>by</th><th>changes</th></tr></thead><tbody>"#);
    for h in &d.history {
        main.push_str(&history_row(h));
    }
    main.push_str("</tbody></table>");
    page(&s.name, viewer, &main)
}

/// The login form (and why the last try failed, from a fixed set).
pub fn login(failed: bool, no_secret: bool) -> String {
    let mut main = String::from("<h1>Log in</h1>");
    if no_secret {
        main.push_str(r#"<p class="notice">There is no admin Secret yet (<code>metalgate-gitops-admin</code>): nobody can log in until the module creates it.</p>"#);
    }
    if failed {
        main.push_str(r#"<p class="notice" id="notice">Wrong password.</p>"#);
    }
    main.push_str(r#"<form method="post" action="/login" class="login"><label>Password <input type="password" name="password" id="password" autocomplete="current-password" autofocus></label> <button id="submit">Log in</button></form><p class="meta">The password is in the Secret: <code>kubectl -n metalgate-system get secret metalgate-gitops-admin -o jsonpath='{.data.password}' | base64 -d</code></p>"#);
    page("Log in", &Viewer::default(), &main)
}

/// A short error page.
pub fn error(title: &str, text: &str) -> String {
    page(
        title,
        &Viewer::default(),
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::view::{detail, summary, tests::app as fixture};

    #[test]
    fn values_are_escaped_everywhere() {
        let html = app(&detail(&fixture("podinfo")), &Viewer::default(), None);
        assert!(html.contains("podinfo: blue &lt;b&gt;"), "{html}");
        assert!(!html.contains("blue <b>"));
        assert_eq!(
            esc(r#"<a href="x">'&"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn anonymous_visitors_see_no_buttons_and_logged_in_ones_get_the_csrf_token() {
        let d = detail(&fixture("podinfo"));
        let anon = app(&d, &Viewer::default(), None);
        assert!(!anon.contains(r#"id="sync""#) && anon.contains(r#"href="/login""#));
        let admin = app(
            &d,
            &Viewer {
                csrf: Some("tok123".into()),
            },
            Some("sync"),
        );
        for id in ["refresh", "sync", "resume", "logout"] {
            assert!(admin.contains(&format!(r#"id="{id}""#)), "{id}");
        }
        assert_eq!(admin.matches(r#"name="csrf" value="tok123""#).count(), 4);
        assert!(admin.contains("Sync requested"));
        // An unknown notice echoes nothing.
        assert!(!app(&d, &Viewer::default(), Some("<script>")).contains("<script>"));
    }

    #[test]
    fn the_page_shows_objects_drift_and_history_with_argo_colours() {
        let html = app(&detail(&fixture("podinfo")), &Viewer::default(), None);
        assert!(html.contains(r#"class="badge sync-Synced""#));
        assert!(html.contains(r#"class="badge health-Progressing""#));
        assert!(html.contains("1 of 2 updated"));
        assert!(html.contains(".spec.replicas (changed by kubectl-edit)"));
        assert!(html.contains("The last sync failed"));
        assert!(html.contains("auto-sync, self-heal paused"));
        // Secrets are names only.
        assert!(html.contains("Secret</span> token"));
    }

    #[test]
    fn fifty_apps_render_fast_and_light() {
        let apps: Vec<AppSummary> = (0..50)
            .map(|i| summary(&fixture(&format!("app-{i}"))))
            .collect();
        let start = std::time::Instant::now();
        let html = list(&apps, &Viewer::default());
        let took = start.elapsed();
        assert_eq!(html.matches(r#"<article class="app""#).count(), 50);
        assert!(took < std::time::Duration::from_millis(100), "{took:?}");
        let assets = super::super::assets::CSS.len() + super::super::assets::JS.len();
        assert!(
            html.len() + assets < 100 * 1024,
            "{} bytes",
            html.len() + assets
        );
    }
}
