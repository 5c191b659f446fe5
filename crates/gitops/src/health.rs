//! Health: is a live object doing what it was asked to? One small function per kind, as
//! gitops-engine's `pkg/health` (ArgoCD's rules), plus child Applications (so app-of-apps waves
//! wait for their children, which ArgoCD dropped) and any object with a `Ready` condition.
//! An app's health is its worst object's ([`worst`]).

use std::fmt;

use serde_json::Value;

use crate::object::{split_api_version, str_at};

/// A health state, ordered from best to worst as ArgoCD orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Doing what it was asked.
    Healthy,
    /// Paused on purpose (a paused Deployment, a suspended Job).
    Suspended,
    /// On its way (a rollout, a Service waiting for its IP).
    Progressing,
    /// Not in the cluster.
    Missing,
    /// Failed (a rollout past its deadline, a failed Job, a crashing Pod).
    Degraded,
    /// Cannot be told.
    Unknown,
}

impl State {
    /// ArgoCD's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "Healthy",
            State::Suspended => "Suspended",
            State::Progressing => "Progressing",
            State::Missing => "Missing",
            State::Degraded => "Degraded",
            State::Unknown => "Unknown",
        }
    }

    /// The state an ArgoCD word names (`Unknown` for anything else).
    pub fn parse(s: &str) -> State {
        match s {
            "Healthy" => State::Healthy,
            "Suspended" => State::Suspended,
            "Progressing" => State::Progressing,
            "Missing" => State::Missing,
            "Degraded" => State::Degraded,
            _ => State::Unknown,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The state.
    pub state: State,
    /// Why, in plain words (empty when healthy).
    pub message: String,
}

impl Health {
    fn new(state: State, message: impl Into<String>) -> Health {
        Health {
            state,
            message: message.into(),
        }
    }
    fn healthy() -> Health {
        Health::new(State::Healthy, "")
    }
    fn progressing(m: impl Into<String>) -> Health {
        Health::new(State::Progressing, m)
    }
    fn degraded(m: impl Into<String>) -> Health {
        Health::new(State::Degraded, m)
    }
}

/// The health of a live object; `None` for kinds that have none (a ConfigMap, a Secret, a
/// ClusterIP Service are simply there). A missing object is [`State::Missing`] (see [`missing`]).
pub fn of(obj: &Value) -> Option<Health> {
    let (group, _) = split_api_version(str_at(obj, &["apiVersion"]));
    let kind = str_at(obj, &["kind"]);
    match (group, kind) {
        ("apps", "Deployment") => Some(deployment(obj)),
        ("apps", "StatefulSet") => Some(stateful_set(obj)),
        ("apps", "DaemonSet") => Some(daemon_set(obj)),
        ("apps", "ReplicaSet") => Some(replica_set(obj)),
        ("", "Pod") => Some(pod(obj)),
        ("batch", "Job") => Some(job(obj)),
        ("", "PersistentVolumeClaim") => Some(pvc(obj)),
        ("", "Service") => Some(service(obj)),
        ("networking.k8s.io", "Ingress") => Some(ingress(obj)),
        ("metalgate.io" | "argoproj.io", "Application") => Some(application(obj)),
        _ => ready_condition(obj),
    }
}

/// The health of an object Git asks for that is not in the cluster.
pub fn missing() -> Health {
    Health::new(State::Missing, "not in the cluster")
}

/// The worst of several states (Healthy when there are none), as an app's health is its worst
/// object's.
pub fn worst<I: IntoIterator<Item = State>>(states: I) -> State {
    states.into_iter().max().unwrap_or(State::Healthy)
}

fn int(obj: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(obj, |v, k| v.get(k))?.as_i64()
}

fn int0(obj: &Value, path: &[&str]) -> i64 {
    int(obj, path).unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn cond_status(c: &Value) -> &str {
    c.get("status").and_then(Value::as_str).unwrap_or("")
}

fn cond_text(c: &Value) -> String {
    let s = |k| c.get(k).and_then(Value::as_str).unwrap_or("");
    match (s("reason"), s("message")) {
        ("", m) => m.to_string(),
        (r, "") => r.to_string(),
        (r, m) => format!("{r}: {m}"),
    }
}

/// The controller has not seen the latest spec yet.
fn generation_pending(obj: &Value) -> bool {
    let generation = int0(obj, &["metadata", "generation"]);
    let observed = int0(obj, &["status", "observedGeneration"]);
    generation > observed
}

fn deployment(obj: &Value) -> Health {
    if obj["spec"]["paused"].as_bool() == Some(true) {
        return Health::new(State::Suspended, "Deployment is paused");
    }
    if generation_pending(obj) {
        return Health::progressing(
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    if let Some(c) = condition(obj, "Progressing") {
        if c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
            return Health::degraded(format!(
                "Deployment {:?} exceeded its progress deadline",
                str_at(obj, &["metadata", "name"])
            ));
        }
    }
    let replicas = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let updated = int0(obj, &["status", "updatedReplicas"]);
    let total = int0(obj, &["status", "replicas"]);
    let available = int0(obj, &["status", "availableReplicas"]);
    if updated < replicas {
        Health::progressing(format!(
            "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
        ))
    } else if total > updated {
        Health::progressing(format!(
            "Waiting for rollout to finish: {} old replicas are pending termination...",
            total - updated
        ))
    } else if available < updated {
        Health::progressing(format!(
            "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
        ))
    } else {
        Health::healthy()
    }
}

fn stateful_set(obj: &Value) -> Health {
    if int(obj, &["status", "observedGeneration"]).is_none() || generation_pending(obj) {
        return Health::progressing("Waiting for statefulset spec update to be observed...");
    }
    let replicas = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let ready = int0(obj, &["status", "readyReplicas"]);
    if ready < replicas {
        return Health::progressing(format!(
            "Waiting for {} pods to be ready...",
            replicas - ready
        ));
    }
    if str_at(obj, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return Health::healthy();
    }
    let partition = int0(
        obj,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    );
    let updated = int0(obj, &["status", "updatedReplicas"]);
    if partition > 0 {
        if updated < replicas - partition {
            return Health::progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            ));
        }
        return Health::healthy();
    }
    let current = str_at(obj, &["status", "currentRevision"]);
    let update = str_at(obj, &["status", "updateRevision"]);
    if current != update {
        return Health::progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update}..."
        ));
    }
    Health::healthy()
}

fn daemon_set(obj: &Value) -> Health {
    if generation_pending(obj) {
        return Health::progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    if str_at(obj, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return Health::healthy();
    }
    let desired = int0(obj, &["status", "desiredNumberScheduled"]);
    let updated = int0(obj, &["status", "updatedNumberScheduled"]);
    let available = int0(obj, &["status", "numberAvailable"]);
    if updated < desired {
        Health::progressing(format!(
            "Waiting for daemon set rollout to finish: {updated} out of {desired} new pods have been updated..."
        ))
    } else if available < desired {
        Health::progressing(format!(
            "Waiting for daemon set rollout to finish: {available} of {desired} updated pods are available..."
        ))
    } else {
        Health::healthy()
    }
}

fn replica_set(obj: &Value) -> Health {
    if generation_pending(obj) {
        return Health::progressing(
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(c) = condition(obj, "ReplicaFailure") {
        if cond_status(c) == "True" {
            return Health::degraded(cond_text(c));
        }
    }
    let replicas = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let available = int0(obj, &["status", "availableReplicas"]);
    if available < replicas {
        Health::progressing(format!(
            "Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."
        ))
    } else {
        Health::healthy()
    }
}

/// Container waiting reasons that mean the Pod will not start by itself.
const BROKEN_WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
];

fn pod(obj: &Value) -> Health {
    let statuses: Vec<&Value> = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| obj["status"][k].as_array())
        .flatten()
        .collect();
    for cs in &statuses {
        let reason = str_at(cs, &["state", "waiting", "reason"]);
        if BROKEN_WAITING.contains(&reason) {
            let msg = str_at(cs, &["state", "waiting", "message"]);
            return Health::degraded(format!(
                "container {}: {reason}{}{msg}",
                str_at(cs, &["name"]),
                if msg.is_empty() { "" } else { ": " }
            ));
        }
    }
    match str_at(obj, &["status", "phase"]) {
        "Succeeded" => Health::healthy(),
        "Failed" => Health::degraded(match str_at(obj, &["status", "message"]) {
            "" => "Pod failed".to_string(),
            m => m.to_string(),
        }),
        "Running" => {
            if str_at(obj, &["spec", "restartPolicy"]) == "Never"
                || condition(obj, "Ready").is_some_and(|c| cond_status(c) == "True")
            {
                Health::healthy()
            } else {
                Health::progressing("Pod is running but not ready")
            }
        }
        "Pending" => Health::progressing(match condition(obj, "PodScheduled") {
            Some(c) if cond_status(c) == "False" => cond_text(c),
            _ => "Pod is pending".to_string(),
        }),
        _ => Health::new(State::Unknown, "Pod phase is unknown"),
    }
}

fn job(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Failed") {
        if cond_status(c) == "True" {
            return Health::degraded(cond_text(c));
        }
    }
    if condition(obj, "Complete").is_some_and(|c| cond_status(c) == "True") {
        return Health::healthy();
    }
    if obj["spec"]["suspend"].as_bool() == Some(true) {
        return Health::new(State::Suspended, "Job is suspended");
    }
    Health::progressing("Job is running")
}

fn pvc(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        "Bound" => Health::healthy(),
        "Lost" => Health::degraded("PersistentVolumeClaim lost its volume"),
        _ => Health::progressing("Waiting for the claim to be bound"),
    }
}

fn has_lb_ingress(obj: &Value) -> bool {
    obj["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

fn service(obj: &Value) -> Health {
    if str_at(obj, &["spec", "type"]) == "LoadBalancer" && !has_lb_ingress(obj) {
        Health::progressing("Waiting for a LoadBalancer IP (status.loadBalancer.ingress)")
    } else {
        Health::healthy()
    }
}

fn ingress(obj: &Value) -> Health {
    if has_lb_ingress(obj) {
        Health::healthy()
    } else {
        Health::progressing(
            "Waiting for the ingress controller's address (status.loadBalancer.ingress)",
        )
    }
}

fn application(obj: &Value) -> Health {
    match str_at(obj, &["status", "health", "status"]) {
        "" => Health::progressing("child Application has not reported its health yet"),
        s => {
            let state = State::parse(s);
            let msg = str_at(obj, &["status", "health", "message"]);
            let msg = match (state, msg) {
                (State::Healthy, _) => String::new(),
                (_, "") => format!("child Application is {s}"),
                (_, m) => m.to_string(),
            };
            Health::new(state, msg)
        }
    }
}

/// kstatus's reading of the common conditions: `Stalled=True` is Degraded, `Ready=True` Healthy,
/// any other `Ready` Progressing; no `Ready` condition → no health.
fn ready_condition(obj: &Value) -> Option<Health> {
    if let Some(c) = condition(obj, "Stalled") {
        if cond_status(c) == "True" {
            return Some(Health::degraded(cond_text(c)));
        }
    }
    let c = condition(obj, "Ready")?;
    Some(if cond_status(c) == "True" {
        Health::healthy()
    } else {
        Health::progressing(match cond_text(c) {
            t if t.is_empty() => "Ready condition is not True".to_string(),
            t => t,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(v: Value) -> Option<State> {
        of(&v).map(|h| h.state)
    }

    #[test]
    fn deployments() {
        let d = |spec: Value, status: Value| json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","generation":2},"spec":spec,"status":status});
        let cases = [
            (
                d(
                    json!({"replicas":2}),
                    json!({"observedGeneration":2,"replicas":2,"updatedReplicas":2,"availableReplicas":2}),
                ),
                State::Healthy,
            ),
            (
                d(
                    json!({"replicas":2}),
                    json!({"observedGeneration":1,"replicas":2,"updatedReplicas":2,"availableReplicas":2}),
                ),
                State::Progressing,
            ),
            (
                d(
                    json!({"replicas":2}),
                    json!({"observedGeneration":2,"replicas":3,"updatedReplicas":2,"availableReplicas":2}),
                ),
                State::Progressing,
            ),
            (
                d(
                    json!({"replicas":2}),
                    json!({"observedGeneration":2,"replicas":2,"updatedReplicas":1,"availableReplicas":2}),
                ),
                State::Progressing,
            ),
            (
                d(
                    json!({"replicas":2}),
                    json!({"observedGeneration":2,"replicas":2,"updatedReplicas":2,"availableReplicas":1}),
                ),
                State::Progressing,
            ),
            (
                d(json!({"replicas":2,"paused":true}), json!({})),
                State::Suspended,
            ),
            (
                d(
                    json!({}),
                    json!({"observedGeneration":2,"replicas":1,"updatedReplicas":1,"availableReplicas":1}),
                ),
                State::Healthy,
            ),
            (
                d(
                    json!({"replicas":1}),
                    json!({"observedGeneration":2,"conditions":[{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]}),
                ),
                State::Degraded,
            ),
        ];
        for (i, (obj, want)) in cases.into_iter().enumerate() {
            assert_eq!(state(obj), Some(want), "case {i}");
        }
    }

    #[test]
    fn workloads() {
        let sts = |status: Value| json!({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db","generation":1},"spec":{"replicas":2},"status":status});
        assert_eq!(
            state(sts(
                json!({"observedGeneration":1,"readyReplicas":2,"currentRevision":"a","updateRevision":"a"})
            )),
            Some(State::Healthy)
        );
        assert_eq!(
            state(sts(
                json!({"observedGeneration":1,"readyReplicas":1,"currentRevision":"a","updateRevision":"a"})
            )),
            Some(State::Progressing)
        );
        assert_eq!(
            state(sts(
                json!({"observedGeneration":1,"readyReplicas":2,"currentRevision":"a","updateRevision":"b"})
            )),
            Some(State::Progressing)
        );
        assert_eq!(state(sts(json!({}))), Some(State::Progressing));

        let ds = |status: Value| json!({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"speaker","generation":3},"status":status});
        assert_eq!(
            state(ds(
                json!({"observedGeneration":3,"desiredNumberScheduled":3,"updatedNumberScheduled":3,"numberAvailable":3})
            )),
            Some(State::Healthy)
        );
        assert_eq!(
            state(ds(
                json!({"observedGeneration":3,"desiredNumberScheduled":3,"updatedNumberScheduled":2,"numberAvailable":3})
            )),
            Some(State::Progressing)
        );
        assert_eq!(
            state(ds(
                json!({"observedGeneration":3,"desiredNumberScheduled":3,"updatedNumberScheduled":3,"numberAvailable":2})
            )),
            Some(State::Progressing)
        );

        let rs = |status: Value| json!({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"web-1"},"spec":{"replicas":2},"status":status});
        assert_eq!(
            state(rs(json!({"availableReplicas":2}))),
            Some(State::Healthy)
        );
        assert_eq!(
            state(rs(json!({"availableReplicas":1}))),
            Some(State::Progressing)
        );
        assert_eq!(
            state(rs(
                json!({"availableReplicas":2,"conditions":[{"type":"ReplicaFailure","status":"True","reason":"FailedCreate","message":"quota"}]})
            )),
            Some(State::Degraded)
        );

        let job = |spec: Value, conds: Value| json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":spec,"status":{"conditions":conds}});
        assert_eq!(
            state(job(json!({}), json!([{"type":"Complete","status":"True"}]))),
            Some(State::Healthy)
        );
        assert_eq!(
            state(job(
                json!({}),
                json!([{"type":"Failed","status":"True","reason":"BackoffLimitExceeded"}])
            )),
            Some(State::Degraded)
        );
        assert_eq!(
            state(job(json!({"suspend":true}), json!([]))),
            Some(State::Suspended)
        );
        assert_eq!(state(job(json!({}), json!([]))), Some(State::Progressing));
    }

    #[test]
    fn pods() {
        let p = |status: Value| json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{},"status":status});
        assert_eq!(
            state(p(
                json!({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]})
            )),
            Some(State::Healthy)
        );
        assert_eq!(
            state(p(
                json!({"phase":"Running","conditions":[{"type":"Ready","status":"False"}]})
            )),
            Some(State::Progressing)
        );
        assert_eq!(
            state(p(json!({"phase":"Pending"}))),
            Some(State::Progressing)
        );
        assert_eq!(state(p(json!({"phase":"Succeeded"}))), Some(State::Healthy));
        assert_eq!(state(p(json!({"phase":"Failed"}))), Some(State::Degraded));
        let crash = of(&p(json!({"phase":"Running","containerStatuses":[{"name":"app","state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 10s"}}}]}))).unwrap();
        assert_eq!(crash.state, State::Degraded);
        assert_eq!(
            crash.message,
            "container app: CrashLoopBackOff: back-off 10s"
        );
    }

    #[test]
    fn services_ingresses_claims_and_children() {
        let svc = |t: &str, ing: Value| json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":t},"status":{"loadBalancer":{"ingress":ing}}});
        assert_eq!(
            state(svc("LoadBalancer", json!([{"ip":"192.168.56.200"}]))),
            Some(State::Healthy)
        );
        assert_eq!(
            state(svc("LoadBalancer", json!([]))),
            Some(State::Progressing)
        );
        assert_eq!(state(svc("ClusterIP", json!([]))), Some(State::Healthy));
        let ing = |i: Value| json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"i"},"status":{"loadBalancer":{"ingress":i}}});
        assert_eq!(
            state(ing(json!([{"ip":"192.168.56.200"}]))),
            Some(State::Healthy)
        );
        assert_eq!(state(ing(json!(null))), Some(State::Progressing));
        let pvc = |phase: &str| json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c"},"status":{"phase":phase}});
        assert_eq!(state(pvc("Bound")), Some(State::Healthy));
        assert_eq!(state(pvc("Pending")), Some(State::Progressing));
        assert_eq!(state(pvc("Lost")), Some(State::Degraded));
        let app = |h: Value| json!({"apiVersion":"metalgate.io/v1beta1","kind":"Application","metadata":{"name":"a"},"status":{"health":h}});
        assert_eq!(
            state(app(json!({"status":"Healthy"}))),
            Some(State::Healthy)
        );
        assert_eq!(
            state(app(json!({"status":"Degraded","message":"x"}))),
            Some(State::Degraded)
        );
        assert_eq!(
            state(app(json!(null))),
            Some(State::Progressing),
            "a child that never reported"
        );
        let argo = json!({"apiVersion":"argoproj.io/v1alpha1","kind":"Application","metadata":{"name":"a"},"status":{"health":{"status":"Missing"}}});
        assert_eq!(state(argo), Some(State::Missing));
    }

    #[test]
    fn kinds_without_health_and_ready_conditions() {
        assert_eq!(
            state(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}})),
            None
        );
        let cr = |conds: Value| json!({"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"t"},"status":{"conditions":conds}});
        assert_eq!(
            state(cr(json!([{"type":"Ready","status":"True"}]))),
            Some(State::Healthy)
        );
        assert_eq!(
            state(cr(
                json!([{"type":"Ready","status":"False","reason":"Waiting"}])
            )),
            Some(State::Progressing)
        );
        assert_eq!(
            state(cr(
                json!([{"type":"Ready","status":"False"},{"type":"Stalled","status":"True","reason":"Broken"}])
            )),
            Some(State::Degraded)
        );
        assert_eq!(state(cr(json!([]))), None);
    }

    #[test]
    fn the_worst_child_decides() {
        assert_eq!(worst([]), State::Healthy);
        assert_eq!(
            worst([State::Healthy, State::Progressing, State::Suspended]),
            State::Progressing
        );
        assert_eq!(
            worst([State::Missing, State::Degraded, State::Healthy]),
            State::Degraded
        );
        assert!(State::Healthy < State::Suspended && State::Suspended < State::Progressing);
        assert!(
            State::Progressing < State::Missing
                && State::Missing < State::Degraded
                && State::Degraded < State::Unknown
        );
    }
}
