//! The lab's smoke check: what a workshop attendee does from the laptop, run inside the
//! laptop namespace and printed as a short table. Each check says ok or failed (with why).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams};

use crate::topology::{BACKENDS, HOSTS, LAPTOP_IF, NODES, VIP};

/// A check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It works; what was seen.
    Ok(String),
    /// It does not; why.
    Failed(String),
}

fn curl(url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", url])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

async fn nodes_ready(client: &kube::Client, want: usize) -> Outcome {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .filter_map(|n| n.metadata.name.clone())
                .collect::<Vec<_>>(),
            Err(e) => {
                if Instant::now() > deadline {
                    return Outcome::Failed(format!("cannot list nodes: {e}"));
                }
                Vec::new()
            }
        };
        if seen.len() >= want {
            return Outcome::Ok(format!("{} Ready: {}", seen.len(), seen.join(", ")));
        }
        if Instant::now() > deadline {
            return Outcome::Failed(format!(
                "only {} of {want} nodes Ready after 60 s: {}",
                seen.len(),
                seen.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn external_ip(client: &kube::Client) -> Outcome {
    let api: Api<Service> = Api::namespaced(client.clone(), metalgate_k8s::NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ip = api
            .get("metalgate-proxy")
            .await
            .ok()
            .and_then(|s| s.status?.load_balancer?.ingress?.first()?.ip.clone());
        match ip {
            Some(ip) if ip == VIP => {
                return Outcome::Ok(format!("metalgate-proxy has EXTERNAL-IP {ip}"));
            }
            Some(ip) => return Outcome::Failed(format!("metalgate-proxy got {ip}, not {VIP}")),
            None if Instant::now() > deadline => {
                return Outcome::Failed("metalgate-proxy is still <pending> after 20 s".into());
            }
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn node_macs(nodes: usize) -> Vec<(String, String)> {
    NODES[..nodes]
        .iter()
        .filter_map(|n| {
            let out = Command::new("ip")
                .args(["-n", n.ns, "-o", "link", "show", "eth1"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mac = text
                .split("link/ether ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string();
            Some((mac, n.name.to_string()))
        })
        .collect()
}

fn arping(nodes: usize) -> Outcome {
    let out = match Command::new("arping")
        .args(["-c", "3", "-w", "4", "-I", LAPTOP_IF, VIP])
        .output()
    {
        Ok(o) => o,
        Err(e) => return Outcome::Failed(format!("arping: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let mut macs: Vec<String> = text
        .split(|c: char| c == '[' || c == ']' || c.is_whitespace())
        .filter(|w| w.len() == 17 && w.matches(':').count() == 5)
        .map(str::to_string)
        .collect();
    macs.sort();
    macs.dedup();
    let owners = node_macs(nodes);
    match macs.as_slice() {
        [] => Outcome::Failed(format!("no ARP reply for {VIP}")),
        [mac] => match owners.iter().find(|(m, _)| m == mac) {
            Some((_, node)) => Outcome::Ok(format!("{mac} ({node}'s eth1)")),
            None => Outcome::Failed(format!("{mac} answers, which is no node's eth1")),
        },
        many => Outcome::Failed(format!("several MACs answer: {}", many.join(", "))),
    }
}

fn via_vip() -> Outcome {
    match curl(&format!("http://{}/", HOSTS[0])) {
        Ok(body) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) if v["hostname"].is_string() => Outcome::Ok(format!(
                "podinfo {} from {}",
                v["version"].as_str().unwrap_or("?"),
                v["hostname"].as_str().unwrap_or("?")
            )),
            _ => Outcome::Failed(format!(
                "not podinfo's JSON: {}",
                body.chars().take(80).collect::<String>()
            )),
        },
        Err(e) => Outcome::Failed(e),
    }
}

/// The GitOps UI through the VIP (every node's admin listener serves it).
fn gitops_ui() -> Outcome {
    match curl(&format!("http://{}/", HOSTS[1])) {
        Ok(body) if body.contains("<title>Applications · metalgate</title>") => {
            let totals = body
                .split(r#"id="totals">"#)
                .nth(1)
                .and_then(|r| r.split('<').next())
                .unwrap_or("?");
            Outcome::Ok(format!("the GitOps UI: {totals}"))
        }
        Ok(body) => Outcome::Failed(format!(
            "not the GitOps UI: {}",
            body.chars().take(80).collect::<String>()
        )),
        Err(e) => Outcome::Failed(e),
    }
}

fn backend(ip: &str, port: u16, kind: crate::demo::Kind) -> Outcome {
    match curl(&format!("http://{ip}:{port}/")) {
        Ok(body) => match kind {
            crate::demo::Kind::Podinfo => match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) if v["hostname"].is_string() => Outcome::Ok(format!(
                    "podinfo JSON from {}",
                    v["hostname"].as_str().unwrap_or("?")
                )),
                _ => Outcome::Failed("not podinfo's JSON".into()),
            },
            _ if body.contains("stand-in") => Outcome::Ok("stand-in page".into()),
            _ => Outcome::Failed("unexpected page".into()),
        },
        Err(e) => Outcome::Failed(e),
    }
}

/// Run the smoke check and print its table; fails when any check failed.
pub async fn smoke() -> anyhow::Result<ExitCode> {
    let nodes: usize = std::env::var("METALGATE_LAB_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    let client = metalgate_k8s::client::from_kubeconfig(std::path::Path::new(&kubeconfig)).await?;
    let mut rows: Vec<(String, Outcome)> = Vec::new();
    rows.push((
        "kubectl get nodes".into(),
        nodes_ready(&client, nodes).await,
    ));
    for (node, kind, port) in BACKENDS {
        if node < nodes {
            let ip = NODES[node].ip;
            rows.push((
                format!("{:?} stand-in at {ip}:{port}", kind).to_lowercase(),
                backend(ip, port, kind),
            ));
        }
    }
    rows.push((
        "kubectl get svc: EXTERNAL-IP".into(),
        external_ip(&client).await,
    ));
    rows.push((format!("arping {VIP}"), arping(nodes)));
    rows.push((format!("curl http://{}/", HOSTS[0]), via_vip()));
    rows.push((format!("curl http://{}/", HOSTS[1]), gitops_ui()));

    let width = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(10);
    println!("\n{:<width$}  RESULT", "CHECK");
    let mut failed = false;
    for (check, outcome) in &rows {
        let (word, detail) = match outcome {
            Outcome::Ok(d) => ("ok", d.clone()),
            Outcome::Failed(d) => {
                failed = true;
                ("FAILED", d.clone())
            }
        };
        println!("{check:<width$}  {word}: {detail}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
