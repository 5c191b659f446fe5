//! apps/v1 and batch/v1 workloads: Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs and
//! CronJobs — the rules kube-apiserver applies (a selector that selects the template, replica
//! counts, strategies, restart policies), the defaults it fills in, and kubectl's columns.

use serde_json::{Value, json};

use super::pod::{pod_spec_defaults, selector_required, template};
use super::print::{containers_and_images, created, human_duration, int, selector};
use super::{Col, Printer, check_one_of, col, wide};
use crate::error::Cause;

fn non_negative(v: &Value, field: &str, c: &mut Vec<Cause>) {
    if v.as_i64().is_some_and(|n| n < 0) {
        c.push(Cause::invalid(
            field,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// Selector, template and replicas, as every replicated workload checks them.
fn replicated(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    selector_required(&spec["selector"], "spec.selector", c);
    non_negative(&spec["replicas"], "spec.replicas", c);
    non_negative(
        &spec["revisionHistoryLimit"],
        "spec.revisionHistoryLimit",
        c,
    );
    non_negative(&spec["minReadySeconds"], "spec.minReadySeconds", c);
    template(&spec["template"], "spec.template", &spec["selector"], c);
    let policy = &spec["template"]["spec"]["restartPolicy"];
    if !policy.is_null() && policy != "Always" {
        c.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

/// The rules of a Deployment.
pub fn deployment_rules(obj: &Value, c: &mut Vec<Cause>) {
    replicated(obj, c);
    let strategy = &obj["spec"]["strategy"];
    check_one_of(
        &strategy["type"],
        "spec.strategy.type",
        &["Recreate", "RollingUpdate"],
        c,
    );
    if strategy["type"] == "Recreate" && strategy["rollingUpdate"].is_object() {
        c.push(Cause {
            reason: "FieldValueForbidden".into(),
            field: "spec.strategy.rollingUpdate".into(),
            message: "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
        });
    }
    let ru = &strategy["rollingUpdate"];
    if is_zero(&ru["maxSurge"]) && is_zero(&ru["maxUnavailable"]) {
        c.push(Cause::invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &ru["maxUnavailable"],
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    let deadline = obj["spec"]["progressDeadlineSeconds"].as_i64();
    let min_ready = obj["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    if deadline.is_some_and(|d| d <= min_ready) {
        c.push(Cause::invalid(
            "spec.progressDeadlineSeconds",
            &obj["spec"]["progressDeadlineSeconds"],
            "must be greater than minReadySeconds",
        ));
    }
}

fn is_zero(v: &Value) -> bool {
    v == &json!(0) || v == &json!("0%")
}

/// The defaults of a Deployment.
pub fn deployment_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    fill(spec, "replicas", json!(1));
    fill(spec, "revisionHistoryLimit", json!(10));
    fill(spec, "progressDeadlineSeconds", json!(600));
    fill(spec, "strategy", json!({"type": "RollingUpdate"}));
    if spec["strategy"]["type"] == "RollingUpdate" {
        fill(&mut spec["strategy"], "rollingUpdate", json!({}));
        let ru = &mut spec["strategy"]["rollingUpdate"];
        fill(ru, "maxSurge", json!("25%"));
        fill(ru, "maxUnavailable", json!("25%"));
    }
    template_defaults(spec);
}

fn fill(v: &mut Value, k: &str, d: Value) {
    if v[k].is_null() {
        v[k] = d;
    }
}

fn template_defaults(spec: &mut Value) {
    if let Some(ps) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        pod_spec_defaults(ps);
    }
}

/// The rules of a ReplicaSet.
pub fn replica_set_rules(obj: &Value, c: &mut Vec<Cause>) {
    replicated(obj, c);
}

/// The defaults of a ReplicaSet.
pub fn replica_set_defaults(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        fill(spec, "replicas", json!(1));
        template_defaults(spec);
    }
}

/// The rules of a DaemonSet.
pub fn daemon_set_rules(obj: &Value, c: &mut Vec<Cause>) {
    replicated(obj, c);
    check_one_of(
        &obj["spec"]["updateStrategy"]["type"],
        "spec.updateStrategy.type",
        &["OnDelete", "RollingUpdate"],
        c,
    );
}

/// The defaults of a DaemonSet.
pub fn daemon_set_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    fill(spec, "revisionHistoryLimit", json!(10));
    fill(spec, "updateStrategy", json!({"type": "RollingUpdate"}));
    if spec["updateStrategy"]["type"] == "RollingUpdate" {
        fill(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
        let ru = &mut spec["updateStrategy"]["rollingUpdate"];
        fill(ru, "maxUnavailable", json!(1));
        fill(ru, "maxSurge", json!(0));
    }
    template_defaults(spec);
}

/// The rules of a StatefulSet.
pub fn stateful_set_rules(obj: &Value, c: &mut Vec<Cause>) {
    replicated(obj, c);
    let spec = &obj["spec"];
    check_one_of(
        &spec["podManagementPolicy"],
        "spec.podManagementPolicy",
        &["OrderedReady", "Parallel"],
        c,
    );
    check_one_of(
        &spec["updateStrategy"]["type"],
        "spec.updateStrategy.type",
        &["OnDelete", "RollingUpdate"],
        c,
    );
}

/// The defaults of a StatefulSet.
pub fn stateful_set_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    fill(spec, "replicas", json!(1));
    fill(spec, "revisionHistoryLimit", json!(10));
    fill(spec, "podManagementPolicy", json!("OrderedReady"));
    fill(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
    fill(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    template_defaults(spec);
}

/// The rules of a Job: a pod template that never restarts `Always`.
pub fn job_rules(obj: &Value, c: &mut Vec<Cause>) {
    job_spec(&obj["spec"], "spec", c);
}

fn job_spec(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    for f in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
    ] {
        non_negative(&spec[f], &format!("{path}.{f}"), c);
    }
    let tpl = &spec["template"];
    template(tpl, &format!("{path}.template"), &spec["selector"], c);
    let policy = &tpl["spec"]["restartPolicy"];
    let field = format!("{path}.template.spec.restartPolicy");
    match policy.as_str() {
        Some("OnFailure" | "Never") => {}
        None => c.push(Cause::required(field)),
        Some(_) => c.push(Cause::not_supported(field, policy, &["OnFailure", "Never"])),
    }
}

/// The defaults of a Job, and the selector kube-apiserver generates from its uid (unless
/// `manualSelector` is set).
pub fn job_defaults(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    job_spec_defaults(spec);
    if spec["manualSelector"] != json!(true) && spec["selector"].is_null() && uid.is_string() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut spec["template"]["metadata"]["labels"];
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("job-name", &name),
        ] {
            labels[k] = v.clone();
        }
    }
}

fn job_spec_defaults(spec: &mut Value) {
    fill(spec, "parallelism", json!(1));
    fill(spec, "completions", json!(1));
    fill(spec, "backoffLimit", json!(6));
    fill(spec, "completionMode", json!("NonIndexed"));
    fill(spec, "suspend", json!(false));
    // A Job's restart policy is the author's choice: kube-apiserver asks for it rather than
    // defaulting it to the pod spec's `Always`, which a Job may not use.
    let chosen = !spec["template"]["spec"]["restartPolicy"].is_null();
    template_defaults(spec);
    if !chosen {
        if let Some(ps) = spec["template"]["spec"].as_object_mut() {
            ps.shift_remove("restartPolicy");
        }
    }
}

/// The rules of a CronJob: a schedule and a Job template.
pub fn cron_job_rules(obj: &Value, c: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => c.push(Cause::required("spec.schedule")),
        Some(s) if !schedule_ok(s) => c.push(Cause::invalid(
            "spec.schedule",
            &spec["schedule"],
            "must be a standard cron schedule of five fields or a @-macro",
        )),
        Some(_) => {}
    }
    check_one_of(
        &spec["concurrencyPolicy"],
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
        c,
    );
    job_spec(&spec["jobTemplate"]["spec"], "spec.jobTemplate.spec", c);
}

fn schedule_ok(s: &str) -> bool {
    if let Some(m) = s.strip_prefix('@') {
        return matches!(
            m,
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly"
        ) || m.starts_with("every ");
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            f.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "*/,-?".contains(ch))
        })
}

/// The defaults of a CronJob.
pub fn cron_job_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    fill(spec, "concurrencyPolicy", json!("Allow"));
    fill(spec, "suspend", json!(false));
    fill(spec, "successfulJobsHistoryLimit", json!(3));
    fill(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = spec
        .get_mut("jobTemplate")
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        job_spec_defaults(js);
    }
}

const WIDE_POD_COLUMNS: [Col; 3] = [wide("Containers"), wide("Images"), wide("Selector")];

fn wide_cells(pod_spec: &Value, sel: &Value) -> [Value; 3] {
    let (containers, images) = containers_and_images(pod_spec);
    [containers, images, json!(selector(sel))]
}

/// READY, UP-TO-DATE, AVAILABLE, AGE; wide: CONTAINERS, IMAGES, SELECTOR.
pub const DEPLOYMENT: Printer = Printer {
    named: true,
    columns: &[
        col("Ready"),
        col("Up-to-date"),
        col("Available"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
        WIDE_POD_COLUMNS[2],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let mut r = vec![
            json!(format!(
                "{}/{}",
                int(&st["readyReplicas"]),
                int(&spec["replicas"])
            )),
            json!(int(&st["updatedReplicas"])),
            json!(int(&st["availableReplicas"])),
            created(o),
        ];
        r.extend(wide_cells(&spec["template"]["spec"], &spec["selector"]));
        r
    },
};

/// DESIRED, CURRENT, READY, AGE; wide: CONTAINERS, IMAGES, SELECTOR.
pub const REPLICA_SET: Printer = Printer {
    named: true,
    columns: &[
        col("Desired"),
        col("Current"),
        col("Ready"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
        WIDE_POD_COLUMNS[2],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let mut r = vec![
            json!(int(&spec["replicas"])),
            json!(int(&st["replicas"])),
            json!(int(&st["readyReplicas"])),
            created(o),
        ];
        r.extend(wide_cells(&spec["template"]["spec"], &spec["selector"]));
        r
    },
};

/// DESIRED, CURRENT, READY, UP-TO-DATE, AVAILABLE, NODE SELECTOR, AGE; wide: CONTAINERS,
/// IMAGES, SELECTOR.
pub const DAEMON_SET: Printer = Printer {
    named: true,
    columns: &[
        col("Desired"),
        col("Current"),
        col("Ready"),
        col("Up-to-date"),
        col("Available"),
        col("Node Selector"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
        WIDE_POD_COLUMNS[2],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let node_selector: Vec<String> = spec["template"]["spec"]["nodeSelector"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let node_selector = if node_selector.is_empty() {
            "<none>".to_string()
        } else {
            node_selector.join(",")
        };
        let mut r = vec![
            json!(int(&st["desiredNumberScheduled"])),
            json!(int(&st["currentNumberScheduled"])),
            json!(int(&st["numberReady"])),
            json!(int(&st["updatedNumberScheduled"])),
            json!(int(&st["numberAvailable"])),
            json!(node_selector),
            created(o),
        ];
        r.extend(wide_cells(&spec["template"]["spec"], &spec["selector"]));
        r
    },
};

/// READY, AGE; wide: CONTAINERS, IMAGES.
pub const STATEFUL_SET: Printer = Printer {
    named: true,
    columns: &[
        col("Ready"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let (containers, images) = containers_and_images(&spec["template"]["spec"]);
        vec![
            json!(format!(
                "{}/{}",
                int(&st["readyReplicas"]),
                int(&spec["replicas"])
            )),
            created(o),
            containers,
            images,
        ]
    },
};

/// CONTROLLER, REVISION, AGE.
pub const CONTROLLER_REVISION: Printer = Printer {
    named: true,
    columns: &[col("Controller"), col("Revision"), col("Age")],
    row: |o| {
        let owner = o["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["controller"] == json!(true)))
            .map(|r| {
                format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or_default().to_ascii_lowercase(),
                    r["name"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "<none>".into());
        vec![json!(owner), json!(int(&o["revision"])), created(o)]
    },
};

/// STATUS, COMPLETIONS, DURATION, AGE; wide: CONTAINERS, IMAGES, SELECTOR.
pub const JOB: Printer = Printer {
    named: true,
    columns: &[
        col("Status"),
        col("Completions"),
        col("Duration"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
        WIDE_POD_COLUMNS[2],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let cond = |t: &str| {
            st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == t && c["status"] == "True")
        };
        let status = if cond("Complete") {
            "Complete"
        } else if cond("Failed") {
            "Failed"
        } else if spec["suspend"] == json!(true) {
            "Suspended"
        } else {
            "Running"
        };
        let ts = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
        let duration = match ts(&st["startTime"]) {
            Some(start) => {
                let end = ts(&st["completionTime"]).unwrap_or_else(jiff::Timestamp::now);
                human_duration(end.as_second() - start.as_second())
            }
            None => String::new(),
        };
        let mut r = vec![
            json!(status),
            json!(format!(
                "{}/{}",
                int(&st["succeeded"]),
                spec["completions"].as_i64().unwrap_or(1)
            )),
            json!(duration),
            created(o),
        ];
        r.extend(wide_cells(&spec["template"]["spec"], &spec["selector"]));
        r
    },
};

/// SCHEDULE, TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE; wide: CONTAINERS, IMAGES, SELECTOR.
pub const CRON_JOB: Printer = Printer {
    named: true,
    columns: &[
        col("Schedule"),
        col("Timezone"),
        col("Suspend"),
        col("Active"),
        col("Last Schedule"),
        col("Age"),
        WIDE_POD_COLUMNS[0],
        WIDE_POD_COLUMNS[1],
        WIDE_POD_COLUMNS[2],
    ],
    row: |o| {
        let (spec, st) = (&o["spec"], &o["status"]);
        let last = if st["lastScheduleTime"].is_string() {
            super::print::age(&st["lastScheduleTime"])
        } else {
            "<none>".into()
        };
        let jt = &spec["jobTemplate"]["spec"];
        let mut r = vec![
            json!(spec["schedule"].as_str().unwrap_or_default()),
            json!(spec["timeZone"].as_str().unwrap_or("<none>")),
            json!(
                spec["suspend"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string()
                    .to_ascii_lowercase()
            ),
            json!(st["active"].as_array().map_or(0, Vec::len)),
            json!(last),
            created(o),
        ];
        r.extend(wide_cells(&jt["template"]["spec"], &jt["selector"]));
        r
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn podinfo() -> Value {
        json!({"metadata": {"name": "podinfo", "uid": "u-1"}, "spec": {
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.9.2"}]}}}})
    }

    fn fields(rules: fn(&Value, &mut Vec<Cause>), o: &Value) -> Vec<String> {
        let mut c = Vec::new();
        rules(o, &mut c);
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn a_deployment_names_each_bad_field() {
        assert!(fields(deployment_rules, &podinfo()).is_empty());
        let with = |path: &str, v: Value| {
            let mut o = podinfo();
            let mut at = &mut o;
            for p in path.split('.') {
                at = &mut at[p];
            }
            *at = v;
            o
        };
        for (o, want) in [
            (with("spec.selector", Value::Null), vec!["spec.selector"]),
            (with("spec.selector", json!({})), vec!["spec.selector"]),
            (
                with("spec.selector.matchLabels.app", json!("grafana")),
                vec!["spec.template.metadata.labels"],
            ),
            (with("spec.replicas", json!(-1)), vec!["spec.replicas"]),
            (
                with("spec.strategy", json!({"type": "Blue"})),
                vec!["spec.strategy.type"],
            ),
            (
                with(
                    "spec.strategy",
                    json!({"type": "Recreate", "rollingUpdate": {}}),
                ),
                vec!["spec.strategy.rollingUpdate"],
            ),
            (
                with(
                    "spec.strategy",
                    json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
                ),
                vec!["spec.strategy.rollingUpdate.maxUnavailable"],
            ),
            (
                with("spec.template.spec.restartPolicy", json!("Never")),
                vec!["spec.template.spec.restartPolicy"],
            ),
            (
                with("spec.template.spec.containers", json!([])),
                vec!["spec.template.spec.containers"],
            ),
        ] {
            assert_eq!(fields(deployment_rules, &o), want, "{o}");
        }
    }

    #[test]
    fn a_job_needs_a_restart_policy_that_is_not_always() {
        let mut job = podinfo();
        job["spec"]["selector"] = Value::Null;
        job["spec"]["template"]["metadata"] = json!({});
        job_defaults(&mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "podinfo"
        );
        assert_eq!(
            fields(job_rules, &job),
            ["spec.template.spec.restartPolicy"],
            "a Job's restart policy is asked for, not defaulted"
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(
            fields(job_rules, &job),
            ["spec.template.spec.restartPolicy"]
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        assert!(fields(job_rules, &job).is_empty());
    }

    #[test]
    fn a_cron_job_needs_a_schedule() {
        let mut cj = json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "x"}]}}}}}});
        assert!(
            fields(cron_job_rules, &cj).is_empty(),
            "{:?}",
            fields(cron_job_rules, &cj)
        );
        cj["spec"]["schedule"] = json!("every five minutes");
        assert_eq!(fields(cron_job_rules, &cj), ["spec.schedule"]);
        cj["spec"]["schedule"] = json!("@hourly");
        assert!(fields(cron_job_rules, &cj).is_empty());
    }

    #[test]
    fn deployment_defaults_match_kube_apiserver() {
        let mut d = podinfo();
        deployment_defaults(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn deployment_columns_read_like_kubectl() {
        let mut d = podinfo();
        d["spec"]["replicas"] = json!(2);
        d["status"] = json!({"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1});
        let r = (DEPLOYMENT.row)(&d);
        assert_eq!(r[..3], [json!("1/2"), json!(2), json!(1)]);
        assert_eq!(r[4], "podinfo");
        assert_eq!(r[5], "ghcr.io/stefanprodan/podinfo:6.9.2");
        assert_eq!(r[6], "app=podinfo");
    }
}
