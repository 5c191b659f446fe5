//! Request handling: discovery, OpenAPI, and get / list / watch / create / update / patch /
//! delete of every served resource, with the semantics kube-apiserver gives them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::defaults;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, ApplyOutcome, Part};
use crate::openapi;
use crate::patch;
use crate::registry::{Registry, ResourceDef, Schema, defs_from_crd};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Body;
use crate::shape::Shape;
use crate::store::{Change, EventType, Store, Txn, Write};
use crate::table::{self, Include};
use crate::validation;

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// The Kubernetes version this store reports (kubectl picks its client by it).
pub const KUBE_VERSION: &str = "v1.33.0+metalgate";

/// Shared state of a running store.
pub struct State {
    /// Objects.
    pub store: Store,
    /// Served kinds.
    pub registry: Registry,
    /// The bearer token.
    pub token: String,
    /// Bookmark period for watches that ask for them.
    pub bookmark_interval: Duration,
    /// Extra validation of writes (admission).
    pub admission: Vec<Arc<dyn Admission>>,
}

/// Validation a write must pass beyond its schema, like a validating admission webhook.
pub trait Admission: Send + Sync {
    /// Problems with `obj` (a create or update of `group`/`kind`, spec part), given the other
    /// objects of the same resource; empty when it may be written.
    fn validate(
        &self,
        group: &str,
        kind: &str,
        obj: &Value,
        others: &[Arc<Value>],
    ) -> Vec<crate::Cause>;
}

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn full(status: StatusCode, body: Vec<u8>, ct: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ct)
        .body(
            Full::new(Bytes::from(body))
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
        .expect("valid response")
}

fn json_response(status: StatusCode, v: &Value, warnings: &[String]) -> Response<Body> {
    let mut r = full(
        status,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
        &[],
    )
}

/// Handle one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match route(&state, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

struct Ctx {
    method: Method,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(|a| a.split(',').next().unwrap_or("").contains("as=Table"))
            .unwrap_or(false)
    }
    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }
    fn manager(&self, default_op: &str) -> String {
        if let Some(m) = self.q("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let base = ua.split('/').next().unwrap_or("unknown");
        if base.is_empty() {
            default_op.to_string()
        } else {
            base.to_string()
        }
    }
    fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }
    fn validation(&self) -> FieldValidation {
        match self.q("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
    fn body_value(&self) -> ApiResult<Value> {
        parse_body(&self.body, &self.content_type())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

fn parse_body(body: &[u8], ct: &str) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media(ct));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|e| ApiError::bad_request(format!("request body is not UTF-8: {e}")))?;
        let v: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return Ok(v);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    let public = matches!(
        path.as_str(),
        "/version" | "/healthz" | "/readyz" | "/livez"
    );
    if !public {
        let ok = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), state.token.as_bytes()));
        if !ok {
            return Err(ApiError::unauthorized());
        }
    }
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            let mut err = ApiError::bad_request(format!("reading request body: {e}"));
            if e.to_string().contains("length limit") {
                err.code = 413;
                err.reason = "RequestEntityTooLarge";
                err.message = "Request entity too large: limit is 3145728".into();
            }
            err
        })?
        .to_bytes();
    let ctx = Ctx {
        method: parts.method.clone(),
        query,
        headers: parts.headers,
        body,
    };

    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v, &[]));
    match segs.as_slice() {
        ["version"] => ok(json!({
            "major": "1", "minor": "33", "gitVersion": KUBE_VERSION, "gitCommit": "metalgate",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust",
            "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        })),
        ["healthz"] | ["readyz"] | ["livez"] => {
            Ok(full(StatusCode::OK, b"ok".to_vec(), "text/plain"))
        }
        ["api"] => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        ["apis"] => ok(group_list(&state.registry)),
        ["openapi", "v3"] => ok(openapi::index(&state.registry)),
        ["openapi", "v3", "api", v] => gv_openapi(state, "", v),
        ["openapi", "v3", "apis", g, v] => gv_openapi(state, g, v),
        ["api", "v1", rest @ ..] => resource_request(state, &ctx, "", "v1", rest).await,
        ["apis", g] => {
            let groups = state.registry.groups();
            match groups.get(*g) {
                Some(vs) => ok(group_entry(g, vs)),
                None => Err(ApiError::no_route(&path)),
            }
        }
        ["apis", g, v, rest @ ..] => resource_request(state, &ctx, g, v, rest).await,
        _ => Err(ApiError::no_route(&path)),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn gv_openapi(state: &State, g: &str, v: &str) -> ApiResult<Response<Body>> {
    if !state.registry.serves_group_version(g, v) {
        return Err(ApiError::no_route(&format!("/openapi/v3/{g}/{v}")));
    }
    Ok(json_response(
        StatusCode::OK,
        &openapi::document(&state.registry, g, v),
        &[],
    ))
}

fn group_entry(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(reg: &Registry, g: &str, v: &str) -> ApiResult<Value> {
    if !reg.serves_group_version(g, v) {
        return Err(ApiError::no_route(&format!("{g}/{v}")));
    }
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    let resources: Vec<Value> = reg
        .all()
        .iter()
        .filter(|d| d.group == g && d.version == v)
        .flat_map(|d| d.discovery_entries())
        .collect();
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// A parsed resource path.
struct Target {
    admission: Vec<Arc<dyn Admission>>,
    def: Arc<ResourceDef>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(reg: &Registry, g: &str, v: &str, rest: &[&str]) -> ApiResult<Target> {
    let find = |plural: &str| {
        reg.by_plural(g, v, plural).ok_or_else(|| {
            let gv = if g.is_empty() {
                v.to_string()
            } else {
                format!("{g}/{v}")
            };
            ApiError::no_route(&format!("{gv}, resource {plural:?}"))
        })
    };
    let s = |x: &str| Some(x.to_string());
    match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            let def = find(plural)?;
            if !def.namespaced {
                return Err(ApiError::no_route(&format!(
                    "{} is not namespaced",
                    def.plural
                )));
            }
            match tail {
                [] => Ok(Target {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: None,
                    sub: None,
                }),
                [name] => Ok(Target {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: s(name),
                    sub: None,
                }),
                [name, sub] => Ok(Target {
                    admission: Vec::new(),
                    def,
                    namespace: s(ns),
                    name: s(name),
                    sub: s(sub),
                }),
                _ => Err(ApiError::no_route(&rest.join("/"))),
            }
        }
        [plural] => Ok(Target {
            admission: Vec::new(),
            def: find(plural)?,
            namespace: None,
            name: None,
            sub: None,
        }),
        [plural, name] => {
            let def = find(plural)?;
            if def.namespaced {
                return Err(ApiError::no_route(&rest.join("/")));
            }
            Ok(Target {
                admission: Vec::new(),
                def,
                namespace: None,
                name: s(name),
                sub: None,
            })
        }
        [plural, name, sub] => {
            let def = find(plural)?;
            if def.namespaced {
                return Err(ApiError::no_route(&rest.join("/")));
            }
            Ok(Target {
                admission: Vec::new(),
                def,
                namespace: None,
                name: s(name),
                sub: s(sub),
            })
        }
        _ => Err(ApiError::no_route(&rest.join("/"))),
    }
}

async fn resource_request(
    state: &Arc<State>,
    ctx: &Ctx,
    g: &str,
    v: &str,
    rest: &[&str],
) -> ApiResult<Response<Body>> {
    if rest.is_empty() {
        if ctx.method != Method::GET {
            return Err(ApiError::method_not_allowed("discovery is read-only"));
        }
        return Ok(json_response(
            StatusCode::OK,
            &resource_list(&state.registry, g, v)?,
            &[],
        ));
    }
    let mut t = parse_target(&state.registry, g, v, rest)?;
    t.admission = state.admission.clone();
    let part = match t.sub.as_deref() {
        None => {
            if t.def.has_status {
                Part::Spec
            } else {
                Part::Whole
            }
        }
        Some("status") if t.def.has_status => Part::Status,
        Some("finalize") if t.def.kind == "Namespace" => Part::Spec,
        Some(other) => {
            return Err(ApiError::no_route(&format!(
                "subresource {other:?} of {}",
                t.def.plural
            )));
        }
    };
    match (&ctx.method, &t.name) {
        (&Method::GET, None) => {
            if ctx.q("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(state.clone(), ctx, &t).await
            } else {
                list(state, ctx, &t).await
            }
        }
        (&Method::GET, Some(name)) => {
            let key = t.def.key(t.namespace.as_deref(), name);
            let obj = state
                .store
                .get(&key)
                .await
                .ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
            let obj = present(&t.def, &obj);
            if ctx.wants_table() {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let include = Include::parse(ctx.q("includeObject"));
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&t.def, &[Arc::new(obj)], include, rv, None),
                    &[],
                ));
            }
            Ok(json_response(StatusCode::OK, &obj, &[]))
        }
        (&Method::POST, None) => create(state, ctx, &t).await,
        (&Method::PUT, Some(name)) => update(state, ctx, &t, name, part).await,
        (&Method::PATCH, Some(name)) => patch_object(state, ctx, &t, name, part).await,
        (&Method::DELETE, Some(name)) => delete(state, ctx, &t, name).await,
        (&Method::DELETE, None) => delete_collection(state, ctx, &t).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported here"
        ))),
    }
}

/// An object as a given version serves it (CRD versions share storage, no conversion).
fn present(def: &ResourceDef, obj: &Value) -> Value {
    if def.is_events_v1() {
        return crate::convert::event_from_core(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

fn list_prefix(t: &Target) -> String {
    match &t.namespace {
        Some(ns) => format!("{}{ns}/", t.def.storage_prefix()),
        None => t.def.storage_prefix(),
    }
}

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn from(ctx: &Ctx) -> ApiResult<Self> {
        Ok(Filter {
            labels: LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(ctx.q("fieldSelector").unwrap_or(""))?,
        })
    }
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }
}

fn encode_continue(key: &str, rv: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"start": key, "rv": rv}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(String, u64)> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data or JSON");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["start"].as_str().ok_or_else(bad)?.to_string(),
        v["rv"].as_u64().ok_or_else(bad)?,
    ))
}

async fn list(state: &Arc<State>, ctx: &Ctx, t: &Target) -> ApiResult<Response<Body>> {
    let filter = Filter::from(ctx)?;
    let (all, rv) = state.store.list(&list_prefix(t)).await;
    let limit: usize = match ctx.q("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let start = match ctx.q("continue") {
        Some(c) if !c.is_empty() => Some(decode_continue(c)?.0),
        _ => None,
    };
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    for (key, obj) in all.iter() {
        if let Some(s) = &start {
            if key <= s {
                continue;
            }
        }
        if !filter.matches(obj) {
            continue;
        }
        if limit > 0 && items.len() >= limit {
            remaining += 1;
            continue;
        }
        items.push((key.clone(), Arc::new(present(&t.def, obj))));
    }
    if remaining > 0 {
        if let Some((k, _)) = items.last() {
            next = Some(encode_continue(k, rv));
        }
    }
    if ctx.wants_table() {
        let objs: Vec<Arc<Value>> = items.into_iter().map(|(_, o)| o).collect();
        let include = Include::parse(ctx.q("includeObject"));
        return Ok(json_response(
            StatusCode::OK,
            &table::table(&t.def, &objs, include, rv, next.as_deref()),
            &[],
        ));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
        meta["remainingItemCount"] = json!(remaining);
    }
    let items: Vec<Value> = items.into_iter().map(|(_, o)| (*o).clone()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(), "metadata": meta, "items": items}),
        &[],
    ))
}

async fn watch(state: Arc<State>, ctx: &Ctx, t: &Target) -> ApiResult<Response<Body>> {
    let filter = Filter::from(ctx)?;
    let prefix = list_prefix(t);
    let name_key = t.name.clone();
    let def = t.def.clone();
    let table = ctx.wants_table();
    let include = Include::parse(ctx.q("includeObject"));
    let bookmarks = ctx.q("allowWatchBookmarks") == Some("true");
    let send_initial = ctx.q("sendInitialEvents") == Some("true");
    let timeout = ctx
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let from = ctx.q("resourceVersion").unwrap_or("");

    let (initial, replay, mut rx, mut last_rv) = if from.is_empty() || from == "0" || send_initial {
        let (snap, rx, rv) = state.store.snapshot_and_watch(&prefix).await;
        (
            snap.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
            Vec::new(),
            rx,
            rv,
        )
    } else {
        let n: u64 = from
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {from:?}")))?;
        match state.store.watch_from(n).await {
            Ok((replay, rx, _)) => (Vec::new(), replay, rx, n),
            // Like kube-apiserver: the watch starts, and its first event says the version is
            // gone, which tells clients (kube's watcher, client-go's reflector) to list again.
            Err(e) => {
                let mut line =
                    serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
                        .unwrap_or_default();
                line.push(b'\n');
                return Ok(full(StatusCode::OK, line, "application/json"));
            }
        }
    };

    let (tx, out) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(256);
    let mut epoch = state.store.epoch();
    let interval = state.bookmark_interval;
    let frame = move |ty: &str, obj: &Value| -> Result<Frame<Bytes>, Infallible> {
        let object = if table && ty != "BOOKMARK" && ty != "ERROR" {
            table::table_for_one(&def, obj, include)
        } else if ty == "ERROR" || ty == "BOOKMARK" {
            obj.clone()
        } else {
            present(&def, obj)
        };
        let mut line =
            serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Ok(Frame::data(Bytes::from(line)))
    };
    let def2 = t.def.clone();
    let matches = move |c: &Change| -> bool {
        c.key.starts_with(&prefix)
            && name_key
                .as_deref()
                .is_none_or(|n| c.object["metadata"]["name"].as_str() == Some(n))
            && filter.matches(&c.object)
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let _ = epoch.borrow_and_update();
        for o in initial {
            if matches(&Change {
                rv: 0,
                kind: EventType::Added,
                key: key_of(&def2, &o),
                object: o.clone(),
            }) && tx.send(frame("ADDED", &o)).await.is_err()
            {
                return;
            }
        }
        if send_initial {
            let bm = json!({"kind": def2.kind, "apiVersion": def2.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(frame("BOOKMARK", &bm)).await.is_err() {
                return;
            }
        }
        for c in replay {
            last_rv = c.rv;
            if matches(&c) && tx.send(frame(c.kind.as_str(), &c.object)).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({"kind": def2.kind, "apiVersion": def2.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(frame("BOOKMARK", &bm)).await.is_err() { return; }
                }
                r = rx.recv() => match r {
                    Ok(c) => {
                        if c.rv <= last_rv { continue; }
                        last_rv = c.rv;
                        if matches(&c) && tx.send(frame(c.kind.as_str(), &c.object)).await.is_err() { return; }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let st = ApiError::gone("too old resource version: the watch fell behind").to_status();
                        let _ = tx.send(frame("ERROR", &st)).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    let body = StreamBody::new(stream).boxed();
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(body)
        .map(|mut r| {
            // HTTP/2 forbids transfer-encoding; hyper adds chunking for HTTP/1.1 on its own.
            r.headers_mut().remove(header::TRANSFER_ENCODING);
            r
        })
        .expect("valid response"))
}

fn key_of(def: &ResourceDef, o: &Value) -> String {
    def.key(
        o["metadata"]["namespace"]
            .as_str()
            .filter(|_| def.namespaced),
        o["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

// -------------------------------------------------------------------------------------------
// Writes

fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn check_identity(t: &Target, obj: &mut Value, name_from_url: Option<&str>) -> ApiResult<()> {
    let want_av = t.def.api_version();
    if let Some(av) = obj["apiVersion"].as_str() {
        if av != want_av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    if let Some(k) = obj["kind"].as_str() {
        if k != t.def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.def.kind
            )));
        }
    }
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    obj["apiVersion"] = json!(want_av);
    obj["kind"] = json!(t.def.kind);
    if t.def.is_events_v1() {
        *obj = crate::convert::event_to_core(obj);
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if let Some(n) = name_from_url {
        match obj["metadata"]["name"].as_str() {
            None => obj["metadata"]["name"] = json!(n),
            Some(b) if b != n => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({b}) does not match the name on the URL ({n})"
                )));
            }
            _ => {}
        }
    }
    if t.def.namespaced {
        let ns = t.namespace.clone().unwrap_or_default();
        match obj["metadata"]["namespace"].as_str() {
            None => obj["metadata"]["namespace"] = json!(ns),
            Some("") => obj["metadata"]["namespace"] = json!(ns),
            Some(b) if b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.shift_remove("namespace");
    }
    Ok(())
}

fn namespace_must_exist(txn: &Txn, t: &Target) -> ApiResult<()> {
    if let Some(ns) = &t.namespace {
        match txn.get(&format!("core/namespaces//{ns}")) {
            None => return Err(ApiError::not_found("namespaces", "", ns)),
            Some(n) if n["status"]["phase"] == "Terminating" => {
                let mut e = ApiError::bad_request(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ));
                e.code = 403;
                e.reason = "Forbidden";
                return Err(e);
            }
            _ => {}
        }
    }
    Ok(())
}

fn strip_meta_status(v: &Value) -> Value {
    let mut o = v.clone();
    if let Some(m) = o.as_object_mut() {
        m.shift_remove("metadata");
        m.shift_remove("status");
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
    }
    o
}

fn normalized_for_noop(v: &Value) -> Value {
    let mut o = v.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.shift_remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf {
                if let Some(em) = e.as_object_mut() {
                    em.shift_remove("time");
                }
            }
        }
    }
    o
}

struct Prepared {
    obj: Value,
    warnings: Vec<String>,
    noop: bool,
    delete: bool,
}

/// The write pipeline every create, update, patch and apply goes through.
#[allow(clippy::too_many_arguments)]
fn prepare(
    txn: &Txn,
    t: &Target,
    part: Part,
    old: Option<&Value>,
    mut new: Value,
    manager: &str,
    validation_mode: FieldValidation,
    track: bool,
) -> ApiResult<Prepared> {
    let def = &t.def;
    let now = now();
    let name = new["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Which part of the object this write may change.
    match (part, old) {
        (Part::Status, Some(o)) => {
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            let mf = new["metadata"]["managedFields"].clone();
            new = o.clone();
            new["status"] = status;
            if !mf.is_null() {
                new["metadata"]["managedFields"] = mf;
            }
        }
        (Part::Status, None) => return Err(ApiError::not_found(&def.plural, &def.group, &name)),
        (Part::Spec, Some(o)) => match o.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        },
        (Part::Spec, None) => {
            if !matches!(def.kind.as_str(), "Node" | "Namespace") {
                if let Some(m) = new.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        }
        (Part::Whole, _) => {}
    }

    // System metadata.
    {
        let meta = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        match old {
            Some(o) => {
                for k in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    match o["metadata"].get(k) {
                        Some(v) => {
                            meta.insert(k.into(), v.clone());
                        }
                        None => {
                            meta.shift_remove(k);
                        }
                    }
                }
            }
            None => {
                meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                meta.insert("creationTimestamp".into(), json!(now));
                meta.shift_remove("deletionTimestamp");
                meta.shift_remove("deletionGracePeriodSeconds");
                meta.shift_remove("generation");
            }
        }
        meta.shift_remove("resourceVersion");
        meta.shift_remove("selfLink");
    }

    // Structure: types and unknown fields.
    let findings = match &def.schema {
        Schema::Builtin => validation::structure_builtin(def, &new),
        Schema::Crd(schema) => validation::structure_custom(schema, &mut new),
    };
    if !findings.unknown.is_empty() && validation_mode == FieldValidation::Strict {
        return Err(ApiError::strict_decoding(&findings.unknown));
    }
    if !findings.causes.is_empty() {
        return Err(ApiError::invalid(&def.kind, &name, findings.causes));
    }
    let mut warnings = Vec::new();
    if !findings.unknown.is_empty() {
        match validation_mode {
            FieldValidation::Strict => return Err(ApiError::strict_decoding(&findings.unknown)),
            FieldValidation::Warn => warnings.extend(
                findings
                    .unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}")),
            ),
            FieldValidation::Ignore => {}
        }
        validation::prune(&mut new, &findings.unknown);
    }

    // Defaults and allocation.
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Service") if part != Part::Status => {
            let key = t.def.key(t.namespace.as_deref(), &name);
            let others: Vec<Arc<Value>> = txn
                .list(&def.storage_prefix())
                .into_iter()
                .filter(|(k, _)| *k != key)
                .map(|(_, o)| o)
                .collect();
            defaults::service(&mut new, old, &others)?;
        }
        ("", "Namespace") => defaults::namespace(&mut new),
        ("", "Secret") => defaults::secret(&mut new),
        ("apiextensions.k8s.io", "CustomResourceDefinition") if part != Part::Status => {
            defaults::crd_status(&mut new, &now)
        }
        _ => {}
    }

    // Documented rules.
    let mut causes = validation::semantics(def, &new);
    if causes.is_empty() && part != Part::Status && !t.admission.is_empty() {
        let key = def.key(t.namespace.as_deref(), &name);
        let others: Vec<Arc<Value>> = txn
            .list(&def.storage_prefix())
            .into_iter()
            .filter(|(k, _)| *k != key)
            .map(|(_, o)| o)
            .collect();
        for a in &t.admission {
            causes.extend(a.validate(&def.group, &def.kind, &new, &others));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&def.kind, &name, causes));
    }

    // generation moves when anything outside metadata and status changes.
    let has_spec = !matches!(
        def.kind.as_str(),
        "ConfigMap" | "Secret" | "Endpoints" | "Event"
    ) || matches!(def.schema, Schema::Crd(_));
    if has_spec {
        let generation = match old {
            None => 1,
            Some(o) => {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                if strip_meta_status(o) != strip_meta_status(&new) {
                    g + 1
                } else {
                    g
                }
            }
        };
        new["metadata"]["generation"] = json!(generation);
    }

    if track {
        let shape = Shape::new(def);
        fields::track_update(old, &mut new, &shape, part, manager, &now);
    }

    let delete = new["metadata"]["deletionTimestamp"].is_string()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    let noop = old.is_some_and(|o| normalized_for_noop(o) == normalized_for_noop(&new));
    Ok(Prepared {
        obj: new,
        warnings,
        noop,
        delete,
    })
}

/// After a CRD changes, serve (or stop serving) its kinds.
fn crd_side_effects(state: &State, def: &ResourceDef, obj: &Value, deleted: bool) {
    if def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition" {
        if let Some(name) = obj["metadata"]["name"].as_str() {
            let defs = if deleted {
                Vec::new()
            } else {
                defs_from_crd(obj)
            };
            state.registry.set_crd(name, defs);
        }
    }
}

/// Writes that follow from deleting an object: a CRD's objects, a namespace's contents.
fn cascade(txn: &Txn, reg: &Registry, def: &ResourceDef, obj: &Value, now: &str) -> Vec<Write> {
    let mut out = Vec::new();
    if def.kind == "CustomResourceDefinition" {
        let group = obj["spec"]["group"].as_str().unwrap_or_default();
        let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
        for (k, _) in txn.list(&format!("{group}/{plural}/")) {
            out.push(Write::Delete(k));
        }
    }
    if def.kind == "Namespace" && def.group.is_empty() {
        let ns = obj["metadata"]["name"].as_str().unwrap_or_default();
        for p in namespaced_prefixes(reg, ns) {
            for (k, o) in txn.list(&p) {
                if o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
                {
                    if o["metadata"]["deletionTimestamp"].is_null() {
                        let mut o = (*o).clone();
                        o["metadata"]["deletionTimestamp"] = json!(now);
                        out.push(Write::Put(k, o));
                    }
                } else {
                    out.push(Write::Delete(k));
                }
            }
        }
    }
    out
}

/// The storage prefixes of everything namespaced in `ns`.
fn namespaced_prefixes(reg: &Registry, ns: &str) -> Vec<String> {
    let mut prefixes: Vec<String> = reg
        .all()
        .iter()
        .filter(|d| d.namespaced)
        .map(|d| format!("{}{ns}/", d.storage_prefix()))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Whether `ns` holds nothing once the keys in `removing` are gone.
fn empty_after(txn: &Txn, reg: &Registry, ns: &str, removing: &[String]) -> bool {
    !namespaced_prefixes(reg, ns)
        .iter()
        .flat_map(|p| txn.list(p))
        .any(|(k, _)| !removing.contains(&k))
}

/// If `ns` is terminating and holds nothing more, it can go.
fn finish_namespace(txn: &Txn, reg: &Registry, ns: &str, removing: &[String]) -> Option<Write> {
    let key = format!("core/namespaces//{ns}");
    let n = txn.get(&key)?;
    if n["status"]["phase"] != "Terminating" {
        return None;
    }
    empty_after(txn, reg, ns, removing).then_some(Write::Delete(key))
}

async fn commit_one(
    state: &State,
    txn: &mut Txn<'_>,
    t: &Target,
    key: String,
    p: Prepared,
) -> ApiResult<Value> {
    let now = now();
    let mut writes = Vec::new();
    let deleted = p.delete;
    if deleted {
        writes.extend(cascade(txn, &state.registry, &t.def, &p.obj, &now));
        writes.push(Write::Delete(key.clone()));
        if let Some(ns) = p.obj["metadata"]["namespace"].as_str() {
            let removing: Vec<String> = writes
                .iter()
                .filter_map(|w| match w {
                    Write::Delete(k) => Some(k.clone()),
                    _ => None,
                })
                .collect();
            if let Some(w) = finish_namespace(txn, &state.registry, ns, &removing) {
                writes.push(w);
            }
        }
    } else {
        writes.push(Write::Put(key.clone(), p.obj.clone()));
    }
    let stored = txn.commit(writes)?;
    let obj = stored
        .into_iter()
        .find(|o| {
            o["metadata"]["name"] == p.obj["metadata"]["name"]
                && o["kind"] == p.obj["kind"]
                && o["metadata"]["namespace"] == p.obj["metadata"]["namespace"]
        })
        .map(|o| (*o).clone())
        .unwrap_or(p.obj);
    crd_side_effects(state, &t.def, &obj, deleted);
    Ok(obj)
}

async fn create(state: &Arc<State>, ctx: &Ctx, t: &Target) -> ApiResult<Response<Body>> {
    let mut obj = ctx.body_value()?;
    check_identity(t, &mut obj, None)?;
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        if let Some(g) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| !g.is_empty())
        {
            obj["metadata"]["name"] = json!(generate_name(g));
        }
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut txn = state.store.txn().await;
    namespace_must_exist(&txn, t)?;
    let key = t.def.key(t.namespace.as_deref(), &name);
    if !name.is_empty() && txn.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.def.plural, &t.def.group, &name));
    }
    let manager = ctx.manager("create");
    let part = if t.def.has_status {
        Part::Spec
    } else {
        Part::Whole
    };
    let p = prepare(&txn, t, part, None, obj, &manager, ctx.validation(), true)?;
    let warnings = p.warnings.clone();
    if ctx.dry_run() {
        return Ok(json_response(
            StatusCode::CREATED,
            &present(&t.def, &p.obj),
            &warnings,
        ));
    }
    let obj = commit_one(state, &mut txn, t, key, p).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &present(&t.def, &obj),
        &warnings,
    ))
}

fn check_precondition(t: &Target, name: &str, body: &Value, old: &Value) -> ApiResult<()> {
    if let Some(rv) = body["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    if let Some(uid) = body["metadata"]["uid"].as_str().filter(|s| !s.is_empty()) {
        if Some(uid) != old["metadata"]["uid"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    Ok(())
}

async fn update(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &Target,
    name: &str,
    part: Part,
) -> ApiResult<Response<Body>> {
    let mut obj = ctx.body_value()?;
    check_identity(t, &mut obj, Some(name))?;
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn.get(&key);
    let manager = ctx.manager("update");
    let create_on_update =
        matches!(t.def.kind.as_str(), "Endpoints" | "Lease" | "Event") && part != Part::Status;
    let old = match old {
        Some(o) => {
            check_precondition(t, name, &obj, &o)?;
            Some(o)
        }
        None if create_on_update => {
            namespace_must_exist(&txn, t)?;
            None
        }
        None => return Err(ApiError::not_found(&t.def.plural, &t.def.group, name)),
    };
    let p = prepare(
        &txn,
        t,
        part,
        old.as_deref(),
        obj,
        &manager,
        ctx.validation(),
        true,
    )?;
    finish_write(state, ctx, &mut txn, t, key, p, old.is_none()).await
}

async fn finish_write(
    state: &Arc<State>,
    ctx: &Ctx,
    txn: &mut Txn<'_>,
    t: &Target,
    key: String,
    p: Prepared,
    created: bool,
) -> ApiResult<Response<Body>> {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let warnings = p.warnings.clone();
    if ctx.dry_run() {
        return Ok(json_response(status, &present(&t.def, &p.obj), &warnings));
    }
    if p.noop {
        let current = txn.get(&key).map(|o| (*o).clone()).unwrap_or(p.obj);
        return Ok(json_response(status, &present(&t.def, &current), &warnings));
    }
    let obj = commit_one(state, txn, t, key, p).await?;
    Ok(json_response(status, &present(&t.def, &obj), &warnings))
}

async fn patch_object(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &Target,
    name: &str,
    part: Part,
) -> ApiResult<Response<Body>> {
    let ct = ctx.content_type();
    let body = ctx.body_value()?;
    let shape = Shape::new(&t.def);
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn.get(&key);

    if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+json" {
        let manager = ctx
            .q("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::bad_request("PATCH /apply requires fieldManager to be set"))?;
        let force = ctx.q("force") == Some("true");
        let mut applied = body;
        check_identity(t, &mut applied, Some(name))?;
        if let Some(o) = &old {
            check_precondition(t, name, &applied, o)?;
        } else {
            if part == Part::Status {
                return Err(ApiError::not_found(&t.def.plural, &t.def.group, name));
            }
            namespace_must_exist(&txn, t)?;
        }
        let base = match &old {
            Some(o) => (**o).clone(),
            None => {
                let mut b = json!({"apiVersion": t.def.api_version(), "kind": t.def.kind, "metadata": {"name": name}});
                if let Some(ns) = &t.namespace {
                    b["metadata"]["namespace"] = json!(ns);
                }
                b
            }
        };
        // Validate the applied configuration itself: unknown fields there are the user's.
        let mut probe = applied.clone();
        let findings = match &t.def.schema {
            Schema::Builtin => validation::structure_builtin(&t.def, &probe),
            Schema::Crd(s) => validation::structure_custom(s, &mut probe),
        };
        if !findings.unknown.is_empty() && ctx.validation() == FieldValidation::Strict {
            return Err(ApiError::strict_decoding(&findings.unknown));
        }
        if !findings.unknown.is_empty() {
            validation::prune(&mut applied, &findings.unknown);
        }
        let merged = match fields::apply(&base, &applied, &shape, part, manager, force, &now()) {
            ApplyOutcome::Applied(m) => m,
            ApplyOutcome::Conflicts(c) => {
                return Err(ApiError::apply_conflict(&t.def.plural, name, c));
            }
        };
        let mut p = prepare(
            &txn,
            t,
            part,
            old.as_deref(),
            merged,
            manager,
            ctx.validation(),
            false,
        )?;
        p.warnings.extend(
            findings
                .unknown
                .iter()
                .map(|f| format!("unknown field {f:?}")),
        );
        return finish_write(state, ctx, &mut txn, t, key, p, old.is_none()).await;
    }

    let old = old.ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
    // Patches address the object as the requested version serves it.
    let mut obj = present(&t.def, &old);
    match ct.as_str() {
        "application/merge-patch+json" => patch::merge_patch(&mut obj, &body),
        "application/json-patch+json" => patch::json_patch(&mut obj, &body)?,
        "application/strategic-merge-patch+json" => {
            if shape.is_custom() {
                return Err(ApiError::unsupported_media(
                    "application/strategic-merge-patch+json (strategic merge patch is not supported for custom resources)",
                ));
            }
            patch::strategic_merge_patch(&mut obj, &body, &shape)?;
        }
        other => return Err(ApiError::unsupported_media(other)),
    }
    check_precondition(t, name, &body, &old)?;
    check_identity(t, &mut obj, Some(name))?;
    let manager = ctx.manager("patch");
    let p = prepare(
        &txn,
        t,
        part,
        Some(&old),
        obj,
        &manager,
        ctx.validation(),
        true,
    )?;
    finish_write(state, ctx, &mut txn, t, key, p, false).await
}

async fn delete(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &Target,
    name: &str,
) -> ApiResult<Response<Body>> {
    let opts: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        parse_body(&ctx.body, "application/json").unwrap_or(json!({}))
    };
    let mut txn = state.store.txn().await;
    let key = t.def.key(t.namespace.as_deref(), name);
    let old = txn
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.def.plural, &t.def.group, name))?;
    if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str() {
        if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    if let Some(uid) = opts["preconditions"]["uid"].as_str() {
        if Some(uid) != old["metadata"]["uid"].as_str() {
            return Err(ApiError::conflict(&t.def.plural, &t.def.group, name));
        }
    }
    let dry = ctx.dry_run()
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let (resp, code) = delete_in_txn(state, &mut txn, t, &key, &old, dry)?;
    Ok(json_response(code, &present(&t.def, &resp), &[]))
}

fn delete_in_txn(
    state: &State,
    txn: &mut Txn<'_>,
    t: &Target,
    key: &str,
    old: &Value,
    dry: bool,
) -> ApiResult<(Value, StatusCode)> {
    let now = now();
    let has_finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let is_ns = t.def.kind == "Namespace" && t.def.group.is_empty();
    if has_finalizers || is_ns {
        let mut o = old.clone();
        if o["metadata"]["deletionTimestamp"].is_null() {
            o["metadata"]["deletionTimestamp"] = json!(now);
            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if is_ns {
            o["status"]["phase"] = json!("Terminating");
        }
        if dry {
            return Ok((o, StatusCode::OK));
        }
        let mut writes = vec![Write::Put(key.to_string(), o.clone())];
        if is_ns {
            writes.extend(cascade(txn, &state.registry, &t.def, &o, &now));
            let ns = o["metadata"]["name"].as_str().unwrap_or_default();
            let removing: Vec<String> = writes
                .iter()
                .filter_map(|w| match w {
                    Write::Delete(k) => Some(k.clone()),
                    _ => None,
                })
                .collect();
            // Everything left is being deleted: the namespace goes at once.
            if empty_after(txn, &state.registry, ns, &removing) {
                writes.push(Write::Delete(key.to_string()));
            }
        }
        let stored = txn.commit(writes)?;
        let out = stored
            .into_iter()
            .find(|s| s["metadata"]["uid"] == o["metadata"]["uid"])
            .map(|s| (*s).clone())
            .unwrap_or(o);
        return Ok((out, StatusCode::OK));
    }
    if dry {
        return Ok((old.clone(), StatusCode::OK));
    }
    let mut writes = cascade(txn, &state.registry, &t.def, old, &now);
    writes.push(Write::Delete(key.to_string()));
    if let Some(ns) = old["metadata"]["namespace"].as_str() {
        let removing: Vec<String> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        if let Some(w) = finish_namespace(txn, &state.registry, ns, &removing) {
            writes.push(w);
        }
    }
    let stored = txn.commit(writes)?;
    crd_side_effects(state, &t.def, old, true);
    let out = stored
        .into_iter()
        .find(|s| s["metadata"]["uid"] == old["metadata"]["uid"])
        .map(|s| (*s).clone())
        .unwrap_or_else(|| old.clone());
    Ok((out, StatusCode::OK))
}

async fn delete_collection(state: &Arc<State>, ctx: &Ctx, t: &Target) -> ApiResult<Response<Body>> {
    let filter = Filter::from(ctx)?;
    let mut txn = state.store.txn().await;
    let victims: Vec<(String, Arc<Value>)> = txn
        .list(&list_prefix(t))
        .into_iter()
        .filter(|(_, o)| filter.matches(o))
        .collect();
    let mut items = Vec::new();
    for (k, o) in victims {
        let (v, _) = delete_in_txn(state, &mut txn, t, &k, &o, ctx.dry_run())?;
        items.push(present(&t.def, &v));
    }
    let rv = txn.resource_version();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        &[],
    ))
}
