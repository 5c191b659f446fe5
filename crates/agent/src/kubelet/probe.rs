//! Readiness and liveness probes, as the kubelet runs them: `httpGet` (a status from 200 to
//! 399 passes), `tcpSocket` (a connection passes), each within `timeoutSeconds` (default 1);
//! a container's named port resolved from its `ports`. `exec` probes need a container to exec
//! into, which the lab does not have: they fail with a message saying so.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The probe's timing: (initial delay, period, timeout, success threshold, failure threshold),
/// with Kubernetes' defaults.
pub fn timing(p: &Probe) -> (Duration, Duration, Duration, u32, u32) {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    (
        secs(p.initial_delay_seconds, 0),
        secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        p.success_threshold.unwrap_or(1).max(1) as u32,
        p.failure_threshold.unwrap_or(3).max(1) as u32,
    )
}

fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("container {:?} has no port named {name:?}", c.name)),
    }
}

/// Run probe `p` of container `c` against the pod at `ip` once.
pub async fn check(p: &Probe, c: &Container, ip: &str) -> Result<(), String> {
    let (_, _, timeout, _, _) = timing(p);
    let attempt = async {
        if let Some(h) = &p.http_get {
            let host = h.host.clone().unwrap_or_else(|| ip.to_string());
            let port = port(c, &h.port)?;
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let mut s = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = vec![0u8; 64];
            let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&head[..n]);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        } else if let Some(t) = &p.tcp_socket {
            let host = t.host.clone().unwrap_or_else(|| ip.to_string());
            let port = port(c, &t.port)?;
            TcpStream::connect((host.as_str(), port))
                .await
                .map(|_| ())
                .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
        } else if p.exec.is_some() {
            Err("exec probes need a container to run in; the lab runs processes without one".into())
        } else {
            Err("the probe names no handler (httpGet, tcpSocket)".into())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// Consecutive results turned into a verdict, as the kubelet counts them.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    successes: u32,
    failures: u32,
}

impl Counter {
    /// Record one result; returns the verdict once a threshold is reached (`Some(true)` after
    /// `success` passes in a row, `Some(false)` after `failure` fails in a row).
    pub fn record(&mut self, ok: bool, success: u32, failure: u32) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes >= success).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures >= failure).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, TCPSocketAction};

    #[test]
    fn thresholds_count_consecutive_results() {
        let mut c = Counter::default();
        assert_eq!(c.record(false, 1, 3), None);
        assert_eq!(c.record(false, 1, 3), None);
        assert_eq!(c.record(true, 1, 3), Some(true));
        assert_eq!(
            c.record(false, 1, 3),
            None,
            "failures count from zero again"
        );
        assert_eq!(c.record(false, 1, 3), None);
        assert_eq!(c.record(false, 1, 3), Some(false));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /readyz ") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: port as i32,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let http = |path: &str| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(check(&http("/readyz"), &c, "127.0.0.1").await, Ok(()));
        assert_eq!(
            check(&http("/nope"), &c, "127.0.0.1").await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port as i32),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(check(&tcp, &c, "127.0.0.1").await, Ok(()));
        let unnamed = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("grpc".into()),
                host: None,
            }),
            ..Default::default()
        };
        assert!(
            check(&unnamed, &c, "127.0.0.1")
                .await
                .unwrap_err()
                .contains("no port named \"grpc\"")
        );
    }
}
