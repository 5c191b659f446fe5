//! Route change → live: how long after a new host is configured does the proxy serve it?
//!
//! - `metalgate KUBECONFIG PROXY_ADDR RUNS`: server-side apply an Ingress for a new host (API
//!   write), then poll the proxy until that host answers 200;
//! - `nginx CONF_DIR NGINX_CONF PROXY_ADDR RUNS`: write a `server` block for a new host into
//!   CONF_DIR, `nginx -s reload`, then poll until it answers 200 — what a reload-based ingress
//!   does on every change.
//!
//! Prints the median, p95 and max in milliseconds. Bounded: each poll loop stops after 5 s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

fn status(addr: SocketAddr, host: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split(' ').nth(1)?.parse().ok()
}

fn wait_live(addr: SocketAddr, host: &str, since: Instant) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(5);
    loop {
        if status(addr, host) == Some(200) {
            return Ok(since.elapsed());
        }
        if Instant::now() > deadline {
            bail!("{host} not live after 5 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p95 = v[((v.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)];
    println!(
        "{name}: change → live median {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} changes",
        ms(v[v.len() / 2]),
        ms(p95),
        ms(*v.last().expect("runs > 0")),
        v.len()
    );
}

async fn metalgate(kubeconfig: &str, addr: SocketAddr, runs: usize) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = metalgate_k8s::client::from_kubeconfig(std::path::Path::new(kubeconfig)).await?;
    let api: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(client, "bench");
    let mut took = Vec::new();
    for i in 0..runs {
        let host = format!("live-{i}.bench.local");
        let name = format!("live-{i}");
        let ing = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"ingressClassName": "metalgate", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "be", "port": {"number": 80}}}}]}}]}
        });
        let t0 = Instant::now();
        api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&ing))
            .await
            .context("applying the Ingress")?;
        let host2 = host.clone();
        took.push(tokio::task::spawn_blocking(move || wait_live(addr, &host2, t0)).await??);
        api.delete(&name, &DeleteParams::default()).await?;
    }
    report("metalgate (Ingress applied through the API)", took);
    Ok(())
}

fn nginx(conf_dir: &str, nginx_conf: &str, addr: SocketAddr, runs: usize) -> anyhow::Result<()> {
    let mut took = Vec::new();
    for i in 0..runs {
        let host = format!("live-{i}.bench.local");
        let file = format!("{conf_dir}/live-{i}.conf");
        let t0 = Instant::now();
        std::fs::write(
            &file,
            format!(
                "server {{ listen {addr}; server_name {host}; location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n"
            ),
        )?;
        let out = std::process::Command::new("nginx")
            .args(["-c", nginx_conf, "-s", "reload"])
            .output()?;
        if !out.status.success() {
            bail!("nginx -s reload: {}", String::from_utf8_lossy(&out.stderr));
        }
        took.push(wait_live(addr, &host, t0)?);
        std::fs::remove_file(&file)?;
    }
    // Leave the config as it was.
    std::process::Command::new("nginx")
        .args(["-c", nginx_conf, "-s", "reload"])
        .output()?;
    report("nginx (server block written, nginx -s reload)", took);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let runs = |s: &str| -> anyhow::Result<usize> {
        let n: usize = s.parse().context("RUNS")?;
        if !(1..=500).contains(&n) {
            bail!("RUNS must be 1..=500");
        }
        Ok(n)
    };
    match a.get(1).map(String::as_str) {
        Some("metalgate") if a.len() == 5 => {
            metalgate(&a[2], a[3].parse().context("PROXY_ADDR")?, runs(&a[4])?).await
        }
        Some("nginx") if a.len() == 6 => nginx(&a[2], &a[3], a[4].parse()?, runs(&a[5])?),
        _ => bail!(
            "usage: proxy-route-latency metalgate KUBECONFIG PROXY_ADDR RUNS\n       proxy-route-latency nginx CONF_DIR NGINX_CONF PROXY_ADDR RUNS"
        ),
    }
}
