//! `kubectl logs`, the kubelet's half: the store forwards `GET …/pods/NAME/log` here
//! (`/containerLogs/NS/POD/CONTAINER` on this node's admin listener, the port the Node reports
//! as its kubelet endpoint) with a signature only the store can make
//! ([`metalgate_apiserver::node_auth`]); anything unsigned is refused (403). The answer is the
//! container's log file — `tailLines` and `limitBytes` applied — and with `follow`, what is
//! written to it after, until the client goes or the pod's log does.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use metalgate_apiserver::node_auth;
use metalgate_k8s::admin::{self, Body};

/// The path prefix, as the kubelet's.
pub const PREFIX: &str = "/containerLogs/";

/// How often a followed log is looked at for more.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Serve the pods' logs under `data_dir/pods` to requests signed with `key` (none: refuse all).
pub fn serve(data_dir: PathBuf, key: Option<String>) {
    let key = Arc::new(key.unwrap_or_default());
    admin::register_handler(
        PREFIX,
        Arc::new(move |req| {
            let (dir, key) = (data_dir.join("pods"), key.clone());
            Box::pin(async move { answer(&dir, &key, req).await })
        }),
    );
}

fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(admin::full(body.into()))
        .expect("valid response")
}

/// The options of one request, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep sending what is written.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<usize>,
    /// At most this many bytes (of what `tail_lines` left).
    pub limit_bytes: Option<usize>,
}

/// Parse the query; what this agent cannot honour is an error naming it.
pub fn options(query: &str) -> Result<Options, String> {
    let mut o = Options::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let yes = v == "true" || v == "1";
        match k.as_ref() {
            "follow" => o.follow = yes,
            "tailLines" => {
                o.tail_lines = Some(
                    v.parse()
                        .map_err(|_| format!("tailLines {v:?} is not a number"))?,
                )
            }
            "limitBytes" => {
                o.limit_bytes = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("limitBytes {v:?} is not a positive number"))?,
                )
            }
            "previous" if yes => {
                return Err("previous: the lab agent keeps one log per container, across its restarts (the log has them all)".into());
            }
            "timestamps" if yes => {
                return Err(
                    "timestamps: the lab agent does not record when each line was written".into(),
                );
            }
            "sinceSeconds" | "sinceTime" => {
                return Err(format!(
                    "{k}: the lab agent does not record when each line was written; use tailLines"
                ));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// What of a log is sent: its last `tail` lines, then the first `limit` bytes of those.
pub fn select(log: &[u8], tail: Option<usize>, limit: Option<usize>) -> &[u8] {
    let mut out = log;
    if let Some(n) = tail {
        let body = out.strip_suffix(b"\n").unwrap_or(out);
        let start = if n == 0 {
            out.len()
        } else {
            body.iter()
                .enumerate()
                .rev()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 1)
                .map_or(0, |(i, _)| i + 1)
        };
        out = &out[start..];
    }
    if let Some(n) = limit {
        out = &out[..n.min(out.len())];
    }
    out
}

/// The log file of a pod's container, if the pod ran here.
fn log_file(pods: &Path, ns: &str, pod: &str, container: &str) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    std::fs::read_dir(pods)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("{container}.log")))
        .find(|p| p.exists())
}

async fn answer(pods: &Path, key: &str, req: Request<Bytes>) -> Response<Body> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let signature = req
        .headers()
        .get(node_auth::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    if !node_auth::verify(key, req.method().as_str(), pq, signature, now) {
        return text(
            StatusCode::FORBIDDEN,
            "Forbidden: this node's logs are served to the API server only (kubectl logs)",
        );
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    let path = req.uri().path().strip_prefix(PREFIX).unwrap_or_default();
    let [ns, pod, container] = path.split('/').collect::<Vec<_>>()[..] else {
        return text(StatusCode::NOT_FOUND, format!("no such log: {path}"));
    };
    let o = match options(req.uri().query().unwrap_or_default()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let Some(file) = log_file(pods, ns, pod, container) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: no log on this node yet"
            ),
        );
    };
    let log = match tokio::fs::read(&file).await {
        Ok(l) => l,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {}: {e}", file.display()),
            );
        }
    };
    let first = Bytes::copy_from_slice(select(&log, o.tail_lines, o.limit_bytes));
    if !o.follow || o.limit_bytes.is_some() {
        return Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(admin::full(first))
            .expect("valid response");
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut offset = log.len() as u64;
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            if tx.is_closed() {
                break;
            }
            let Ok(meta) = tokio::fs::metadata(&file).await else {
                break;
            };
            if meta.len() < offset {
                offset = 0;
            }
            if meta.len() == offset {
                continue;
            }
            let Ok(all) = tokio::fs::read(&file).await else {
                break;
            };
            let more = Bytes::copy_from_slice(&all[offset as usize..]);
            offset = all.len() as u64;
            if tx.send(more).await.is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_then_limit_bytes() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(select(log, None, None), log);
        assert_eq!(select(log, Some(1), None), b"three\n");
        assert_eq!(select(log, Some(2), None), b"two\nthree\n");
        assert_eq!(select(log, Some(9), None), log);
        assert_eq!(select(log, Some(0), None), b"");
        assert_eq!(
            select(b"one\ntwo", Some(1), None),
            b"two",
            "no newline at the end"
        );
        assert_eq!(select(log, Some(2), Some(5)), b"two\nt");
        assert_eq!(select(log, None, Some(100)), log);
        assert_eq!(select(b"", Some(3), None), b"");
    }

    #[test]
    fn what_cannot_be_honoured_is_named() {
        assert_eq!(
            options("follow=true&tailLines=5").unwrap(),
            Options {
                follow: true,
                tail_lines: Some(5),
                limit_bytes: None
            }
        );
        assert!(options("tailLines=x").unwrap_err().contains("tailLines"));
        assert!(options("limitBytes=0").unwrap_err().contains("limitBytes"));
        assert!(options("previous=true").unwrap_err().contains("previous"));
        assert!(
            options("timestamps=true")
                .unwrap_err()
                .contains("timestamps")
        );
        assert!(
            options("sinceSeconds=10")
                .unwrap_err()
                .contains("sinceSeconds")
        );
        assert_eq!(options("previous=false").unwrap(), Options::default());
    }
}
