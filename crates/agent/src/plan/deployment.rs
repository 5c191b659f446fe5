//! A Deployment's ReplicaSets, as kube-controller-manager's Deployment controller keeps them.
//!
//! The ReplicaSet whose `pod-template-hash` is the hash of the Deployment's current template is
//! the *new* one (created when missing, with the next revision); all others are *old*. With
//! `RollingUpdate` the new one grows while the total stays within `replicas + maxSurge`, and old
//! ones shrink while at least `replicas - maxUnavailable` pods stay available (unhealthy old
//! pods go first); with `Recreate` the old ones go to zero before the new one is scaled up. A
//! paused Deployment is only scaled. Old ReplicaSets at zero beyond `revisionHistoryLimit` are
//! deleted, oldest revision first. Each step is one pass: the controller runs it again when
//! pods become ready, which is what moves a rollout along.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::{REVISION, TEMPLATE_HASH, controller_ref, scaled, template_hash};

/// One change to a Deployment's ReplicaSets.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet.
    Create(Box<ReplicaSet>),
    /// Set a ReplicaSet's `spec.replicas`.
    Scale {
        /// Its name.
        name: String,
        /// The new count.
        replicas: i32,
    },
    /// Set a ReplicaSet's revision annotation (a rollback makes an old template new again).
    Revision {
        /// Its name.
        name: String,
        /// The revision.
        revision: i64,
    },
    /// Delete an old ReplicaSet beyond the history limit.
    Delete(String),
}

/// What to do for one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The changes, in order.
    pub actions: Vec<Action>,
    /// The status to write.
    pub status: DeploymentStatus,
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The ReplicaSet a Deployment's current template would have.
pub fn new_replica_set(d: &Deployment, hash: &str, revision: i64, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH.into(), hash.into());
    let name = d.metadata.name.clone().unwrap_or_default();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: meta.labels.clone(),
            annotations: Some([(REVISION.to_string(), revision.to_string())].into()),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// The plan for `d` given the ReplicaSets it controls, at `now`.
pub fn plan(d: &Deployment, owned: &[&ReplicaSet], now: Time) -> Plan {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let hash = template_hash(&spec.template);
    let mut actions = Vec::new();
    let mut sets: Vec<ReplicaSet> = owned.iter().map(|r| (*r).clone()).collect();
    // Oldest revision first: the order old ReplicaSets are scaled down and cleaned up in.
    sets.sort_by_key(revision);
    let max_revision = sets.iter().map(revision).max().unwrap_or(0);
    let new_idx = sets.iter().position(|r| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TEMPLATE_HASH))
            == Some(&hash)
    });
    let strategy = spec.strategy.clone().unwrap_or_default();
    let recreate = strategy.type_.as_deref() == Some("Recreate");
    let rolling = strategy.rolling_update.unwrap_or_default();
    let surge = scaled(rolling.max_surge.as_ref(), "25%", desired, true);
    let mut unavailable = scaled(rolling.max_unavailable.as_ref(), "25%", desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let paused = spec.paused == Some(true);

    let new_idx = match new_idx {
        Some(i) => {
            if revision(&sets[i]) < max_revision {
                let r = max_revision + 1;
                actions.push(Action::Revision {
                    name: sets[i].metadata.name.clone().unwrap_or_default(),
                    revision: r,
                });
            }
            Some(i)
        }
        None if paused => None,
        None => {
            let others: i32 = sets.iter().map(replicas).sum();
            // A first rollout (or one with nothing left running) starts at full size, as
            // the Deployment controller does; otherwise at zero and grows in the steps below.
            let start = if others == 0 { desired } else { 0 };
            let rs = new_replica_set(d, &hash, max_revision + 1, start);
            actions.push(Action::Create(Box::new(rs.clone())));
            sets.push(rs);
            Some(sets.len() - 1)
        }
    };
    let old_total: i32 = sets
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, r)| replicas(r))
        .sum();

    let scale = |sets: &mut Vec<ReplicaSet>, i: usize, to: i32, actions: &mut Vec<Action>| {
        if replicas(&sets[i]) != to {
            actions.push(Action::Scale {
                name: sets[i].metadata.name.clone().unwrap_or_default(),
                replicas: to,
            });
            sets[i].spec.get_or_insert_with(Default::default).replicas = Some(to);
        }
    };

    match new_idx {
        Some(n) if old_total == 0 || paused => scale(&mut sets, n, desired, &mut actions),
        None => {}
        Some(n) if recreate => {
            for i in 0..sets.len() {
                if i != n {
                    scale(&mut sets, i, 0, &mut actions);
                }
            }
            let old_running: i32 = sets
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != n)
                .map(|(_, r)| r.status.as_ref().map(|s| s.replicas).unwrap_or(0))
                .sum();
            if old_running == 0 {
                scale(&mut sets, n, desired, &mut actions);
            }
        }
        Some(n) => {
            // Scale up the new ReplicaSet within the surge.
            let total: i32 = sets.iter().map(replicas).sum();
            let room = desired + surge - total;
            if room > 0 && replicas(&sets[n]) < desired {
                let to = (replicas(&sets[n]) + room).min(desired);
                scale(&mut sets, n, to, &mut actions);
            }
            // Scale down old ones while enough pods stay available.
            let min_available = desired - unavailable;
            let total: i32 = sets.iter().map(replicas).sum();
            let new_unavailable = (replicas(&sets[n]) - available(&sets[n])).max(0);
            let mut budget = total - min_available - new_unavailable;
            // Unhealthy old pods first: they serve nobody.
            for i in 0..sets.len() {
                if i == n || budget <= 0 {
                    continue;
                }
                let unhealthy = (replicas(&sets[i]) - available(&sets[i])).max(0);
                let cut = unhealthy.min(budget);
                if cut > 0 {
                    let to = replicas(&sets[i]) - cut;
                    scale(&mut sets, i, to, &mut actions);
                    budget -= cut;
                }
            }
            // Then healthy ones, as far as availability allows.
            let available_total: i32 = sets.iter().map(available).sum();
            let mut budget = available_total - min_available;
            for i in 0..sets.len() {
                if i == n || budget <= 0 {
                    continue;
                }
                let cut = replicas(&sets[i]).min(budget);
                if cut > 0 {
                    let to = replicas(&sets[i]) - cut;
                    scale(&mut sets, i, to, &mut actions);
                    budget -= cut;
                }
            }
        }
    }

    // History: old ReplicaSets at zero, beyond the limit, oldest first.
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let idle: Vec<usize> = (0..sets.len())
        .filter(|i| Some(*i) != new_idx)
        .filter(|i| {
            replicas(&sets[*i]) == 0 && sets[*i].status.as_ref().is_none_or(|s| s.replicas == 0)
        })
        .filter(|i| sets[*i].metadata.uid.is_some())
        .collect();
    if idle.len() > limit {
        for i in &idle[..idle.len() - limit] {
            actions.push(Action::Delete(
                sets[*i].metadata.name.clone().unwrap_or_default(),
            ));
        }
    }

    let status = status(d, &sets, new_idx, desired, desired - unavailable, now);
    Plan { actions, status }
}

fn status(
    d: &Deployment,
    sets: &[ReplicaSet],
    new_idx: Option<usize>,
    desired: i32,
    min_available: i32,
    now: Time,
) -> DeploymentStatus {
    let st = |r: &ReplicaSet| r.status.clone().unwrap_or_default();
    let replicas: i32 = sets.iter().map(|r| st(r).replicas).sum();
    let ready: i32 = sets.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum();
    let avail: i32 = sets.iter().map(available).sum();
    let (updated, new_name, new_avail) = match new_idx {
        Some(n) => (
            st(&sets[n]).replicas,
            sets[n].metadata.name.clone().unwrap_or_default(),
            available(&sets[n]),
        ),
        None => (0, String::new(), 0),
    };
    let complete =
        new_idx.is_some() && updated == desired && replicas == desired && new_avail == desired;
    let previous = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" }.to_string();
        let old = previous.iter().find(|c| c.type_ == type_);
        let unchanged =
            old.is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason));
        DeploymentCondition {
            type_: type_.into(),
            status,
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: match old {
                Some(c) if c.status == if ok { "True" } else { "False" } => {
                    c.last_transition_time.clone()
                }
                _ => Some(now.clone()),
            },
            last_update_time: match old {
                Some(c) if unchanged => c.last_update_time.clone(),
                _ => Some(now.clone()),
            },
        }
    };
    let available_ok = avail >= min_available;
    let conditions = vec![
        condition(
            "Available",
            available_ok,
            if available_ok {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            if available_ok {
                "Deployment has minimum availability.".into()
            } else {
                "Deployment does not have minimum availability.".into()
            },
        ),
        condition(
            "Progressing",
            true,
            if complete {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            },
            if complete {
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")
            } else {
                format!("ReplicaSet \"{new_name}\" is progressing.")
            },
        ),
    ];
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((desired - avail).max(0)),
        conditions: Some(conditions),
        collision_count: None,
        terminating_replicas: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn deployment(replicas: i32, colour: &str, strategy: Option<DeploymentStrategy>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("podinfo".into()),
                namespace: Some("podinfo".into()),
                uid: Some("d-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy,
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "podinfo".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "podinfo".into(),
                            env: Some(vec![EnvVar {
                                name: "PODINFO_UI_COLOR".into(),
                                value: Some(colour.into()),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Apply a plan's actions as the store would, then let the ReplicaSet controller and the
    /// kubelet catch up: every ReplicaSet has what it asks for, and (if `ready`) it is
    /// available by the next pass. Returns the pods available right after scale-downs and
    /// before new pods are ready — the moment availability is at its lowest.
    fn apply(sets: &mut Vec<ReplicaSet>, plan: &Plan, ready: bool) -> i32 {
        for a in &plan.actions {
            match a {
                Action::Create(rs) => {
                    let mut rs = (**rs).clone();
                    rs.metadata.uid = Some(format!("rs-{}", sets.len()));
                    sets.push(rs);
                }
                Action::Scale { name, replicas } => {
                    let rs = sets
                        .iter_mut()
                        .find(|r| r.metadata.name.as_ref() == Some(name))
                        .unwrap();
                    rs.spec.as_mut().unwrap().replicas = Some(*replicas);
                }
                Action::Revision { name, revision } => {
                    let rs = sets
                        .iter_mut()
                        .find(|r| r.metadata.name.as_ref() == Some(name))
                        .unwrap();
                    rs.metadata.annotations =
                        Some([(REVISION.to_string(), revision.to_string())].into());
                }
                Action::Delete(name) => sets.retain(|r| r.metadata.name.as_ref() != Some(name)),
            }
        }
        let mut lowest = 0;
        for rs in sets.iter_mut() {
            let want = replicas(rs);
            let before = available(rs);
            lowest += before.min(want);
            let avail = if ready { want } else { before.min(want) };
            rs.status = Some(ReplicaSetStatus {
                replicas: want,
                ready_replicas: Some(avail),
                available_replicas: Some(avail),
                ..Default::default()
            });
        }
        lowest
    }

    fn run_until_stable(
        d: &Deployment,
        sets: &mut Vec<ReplicaSet>,
        check: impl Fn(&[ReplicaSet], i32),
    ) -> DeploymentStatus {
        for _ in 0..50 {
            let refs: Vec<&ReplicaSet> = sets.iter().collect();
            let p = plan(d, &refs, now());
            if p.actions.is_empty() {
                return p.status;
            }
            let lowest = apply(sets, &p, true);
            check(sets, lowest);
        }
        panic!("the rollout did not settle in 50 passes: {sets:#?}");
    }

    #[test]
    fn a_first_rollout_starts_at_full_size_with_revision_one() {
        let d = deployment(2, "#34577c", None);
        let p = plan(&d, &[], now());
        let [Action::Create(rs)] = p.actions.as_slice() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(2));
        assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
        let hash = &rs.metadata.labels.as_ref().unwrap()[TEMPLATE_HASH];
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("podinfo-{hash}").as_str())
        );
        assert_eq!(
            rs.spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap()[TEMPLATE_HASH],
            *hash
        );
        assert_eq!(
            rs.metadata.owner_references.as_ref().unwrap()[0].uid,
            "d-uid"
        );
    }

    #[test]
    fn a_rolling_update_keeps_within_surge_and_availability_and_completes() {
        for (replicas, surge, unavail) in [
            (2, None, None),
            (3, None, None),
            (3, Some(1), Some(0)),
            (4, Some(0), Some(1)),
            (1, None, None),
            (5, Some(2), Some(2)),
        ] {
            let strategy = DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: surge.map(IntOrString::Int),
                    max_unavailable: unavail.map(IntOrString::Int),
                }),
            };
            let blue = deployment(replicas, "blue", Some(strategy.clone()));
            let mut sets = Vec::new();
            run_until_stable(&blue, &mut sets, |_, _| {});
            let green = deployment(replicas, "green", Some(strategy));
            let max_surge = scaled(surge.map(IntOrString::Int).as_ref(), "25%", replicas, true);
            let mut max_unavail = scaled(
                unavail.map(IntOrString::Int).as_ref(),
                "25%",
                replicas,
                false,
            );
            if max_surge == 0 && max_unavail == 0 {
                max_unavail = 1;
            }
            let status = run_until_stable(&green, &mut sets, |sets, lowest| {
                let total: i32 = sets.iter().map(replicas_of).sum();
                assert!(
                    total <= replicas + max_surge,
                    "{replicas}: {total} pods > surge"
                );
                assert!(
                    lowest >= replicas - max_unavail,
                    "{replicas}: only {lowest} available"
                );
            });
            assert_eq!(status.updated_replicas, Some(replicas));
            assert_eq!(status.available_replicas, Some(replicas));
            let progressing = status
                .conditions
                .unwrap()
                .into_iter()
                .find(|c| c.type_ == "Progressing")
                .unwrap();
            assert_eq!(
                progressing.reason.as_deref(),
                Some("NewReplicaSetAvailable")
            );
            let live: Vec<_> = sets.iter().filter(|r| replicas_of(r) > 0).collect();
            assert_eq!(live.len(), 1);
            assert_eq!(
                live[0].metadata.annotations.as_ref().unwrap()[REVISION],
                "2"
            );
        }
    }

    fn replicas_of(r: &ReplicaSet) -> i32 {
        replicas(r)
    }

    #[test]
    fn a_rollout_waits_for_new_pods_to_be_ready() {
        let blue = deployment(2, "blue", None);
        let mut sets = Vec::new();
        run_until_stable(&blue, &mut sets, |_, _| {});
        let green = deployment(2, "green", None);
        for _ in 0..5 {
            let refs: Vec<&ReplicaSet> = sets.iter().collect();
            let p = plan(&green, &refs, now());
            apply(&mut sets, &p, false);
        }
        let old: i32 = sets
            .iter()
            .filter(|r| r.metadata.annotations.as_ref().unwrap()[REVISION] == "1")
            .map(replicas_of)
            .sum();
        assert_eq!(
            old, 2,
            "no old pod goes while the new one is not ready (maxUnavailable 0 of 2)"
        );
    }

    #[test]
    fn recreate_empties_old_before_starting_new() {
        let strategy = DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        };
        let blue = deployment(2, "blue", Some(strategy.clone()));
        let mut sets = Vec::new();
        run_until_stable(&blue, &mut sets, |_, _| {});
        let green = deployment(2, "green", Some(strategy));
        let refs: Vec<&ReplicaSet> = sets.iter().collect();
        let p = plan(&green, &refs, now());
        let new = p
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Create(rs) => Some(rs.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(new.spec.as_ref().unwrap().replicas, Some(0));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::Scale { replicas: 0, .. }))
        );
        run_until_stable(&green, &mut sets, |_, _| {});
        assert_eq!(sets.iter().map(replicas_of).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn rolling_back_reuses_the_old_replica_set_with_a_new_revision_and_history_is_bounded() {
        let mut sets = Vec::new();
        for colour in ["blue", "green"] {
            run_until_stable(&deployment(2, colour, None), &mut sets, |_, _| {});
        }
        run_until_stable(&deployment(2, "blue", None), &mut sets, |_, _| {});
        assert_eq!(
            sets.len(),
            2,
            "the blue ReplicaSet is reused, not duplicated"
        );
        let blue = sets.iter().find(|r| replicas_of(r) == 2).unwrap();
        assert_eq!(blue.metadata.annotations.as_ref().unwrap()[REVISION], "3");

        let mut limited = deployment(2, "red", None);
        limited.spec.as_mut().unwrap().revision_history_limit = Some(1);
        run_until_stable(&limited, &mut sets, |_, _| {});
        assert_eq!(
            sets.len(),
            2,
            "one old ReplicaSet kept: {:?}",
            sets.iter().map(|r| &r.metadata.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn scaling_without_a_template_change_scales_the_current_replica_set() {
        let mut sets = Vec::new();
        run_until_stable(&deployment(2, "blue", None), &mut sets, |_, _| {});
        let status = run_until_stable(&deployment(5, "blue", None), &mut sets, |_, _| {});
        assert_eq!(sets.len(), 1);
        assert_eq!(status.replicas, Some(5));
    }
}
