//! Route change → live: how long after a new host is configured does the proxy serve it?
//!
//! - `metalgate KUBECONFIG PROXY_ADDR RUNS`: server-side apply an Ingress for a new host (API
//!   write), then poll the proxy until that host answers 200;
//! - `nginx CONF_DIR NGINX_CONF PROXY_ADDR RUNS`: write a `server` block for a new host into
//!   CONF_DIR, `nginx -s reload`, then poll until it answers 200 — what a reload-based ingress
//!   does on every change;
//! - `grow KUBECONFIG PROXY_ADDR ADMIN_ADDR PROXY_PID RUNS SIZE...`: for each SIZE, fill the
//!   store up to SIZE Ingresses (one host each), wait until the proxy's table has them all
//!   (`metalgate_proxy_routes` on ADMIN_ADDR), then time RUNS changes as `metalgate` does and
//!   print them with the last table build's time and the proxy's PSS and RSS.
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

type Ingresses = Api<k8s_openapi::api::networking::v1::Ingress>;

async fn ingresses(kubeconfig: &str) -> anyhow::Result<Ingresses> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = metalgate_k8s::client::from_kubeconfig(std::path::Path::new(kubeconfig)).await?;
    Ok(Api::namespaced(client, "bench"))
}

/// An Ingress `name` routing `host` to the bench Service.
fn ingress(name: &str, host: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"ingressClassName": "metalgate", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "be", "port": {"number": 80}}}}]}}]}
    })
}

/// `runs` changes: apply an Ingress for a new host, wait until it answers, delete it.
async fn changes(
    api: &Ingresses,
    addr: SocketAddr,
    prefix: &str,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::new();
    let mut writes = Vec::new();
    for i in 0..runs {
        let name = format!("{prefix}{i}");
        let host = format!("{name}.bench.local");
        let t0 = Instant::now();
        api.patch(
            &name,
            &PatchParams::apply("bench"),
            &Patch::Apply(&ingress(&name, &host)),
        )
        .await
        .context("applying the Ingress")?;
        writes.push(t0.elapsed());
        took.push(tokio::task::spawn_blocking(move || wait_live(addr, &host, t0)).await??);
        api.delete(&name, &DeleteParams::default()).await?;
        // The delete's own rebuild passes first: each change is timed from a quiet proxy, as
        // one person's change would be.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writes.sort();
    println!(
        "  of which the API write (server-side apply answered): median {:.1} ms",
        writes[writes.len() / 2].as_secs_f64() * 1000.0
    );
    Ok(took)
}

async fn metalgate(kubeconfig: &str, addr: SocketAddr, runs: usize) -> anyhow::Result<()> {
    let api = ingresses(kubeconfig).await?;
    let took = changes(&api, addr, "live-", runs).await?;
    report("metalgate (Ingress applied through the API)", took);
    Ok(())
}

/// A gauge's value from the proxy's `/metrics`.
fn gauge(admin: SocketAddr, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A `smaps_rollup` field of a process, in KiB.
fn smaps(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("{field} of process {pid}"))
}

async fn grow(
    kubeconfig: &str,
    addr: SocketAddr,
    admin: SocketAddr,
    pid: u32,
    runs: usize,
    sizes: &[usize],
) -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let api = ingresses(kubeconfig).await?;
    // The bench Ingress is already there.
    let mut have = 1;
    for &n in sizes {
        let t0 = Instant::now();
        futures::stream::iter(have..n)
            .map(|i| {
                let api = api.clone();
                async move {
                    let name = format!("fill-{i}");
                    let host = format!("{name}.bench.local");
                    api.patch(
                        &name,
                        &PatchParams::apply("bench"),
                        &Patch::Apply(&ingress(&name, &host)),
                    )
                    .await
                    .map(|_| ())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .context("filling the store")?;
        have = have.max(n);
        loop {
            let routes =
                tokio::task::spawn_blocking(move || gauge(admin, "metalgate_proxy_routes")).await?;
            if routes.is_some_and(|r| r as usize >= have) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(300) {
                bail!("the proxy's table never reached {have} routes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let filled = t0.elapsed();
        let took = changes(&api, addr, &format!("grow-{n}-"), runs).await?;
        let build = tokio::task::spawn_blocking(move || {
            gauge(admin, "metalgate_proxy_route_table_build_seconds")
        })
        .await?
        .unwrap_or(f64::NAN);
        println!(
            "{n:6} Ingresses (filled and loaded in {:.1} s): last table build {:.2} ms; proxy PSS {} KiB, RSS {} KiB",
            filled.as_secs_f64(),
            build * 1000.0,
            smaps(pid, "Pss")?,
            smaps(pid, "Rss")?
        );
        report(&format!("  with {n} Ingresses"), took);
    }
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
        Some("grow") if a.len() >= 8 => {
            let sizes = a[7..]
                .iter()
                .map(|s| s.parse().context("SIZE"))
                .collect::<anyhow::Result<Vec<usize>>>()?;
            if sizes.iter().any(|&n| !(1..=20_000).contains(&n)) {
                bail!("each SIZE must be 1..=20000");
            }
            grow(
                &a[2],
                a[3].parse().context("PROXY_ADDR")?,
                a[4].parse().context("ADMIN_ADDR")?,
                a[5].parse().context("PROXY_PID")?,
                runs(&a[6])?,
                &sizes,
            )
            .await
        }
        _ => bail!(
            "usage: proxy-route-latency metalgate KUBECONFIG PROXY_ADDR RUNS\n       proxy-route-latency nginx CONF_DIR NGINX_CONF PROXY_ADDR RUNS\n       proxy-route-latency grow KUBECONFIG PROXY_ADDR ADMIN_ADDR PROXY_PID RUNS SIZE..."
        ),
    }
}
