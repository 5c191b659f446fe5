//! Which speakers are alive: SWIM gossip among them (foca over UDP), tuned for a LAN so a dead
//! speaker is noticed in well under a second. It keeps working when the API server is gone:
//! the speakers carry on from their last view of the cluster and only need each other.
//!
//! Every packet is authenticated with the shared [`Keyring`]: one without a valid tag is dropped
//! before the gossip sees it and counted in [`Rejected`], so a host on the segment without the
//! key can neither join nor speak for (or against) a member.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foca::{AccumulatingRuntime, Config, Foca, Identity, OwnedNotification, PostcardCodec, Timer};
use rand_foca::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::keyring::{Keyring, Reject};

/// Gossip packets dropped because they were not authenticated, by reason.
#[derive(Debug, Default)]
pub struct Rejected {
    /// No tag (a plain foca packet, or garbage).
    pub unsigned: AtomicU64,
    /// A tag no key of the ring verifies.
    pub bad_signature: AtomicU64,
}

impl Rejected {
    fn count(&self, r: Reject) {
        match r {
            Reject::Unsigned => &self.unsigned,
            Reject::BadSignature => &self.bad_signature,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// `(reason, count)` pairs for `/metrics`.
    pub fn by_reason(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("unsigned", self.unsigned.load(Ordering::Relaxed)),
            ("bad_signature", self.bad_signature.load(Ordering::Relaxed)),
        ]
    }
}

/// The gossip port (memberlist's).
pub const PORT: u16 = 7946;

/// A speaker's identity in the gossip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerId {
    /// Node name.
    pub node: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Bumped when it rejoins after being declared down.
    pub bump: u16,
}

impl Identity for SpeakerId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(SpeakerId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump.wrapping_sub(adversary.bump) < u16::MAX / 2 && self.bump != adversary.bump
    }
}

/// Gossip timing for a LAN of a few nodes: a dead member is declared down within ~0.5 s.
pub fn lan_config(nodes: u32) -> Config {
    let mut c = Config::new_lan(NonZeroU32::new(nodes.max(1)).expect("at least one"));
    c.probe_period = Duration::from_millis(100);
    c.probe_rtt = Duration::from_millis(40);
    c.suspect_to_down_after = Duration::from_millis(150);
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: Duration::from_millis(50),
        num_members: std::num::NonZeroUsize::new(3).expect("3"),
    });
    c.periodic_announce = Some(foca::PeriodicParams {
        frequency: Duration::from_secs(2),
        num_members: std::num::NonZeroUsize::new(2).expect("2"),
    });
    c
}

/// Run the gossip until `shutdown`, publishing the names of live speakers (this one included).
/// `peers` gives the addresses of the other nodes to announce to (from Node objects); `keys`
/// the current keyring (it may change while running: rotation); dropped packets are counted in
/// `rejected`.
pub async fn run(
    me: SpeakerId,
    peers: watch::Receiver<Vec<SocketAddr>>,
    alive: watch::Sender<BTreeSet<String>>,
    keys: watch::Receiver<Keyring>,
    rejected: Arc<Rejected>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(me.addr).await?;
    let seed = me
        .node
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        ^ std::process::id() as u64;
    let mut foca = Foca::new(
        me.clone(),
        lan_config(3),
        rand_foca::rngs::StdRng::seed_from_u64(seed),
        PostcardCodec,
    );
    let mut rt = AccumulatingRuntime::new();
    let (timer_tx, mut timer_rx) = mpsc::unbounded_channel::<Timer<SpeakerId>>();
    let mut buf = vec![0u8; 65536];
    let mut announce = tokio::time::interval(Duration::from_millis(500));
    let publish = |foca: &Foca<
        SpeakerId,
        PostcardCodec,
        rand_foca::rngs::StdRng,
        foca::NoCustomBroadcast,
    >| {
        let mut names: BTreeSet<String> =
            foca.iter_members().map(|m| m.id().node.clone()).collect();
        names.insert(me.node.clone());
        alive.send_if_modified(|cur| {
            if *cur != names {
                tracing::info!(alive = ?names, "speaker membership changed");
                *cur = names;
                true
            } else {
                false
            }
        });
    };
    publish(&foca);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Leave, so the others take over at once (the announcer keeps answering a
                // little longer: make before break).
                let _ = foca.leave_cluster(&mut rt);
                flush(&socket, &keys, &mut rt, &timer_tx).await;
                return Ok(());
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    let opened = keys.borrow().open(&buf[..n]).map(<[u8]>::to_vec);
                    match opened {
                        Ok(payload) => {
                            if let Err(e) = foca.handle_data(&payload, &mut rt) {
                                tracing::debug!(error = %e, "bad gossip packet");
                            }
                        }
                        Err(reason) => {
                            rejected.count(reason);
                            tracing::debug!(%from, ?reason, "unauthenticated gossip packet dropped");
                        }
                    }
                }
            }
            Some(t) = timer_rx.recv() => {
                let _ = foca.handle_timer(t, &mut rt);
            }
            _ = announce.tick() => {
                // Introduce ourselves to nodes we do not have as members yet.
                let known: BTreeSet<SocketAddr> = foca.iter_members().map(|m| m.id().addr).collect();
                for addr in peers.borrow().iter().filter(|a| **a != me.addr && !known.contains(a)) {
                    let peer = SpeakerId { node: String::new(), addr: *addr, bump: 0 };
                    let _ = foca.announce(peer, &mut rt);
                }
            }
        }
        flush(&socket, &keys, &mut rt, &timer_tx).await;
        publish(&foca);
    }
}

async fn flush(
    socket: &UdpSocket,
    keys: &watch::Receiver<Keyring>,
    rt: &mut AccumulatingRuntime<SpeakerId>,
    timers: &mpsc::UnboundedSender<Timer<SpeakerId>>,
) {
    while let Some((dst, data)) = rt.to_send() {
        let packet = keys.borrow().seal(&data);
        let _ = socket.send_to(&packet, dst.addr).await;
    }
    while let Some((after, timer)) = rt.to_schedule() {
        let tx = timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(timer);
        });
    }
    while let Some(n) = rt.to_notify() {
        match n {
            OwnedNotification::MemberUp(id) => tracing::debug!(node = %id.node, "speaker up"),
            OwnedNotification::MemberDown(id) => tracing::info!(node = %id.node, "speaker down"),
            _ => {}
        }
    }
}

/// The keyring from the Secret `namespace/name`, kept current by a watch (rotation applies
/// within a second). Waits up to `wait` for a usable Secret: `None` if there is none by then.
/// A later edit that does not make a keyring (an entry missing or too short), or the Secret's
/// deletion, keeps the keys in use and logs why: dropping them would cut every speaker off
/// from the others, and each would then claim every IP.
pub async fn watch_keys(
    client: kube::Client,
    namespace: &str,
    name: &str,
    wait: Duration,
    shutdown: CancellationToken,
) -> Option<watch::Receiver<Keyring>> {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::runtime::{WatchStreamExt, watcher};

    let api = kube::Api::<Secret>::namespaced(client, namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // Backed off (0.8 s doubling to 30 s) while the store is away: retrying every half second
    // logged two errors a second on every node for as long as it was gone.
    let mut events = watcher(api, cfg).default_backoff().boxed();
    let what = format!("Secret {namespace}/{name}");
    let parse = move |s: &Secret, what: &str| -> Result<Keyring, String> {
        let data: std::collections::BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        Keyring::from_secret_data(&data).map_err(|e| format!("{what}: {e}"))
    };
    let first = tokio::time::timeout(wait, async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                    match parse(&s, &what) {
                        Ok(k) => return Some(k),
                        Err(e) => {
                            tracing::error!("{e}; the speakers cannot gossip until it is fixed")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "{what}: watch failed; retrying"),
            }
        }
        None
    })
    .await
    .ok()
    .flatten()?;
    tracing::info!(entries = ?first.entries(), "{what}: gossip keys loaded");
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = events.next() => match ev {
                    None => return,
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                        match parse(&s, &what) {
                            Ok(k) => {
                                tracing::info!(entries = ?k.entries(), "{what}: gossip keys changed");
                                tx.send_replace(k);
                            }
                            Err(e) => tracing::error!("{e}; keeping the keys in use"),
                        }
                    }
                    Some(Ok(watcher::Event::Delete(_))) => {
                        tracing::warn!("{what} was deleted; keeping the keys in use");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "{what}: watch failed; retrying"),
                }
            }
        }
    });
    Some(rx)
}

/// Renew this speaker's presence Lease every [`crate::presence::RENEW`] until `stop`, then
/// delete it (a speaker that leaves on purpose is not taken for a partitioned one).
pub async fn renew(client: kube::Client, namespace: String, node: String, stop: CancellationToken) {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use kube::api::{DeleteParams, Patch, PatchParams};

    let api = kube::Api::<Lease>::namespaced(client, &namespace);
    let name = crate::presence::lease_name(&node);
    let params = PatchParams::apply("metalgate-speaker").force();
    let mut tick = tokio::time::interval(crate::presence::RENEW);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some([(crate::presence::LABEL.to_string(), node.clone())].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.clone()),
                lease_duration_seconds: Some(crate::presence::FRESH.as_secs() as i32),
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            }),
        };
        let mut body = serde_json::to_value(&lease).unwrap_or_default();
        body["apiVersion"] = "coordination.k8s.io/v1".into();
        body["kind"] = "Lease".into();
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(lease = %name, "presence Lease renewed again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(lease = %name, error = %e, "cannot renew the presence Lease (a gossip partition would then look like a death)");
            }
            Err(_) => {}
        }
    }
    let _ = api.delete(&name, &DeleteParams::default()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &[u8] = b"0123456789abcdef0123456789abcdef";
    const K2: &[u8] = b"fedcba9876543210fedcba9876543210";
    const K3: &[u8] = b"an attacker's key, long enough!!";

    struct Member {
        /// Kept with the member: the gossip reads the peers until it stops.
        _peers: watch::Sender<Vec<SocketAddr>>,
        alive: watch::Receiver<BTreeSet<String>>,
        keys: watch::Sender<Keyring>,
        rejected: Arc<Rejected>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    fn free_addr() -> SocketAddr {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free loopback UDP port")
    }

    fn start(
        node: &str,
        addr: SocketAddr,
        peers: Vec<SocketAddr>,
        keys: &[&[u8]],
        stop: &CancellationToken,
    ) -> Member {
        let (peers_tx, peers_rx) = watch::channel(peers);
        let (alive_tx, alive) = watch::channel(BTreeSet::new());
        let (keys, keys_rx) = watch::channel(Keyring::new(keys).expect("keys"));
        let rejected = Arc::new(Rejected::default());
        let me = SpeakerId {
            node: node.into(),
            addr,
            bump: 0,
        };
        let task = tokio::spawn(run(
            me,
            peers_rx,
            alive_tx,
            keys_rx,
            rejected.clone(),
            stop.clone(),
        ));
        Member {
            _peers: peers_tx,
            alive,
            keys,
            rejected,
            task,
        }
    }

    fn names(m: &Member) -> Vec<String> {
        m.alive.borrow().iter().cloned().collect()
    }

    async fn until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < end {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_host_without_the_key_cannot_join_and_its_packets_are_counted() {
        let stop = CancellationToken::new();
        let (a, b, c) = (free_addr(), free_addr(), free_addr());
        let ma = start("a", a, vec![b, c], &[K1], &stop);
        let mb = start("b", b, vec![a, c], &[K1], &stop);
        // The intruder knows every address and gossips, with the wrong key.
        let mc = start("c", c, vec![a, b], &[K3], &stop);
        let met = until(Duration::from_secs(5), || {
            names(&ma) == ["a", "b"] && names(&mb) == ["a", "b"]
        })
        .await;
        // Give the intruder time it would need to be heard (announces every 500 ms).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (seen_a, seen_b, seen_c) = (names(&ma), names(&mb), names(&mc));
        let dropped = ma.rejected.bad_signature.load(Ordering::Relaxed);
        stop.cancel();
        for m in [ma, mb, mc] {
            let _ = m.task.await;
        }
        assert!(
            met,
            "a and b did not find each other: {seen_a:?} {seen_b:?}"
        );
        assert_eq!(seen_a, ["a", "b"], "a let the intruder in");
        assert_eq!(seen_b, ["a", "b"], "b let the intruder in");
        assert_eq!(seen_c, ["c"], "the intruder heard the members");
        assert!(dropped > 0, "a counted none of the intruder's packets");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_rotate_without_a_partition_and_a_dropped_key_cuts_the_member_off() {
        let stop = CancellationToken::new();
        let (a, b) = (free_addr(), free_addr());
        // Rotation steps 1 and 2 at once: each accepts the other's signing key.
        let ma = start("a", a, vec![b], &[K1, K2], &stop);
        let mb = start("b", b, vec![a], &[K2, K1], &stop);
        let met = until(Duration::from_secs(5), || names(&ma) == ["a", "b"]).await;
        // b moves to a key a does not hold: a loses it (it is no longer heard).
        mb.keys
            .send(Keyring::new(&[K3]).unwrap())
            .expect("b's keyring");
        let lost = until(Duration::from_secs(5), || names(&ma) == ["a"]).await;
        // And back to the key a signs with: heard again, without a restart.
        mb.keys
            .send(Keyring::new(&[K1]).unwrap())
            .expect("b's keyring");
        let again = until(Duration::from_secs(5), || names(&ma) == ["a", "b"]).await;
        let seen = names(&ma);
        stop.cancel();
        for m in [ma, mb] {
            let _ = m.task.await;
        }
        assert!(met, "a and b did not meet during rotation");
        assert!(lost, "a still hears b signing with a key a does not hold");
        assert!(
            again,
            "a did not hear b after b took a shared key: {seen:?}"
        );
    }
}
