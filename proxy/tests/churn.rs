//! Under a bounded `oha` load on a stable route, 1000 route and endpoint changes (backends
//! added and removed, Ingresses added and removed, a certificate rotated) go live while not
//! one request to the stable route fails.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Env, cert};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

const CHANGES: usize = 1000;

fn rule(host: &str, svc: &str) -> Value {
    json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}})
}

/// One bounded `oha` run against the stable route: (status → count, error → count, requests).
async fn oha_burst(addr: std::net::SocketAddr, secs: u64) -> (Value, Value, u64) {
    let out = tokio::process::Command::new("oha")
        .args([
            "-z",
            &format!("{secs}s"),
            "-c",
            "8",
            "--no-tui",
            "-w",
            "--output-format",
            "json",
            "-H",
            "Host: stable.test",
            &format!("http://{addr}/"),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("oha is installed (scripts/deps.sh: cargo install oha --locked)");
    assert!(
        out.status.success(),
        "oha: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("oha JSON");
    let codes = v["statusCodeDistribution"].clone();
    let total = codes
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    (codes, v["errorDistribution"].clone(), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_under_load_fail_no_request_to_a_stable_route() {
    let env = Env::start().await;
    // Endpoints of one Service share a port: the second backend is on 127.0.0.2.
    let other = |b: &Backend| std::net::SocketAddr::from(([127, 0, 0, 2], b.addr.port()));
    let a = Backend::start("a").await;
    let b = Backend::start_at("b", other(&a)).await;
    let c = Backend::start("c").await;
    let d = Backend::start_at("d", other(&c)).await;
    env.service("stable", &[a.addr]).await;
    env.service("churn", &[c.addr]).await;
    let certs: Vec<(String, String, Vec<u8>)> = (0..4).map(|_| cert("stable.test")).collect();
    env.tls_secret("stable-tls", &certs[0].0, &certs[0].1).await;
    env.ingress(
        "stable",
        json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        json!({"tls": [{"hosts": ["stable.test"], "secretName": "stable-tls"}],
               "rules": [rule("stable.test", "stable")]}),
    )
    .await;
    env.eventually("stable.test", "/", |c, _| c == 200).await;
    let gen_before = env.generation();

    let addr = env.http;
    let load = tokio::spawn(async move {
        let mut codes = Vec::new();
        let mut errors = Vec::new();
        let mut total = 0;
        let start = Instant::now();
        // Bursts of 2 s until the changes are done (the task is told by abort) or 90 s pass.
        while start.elapsed() < Duration::from_secs(90) {
            let (c, e, n) = oha_burst(addr, 2).await;
            codes.push(c);
            errors.push(e);
            total += n;
            if DONE.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        (codes, errors, total)
    });

    let started = Instant::now();
    for i in 0..CHANGES {
        match i % 4 {
            // The stable Service's endpoints: b joins and leaves (a stays).
            0 => {
                let eps = if (i / 4) % 2 == 0 {
                    vec![a.addr, b.addr]
                } else {
                    vec![a.addr]
                };
                env.endpoints("stable", &eps).await;
            }
            // Ingresses of other hosts come and go.
            1 => {
                let name = format!("churn-{}", (i / 4) % 8);
                if (i / 32) % 2 == 0 {
                    env.ingress(
                        &name,
                        json!({}),
                        json!({"rules": [rule(&format!("{name}.test"), "churn")]}),
                    )
                    .await;
                } else {
                    env.delete::<Ingress>(&name).await;
                }
            }
            // Another Service's backends are replaced.
            2 => {
                let to = if (i / 4) % 2 == 0 { d.addr } else { c.addr };
                env.endpoints("churn", &[to]).await;
            }
            // The stable host's certificate is rotated.
            _ => {
                let (pem, key, _) = &certs[(i / 4) % certs.len()];
                env.tls_secret("stable-tls", pem, key).await;
            }
        }
    }
    let took = started.elapsed();
    DONE.store(true, std::sync::atomic::Ordering::SeqCst);
    let (codes, errors, total) = load.await.unwrap();

    for (c, e) in codes.iter().zip(&errors) {
        let only_200 = c.as_object().is_some_and(|m| m.keys().all(|k| k == "200"));
        assert!(only_200, "a request to the stable route failed: {c}");
        assert!(
            e.as_object().is_none_or(|m| m.is_empty()),
            "oha saw errors: {e}"
        );
    }
    assert!(total > 1000, "the load was real: {total} requests");
    // The changes went live while the load ran: both stable backends took requests, and
    // the table was rebuilt many times.
    assert!(b.hits() > 0, "b never served while it was in the slice");
    let rebuilds = env.generation() - gen_before;
    assert!(
        rebuilds >= 50,
        "only {rebuilds} rebuilds for {CHANGES} changes"
    );
    eprintln!(
        "{CHANGES} changes in {took:?}, {rebuilds} table rebuilds, {total} requests, all 200"
    );
}

static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
