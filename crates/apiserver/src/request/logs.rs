//! `GET …/pods/NAME/log` (`kubectl logs`): as kube-apiserver asks the kubelet, the store finds
//! the pod's node and its agent's endpoint (the Node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`), asks it for the container's log with a signed
//! request ([`crate::node_auth`]) and streams the answer back — `follow` included. Which
//! container, and the errors kube-apiserver gives for a pod without one or without a node, are
//! decided here; reading the log is the agent's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::decode::Ctx;
use super::response::Body;
use super::state::State;
use super::target::ResourcePath;
use crate::error::{ApiError, ApiResult};

/// The query parameters passed on to the agent (kubectl's `PodLogOptions`).
const PASSED: [&str; 7] = [
    "follow",
    "tailLines",
    "limitBytes",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
];

/// Which container's log: the one asked for, or the only one.
pub(super) fn container_of(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// Where the node's agent listens: its InternalIP and the kubelet endpoint's port.
pub(super) fn endpoint_of(node: &Value) -> Option<(String, u16)> {
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    Some((ip, port))
}

/// The agent's path for a container's log, with the options passed on.
pub(super) fn agent_path(
    ns: &str,
    pod: &str,
    container: &str,
    ctx_query: &[(&str, &str)],
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in ctx_query {
        if PASSED.contains(k) {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    let path = format!("/containerLogs/{ns}/{pod}/{container}");
    if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    }
}

pub(super) async fn pod_log(
    state: &Arc<State>,
    ctx: &Ctx,
    t: &ResourcePath,
    name: &str,
) -> ApiResult<Response<Body>> {
    let ns = t.namespace.as_deref().unwrap_or("default");
    let pod = state
        .store
        .get(&t.def.key(Some(ns), name))
        .await
        .ok_or_else(|| ApiError::not_found("pods", "", name))?;
    let container = container_of(&pod, name, ctx.q("container"))?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let nodes = state
        .registry
        .by_plural("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = state
        .store
        .get(&nodes.key(None, node_name))
        .await
        .ok_or_else(|| ApiError::not_found("nodes", "", node_name))?;
    let (ip, port) = endpoint_of(&node).ok_or_else(|| {
        ApiError::from_node(
            503,
            format!(
                "node {node_name} has no kubelet endpoint (status.daemonEndpoints): logs are served by the node's metalgate agent (--components agent with --admin-listen)"
            ),
        )
    })?;
    let query: Vec<(&str, &str)> = PASSED
        .iter()
        .filter_map(|k| ctx.q(k).map(|v| (*k, v)))
        .collect();
    let path = agent_path(ns, name, &container, &query);
    let ts = jiff::Timestamp::now().as_second();
    let signature = crate::node_auth::sign(&state.token, "GET", &path, ts);
    let unreachable = |e: String| {
        ApiError::from_node(
            503,
            format!("the agent of node {node_name} at {ip}:{port} is not reachable: {e}"),
        )
    };
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((ip.as_str(), port)),
    )
    .await
    .map_err(|_| unreachable("timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    // HTTP/1.0: the answer ends when the connection does, so a followed log streams as it
    // comes, without chunked framing to undo.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n{}: {signature}\r\n\r\n",
        crate::node_auth::HEADER
    );
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (code, rest) = read_head(&mut conn).await.map_err(unreachable)?;
    if code != 200 {
        let mut body = rest;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            (&mut conn).take(64 * 1024).read_to_end(&mut body),
        )
        .await;
        return Err(ApiError::from_node(
            code,
            String::from_utf8_lossy(&body).trim().to_string(),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        if !rest.is_empty() && tx.send(Ok(Frame::data(Bytes::from(rest)))).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .expect("valid response"))
}

/// Read a response head (16 KiB at most): its status code, and the body bytes read past it.
async fn read_head(conn: &mut tokio::net::TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("a malformed answer: {head:?}"))?;
            return Ok((code, buf[end + 4..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            return Err("an answer head over 16 KiB".into());
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before an answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_container_is_the_one_asked_for_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "podinfo"}]}});
        assert_eq!(container_of(&one, "p", None).unwrap(), "podinfo");
        assert_eq!(container_of(&one, "p", Some("podinfo")).unwrap(), "podinfo");
        assert_eq!(
            container_of(&one, "p", Some("sidecar"))
                .unwrap_err()
                .message,
            "container sidecar is not valid for pod p"
        );
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            container_of(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }

    #[test]
    fn the_agent_is_found_at_the_nodes_address_and_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "192.168.56.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 7472}},
        }});
        assert_eq!(endpoint_of(&node), Some(("192.168.56.11".into(), 7472)));
        let mut no_port = node.clone();
        no_port["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = json!(0);
        assert_eq!(endpoint_of(&no_port), None);
        assert_eq!(endpoint_of(&json!({})), None);
    }

    #[test]
    fn only_log_options_are_passed_on() {
        assert_eq!(
            agent_path(
                "podinfo",
                "p",
                "c",
                &[("tailLines", "5"), ("follow", "true"), ("pretty", "x")]
            ),
            "/containerLogs/podinfo/p/c?tailLines=5&follow=true"
        );
        assert_eq!(agent_path("a", "b", "c", &[]), "/containerLogs/a/b/c");
    }
}
