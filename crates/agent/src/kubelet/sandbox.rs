//! A pod's surroundings on the node, made with `ip` as a CNI plugin would: its own network
//! namespace with one address from the node's pod CIDR, a veth pair to the node (routed, with
//! the gateway 169.254.1.1 answered by the node's end, as
//! Calico does), and — for pods that mount their
//! ServiceAccount — a private mount namespace where the token sits at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, where kube-rs and client-go look.
//! `hostNetwork` pods run in the node's namespace.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::process::Command;

/// Where a pod's ServiceAccount token is mounted.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A pod's network: its address and, unless it shares the node's, its namespace.
#[derive(Debug, Clone)]
pub struct Network {
    /// The pod's IP.
    pub ip: String,
    /// Its network namespace (`None`: the node's).
    pub netns: Option<String>,
}

async fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The pod's namespace and the node's end of its veth, from the pod's UID.
pub fn names(prefix: &str, uid: &str) -> (String, String) {
    let short: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    (format!("{prefix}-{short}"), format!("mgp{short}"))
}

/// Make the network of a pod with its own IP.
pub async fn up(netns: &str, host_if: &str, addr: &str) -> anyhow::Result<()> {
    // Left over from an agent that died: start clean.
    let _ = ip(&["netns", "del", netns]).await;
    ip(&["netns", "add", netns]).await?;
    let r = async {
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])
        .await?;
        ip(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "eth0",
        ])
        .await?;
        ip(&["-n", netns, "link", "set", "lo", "up"]).await?;
        ip(&["-n", netns, "link", "set", "eth0", "up"]).await?;
        ip(&[
            "-n",
            netns,
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ])
        .await?;
        // The gateway is the node's end of the veth; its MAC is written down, not asked for
        // (proxy ARP answers only where the node has a route to 169.254.1.1).
        let mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
            .context("the node's end of the veth")?;
        ip(&[
            "-n",
            netns,
            "neigh",
            "add",
            "169.254.1.1",
            "lladdr",
            mac.trim(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .await?;
        ip(&[
            "-n",
            netns,
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ])
        .await?;
        ip(&["link", "set", host_if, "up"]).await?;
        ip(&["route", "add", &format!("{addr}/32"), "dev", host_if]).await?;
        std::fs::write(format!("/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"), "1")
            .context("proxy_arp")?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("ip_forward")?;
        anyhow::Ok(())
    }
    .await;
    if r.is_err() {
        down(netns).await;
    }
    r
}

/// Remove a pod's network namespace (its veth and route go with it).
pub async fn down(netns: &str) {
    if let Err(e) = ip(&["netns", "del", netns]).await {
        tracing::debug!(error = %e, netns, "removing a pod's namespace");
    }
}

/// The command that runs `program` for a pod: in its network namespace, with its
/// ServiceAccount directory mounted where clients look for it.
pub fn command(net: &Network, sa: Option<&Path>, program: &str, args: &[String]) -> Command {
    // The process dies with the agent, however the agent ends (`setpriv --pdeathsig`): a pod
    // must not outlive the kubelet that reports it.
    let mut argv: Vec<String> = ["setpriv", "--pdeathsig", "KILL", "--"]
        .map(String::from)
        .to_vec();
    if let Some(ns) = &net.netns {
        argv.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if let Some(dir) = sa {
        argv.extend(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c"].map(String::from),
        );
        argv.push(format!("mount --bind \"$0\" {SA_DIR} && exec \"$@\""));
        argv.push(dir.display().to_string());
    }
    argv.push(program.into());
    argv.extend(args.iter().cloned());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// Make sure the mount point for ServiceAccount directories exists on the node.
pub fn ensure_mount_point() -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(SA_DIR).with_context(|| format!("creating {SA_DIR}"))?;
    Ok(PathBuf::from(SA_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits() {
        let (ns, dev) = names("node2", "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(ns, "node2-1b4e28ba");
        assert_eq!(dev, "mgp1b4e28ba");
        assert!(dev.len() <= 15, "interface names are at most 15 bytes");
    }

    #[test]
    fn commands_enter_the_namespace_and_mount_the_token() {
        let net = Network {
            ip: "10.42.0.2".into(),
            netns: Some("n-1".into()),
        };
        let c = command(
            &net,
            Some(Path::new("/data/pods/x/sa")),
            "/bin/metalgate",
            &["controller".to_string()],
        );
        let std = c.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(std.get_program(), "setpriv");
        assert_eq!(
            &args[..7],
            ["--pdeathsig", "KILL", "--", "ip", "netns", "exec", "n-1"]
        );
        assert!(args.contains(&"/data/pods/x/sa".to_string()));
        assert_eq!(&args[args.len() - 2..], ["/bin/metalgate", "controller"]);
        let host = Network {
            ip: "192.168.56.10".into(),
            netns: None,
        };
        let c = command(&host, None, "/bin/x", &[]);
        let args: Vec<String> = c
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--pdeathsig", "KILL", "--", "/bin/x"]);
    }
}
