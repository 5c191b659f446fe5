//! The lab's smoke check: what a workshop attendee does from the laptop, run inside the
//! laptop namespace and printed as a short table. Each check says ok or failed (with why).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams};

use crate::topology::{HOSTS, LAPTOP_IF, NODES, VIP};

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

fn grafana() -> Outcome {
    match curl(&format!("http://{}/", HOSTS[2])) {
        Ok(body) if body.contains("stand-in for <b>grafana</b>") => {
            Outcome::Ok("the grafana stand-in".into())
        }
        Ok(body) => Outcome::Failed(format!(
            "not grafana: {}",
            body.chars().take(80).collect::<String>()
        )),
        Err(e) => Outcome::Failed(e),
    }
}

/// The namespaces whose pods the lab deploys.
const POD_NAMESPACES: [&str; 3] = ["metalgate-system", "podinfo", "monitoring"];

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod is not ready, in kubectl's words (its first container's waiting reason, or its
/// phase).
fn why_not(p: &Pod) -> String {
    let st = p.status.clone().unwrap_or_default();
    let waiting = st
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let unscheduled = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .and_then(|c| c.message.clone());
    format!(
        "{}/{} {}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default(),
        waiting
            .or(unscheduled)
            .or(st.phase)
            .unwrap_or_else(|| "Pending".into())
    )
}

/// Every pod the lab deploys (metalgate's components, podinfo, the grafana stand-in) Ready,
/// waiting up to 90 s.
async fn pods_ready(client: &kube::Client) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut pods: Vec<Pod> = Vec::new();
        for ns in POD_NAMESPACES {
            match Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
            {
                Ok(l) => pods.extend(l.items),
                Err(e) => return Outcome::Failed(format!("cannot list pods in {ns}: {e}")),
            }
        }
        let (up, down): (Vec<&Pod>, Vec<&Pod>) = pods.iter().partition(|p| ready(p));
        let enough = pods
            .iter()
            .any(|p| p.metadata.namespace.as_deref() == Some("podinfo"));
        if down.is_empty() && enough {
            let mut by_app: std::collections::BTreeMap<String, usize> = Default::default();
            for p in &up {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                let app = labels
                    .get("app.kubernetes.io/component")
                    .or_else(|| labels.get("app.kubernetes.io/name"))
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                *by_app.entry(app).or_default() += 1;
            }
            let list: Vec<String> = by_app.iter().map(|(a, n)| format!("{a}×{n}")).collect();
            return Outcome::Ok(format!("{} Ready: {}", up.len(), list.join(", ")));
        }
        if Instant::now() > deadline {
            let why: Vec<String> = down.iter().map(|p| why_not(p)).collect();
            return Outcome::Failed(format!(
                "{} of {} Ready after 90 s; not: {}",
                up.len(),
                pods.len(),
                why.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every Application Synced and Healthy (the workshop's app-of-apps, after `apps/root.yaml`),
/// waiting up to 90 s.
async fn apps_synced(client: &kube::Client) -> Outcome {
    use metalgate_k8s::crd::Application;
    let api: Api<Application> = Api::namespaced(client.clone(), metalgate_k8s::NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let apps = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => return Outcome::Failed(format!("cannot list Applications: {e}")),
        };
        let state = |a: &Application| {
            let st = a.status.clone().unwrap_or_default();
            (
                st.sync
                    .as_ref()
                    .map(|s| s.status.clone())
                    .unwrap_or_default(),
                st.health
                    .as_ref()
                    .map(|h| h.status.clone())
                    .unwrap_or_default(),
                st.sync
                    .and_then(|s| s.revision)
                    .map(|r| r.chars().take(7).collect::<String>())
                    .unwrap_or_default(),
            )
        };
        let mut names: Vec<String> = apps
            .iter()
            .filter_map(|a| a.metadata.name.clone())
            .collect();
        names.sort();
        let all_good = apps.len() >= 2
            && apps
                .iter()
                .all(|a| matches!(state(a), (s, h, _) if s == "Synced" && h == "Healthy"));
        if all_good {
            let rev = apps.first().map(|a| state(a).2).unwrap_or_default();
            return Outcome::Ok(format!(
                "{} Synced and Healthy at {rev}: {}",
                apps.len(),
                names.join(", ")
            ));
        }
        if Instant::now() > deadline {
            let rows: Vec<String> = apps
                .iter()
                .map(|a| {
                    let (s, h, _) = state(a);
                    format!("{} {s}/{h}", a.metadata.name.as_deref().unwrap_or_default())
                })
                .collect();
            return Outcome::Failed(format!("after 90 s: {}", rows.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
    rows.push((
        "kubectl get applications".into(),
        apps_synced(&client).await,
    ));
    rows.push(("kubectl get pods".into(), pods_ready(&client).await));
    rows.push((
        "kubectl get svc: EXTERNAL-IP".into(),
        external_ip(&client).await,
    ));
    rows.push((format!("arping {VIP}"), arping(nodes)));
    rows.push((format!("curl http://{}/", HOSTS[0]), via_vip()));
    rows.push((format!("curl http://{}/", HOSTS[1]), gitops_ui()));

    rows.push((format!("curl http://{}/", HOSTS[2]), grafana()));

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
    println!(
        "\nthe workshop's repository: git clone {} (the laptop's clone: {}; a push calls the webhook)",
        crate::lifecycle::repo_url(),
        crate::lifecycle::laptop_clone().display()
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
