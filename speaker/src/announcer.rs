//! The speaker's I/O: watch the cluster, plan, answer ARP on each interface, and send
//! gratuitous ARP when this node takes an IP over.
//!
//! Liveness comes from gossip among the speakers ([`crate::membership`]) when the node's
//! address is known; otherwise from the API: Ready, and a Lease in `kube-node-lease` renewed
//! within [`crate::snapshot::LEASE_FRESH`] (slow failover).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use metalgate_k8s::crd::{IPAddressPool, L2Advertisement};
use metalgate_k8s::{ComponentContext, reflect};
use pnet::datalink::{self, Channel, NetworkInterface};
use serde_json::json;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::arp::{self, Announcement, Unanswered};
use crate::membership::{self, SpeakerId};
use crate::plan::{L2Adv, LocalInterface, PoolInfo, plan};
use crate::presence;
use crate::snapshot::{
    self, SPEAKER_MACS, lease_fresh, node_states, pool_info, ready_endpoint_nodes, speaker_macs,
};
use crate::transition::{Effect, Probe, Round, State, transition};

/// The annotation naming the node that announces a Service's IP.
pub const ANNOUNCING_NODE: &str = "metalgate.io/announcing-node";
/// How long a starting speaker waits for the gossip keys' Secret (the controller creates it).
const KEYS_WAIT: Duration = Duration::from_secs(10);

/// How long a leaving speaker keeps answering after it left the gossip.
pub const HANDOFF: Duration = Duration::from_millis(400);
/// The field manager of the speaker's writes.
pub const FIELD_MANAGER: &str = "metalgate-speaker";

/// How the speaker runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where IPAddressPools and L2Advertisements live.
    pub namespace: String,
    /// Standalone mode (no kube-proxy): make owned IPs deliverable to local listeners with a
    /// `local` route, so the proxy on the owner receives the VIP's traffic.
    pub local_delivery: bool,
    /// The Secret (in `namespace`) holding the gossip keys; the controller creates it.
    pub memberlist_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: metalgate_k8s::NAMESPACE.into(),
            local_delivery: false,
            memberlist_secret: crate::keyring::SECRET.into(),
        }
    }
}

/// Add or remove the `local` route that delivers `ip` to this node's listeners. The VIP is
/// not put on the NIC, so the kernel still leaves ARP for it to the speaker (with
/// `arp_ignore=1`, which the lab sets).
fn local_route(ip: std::net::Ipv4Addr, add: bool) {
    let verb = if add { "replace" } else { "del" };
    match std::process::Command::new("ip")
        .args(["route", verb, "local", &format!("{ip}/32"), "dev", "lo"])
        .output()
    {
        Ok(o) if o.status.success() => tracing::info!(%ip, verb, "local route"),
        Ok(o) => {
            tracing::warn!(%ip, verb, error = %String::from_utf8_lossy(&o.stderr).trim(), "local route failed")
        }
        Err(e) => tracing::warn!(%ip, error = %e, "cannot run ip (iproute2) for the local route"),
    }
}

/// Counts of what the ARP loops did.
#[derive(Debug, Default)]
pub struct Counters {
    /// Replies sent.
    pub replied: AtomicU64,
    /// Times this node started announcing an IP (its first assignment, or a takeover).
    pub takeovers: AtomicU64,
    drops: [AtomicU64; Unanswered::ALL.len()],
}

impl Counters {
    fn dropped(&self, d: Unanswered) {
        let i = Unanswered::ALL.iter().position(|x| *x == d).unwrap_or(0);
        self.drops[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (reason, count) for every drop reason.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        Unanswered::ALL
            .iter()
            .zip(&self.drops)
            .map(|(d, c)| (d.label(), c.load(Ordering::Relaxed)))
            .collect()
    }
}

fn local_interfaces() -> Vec<NetworkInterface> {
    datalink::interfaces()
        .into_iter()
        .filter(|i| {
            i.is_up() && !i.is_loopback() && i.mac.is_some() && i.ips.iter().any(|n| n.is_ipv4())
        })
        .collect()
}

fn v4_nets(i: &NetworkInterface) -> Vec<Ipv4Net> {
    i.ips
        .iter()
        .filter_map(|n| match n {
            pnet::ipnetwork::IpNetwork::V4(v) => Ipv4Net::new(v.ip(), v.prefix()).ok(),
            _ => None,
        })
        .collect()
}

/// Answer ARP on one interface until `stop`.
fn serve(
    iface: NetworkInterface,
    shared: Arc<ArcSwap<Vec<Announcement>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    served: Arc<std::sync::Mutex<BTreeSet<String>>>,
) {
    let name = iface.name.clone();
    serve_until_error(iface, shared, counters, stop);
    // Gone, down, or never opened: a later pass starts it again if the interface is back.
    served
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
}

fn serve_until_error(
    iface: NetworkInterface,
    shared: Arc<ArcSwap<Vec<Announcement>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let cfg = datalink::Config {
        read_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let (mut tx, mut rx) = match datalink::channel(&iface, cfg) {
        Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
        Ok(_) => {
            tracing::error!(interface = %iface.name, "not an Ethernet interface; not answering ARP there");
            return;
        }
        Err(e) => {
            tracing::error!(interface = %iface.name, error = %e, "cannot open a raw socket (needs CAP_NET_RAW); not answering ARP there");
            return;
        }
    };
    let info = arp::Interface {
        name: iface.name.clone(),
        mac: iface.mac.unwrap_or_default(),
        nets: v4_nets(&iface),
    };
    tracing::info!(interface = %info.name, mac = %info.mac, "answering ARP");
    while !stop.load(Ordering::Relaxed) {
        match rx.next() {
            Ok(frame) => match arp::decide(frame, &info, &shared.load()) {
                Ok(req) => {
                    if let Some(Err(e)) = tx.send_to(&arp::reply(&req, info.mac), None) {
                        tracing::warn!(interface = %info.name, error = %e, "sending an ARP reply failed");
                    } else {
                        counters.replied.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(d) => counters.dropped(d),
            },
            Err(e)
                if e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(interface = %info.name, error = %e, "reading frames failed; will reopen the interface");
                return;
            }
        }
    }
}

/// How long an RFC 5227 probe listens for an answer.
pub const PROBE_WAIT: Duration = Duration::from_millis(120);
pub use crate::transition::CONFLICT_RETRY;

/// RFC 5227 probe: ask who has `ip` (sender address 0.0.0.0) and listen briefly. The MAC of
/// anyone else claiming it, if someone does.
fn probe_conflict(
    iface: &NetworkInterface,
    ip: std::net::Ipv4Addr,
    speakers: &BTreeSet<String>,
) -> Option<pnet::util::MacAddr> {
    let mac = iface.mac?;
    let cfg = datalink::Config {
        read_timeout: Some(Duration::from_millis(10)),
        ..Default::default()
    };
    let Ok(Channel::Ethernet(mut tx, mut rx)) = datalink::channel(iface, cfg) else {
        return None;
    };
    let _ = tx.send_to(
        &arp::request(ip, mac, std::net::Ipv4Addr::UNSPECIFIED),
        None,
    );
    let deadline = std::time::Instant::now() + PROBE_WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(frame) = rx.next() {
            if let Some(other) = arp::claims(frame, ip) {
                // Another speaker (handing over, or not yet aware of the new owner) is no conflict.
                if other != mac && !speakers.contains(&other.to_string()) {
                    return Some(other);
                }
            }
        }
    }
    None
}

/// Gratuitous ARP for a newly owned IP: now, then again over the next seconds.
fn announce_burst(iface: NetworkInterface, ip: std::net::Ipv4Addr) {
    std::thread::spawn(move || {
        let Some(mac) = iface.mac else { return };
        let Ok(Channel::Ethernet(mut tx, _rx)) = datalink::channel(&iface, Default::default())
        else {
            tracing::warn!(interface = %iface.name, "cannot send gratuitous ARP");
            return;
        };
        for wait in [0u64, 300, 700, 1000, 2000] {
            std::thread::sleep(Duration::from_millis(wait));
            for f in arp::gratuitous(ip, mac) {
                let _ = tx.send_to(&f, None);
            }
        }
    });
}

/// Tell the gossip the nodes' addresses, when they changed.
fn update_peers(nodes: &[Arc<Node>], peers_tx: &watch::Sender<Vec<SocketAddr>>) {
    let peers = snapshot::peer_addrs(nodes);
    peers_tx.send_if_modified(|cur| {
        let changed = *cur != peers;
        *cur = peers;
        changed
    });
}

/// The speaker's part of `/metrics`: what it announces, takeovers, ARP and gossip counters.
fn register_metrics(
    node: String,
    announced: Arc<ArcSwap<Vec<Announcement>>>,
    c: Arc<Counters>,
    rej: Arc<membership::Rejected>,
) {
    metalgate_k8s::metrics::register(
        "speaker",
        Arc::new(move || {
            let mut owned = String::from(
                "# HELP metalgate_speaker_announced IPs this node answers ARP for (1 per IP and interface).\n# TYPE metalgate_speaker_announced gauge\n",
            );
            for a in announced.load().iter() {
                owned.push_str(&format!(
                    "metalgate_speaker_announced{{ip=\"{}\",interface=\"{}\",node=\"{node}\"}} 1\n",
                    a.ip, a.interface
                ));
            }
            owned.push_str(&format!(
                "# HELP metalgate_speaker_takeovers_total Times this node started announcing an IP (first assignment or failover).\n# TYPE metalgate_speaker_takeovers_total counter\nmetalgate_speaker_takeovers_total{{node=\"{node}\"}} {}\n",
                c.takeovers.load(Ordering::Relaxed)
            ));
            let mut out = owned;
            out.push_str(&metalgate_k8s::metrics::counter_family(
                "metalgate_speaker_arp_dropped_total",
                "ARP frames the speaker did not answer, by reason.",
                "reason",
                &c.drops(),
            ));
            out.push_str(&metalgate_k8s::metrics::counter_family(
                "metalgate_speaker_gossip_rejected_total",
                "Gossip packets dropped as unauthenticated, by reason.",
                "reason",
                &rej.by_reason(),
            ));
            out.push_str(&format!(
                "# HELP metalgate_speaker_arp_replies_total ARP replies sent.\n# TYPE metalgate_speaker_arp_replies_total counter\nmetalgate_speaker_arp_replies_total {}\n",
                c.replied.load(Ordering::Relaxed)
            ));
            out
        }),
    );
}

/// `namespace/name` of a Service.
fn service_named<'a>(services: &'a [Arc<Service>], key: &str) -> Option<&'a Arc<Service>> {
    services
        .iter()
        .find(|s| reflect::key_of(&s.metadata) == key)
}

/// Carries out a round's [`Effect`]s.
struct Doer<'a> {
    client: &'a kube::Client,
    recorder: &'a kube::runtime::events::Recorder,
    me: &'a str,
    ifaces: &'a [NetworkInterface],
    services: &'a [Arc<Service>],
    counters: &'a Counters,
}

impl Doer<'_> {
    fn burst(&self, ip: std::net::Ipv4Addr, iface: &str) {
        if let Some(i) = self.ifaces.iter().find(|i| i.name == iface) {
            announce_burst(i.clone(), ip);
        }
    }

    async fn carry_out(&self, effect: Effect) {
        let me = self.me;
        match effect {
            Effect::Announce(ip, iface) => {
                tracing::info!(%ip, interface = %iface, "announcing");
                self.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                self.burst(ip, &iface);
            }
            Effect::Reclaim(ip, iface) => self.burst(ip, &iface),
            Effect::Withdraw(ip, iface) => {
                tracing::info!(%ip, interface = %iface, "no longer announcing");
            }
            Effect::RouteAdd(ip) => local_route(ip, true),
            Effect::RouteDel(ip) => local_route(ip, false),
            Effect::Annotate(service) => {
                let Some(svc) = service_named(self.services, &service) else {
                    return;
                };
                let ns = svc.namespace().unwrap_or_default();
                let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
                let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc.name_any(), "namespace": ns, "annotations": {ANNOUNCING_NODE: me}}});
                let pp = PatchParams::apply(FIELD_MANAGER).force();
                if let Err(e) = api.patch(&svc.name_any(), &pp, &Patch::Apply(&body)).await {
                    tracing::warn!(%service, error = %e, "annotating the announcing node failed");
                }
            }
            Effect::Assigned {
                service,
                ip,
                interface,
            } => {
                let Some(svc) = service_named(self.services, &service) else {
                    return;
                };
                let note = format!("announcing {ip} from node {me}, interface {interface}");
                let at = svc.object_ref(&());
                reflect::publish(
                    self.recorder,
                    &at,
                    EventType::Normal,
                    "nodeAssigned",
                    "Announce",
                    note,
                )
                .await;
            }
        }
    }
}

/// Run the speaker until `ctx.shutdown`.
pub async fn run(ctx: ComponentContext, cfg: Config) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let me = ctx.node.name.clone();
    let mut watches = reflect::Watches::new();
    let all = watcher::Config::default();
    let services = watches.store(Api::<Service>::all(client.clone()), all.clone());
    let nodes = watches.store(Api::<Node>::all(client.clone()), all.clone());
    let leases = watches.store(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        all.clone(),
    );
    let pools = watches.store(
        Api::<IPAddressPool>::namespaced(client.clone(), &cfg.namespace),
        all.clone(),
    );
    let advs = watches.store(
        Api::<L2Advertisement>::namespaced(client.clone(), &cfg.namespace),
        all.clone(),
    );
    let slices = watches.store(Api::<EndpointSlice>::all(client.clone()), all.clone());
    // The other speakers' presence Leases: a second sign of life for a gossip-only partition.
    let presence_leases = watches.store(
        Api::<Lease>::namespaced(client.clone(), &cfg.namespace),
        all.labels(presence::LABEL),
    );
    // Ready (for the DaemonSet's probe) once every watch has listed; a watch the speaker's
    // RBAC does not allow keeps it NotReady and announcing nothing, rather than announcing from
    // half the picture. (Each store is waited on here only: kube's `wait_until_ready` wakes one
    // waiter, so a second task waiting on a clone could hang this one.)
    let ready = Arc::new(AtomicBool::new(false));
    {
        let r = ready.clone();
        metalgate_k8s::metrics::register_readiness(
            "speaker",
            Arc::new(move || r.load(Ordering::Relaxed)),
        );
    }
    let listed = services.wait_until_ready().await.is_ok()
        && nodes.wait_until_ready().await.is_ok()
        && leases.wait_until_ready().await.is_ok()
        && pools.wait_until_ready().await.is_ok()
        && advs.wait_until_ready().await.is_ok()
        && slices.wait_until_ready().await.is_ok()
        && presence_leases.wait_until_ready().await.is_ok();
    if !listed {
        anyhow::bail!("a watch ended before its first list");
    }
    ready.store(true, Ordering::Relaxed);

    // Gossip among speakers, when this node's address is known.
    let (alive_tx, mut alive_rx) = watch::channel(BTreeSet::<String>::new());
    let (peers_tx, peers_rx) = watch::channel(Vec::<SocketAddr>::new());
    let gossip_stop = CancellationToken::new();
    let rejected = Arc::new(membership::Rejected::default());
    // Gossip is authenticated: without the keys there is none (liveness then comes from node
    // Leases, and failover is slow), never an unauthenticated one.
    let keys = match ctx.node.ip {
        Some(_) => {
            let keys = membership::watch_keys(
                client.clone(),
                &cfg.namespace,
                &cfg.memberlist_secret,
                KEYS_WAIT,
                ctx.shutdown.clone(),
            )
            .await;
            if keys.is_none() {
                tracing::error!(
                    secret = %format!("{}/{}", cfg.namespace, cfg.memberlist_secret),
                    "no usable gossip key within {KEYS_WAIT:?}: no gossip among speakers until restart; liveness falls back to node Leases (slow failover)"
                );
            }
            keys
        }
        None => None,
    };
    let gossip = match (ctx.node.ip, keys) {
        (Some(ip), Some(keys)) => {
            let id = SpeakerId {
                node: me.clone(),
                addr: SocketAddr::new(ip, membership::PORT),
                bump: 0,
            };
            let stop = gossip_stop.clone();
            let rejected = rejected.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = membership::run(id, peers_rx, alive_tx, keys, rejected, stop).await
                {
                    tracing::error!(error = %e, "speaker gossip failed");
                }
            }))
        }
        (Some(_), None) => None,
        (None, _) => {
            tracing::warn!(
                "no --node-ip: no gossip among speakers; liveness falls back to node Leases (slow failover)"
            );
            None
        }
    };
    // With gossip, renew this speaker's presence Lease (stopped before leaving the gossip, so
    // a planned hand-off is not taken for a partition).
    let presence_stop = CancellationToken::new();
    let renewer = gossip.as_ref().map(|_| {
        tokio::spawn(membership::renew(
            client.clone(),
            cfg.namespace.clone(),
            me.clone(),
            presence_stop.clone(),
        ))
    });
    let mut presence = presence::Presence::new(std::time::Instant::now());

    // Before announcing anything, give the gossip a moment to find the speakers that are up
    // (those with fresh Leases), so a starting speaker does not claim IPs others hold.
    if gossip.is_some() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let up: BTreeSet<String> = leases
                .state()
                .iter()
                .map(|l| l.name_any())
                .filter(|n| lease_fresh(&leases.state(), n))
                .collect();
            let heard = alive_rx.borrow().clone();
            let peers_known = !peers_tx.borrow().is_empty() || nodes.state().len() <= 1;
            if (peers_known && up.iter().all(|n| heard.contains(n)))
                || tokio::time::Instant::now() > deadline
            {
                break;
            }
            update_peers(&nodes.state(), &peers_tx);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let shared = Arc::new(ArcSwap::from_pointee(Vec::<Announcement>::new()));
    let counters = Arc::new(Counters::default());
    register_metrics(
        me.clone(),
        shared.clone(),
        counters.clone(),
        rejected.clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut ifaces = local_interfaces();
    let served: Arc<std::sync::Mutex<BTreeSet<String>>> = Default::default();
    let mut threads = Vec::new();
    // Answer on every interface there is, including ones that appear (or come back) later.
    let serve_new = |ifaces: &[NetworkInterface],
                     threads: &mut Vec<std::thread::JoinHandle<()>>| {
        for i in ifaces {
            if served
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(i.name.clone())
            {
                let (i, s, c, st, sv) = (
                    i.clone(),
                    shared.clone(),
                    counters.clone(),
                    stop.clone(),
                    served.clone(),
                );
                threads.push(std::thread::spawn(move || serve(i, s, c, st, sv)));
            }
        }
    };
    serve_new(&ifaces, &mut threads);
    // Let the other speakers know our MACs, so our answers are never taken for a conflict.
    let macs: Vec<String> = ifaces
        .iter()
        .filter_map(|i| i.mac.map(|m| m.to_string()))
        .collect();
    let node_api: Api<Node> = Api::all(client.clone());
    let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": me, "annotations": {SPEAKER_MACS: macs.join(",")}}});
    if let Err(e) = node_api
        .patch(
            &me,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        tracing::warn!(error = %e, "publishing this speaker's MACs failed");
    }
    let mut locals: Vec<LocalInterface>;
    let recorder = reflect::recorder(&client, FIELD_MANAGER, &me);

    let mut state = State::default();
    loop {
        ifaces = local_interfaces();
        serve_new(&ifaces, &mut threads);
        locals = ifaces
            .iter()
            .map(|i| LocalInterface {
                name: i.name.clone(),
                nets: v4_nets(i),
            })
            .collect();
        let svc_state = services.state();
        let svc_refs: Vec<&Service> = svc_state.iter().map(|s| s.as_ref()).collect();
        let node_objs = nodes.state();
        update_peers(&node_objs, &peers_tx);
        let mut alive_now = alive_rx.borrow_and_update().clone();
        // A speaker the gossip lost but whose presence Lease is still renewed is cut off from
        // the gossip, not dead: keep it live (the partition bound, `presence`).
        let now_i = std::time::Instant::now();
        let presence_state = presence_leases.state();
        presence.observe(
            presence_state
                .iter()
                .filter_map(|l| {
                    let node = presence::node_of(l.metadata.name.as_deref()?)?;
                    let renewed = l.spec.as_ref()?.renew_time.as_ref()?;
                    Some((node, renewed.0.to_string()))
                })
                .collect::<Vec<_>>()
                .iter()
                .map(|(n, v)| (*n, v.as_str())),
            &alive_now,
            now_i,
        );
        let cut_off: Vec<String> = node_objs
            .iter()
            .map(|n| n.name_any())
            .filter(|n| !alive_now.contains(n) && presence.partitioned(n, now_i))
            .collect();
        if !cut_off.is_empty() {
            tracing::warn!(nodes = ?cut_off, "gossip lost these speakers but their presence Leases are renewed: a gossip partition; keeping them live");
        }
        alive_now.extend(cut_off);
        let node_state = node_states(
            &node_objs,
            &leases.state(),
            &me,
            gossip.as_ref().map(|_| &alive_now),
        );
        let pool_state: Vec<PoolInfo> = pools.state().iter().map(|p| pool_info(p)).collect();
        let adv_state: Vec<L2Adv> = advs
            .state()
            .iter()
            .map(|a| L2Adv {
                pools: a.spec.ip_address_pools.clone(),
                pool_selectors: a.spec.ip_address_pool_selectors.clone(),
                node_selectors: a.spec.node_selectors.clone(),
                interfaces: a.spec.interfaces.clone(),
            })
            .collect();
        // Our own Lease is renewed every few seconds; if our view of it is stale, our view of
        // everyone is: keep announcing what we announced rather than act on old news (two
        // speakers must never both answer).
        let view_fresh = gossip.is_some()
            || (node_state.iter().any(|n| n.name == me && n.alive)
                && lease_fresh(&leases.state(), &me));
        if !view_fresh && !state.announced.is_empty() {
            tracing::warn!("the API view is stale; keeping the current announcements");
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                _ = watches.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            continue;
        }
        let (decisions, announcements) = plan(
            &me,
            &svc_refs,
            &node_state,
            &pool_state,
            &adv_state,
            &ready_endpoint_nodes(&slices.state()),
            &locals,
        );
        // RFC 5227: before announcing an IP afresh (not taking it over from another speaker),
        // ask whether someone already has it; if so, do not announce, say so, retry later.
        let mut kept = Vec::with_capacity(announcements.len());
        for a in announcements {
            match state.probe(&me, a.ip, std::time::Instant::now()) {
                Probe::No => {}
                Probe::Wait => continue,
                Probe::Ask => {
                    let iface = ifaces.iter().find(|i| i.name == a.interface).cloned();
                    let (ip, speakers) = (a.ip, speaker_macs(&node_objs));
                    let taken = match iface {
                        Some(i) => {
                            tokio::task::spawn_blocking(move || probe_conflict(&i, ip, &speakers))
                                .await
                                .unwrap_or(None)
                        }
                        None => None,
                    };
                    let first = state.probed(ip, taken.is_some(), std::time::Instant::now());
                    if let Some(mac) = taken {
                        if first {
                            tracing::warn!(%ip, %mac, "IP already in use on the network; not announcing it");
                            let note = format!(
                                "{ip} is already in use on {} by {mac}; node {me} does not announce it and will check again",
                                a.interface
                            );
                            let svc = decisions
                                .iter()
                                .find(|d| d.ip == ip)
                                .and_then(|d| service_named(&svc_state, &d.service));
                            if let Some(svc) = svc {
                                let at = svc.object_ref(&());
                                reflect::publish(
                                    &recorder,
                                    &at,
                                    EventType::Warning,
                                    "IPConflict",
                                    "Probe",
                                    note,
                                )
                                .await;
                            }
                        }
                        continue;
                    }
                }
            }
            kept.push(a);
        }
        let annotated: BTreeSet<String> = svc_state
            .iter()
            .filter(|s| s.annotations().get(ANNOUNCING_NODE) == Some(&me))
            .map(|s| reflect::key_of(&s.metadata))
            .collect();
        let (next, effects) = transition(
            &state,
            Round {
                me: &me,
                decisions: &decisions,
                announcements: &kept,
                alive: &alive_now,
                annotated: &annotated,
                local_delivery: cfg.local_delivery,
            },
        );
        shared.store(Arc::new(kept));
        let doer = Doer {
            client: &client,
            recorder: &recorder,
            me: &me,
            ifaces: &ifaces,
            services: &svc_state,
            counters: &counters,
        };
        for effect in effects {
            doer.carry_out(effect).await;
        }
        state = next;
        tracing::debug!(replied = counters.replied.load(Ordering::Relaxed), drops = ?counters.drops(), "ARP counters");

        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = watches.changed() => {}
            _ = alive_rx.changed() => {}
            // Leases age without events: look again now and then.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Planned hand-off, make before break: leave the gossip so a successor takes over and
    // sends its gratuitous ARP, and keep answering meanwhile.
    presence_stop.cancel();
    if let Some(r) = renewer {
        let _ = r.await;
    }
    gossip_stop.cancel();
    if let Some(g) = gossip {
        let _ = g.await;
        if !state.announced.is_empty() {
            tokio::time::sleep(HANDOFF).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if cfg.local_delivery {
        let held: BTreeSet<_> = state.announced.iter().map(|(ip, _)| *ip).collect();
        for ip in held {
            local_route(ip, false);
        }
    }
    shared.store(Arc::new(Vec::new()));
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    drop(watches);
    Ok(())
}
