//! A pod's surroundings on the node, made with `ip` as a CNI plugin would: its own network
//! namespace with one address from the node's pod CIDR, a veth pair to the node (routed, with
//! the gateway 169.254.1.1 answered by the node's end, as
//! Calico does), and — for pods that mount their
//! ServiceAccount — a private mount namespace where the token sits at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, where kube-rs and client-go look.
//! `hostNetwork` pods run in the node's namespace.

use std::path::PathBuf;

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
    // Left over from an agent that died: start clean. The node's end of the veth first: it
    // goes at once (with its peer), while a deleted namespace's links go later, in the
    // kernel's own time — until then adding `host_if` again fails with "File exists".
    let _ = ip(&["link", "del", host_if]).await;
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

/// One directory of the node bound over a path in the container's view (a volume, the
/// ServiceAccount token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The node's directory.
    pub source: PathBuf,
    /// Where the container sees it.
    pub target: String,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The command that runs `program` for a pod: in its network namespace, with `mounts` bound
/// in a mount namespace of its own (the mount points are made on the node when missing).
pub fn command(net: &Network, mounts: &[Mount], program: &str, args: &[String]) -> Command {
    // The process dies with the agent, however the agent ends (`setpriv --pdeathsig`): a pod
    // must not outlive the kubelet that reports it.
    let mut argv: Vec<String> = ["setpriv", "--pdeathsig", "KILL", "--"]
        .map(String::from)
        .to_vec();
    if let Some(ns) = &net.netns {
        argv.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if !mounts.is_empty() {
        argv.extend(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c"].map(String::from),
        );
        // A mount that hides another's source (a volume on /tmp, a token under /tmp/…) goes
        // after it.
        let shadows = |m: &Mount| {
            let t = format!("{}/", m.target.trim_end_matches('/'));
            mounts
                .iter()
                .filter(|o| o.source.display().to_string().starts_with(&t))
                .count()
        };
        let mut ordered: Vec<&Mount> = mounts.iter().collect();
        ordered.sort_by_key(|m| shadows(m));
        // The program is opened before the mounts: a volume may hide where it lives (a build
        // under /tmp, and a pod with its own /tmp), and it runs from that descriptor.
        let mut script: Vec<String> = vec![format!("exec 3<{}", quote(program))];
        script.extend(ordered.iter().map(|m| {
            let (src, dst) = (quote(&m.source.display().to_string()), quote(&m.target));
            format!("mkdir -p {dst} && mount --bind {src} {dst}")
        }));
        script.push("exec /proc/self/fd/3 \"$@\"".into());
        argv.push(script.join(" && "));
        argv.push("sh".into());
    } else {
        argv.push(program.into());
    }
    argv.extend(args.iter().cloned());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_that_would_hide_another_source_comes_last() {
        let net = Network {
            ip: "x".into(),
            netns: None,
        };
        let mounts = [
            Mount {
                source: PathBuf::from("/tmp/d/pods/p/volumes/tmp"),
                target: "/tmp".into(),
            },
            Mount {
                source: PathBuf::from("/tmp/d/pods/p/serviceaccount"),
                target: SA_DIR.into(),
            },
        ];
        let c = command(&net, &mounts, "/bin/x", &[]);
        let script = c
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .find(|a| a.contains("mount --bind"))
            .unwrap();
        let (sa, tmp) = (
            script.find("serviceaccount'").unwrap(),
            script.find("'/tmp' &&").unwrap(),
        );
        assert!(sa < tmp, "{script}");
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(quote("/a b/it's"), "'/a b/it'\\''s'");
    }

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
        let mounts = [Mount {
            source: PathBuf::from("/data/pods/x/sa"),
            target: SA_DIR.into(),
        }];
        let c = command(&net, &mounts, "/bin/metalgate", &["controller".to_string()]);
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
        assert!(
            args.iter()
                .any(|a| a.contains(&format!("mount --bind '/data/pods/x/sa' '{SA_DIR}'"))),
            "{args:?}"
        );
        assert!(
            args.iter()
                .any(|a| a.starts_with("exec 3<'/bin/metalgate' && ")
                    && a.ends_with("exec /proc/self/fd/3 \"$@\"")),
            "the program is opened before the mounts: {args:?}"
        );
        assert_eq!(&args[args.len() - 2..], ["sh", "controller"]);
        let host = Network {
            ip: "192.168.56.10".into(),
            netns: None,
        };
        let c = command(&host, &[], "/bin/x", &[]);
        let args: Vec<String> = c
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--pdeathsig", "KILL", "--", "/bin/x"]);
    }
}
