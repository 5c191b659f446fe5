//! A second sign of life beside the gossip, for a gossip-only partition: each speaker renews a
//! Lease of its own (`metalgate-speaker-<node>`) every [`RENEW`]. When the gossip loses a
//! speaker but its Lease is renewed *after* that, the speaker is running and only the gossip
//! between us is cut (UDP 7946 filtered, say): it stays live, so two speakers do not both
//! answer for one IP for longer than [`PARTITION_BOUND`]. A speaker that really died renews
//! nothing, so failover stays as fast as the gossip.
//!
//! Renewals are compared by value, never by clock: "renewed after it left the gossip" is "its
//! renewTime changed after we saw it leave", so clock skew between nodes does not matter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How often a speaker renews its presence Lease.
pub const RENEW: Duration = Duration::from_secs(1);
/// A renewal seen within this long keeps a speaker that the gossip lost live (3 missed
/// renewals: a dead speaker is out within this long even in the rare case where its last
/// renewal reached us after the gossip lost it).
pub const FRESH: Duration = Duration::from_secs(3);
/// The longest two speakers answer for one IP in a gossip-only partition: the gossip declares
/// the other down (≈0.35 s), its next renewal reaches us (≤ [`RENEW`] plus the watch's
/// latency), and the next plan runs — written down here, measured in the lab
/// (`tests/lab/network.rs`).
pub const PARTITION_BOUND: Duration = Duration::from_secs(2);

/// The label on presence Leases (the speakers watch only those).
pub const LABEL: &str = "metalgate.io/speaker-presence";

/// The presence Lease's name for a node.
pub fn lease_name(node: &str) -> String {
    format!("metalgate-speaker-{node}")
}

/// The node a presence Lease belongs to.
pub fn node_of(lease: &str) -> Option<&str> {
    lease.strip_prefix("metalgate-speaker-")
}

#[derive(Debug, Clone)]
struct Seen {
    /// The last renewTime value seen.
    value: String,
    /// When (our clock) it last changed.
    changed: Instant,
}

/// What this speaker knows of the others' presence: pure, fed by the announcer.
#[derive(Debug, Clone)]
pub struct Presence {
    started: Instant,
    seen: BTreeMap<String, Seen>,
    /// When (our clock) each node was last heard in the gossip.
    in_gossip: BTreeMap<String, Instant>,
}

impl Presence {
    /// A tracker that starts at `now` (nodes never heard in the gossip count as lost then).
    pub fn new(now: Instant) -> Presence {
        Presence {
            started: now,
            seen: BTreeMap::new(),
            in_gossip: BTreeMap::new(),
        }
    }

    /// Record the presence Leases (node, renewTime) and who the gossip hears, at `now`.
    pub fn observe<'a>(
        &mut self,
        leases: impl IntoIterator<Item = (&'a str, &'a str)>,
        gossip: &BTreeSet<String>,
        now: Instant,
    ) {
        for (node, value) in leases {
            match self.seen.get_mut(node) {
                Some(s) if s.value == value => {}
                Some(s) => {
                    s.value = value.to_string();
                    s.changed = now;
                }
                None => {
                    // First sight: not a renewal we saw happen.
                    self.seen.insert(
                        node.to_string(),
                        Seen {
                            value: value.to_string(),
                            changed: self.started,
                        },
                    );
                }
            }
        }
        for n in gossip {
            self.in_gossip.insert(n.clone(), now);
        }
    }

    /// Whether `node`, not heard in the gossip, renewed its Lease after the gossip lost it and
    /// recently: cut off from the gossip, not dead.
    pub fn partitioned(&self, node: &str, now: Instant) -> bool {
        let Some(s) = self.seen.get(node) else {
            return false;
        };
        let lost_at = self.in_gossip.get(node).copied().unwrap_or(self.started);
        s.changed > lost_at && now.duration_since(s.changed) < FRESH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_dead_speaker_is_not_kept_live_by_its_old_lease() {
        let t0 = Instant::now();
        let mut p = Presence::new(t0);
        p.observe([("b", "r1")], &set(&["a", "b"]), t0);
        // b dies: the gossip loses it, its Lease stays as it was.
        let t1 = t0 + Duration::from_millis(400);
        p.observe([("b", "r1")], &set(&["a"]), t1);
        assert!(!p.partitioned("b", t1));
        assert!(!p.partitioned("b", t1 + Duration::from_secs(1)));
    }

    #[test]
    fn a_renewal_after_the_gossip_lost_it_means_a_partition_until_renewals_stop() {
        let t0 = Instant::now();
        let mut p = Presence::new(t0);
        p.observe([("b", "r1")], &set(&["a", "b"]), t0);
        let t1 = t0 + Duration::from_millis(400);
        p.observe([("b", "r1")], &set(&["a"]), t1);
        // b renews: it runs, only the gossip between us is cut.
        let t2 = t1 + Duration::from_millis(700);
        p.observe([("b", "r2")], &set(&["a"]), t2);
        assert!(p.partitioned("b", t2));
        // Renewals stop (b died later): out after FRESH.
        assert!(p.partitioned("b", t2 + FRESH - Duration::from_millis(1)));
        assert!(!p.partitioned("b", t2 + FRESH));
    }

    #[test]
    fn renewals_while_heard_in_the_gossip_are_not_a_partition() {
        let t0 = Instant::now();
        let mut p = Presence::new(t0);
        for i in 0..5u32 {
            let t = t0 + Duration::from_secs(i.into());
            p.observe([("b", format!("r{i}").as_str())], &set(&["a", "b"]), t);
            assert!(!p.partitioned("b", t), "second {i}");
        }
    }

    #[test]
    fn a_speaker_never_heard_but_renewing_is_partitioned_and_one_never_seen_is_not() {
        let t0 = Instant::now();
        let mut p = Presence::new(t0);
        p.observe([("b", "r1")], &set(&["a"]), t0);
        assert!(!p.partitioned("b", t0), "first sight is not a renewal");
        let t1 = t0 + Duration::from_secs(1);
        p.observe([("b", "r2")], &set(&["a"]), t1);
        assert!(p.partitioned("b", t1));
        assert!(!p.partitioned("c", t1));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(node_of(&lease_name("node2")), Some("node2"));
        assert_eq!(node_of("metalgate-controller"), None);
    }
}
