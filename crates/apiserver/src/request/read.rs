//! Reads: get, list (selectors, paging with continue tokens, Tables) and watch (resume from a
//! resourceVersion, bookmarks, 410 Gone), each object presented as its version serves it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::decode::Ctx;
use super::response::{Body, full, json_response};
use super::state::State;
use super::target::{ResourcePath, key_of};
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType};
use crate::table::{self, Include};

/// An object as a given version serves it (CRD versions share storage, no conversion).
pub(super) fn present(def: &ResourceDef, obj: &Value) -> Value {
    if def.is_events_v1() {
        return crate::convert::event_from_core(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

pub(super) fn list_prefix(t: &ResourcePath) -> String {
    match &t.namespace {
        Some(ns) => format!("{}{ns}/", t.def.storage_prefix()),
        None => t.def.storage_prefix(),
    }
}

pub(super) struct Filter {
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
}

impl Filter {
    pub(super) fn from(ctx: &Ctx) -> ApiResult<Self> {
        Ok(Filter {
            labels: LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(ctx.q("fieldSelector").unwrap_or(""))?,
        })
    }
    pub(super) fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }
}

pub(super) fn encode_continue(key: &str, rv: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"start": key, "rv": rv}).to_string())
}

pub(super) fn decode_continue(token: &str) -> ApiResult<(String, u64)> {
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

pub(super) async fn list(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
) -> ApiResult<Response<Body>> {
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

pub(super) async fn watch(
    state: Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
) -> ApiResult<Response<Body>> {
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
    let matches = move |c: &Change| -> Option<(&'static str, Arc<Value>)> {
        let here = c.key.starts_with(&prefix)
            && name_key
                .as_deref()
                .is_none_or(|n| c.object["metadata"]["name"].as_str() == Some(n));
        if !here {
            return None;
        }
        selected(c, |o| filter.matches(o))
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let _ = epoch.borrow_and_update();
        for o in initial {
            let c = Change {
                rv: 0,
                kind: EventType::Added,
                key: key_of(&def2, &o),
                object: o.clone(),
                prev: None,
            };
            if let Some((ty, obj)) = matches(&c) {
                if tx.send(frame(ty, &obj)).await.is_err() {
                    return;
                }
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
            if let Some((ty, obj)) = matches(&c) {
                if tx.send(frame(ty, &obj)).await.is_err() {
                    return;
                }
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
                        if let Some((ty, obj)) = matches(&c) {
                            if tx.send(frame(ty, &obj)).await.is_err() { return; }
                        }
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

/// The event a watch with a selector sends for a change, as kube-apiserver's watch cache does:
/// an object that starts matching is ADDED, one that stops matching is DELETED (its previous
/// state, at the change's resourceVersion), one that matches before and after is MODIFIED.
fn selected(c: &Change, passes: impl Fn(&Value) -> bool) -> Option<(&'static str, Arc<Value>)> {
    let now = passes(&c.object);
    match (c.kind, c.prev.as_ref().map(|p| passes(p))) {
        (EventType::Modified, Some(false)) if now => Some(("ADDED", c.object.clone())),
        (EventType::Modified, Some(true)) if !now => {
            let mut gone = (**c.prev.as_ref()?).clone();
            gone["metadata"]["resourceVersion"] = c.object["metadata"]["resourceVersion"].clone();
            Some(("DELETED", Arc::new(gone)))
        }
        _ if now => Some((c.kind.as_str(), c.object.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change(kind: EventType, prev: Option<&str>, now: &str) -> Change {
        let obj = |app: &str| {
            Arc::new(
                json!({"metadata": {"name": "web", "resourceVersion": "7", "labels": {"app": app}}}),
            )
        };
        Change {
            rv: 7,
            kind,
            key: "core/pods/apps/web".into(),
            object: obj(now),
            prev: prev.map(|p| {
                let mut o = (*obj(p)).clone();
                o["metadata"]["resourceVersion"] = json!("6");
                Arc::new(o)
            }),
        }
    }

    #[test]
    fn selector_transitions_are_added_and_deleted() {
        let web = |o: &Value| o["metadata"]["labels"]["app"] == "web";
        let ty = |c: Change| {
            selected(&c, web).map(|(t, o)| {
                (
                    t,
                    o["metadata"]["labels"]["app"].clone(),
                    o["metadata"]["resourceVersion"].clone(),
                )
            })
        };
        assert_eq!(
            ty(change(EventType::Modified, Some("web"), "web")),
            Some(("MODIFIED", json!("web"), json!("7")))
        );
        assert_eq!(
            ty(change(EventType::Modified, Some("api"), "web")),
            Some(("ADDED", json!("web"), json!("7")))
        );
        // What stopped matching leaves as it was, at the new resourceVersion.
        assert_eq!(
            ty(change(EventType::Modified, Some("web"), "api")),
            Some(("DELETED", json!("web"), json!("7")))
        );
        assert_eq!(ty(change(EventType::Modified, Some("api"), "api")), None);
        assert_eq!(ty(change(EventType::Added, None, "api")), None);
        assert_eq!(
            ty(change(EventType::Deleted, None, "web")),
            Some(("DELETED", json!("web"), json!("7")))
        );
    }
}
