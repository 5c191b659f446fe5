//! # metalgate-lab — the workshop's network on any Linux box
//!
//! `metalgate lab` rebuilds the workshop's VirtualBox host-only network with network
//! namespaces (a laptop, a switch, up to three nodes) and runs metalgate on it:
//!
//! - [`topology`] — the lab's shape as data: namespaces, names, addresses, the `ip` plan;
//! - [`lifecycle`] — `lab up`, `down`, `status`, `restart`, `exec`: that plan applied, the
//!   processes it starts, and everything removed again;
//! - [`smoke`] — the check `lab up` prints, run from the laptop;
//! - [`arp_probe`] — an arping with a clock (`lab arp-probe`), for failover measurements;
//! - [`workshop`] — the workshop's Git repository as the lab makes it from `examples/workshop/`;
//! - [`demo`] — `metalgate demo-backend`, the stand-ins for podinfo, argocd-server and grafana.
#![forbid(unsafe_code)]

pub mod arp_probe;
pub mod demo;
pub mod lifecycle;
pub mod smoke;
pub mod topology;
pub mod workshop;

use clap::Subcommand;

/// `metalgate lab …`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab, start metalgate and the demo backends on it, print a smoke check.
    Up {
        /// How many nodes (1 to 3): ops-demo, node2, node3.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
        nodes: u8,
    },
    /// Remove every namespace, process and file the lab made.
    Down {
        /// Keep the workshop's Git repository and the laptop's clone (they live off the VM, as
        /// GitHub and the laptop do): the next `lab up` syncs from them — disaster recovery.
        #[arg(long)]
        keep_git: bool,
    },
    /// What is running, and the smoke check.
    Status,
    /// Stop a node's metalgate (if it runs) and start it again with its data — a VM rebooted,
    /// or the second half of a fault drill that killed it.
    Restart {
        /// The node: ops-demo (it holds the store), node2 or node3.
        node: String,
        /// Run the node (its metalgate and every pod on it) with its wall clock this far off:
        /// `+30s`, `-30s`, `+2m` (libfaketime; `apt-get install libfaketime`). Network
        /// namespaces share the host's clock, so this is how one lab node gets its own.
        #[arg(long, allow_hyphen_values = true, value_parser = lifecycle::parse_clock_offset)]
        clock_offset: Option<String>,
    },
    /// Run a command in the laptop namespace, with the lab's names and KUBECONFIG.
    Exec {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// The smoke check, run inside the laptop namespace (used by up and status).
    #[command(hide = true)]
    Smoke,
    /// An arping with a clock: ARP requests every `--interval-ms`, replies timed, the longest
    /// gap printed as JSON (run it through `lab exec`).
    ArpProbe {
        /// The IP to ask for.
        #[arg(long, default_value = "192.168.56.200")]
        ip: std::net::Ipv4Addr,
        /// The interface to ask on.
        #[arg(long, default_value = "vboxnet0")]
        interface: String,
        /// Milliseconds between requests.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// How many requests (bounded).
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=10000))]
        count: u32,
    },
}

/// `metalgate lab …`.
pub async fn dispatch(cmd: LabCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        LabCommand::Up { nodes } => lifecycle::up(nodes as usize).await,
        LabCommand::Down { keep_git } => {
            lifecycle::down_keeping(keep_git).map(|_| std::process::ExitCode::SUCCESS)
        }
        LabCommand::Status => lifecycle::status(),
        LabCommand::Restart { node, clock_offset } => {
            lifecycle::restart(&node, clock_offset.as_deref()).await
        }
        LabCommand::Exec { command } => lifecycle::exec(&command),
        LabCommand::Smoke => smoke::smoke().await,
        LabCommand::ArpProbe {
            ip,
            interface,
            interval_ms,
            count,
        } => {
            let report = tokio::task::spawn_blocking(move || {
                arp_probe::probe(
                    &interface,
                    ip,
                    std::time::Duration::from_millis(interval_ms),
                    count,
                )
            })
            .await??;
            println!("{}", serde_json::to_string(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
