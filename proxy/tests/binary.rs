//! The `metalgate-proxy` binary against a store, as a proxy Deployment runs: ready on
//! `/readyz`, routes an Ingress, counts it on `/metrics`, drains and exits 0 on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, NS};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use metalgate_testkit::free_port;

async fn get(url: &str, host: Option<&str>) -> Option<(u16, String)> {
    let mut r = reqwest::Client::new().get(url);
    if let Some(h) = host {
        r = r.header("host", h);
    }
    let r = r.timeout(Duration::from_secs(2)).send().await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// The proxy process, killed if the test ends (or fails) while it still runs.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_routes_reports_ready_and_drains_on_sigterm() {
    let store = metalgate_testkit::Store::start().await;
    store.namespaces(&[NS]).await;
    let kubeconfig = store.kubeconfig_file();
    let client = store.client.clone();
    let be = Backend::start("bin").await;
    let pp = PatchParams::apply("test");
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    svcs.patch(
        "web",
        &pp,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}})),
    )
    .await
    .unwrap();
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), NS);
    slices.patch("web-1", &pp, &Patch::Apply(json!({"apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice", "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": be.addr.port()}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]})))
        .await
        .unwrap();
    let ings: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(client.clone(), NS);
    ings.patch("web", &pp, &Patch::Apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web"}, "spec": {"ingressClassName": "metalgate", "rules": [{"host": "web.test",
        "http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})))
        .await
        .unwrap();

    let (http, https, admin) = (free_port(), free_port(), free_port());
    let mut proxy = Proxy(
        std::process::Command::new(env!("CARGO_BIN_EXE_metalgate-proxy"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--node-name",
                "test",
                "--http-listen",
                &format!("127.0.0.1:{http}"),
                "--https-listen",
                &format!("127.0.0.1:{https}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin}"),
                "--no-access-log",
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let child = &mut proxy.0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, body)) = get(&format!("http://127.0.0.1:{admin}/readyz"), None).await {
            assert!(body.contains("proxy: ready"), "{body}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("metalgate-proxy never ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, body) = get(&format!("http://127.0.0.1:{http}/hello"), Some("web.test"))
        .await
        .expect("the proxy answers");
    assert_eq!(code, 200, "{body}");
    assert_eq!(common::backend_of(&body), "bin");
    // Counted once the response has gone out: poll a moment.
    let want =
        "metalgate_proxy_requests_total{ingress=\"apps/web\",service=\"apps/web\",code=\"200\"} 1";
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (_, m) = get(&format!("http://127.0.0.1:{admin}/metrics"), None)
            .await
            .unwrap();
        if m.contains(want) || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        metrics.contains("metalgate_proxy_requests_total{ingress=\"apps/web\",service=\"apps/web\",code=\"200\"} 1"),
        "{metrics}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("metalgate-proxy still running 15 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    drop(store);
}
