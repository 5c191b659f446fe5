//! The UI's HTTP side: routes a request to a page, an action or the JSON API, reads
//! Applications from a watch cache, and writes only annotations (refresh, sync, pause) — the
//! same requests `metalgate gitops refresh|sync` makes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use metalgate_k8s::admin::{Body, full};
use metalgate_k8s::crd::Application;
use serde_json::json;
use tokio::sync::watch;

use super::auth::{self, Sessions};
use super::html::{self, Viewer};
use super::{assets, view};
use crate::kinds::{PAUSE_ANNOTATION, REFRESH_ANNOTATIONS, SYNC_ANNOTATION};

/// The UI's state: the Applications' cache, where to write, and the sessions.
pub struct Ui {
    pub(super) apps: Store<Application>,
    pub(super) api: Api<Application>,
    pub(super) secrets: Api<Secret>,
    pub(super) sessions: Mutex<Sessions>,
    /// Bumped on every change of an Application (the live-update stream follows it).
    pub(super) changes: watch::Receiver<u64>,
}

/// An action a button or the API asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Compare with Git now.
    Refresh,
    /// Sync now.
    Sync,
    /// Pause self-heal.
    Pause,
    /// Resume self-heal.
    Resume,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "refresh" => Action::Refresh,
            "sync" => Action::Sync,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Refresh => "refresh",
            Action::Sync => "sync",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }

    /// The annotation patch that asks for it.
    fn patch(self) -> serde_json::Value {
        let now = jiff::Timestamp::now().to_string();
        let by = json!(format!("ui {now}"));
        let annotations = match self {
            Action::Refresh => json!({REFRESH_ANNOTATIONS[0]: by}),
            Action::Sync => json!({SYNC_ANNOTATION: by}),
            Action::Pause => json!({PAUSE_ANNOTATION: "true"}),
            // Resuming looks again at once, so drift left while paused is reverted now.
            Action::Resume => json!({PAUSE_ANNOTATION: null, REFRESH_ANNOTATIONS[0]: by}),
        };
        json!({"metadata": {"annotations": annotations}})
    }
}

/// `application/x-www-form-urlencoded` into pairs.
pub fn form(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b'%' => {
                    let hex = b
                        .get(i + 1..i + 3)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 3;
                        }
                        None => {
                            out.push(b'%');
                            i += 1;
                        }
                    }
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn respond(status: StatusCode, ct: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", ct)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        .body(full(body))
        .expect("valid response")
}

fn page(status: StatusCode, html: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", html)
}

fn json_answer(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", v.to_string())
}

fn redirect(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", to)
        .header("cache-control", "no-store");
    if let Some(c) = cookie {
        r = r.header("set-cookie", c);
    }
    r.body(full("")).expect("valid response")
}

fn query<'a>(req: &'a Request<Bytes>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Ui {
    fn summaries(&self) -> Vec<view::AppSummary> {
        let mut apps: Vec<view::AppSummary> =
            self.apps.state().iter().map(|a| view::summary(a)).collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        apps
    }

    /// One Application whole, from the API server (the cache holds compacted ones).
    async fn app(&self, name: &str) -> Result<Option<Application>, kube::Error> {
        self.api.get_opt(name).await
    }

    /// The session's CSRF token, when the request carries a live session cookie.
    fn session(&self, h: &HeaderMap) -> Option<(String, String)> {
        let id = header(h, "cookie").and_then(auth::session_id)?.to_string();
        let csrf = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .csrf(&id, Instant::now())?;
        Some((id, csrf))
    }

    async fn password(&self) -> Option<Vec<u8>> {
        let s = self.secrets.get_opt(auth::SECRET).await.ok()??;
        let p = s.data?.remove(auth::KEY)?.0;
        (!p.is_empty()).then_some(p)
    }

    /// A bearer token equal to the admin password (the JSON API, for scripts).
    async fn bearer_ok(&self, h: &HeaderMap) -> bool {
        let Some(t) = header(h, "authorization").and_then(|v| v.strip_prefix("Bearer ")) else {
            return false;
        };
        match self.password().await {
            Some(p) => auth::same(t.trim().as_bytes(), &p),
            None => false,
        }
    }

    async fn act(&self, name: &str, action: Action) -> Result<Application, kube::Error> {
        self.api
            .patch(
                name,
                &PatchParams {
                    field_manager: Some("metalgate-ui".into()),
                    ..Default::default()
                },
                &Patch::Merge(action.patch()),
            )
            .await
    }

    /// Answer one request.
    pub async fn handle(self: Arc<Self>, req: Request<Bytes>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method().clone();
        match (method, segs.as_slice()) {
            (Method::GET, [""]) => {
                let viewer = Viewer {
                    csrf: self.session(req.headers()).map(|s| s.1),
                };
                page(StatusCode::OK, html::list(&self.summaries(), &viewer))
            }
            (Method::GET, ["assets", "app.css"]) => {
                respond(StatusCode::OK, "text/css; charset=utf-8", assets::CSS)
            }
            (Method::GET, ["assets", "app.js"]) => {
                respond(StatusCode::OK, "text/javascript; charset=utf-8", assets::JS)
            }
            (Method::GET, ["login"]) => page(
                StatusCode::OK,
                html::login(false, self.password().await.is_none()),
            ),
            (Method::POST, ["login"]) => self.login(&req).await,
            (Method::POST, ["logout"]) => {
                let fields = form(req.body());
                if let Some((id, csrf)) = self.session(req.headers()) {
                    if fields
                        .get("csrf")
                        .is_some_and(|c| auth::same(c.as_bytes(), csrf.as_bytes()))
                    {
                        self.sessions
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .close(&id);
                    }
                }
                redirect("/", Some(auth::clear_cookie()))
            }
            (Method::GET, ["applications", name]) => match self.app(name).await {
                Ok(Some(a)) => {
                    let viewer = Viewer {
                        csrf: self.session(req.headers()).map(|s| s.1),
                    };
                    page(
                        StatusCode::OK,
                        html::app(&view::detail(&a), &viewer, query(&req, "done")),
                    )
                }
                Ok(None) => page(
                    StatusCode::NOT_FOUND,
                    html::error("Not found", &format!("There is no Application {name}.")),
                ),
                Err(e) => page(
                    StatusCode::BAD_GATEWAY,
                    html::error("Reading the Application failed", &e.to_string()),
                ),
            },
            (Method::POST, ["applications", name, verb]) => {
                let Some(action) = Action::parse(verb) else {
                    return page(
                        StatusCode::NOT_FOUND,
                        html::error("Not found", "No such action."),
                    );
                };
                let Some((_, csrf)) = self.session(req.headers()) else {
                    return page(
                        StatusCode::UNAUTHORIZED,
                        html::error("Log in first", "Actions need a login: read-only otherwise."),
                    );
                };
                let fields = form(req.body());
                if !fields
                    .get("csrf")
                    .is_some_and(|c| auth::same(c.as_bytes(), csrf.as_bytes()))
                {
                    return page(
                        StatusCode::FORBIDDEN,
                        html::error(
                            "Refused",
                            "The form's CSRF token does not match your session.",
                        ),
                    );
                }
                match self.act(name, action).await {
                    Ok(_) => redirect(
                        &format!("/applications/{name}?done={}", action.as_str()),
                        None,
                    ),
                    Err(e) => page(
                        StatusCode::BAD_GATEWAY,
                        html::error("The request failed", &e.to_string()),
                    ),
                }
            }
            (Method::GET, ["api", "v1", "applications"]) => {
                let mut items = match self.api.list(&ListParams::default()).await {
                    Ok(l) => l.items,
                    Err(e) => {
                        return json_answer(
                            StatusCode::BAD_GATEWAY,
                            &json!({"error": e.to_string()}),
                        );
                    }
                };
                items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
                json_answer(
                    StatusCode::OK,
                    &json!({"apiVersion": "metalgate.io/v1beta1", "kind": "ApplicationList", "items": items}),
                )
            }
            (Method::GET, ["api", "v1", "applications", name]) => {
                if query(&req, "refresh").is_some() {
                    if !self.api_allowed(&req).await {
                        return unauthorized();
                    }
                    if let Err(e) = self.act(name, Action::Refresh).await {
                        return json_answer(
                            StatusCode::BAD_GATEWAY,
                            &json!({"error": e.to_string()}),
                        );
                    }
                }
                match self.app(name).await {
                    Ok(Some(a)) => json_answer(StatusCode::OK, &json!(a)),
                    Ok(None) => json_answer(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("application {name} not found")}),
                    ),
                    Err(e) => {
                        json_answer(StatusCode::BAD_GATEWAY, &json!({"error": e.to_string()}))
                    }
                }
            }
            (Method::POST, ["api", "v1", "applications", name, verb]) => {
                let Some(action) = Action::parse(verb) else {
                    return json_answer(StatusCode::NOT_FOUND, &json!({"error": "no such action"}));
                };
                if !self.api_allowed(&req).await {
                    return unauthorized();
                }
                match self.act(name, action).await {
                    Ok(a) => json_answer(StatusCode::OK, &json!(a)),
                    Err(kube::Error::Api(e)) if e.code == 404 => json_answer(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("application {name} not found")}),
                    ),
                    Err(e) => {
                        json_answer(StatusCode::BAD_GATEWAY, &json!({"error": e.to_string()}))
                    }
                }
            }
            (Method::GET, ["api", "v1", "stream", "applications"]) => self.stream(),
            _ => page(
                StatusCode::NOT_FOUND,
                html::error("Not found", "There is nothing here."),
            ),
        }
    }

    /// The JSON API's actions: a bearer token (the admin password), or a session with its
    /// CSRF token in `X-CSRF-Token`.
    async fn api_allowed(&self, req: &Request<Bytes>) -> bool {
        if self.bearer_ok(req.headers()).await {
            return true;
        }
        match (
            self.session(req.headers()),
            header(req.headers(), "x-csrf-token"),
        ) {
            (Some((_, csrf)), Some(given)) => auth::same(given.as_bytes(), csrf.as_bytes()),
            _ => false,
        }
    }

    async fn login(&self, req: &Request<Bytes>) -> Response<Body> {
        let fields = form(req.body());
        let given = fields.get("password").cloned().unwrap_or_default();
        let Some(password) = self.password().await else {
            return page(StatusCode::SERVICE_UNAVAILABLE, html::login(false, true));
        };
        if given.is_empty() || !auth::same(given.as_bytes(), &password) {
            // Slow down guessing a little (the password is 32 random bytes).
            tokio::time::sleep(Duration::from_millis(300)).await;
            return page(StatusCode::UNAUTHORIZED, html::login(true, false));
        }
        let opened = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open(Instant::now());
        match opened {
            Some((id, _)) => {
                let secure = header(req.headers(), "x-forwarded-proto") == Some("https");
                redirect("/", Some(auth::set_cookie(&id, secure)))
            }
            None => page(
                StatusCode::SERVICE_UNAVAILABLE,
                html::error("Cannot log in", "No randomness for a session."),
            ),
        }
    }

    /// Server-sent events: one `data:` line per change of any Application (and a comment
    /// every 15 s so proxies keep the connection).
    fn stream(&self) -> Response<Body> {
        use hyper::body::Frame;
        let rx = self.changes.clone();
        let events = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
            let frame = if first {
                format!("data: {}\n\n", *rx.borrow_and_update())
            } else {
                tokio::select! {
                    r = rx.changed() => {
                        r.ok()?;
                        format!("data: {}\n\n", *rx.borrow_and_update())
                    }
                    _ = tokio::time::sleep(Duration::from_secs(15)) => ": keep-alive\n\n".to_string(),
                }
            };
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(frame))),
                (rx, false),
            ))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-store")
            .body(http_body_util::StreamBody::new(events).boxed_unsync())
            .expect("valid response")
    }
}

fn unauthorized() -> Response<Body> {
    json_answer(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "log in, or send the admin password as a bearer token"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_keep_bad_escapes() {
        let f = form(b"password=a+b%21c&csrf=x%2&empty=&flag");
        assert_eq!(f["password"], "a b!c");
        assert_eq!(f["csrf"], "x%2");
        assert_eq!(f["empty"], "");
        assert_eq!(f["flag"], "");
    }

    #[test]
    fn actions_write_only_their_annotation() {
        let p = Action::Pause.patch();
        assert_eq!(p["metadata"]["annotations"][PAUSE_ANNOTATION], "true");
        let r = Action::Resume.patch();
        assert!(r["metadata"]["annotations"][PAUSE_ANNOTATION].is_null());
        assert!(r["metadata"]["annotations"][REFRESH_ANNOTATIONS[0]].is_string());
        assert_eq!(
            Action::Pause.patch()["metadata"]["annotations"]
                .as_object()
                .map(|o| o.len()),
            Some(1)
        );
        assert!(
            Action::Sync.patch()["metadata"]["annotations"][SYNC_ANNOTATION]
                .as_str()
                .unwrap()
                .starts_with("ui ")
        );
        assert_eq!(Action::parse("delete"), None);
    }
}
