//! # metalgate-speaker
//!
//! Answers ARP for LoadBalancer IPs on the node that owns them, so `arping 192.168.56.200` from
//! the laptop gets exactly one MAC. In the data flow it is the `speaker/announcer` stage:
//! IP → owning node → ARP replies and gratuitous ARP on the NIC of the IP's subnet.
//!
//! - [`arp`]: frames in, a reply or a typed drop reason out — pure;
//! - [`keyring`]: the gossip keys — HMAC seal and open, rotation — pure;
//! - [`membership`]: which speakers are alive (SWIM gossip, authenticated);
//! - [`presence`]: who is cut off from the gossip but alive (presence Leases) — pure;
//! - [`election`]: which node owns an IP (sha256 order over eligible nodes) — pure;
//! - [`plan`]: a cluster snapshot to what this node announces, on which interface — pure;
//! - [`snapshot`]: the watched objects → node states, pools, endpoints, peers — pure;
//! - [`transition`]: one round — what to start, stop, probe, win back, route, annotate, report
//!   — pure;
//! - [`announcer`]: the I/O — watches, ARP on every interface (pnet), gratuitous ARP, and the
//!   effects of each round.
#![forbid(unsafe_code)]

pub mod announcer;
pub mod arp;
pub mod election;
pub mod keyring;
pub mod membership;
pub mod plan;
pub mod presence;
pub mod snapshot;
pub mod transition;

use metalgate_k8s::{Component, ComponentContext};

/// The component name used by `metalgate run --components`.
pub const NAME: &str = "speaker";

/// The speaker as a `metalgate run` component: standalone mode, so owned IPs are also
/// delivered locally.
pub fn component() -> Component {
    Component::new(NAME, |ctx: ComponentContext| {
        Box::pin(announcer::run(
            ctx,
            announcer::Config {
                local_delivery: true,
                ..Default::default()
            },
        ))
    })
}
