//! A pod's status as the kubelet reports it, from what the agent knows of its containers:
//! phase, the four conditions kubectl and controllers read (`PodScheduled`, `Initialized`,
//! `ContainersReady`, `Ready`), each container's state, restarts and readiness, and the IPs.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Where one container stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running, with kubelet's reason (`ContainerCreating`, `CrashLoopBackOff`,
    /// `ErrImageNeverPull`, …) and a message.
    Waiting(String, String),
    /// Running since.
    Running(Time),
    /// Exited (and not restarted, or not yet): code, reason, start and end.
    Terminated(i32, String, Option<Time>, Time),
}

/// One container as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Where it stands.
    pub state: State,
    /// How its previous run ended.
    pub last: Option<State>,
    /// How many times it was restarted.
    pub restarts: i32,
    /// Its readiness probe passes (or it has none and runs).
    pub ready: bool,
}

/// The status of a pod whose containers are `containers`, at `ip` on the node at `host_ip`,
/// started at `start`; `since` is when the conditions last changed (kept when unchanged).
pub fn pod_status(
    containers: &[Container],
    ip: &str,
    host_ip: &str,
    start: &Time,
    previous: Option<&PodStatus>,
    now: Time,
) -> PodStatus {
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let running = containers
        .iter()
        .all(|c| matches!(c.state, State::Running(_)));
    let all_done = containers
        .iter()
        .all(|c| matches!(c.state, State::Terminated(..)));
    let phase = if running {
        "Running"
    } else if all_done
        && containers
            .iter()
            .all(|c| matches!(c.state, State::Terminated(0, ..)))
    {
        "Succeeded"
    } else if all_done {
        "Failed"
    } else if containers
        .iter()
        .any(|c| c.restarts > 0 || matches!(c.state, State::Running(_)))
    {
        // A container that has run and now waits to restart keeps the pod Running.
        "Running"
    } else {
        "Pending"
    };
    let old = |t: &str| {
        previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t).cloned())
    };
    let cond = |t: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let since = match old(t) {
            Some(c) if c.status == status => c.last_transition_time,
            _ => Some(now.clone()),
        };
        PodCondition {
            type_: t.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            last_transition_time: since,
            ..Default::default()
        }
    };
    let not_ready = (!all_ready).then_some("ContainersNotReady");
    let statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: String::new(),
            ready: c.ready,
            restart_count: c.restarts,
            started: Some(matches!(c.state, State::Running(_))),
            state: Some(to_api(&c.state)),
            last_state: c.last.as_ref().map(to_api),
            ..Default::default()
        })
        .collect();
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![
            cond("PodScheduled", true, None),
            cond("Initialized", true, None),
            cond("ContainersReady", all_ready, not_ready),
            cond("Ready", all_ready, not_ready),
        ]),
        host_ip: Some(host_ip.into()),
        pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
        pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(start.clone()),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

fn to_api(s: &State) -> ContainerState {
    match s {
        State::Waiting(reason, message) => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        State::Running(since) => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(since.clone()),
            }),
            ..Default::default()
        },
        State::Terminated(code, reason, started, finished) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *code,
                reason: Some(reason.clone()),
                started_at: started.clone(),
                finished_at: Some(finished.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap())
    }

    fn c(state: State, ready: bool, restarts: i32) -> Container {
        Container {
            name: "podinfo".into(),
            image: "podinfo".into(),
            state,
            last: None,
            restarts,
            ready,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn phases_and_readiness() {
        let waiting = c(
            State::Waiting("ContainerCreating".into(), String::new()),
            false,
            0,
        );
        let s = pod_status(&[waiting], "", "192.168.56.10", &t(0), None, t(1));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(s.pod_ip, None);

        let running = c(State::Running(t(2)), true, 0);
        let s2 = pod_status(
            std::slice::from_ref(&running),
            "10.42.0.2",
            "192.168.56.10",
            &t(0),
            Some(&s),
            t(3),
        );
        assert_eq!(s2.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(t(3)));
        assert_eq!(s2.pod_ip.as_deref(), Some("10.42.0.2"));
        // Unchanged conditions keep their time.
        let s3 = pod_status(
            &[running],
            "10.42.0.2",
            "192.168.56.10",
            &t(0),
            Some(&s2),
            t(9),
        );
        assert_eq!(cond(&s3, "Ready").last_transition_time, Some(t(3)));
        assert_eq!(cond(&s3, "PodScheduled").last_transition_time, Some(t(1)));
    }

    #[test]
    fn a_crashing_container_keeps_the_pod_running_but_not_ready() {
        let mut crashed = c(
            State::Waiting("CrashLoopBackOff".into(), "back-off 2s".into()),
            false,
            3,
        );
        crashed.last = Some(State::Terminated(1, "Error".into(), Some(t(0)), t(1)));
        let s = pod_status(&[crashed], "10.42.0.2", "h", &t(0), None, t(2));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(
            cond(&s, "Ready").reason.as_deref(),
            Some("ContainersNotReady")
        );
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn finished_pods_succeed_or_fail_by_exit_code() {
        let ok = c(
            State::Terminated(0, "Completed".into(), None, t(1)),
            false,
            0,
        );
        let bad = c(State::Terminated(2, "Error".into(), None, t(1)), false, 0);
        assert_eq!(
            pod_status(std::slice::from_ref(&ok), "", "h", &t(0), None, t(2))
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            pod_status(&[ok, bad], "", "h", &t(0), None, t(2))
                .phase
                .as_deref(),
            Some("Failed")
        );
    }
}
