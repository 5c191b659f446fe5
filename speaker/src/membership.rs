//! Which speakers are alive: SWIM gossip among them (foca over UDP), tuned for a LAN so a dead
//! speaker is noticed in well under a second. It keeps working when the API server is gone:
//! the speakers carry on from their last view of the cluster and only need each other.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use foca::{AccumulatingRuntime, Config, Foca, Identity, OwnedNotification, PostcardCodec, Timer};
use rand_foca::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

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
/// `peers` gives the addresses of the other nodes to announce to (from Node objects).
pub async fn run(
    me: SpeakerId,
    peers: watch::Receiver<Vec<SocketAddr>>,
    alive: watch::Sender<BTreeSet<String>>,
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
                flush(&socket, &mut rt, &timer_tx).await;
                return Ok(());
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, _)) = r {
                    if let Err(e) = foca.handle_data(&buf[..n], &mut rt) {
                        tracing::debug!(error = %e, "bad gossip packet");
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
        flush(&socket, &mut rt, &timer_tx).await;
        publish(&foca);
    }
}

async fn flush(
    socket: &UdpSocket,
    rt: &mut AccumulatingRuntime<SpeakerId>,
    timers: &mpsc::UnboundedSender<Timer<SpeakerId>>,
) {
    while let Some((dst, data)) = rt.to_send() {
        let _ = socket.send_to(&data, dst.addr).await;
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
