//! One round of the announcer, decided without I/O: given what this node announced last round
//! and what [`crate::plan`] says now, which IPs it starts and stops answering for, which it
//! must probe first (RFC 5227), which it wins back from a speaker that (re)joined, and which
//! routes, annotations and Events follow. [`crate::announcer`] carries the effects out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::arp::Announcement;
use crate::plan::Decision;

/// How long an IP found in use waits before it is probed again.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(10);

/// What the announcer remembers from one round to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// (IP, interface) answered for.
    pub announced: BTreeSet<(Ipv4Addr, String)>,
    /// The speakers alive last round.
    pub alive: BTreeSet<String>,
    /// Last round's owner of each IP (None: nobody may announce it).
    pub owners: BTreeMap<Ipv4Addr, Option<String>>,
    /// IPs found in use by another host: when to probe again.
    pub conflicts: BTreeMap<Ipv4Addr, Instant>,
}

/// Whether an IP may be announced without asking the network first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Already ours, or taken over from another speaker: announce.
    No,
    /// New to this node and to every speaker: ask whether a host has it (RFC 5227).
    Ask,
    /// Found in use a moment ago: leave it until the retry time.
    Wait,
}

impl State {
    /// Whether `ip` must be probed before this node announces it.
    pub fn probe(&self, me: &str, ip: Ipv4Addr, now: Instant) -> Probe {
        let held = self.announced.iter().any(|(a, _)| *a == ip);
        let takeover = self
            .owners
            .get(&ip)
            .is_some_and(|o| o.as_deref().is_some_and(|o| o != me));
        if held || takeover {
            Probe::No
        } else if self.conflicts.get(&ip).is_some_and(|at| now < *at) {
            Probe::Wait
        } else {
            Probe::Ask
        }
    }

    /// Record a probe's answer; true when the IP is newly found in use (warn once).
    pub fn probed(&mut self, ip: Ipv4Addr, in_use: bool, now: Instant) -> bool {
        if in_use {
            self.conflicts.insert(ip, now + CONFLICT_RETRY).is_none()
        } else {
            self.conflicts.remove(&ip);
            false
        }
    }
}

/// What a round sees.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// This node.
    pub me: &'a str,
    /// Every IP's owner and interface ([`crate::plan::plan`]).
    pub decisions: &'a [Decision],
    /// What this node answers for now (after probing).
    pub announcements: &'a [Announcement],
    /// The speakers alive now.
    pub alive: &'a BTreeSet<String>,
    /// Services (`namespace/name`) whose announcing-node annotation already names this node.
    pub annotated: &'a BTreeSet<String>,
    /// Standalone mode: owned IPs get a local route.
    pub local_delivery: bool,
}

/// Something the announcer does because of a round.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Start answering: log, count a takeover, send gratuitous ARP.
    Announce(Ipv4Addr, String),
    /// Still ours, but a speaker (re)joined and may have answered meanwhile: gratuitous ARP.
    Reclaim(Ipv4Addr, String),
    /// Stop answering (log).
    Withdraw(Ipv4Addr, String),
    /// Add the local route of an IP this node now holds.
    RouteAdd(Ipv4Addr),
    /// Remove the local route of an IP this node no longer holds.
    RouteDel(Ipv4Addr),
    /// Set the Service's announcing-node annotation to this node.
    Annotate(String),
    /// A `nodeAssigned` Event on the Service: this node announces the IP on the interface.
    Assigned {
        /// `namespace/name`.
        service: String,
        /// The IP.
        ip: Ipv4Addr,
        /// The interface.
        interface: String,
    },
}

/// The next state and the effects of one round.
pub fn transition(state: &State, round: Round<'_>) -> (State, Vec<Effect>) {
    let now: BTreeSet<(Ipv4Addr, String)> = round
        .announcements
        .iter()
        .map(|a| (a.ip, a.interface.clone()))
        .collect();
    let prev = &state.announced;
    let mut effects: Vec<Effect> = now
        .difference(prev)
        .map(|(ip, i)| Effect::Announce(*ip, i.clone()))
        .collect();
    // A first view of the speakers is not a join.
    let joined = !state.alive.is_empty() && round.alive.difference(&state.alive).next().is_some();
    if joined {
        effects.extend(
            now.intersection(prev)
                .map(|(ip, i)| Effect::Reclaim(*ip, i.clone())),
        );
    }
    effects.extend(
        prev.difference(&now)
            .map(|(ip, i)| Effect::Withdraw(*ip, i.clone())),
    );
    if round.local_delivery {
        let ips = |s: &BTreeSet<(Ipv4Addr, String)>| -> BTreeSet<Ipv4Addr> {
            s.iter().map(|(ip, _)| *ip).collect()
        };
        let (was, is) = (ips(prev), ips(&now));
        effects.extend(is.difference(&was).map(|ip| Effect::RouteAdd(*ip)));
        effects.extend(was.difference(&is).map(|ip| Effect::RouteDel(*ip)));
    }
    for d in round.decisions {
        let Some(interface) = d.interface.as_ref() else {
            continue;
        };
        if d.owner.as_deref() != Some(round.me) {
            continue;
        }
        if !round.annotated.contains(&d.service) {
            effects.push(Effect::Annotate(d.service.clone()));
        }
        if !prev.iter().any(|(ip, _)| *ip == d.ip) {
            effects.push(Effect::Assigned {
                service: d.service.clone(),
                ip: d.ip,
                interface: interface.clone(),
            });
        }
    }
    let next = State {
        announced: now,
        alive: round.alive.clone(),
        owners: round
            .decisions
            .iter()
            .map(|d| (d.ip, d.owner.clone()))
            .collect(),
        conflicts: state.conflicts.clone(),
    };
    (next, effects)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 56, 200 + n)
    }

    fn ann(n: u8, iface: &str) -> Announcement {
        Announcement {
            ip: ip(n),
            interface: iface.into(),
            same_subnet_only: true,
        }
    }

    fn ours(n: u8, iface: &str) -> Decision {
        Decision {
            service: format!("apps/svc-{n}"),
            ip: ip(n),
            owner: Some("a".into()),
            interface: Some(iface.into()),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn round<'a>(
        decisions: &'a [Decision],
        announcements: &'a [Announcement],
        alive: &'a BTreeSet<String>,
        annotated: &'a BTreeSet<String>,
    ) -> Round<'a> {
        Round {
            me: "a",
            decisions,
            announcements,
            alive,
            annotated,
            local_delivery: true,
        }
    }

    #[test]
    fn a_new_ip_is_announced_routed_annotated_and_reported_once() {
        let (d, a) = ([ours(0, "eth1")], [ann(0, "eth1")]);
        let (alive, none) = (set(&["a", "b"]), set(&[]));
        let (s1, e1) = transition(&State::default(), round(&d, &a, &alive, &none));
        assert_eq!(
            e1,
            vec![
                Effect::Announce(ip(0), "eth1".into()),
                Effect::RouteAdd(ip(0)),
                Effect::Annotate("apps/svc-0".into()),
                Effect::Assigned {
                    service: "apps/svc-0".into(),
                    ip: ip(0),
                    interface: "eth1".into()
                },
            ]
        );
        // Next round, annotated by then: nothing to do.
        let annotated = set(&["apps/svc-0"]);
        let (s2, e2) = transition(&s1, round(&d, &a, &alive, &annotated));
        assert_eq!(e2, vec![]);
        assert_eq!(s2, s1);
        // The annotation removed by hand is put back, without a second Event.
        let (_, e3) = transition(&s2, round(&d, &a, &alive, &none));
        assert_eq!(e3, vec![Effect::Annotate("apps/svc-0".into())]);
    }

    #[test]
    fn a_lost_ip_is_withdrawn_and_its_route_removed() {
        let (d, a) = ([ours(0, "eth1")], [ann(0, "eth1")]);
        let (alive, annotated) = (set(&["a"]), set(&["apps/svc-0"]));
        let (s1, _) = transition(&State::default(), round(&d, &a, &alive, &annotated));
        let (s2, e) = transition(&s1, round(&[], &[], &alive, &annotated));
        assert_eq!(
            e,
            vec![
                Effect::Withdraw(ip(0), "eth1".into()),
                Effect::RouteDel(ip(0))
            ]
        );
        assert!(s2.announced.is_empty());
    }

    #[test]
    fn moving_to_another_interface_keeps_the_route_and_sends_no_event() {
        let annotated = set(&["apps/svc-0"]);
        let alive = set(&["a"]);
        let (s1, _) = transition(
            &State::default(),
            round(&[ours(0, "eth1")], &[ann(0, "eth1")], &alive, &annotated),
        );
        let (_, e) = transition(
            &s1,
            round(&[ours(0, "eth2")], &[ann(0, "eth2")], &alive, &annotated),
        );
        assert_eq!(
            e,
            vec![
                Effect::Announce(ip(0), "eth2".into()),
                Effect::Withdraw(ip(0), "eth1".into())
            ]
        );
    }

    #[test]
    fn a_speaker_that_joins_makes_held_ips_reclaimed_but_the_first_view_does_not() {
        let (d, a) = ([ours(0, "eth1")], [ann(0, "eth1")]);
        let annotated = set(&["apps/svc-0"]);
        let (s1, e1) = transition(&State::default(), round(&d, &a, &set(&["a"]), &annotated));
        assert!(!e1.iter().any(|e| matches!(e, Effect::Reclaim(..))));
        let (s2, e2) = transition(&s1, round(&d, &a, &set(&["a", "b"]), &annotated));
        assert_eq!(e2, vec![Effect::Reclaim(ip(0), "eth1".into())]);
        // b leaving is no join.
        let (_, e3) = transition(&s2, round(&d, &a, &set(&["a"]), &annotated));
        assert_eq!(e3, vec![]);
        // Holding an IP before the gossip heard anyone (none alive): its first view is no join.
        let deaf = State {
            alive: BTreeSet::new(),
            ..s1
        };
        let (_, e4) = transition(&deaf, round(&d, &a, &set(&["a", "b"]), &annotated));
        assert_eq!(e4, vec![]);
    }

    #[test]
    fn without_local_delivery_no_routes() {
        let (d, a) = ([ours(0, "eth1")], [ann(0, "eth1")]);
        let (alive, annotated) = (set(&["a"]), set(&["apps/svc-0"]));
        let mut r = round(&d, &a, &alive, &annotated);
        r.local_delivery = false;
        let (_, e) = transition(&State::default(), r);
        assert!(
            !e.iter()
                .any(|e| matches!(e, Effect::RouteAdd(_) | Effect::RouteDel(_))),
            "{e:?}"
        );
        assert!(e.contains(&Effect::Announce(ip(0), "eth1".into())));
    }

    #[test]
    fn probing_is_for_ips_new_to_every_speaker_and_waits_after_a_conflict() {
        let t0 = Instant::now();
        let mut s = State::default();
        assert_eq!(s.probe("a", ip(0), t0), Probe::Ask);
        // Found in use: warned once, left alone until the retry time, then asked again.
        assert!(s.probed(ip(0), true, t0));
        assert!(!s.probed(ip(0), true, t0));
        assert_eq!(
            s.probe("a", ip(0), t0 + Duration::from_secs(1)),
            Probe::Wait
        );
        assert_eq!(s.probe("a", ip(0), t0 + CONFLICT_RETRY * 2), Probe::Ask);
        assert!(!s.probed(ip(0), false, t0));
        assert!(s.conflicts.is_empty());
        // Held by another speaker last round: a takeover, not probed (it answers there).
        s.owners.insert(ip(1), Some("b".into()));
        assert_eq!(s.probe("a", ip(1), t0), Probe::No);
        // Ours last round (owner a): probed again only if not announced.
        s.owners.insert(ip(2), Some("a".into()));
        assert_eq!(s.probe("a", ip(2), t0), Probe::Ask);
        s.announced.insert((ip(2), "eth1".into()));
        assert_eq!(s.probe("a", ip(2), t0), Probe::No);
    }

    proptest! {
        /// Announce and Withdraw are exactly the set differences, routes follow IPs, and a
        /// round repeated with nothing changed does nothing.
        #[test]
        fn effects_are_the_differences_and_rounds_are_idempotent(
            before in proptest::collection::btree_set((0u8..6, 0u8..2), 0..6),
            after in proptest::collection::btree_set((0u8..6, 0u8..2), 0..6),
        ) {
            let iface = |i: u8| format!("eth{i}");
            let to_ann = |s: &BTreeSet<(u8, u8)>| -> Vec<Announcement> {
                s.iter().map(|(n, i)| ann(*n, &iface(*i))).collect()
            };
            let to_dec = |s: &BTreeSet<(u8, u8)>| -> Vec<Decision> {
                s.iter().map(|(n, i)| ours(*n, &iface(*i))).collect()
            };
            let alive = set(&["a"]);
            let all: BTreeSet<String> = (0..6).map(|n| format!("apps/svc-{n}")).collect();
            let (a0, d0) = (to_ann(&before), to_dec(&before));
            let (s1, _) = transition(&State::default(), round(&d0, &a0, &alive, &all));
            let (a1, d1) = (to_ann(&after), to_dec(&after));
            let (s2, e) = transition(&s1, round(&d1, &a1, &alive, &all));
            let pairs = |s: &BTreeSet<(u8, u8)>| -> BTreeSet<(Ipv4Addr, String)> {
                s.iter().map(|(n, i)| (ip(*n), iface(*i))).collect()
            };
            let (was, is) = (pairs(&before), pairs(&after));
            let announced: BTreeSet<_> = e.iter().filter_map(|x| match x {
                Effect::Announce(ip, i) => Some((*ip, i.clone())),
                _ => None,
            }).collect();
            let withdrawn: BTreeSet<_> = e.iter().filter_map(|x| match x {
                Effect::Withdraw(ip, i) => Some((*ip, i.clone())),
                _ => None,
            }).collect();
            prop_assert_eq!(announced, is.difference(&was).cloned().collect::<BTreeSet<_>>());
            prop_assert_eq!(withdrawn, was.difference(&is).cloned().collect::<BTreeSet<_>>());
            for x in &e {
                if let Effect::RouteAdd(ip) = x {
                    prop_assert!(is.iter().any(|(i, _)| i == ip) && !was.iter().any(|(i, _)| i == ip));
                }
            }
            let (s3, again) = transition(&s2, round(&d1, &a1, &alive, &all));
            prop_assert_eq!(again, vec![]);
            prop_assert_eq!(s3, s2);
        }
    }
}
