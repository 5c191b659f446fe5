//! Pods, and the pod spec every workload's template holds: the rules kube-apiserver applies to
//! containers, ports, volumes and probes, the defaults it fills in (restart policy, DNS policy,
//! pull policy by tag, probe timings), and `kubectl get pods` columns (READY 1/1, STATUS,
//! RESTARTS; wide: IP, NODE).

use serde_json::{Value, json};

use super::print::{created, human_duration, or_none};
use super::{Printer, check_one_of, col, port_ok, wide};
use crate::error::Cause;
use crate::validation::is_dns1123_label;

/// The rules of a Pod.
pub fn pod_rules(obj: &Value, c: &mut Vec<Cause>) {
    pod_spec(&obj["spec"], "spec", c);
}

/// The defaults of a Pod.
pub fn pod_defaults(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        pod_spec_defaults(spec);
        if spec["enableServiceLinks"].is_null() {
            spec["enableServiceLinks"] = json!(true);
        }
    }
    if obj["status"].is_null() {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }
}

fn cause_dup(field: String, name: &str) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        field,
        message: format!("Duplicate value: {name:?}"),
    }
}

/// The rules of a pod spec at `path` (`spec`, `spec.template.spec`).
pub fn pod_spec(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        c.push(Cause::required(format!("{path}.containers")));
    }
    check_one_of(
        &spec["restartPolicy"],
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
        c,
    );
    check_one_of(
        &spec["dnsPolicy"],
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        c,
    );
    let mut volumes: Vec<&str> = Vec::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let f = format!("{path}.volumes[{i}].name");
        match v["name"].as_str() {
            None | Some("") => c.push(Cause::required(f)),
            Some(n) if !is_dns1123_label(n) => c.push(Cause::invalid(
                f,
                &v["name"],
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            )),
            Some(n) if volumes.contains(&n) => c.push(cause_dup(f, n)),
            Some(n) => volumes.push(n),
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, ctr) in spec[list].as_array().into_iter().flatten().enumerate() {
            let f = format!("{path}.{list}[{i}]");
            match ctr["name"].as_str() {
                None | Some("") => c.push(Cause::required(format!("{f}.name"))),
                Some(n) if !is_dns1123_label(n) => c.push(Cause::invalid(
                    format!("{f}.name"),
                    &ctr["name"],
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                )),
                Some(n) if names.contains(&n) => c.push(cause_dup(format!("{f}.name"), n)),
                Some(n) => names.push(n),
            }
            container(ctr, &f, &volumes, c);
        }
    }
}

fn container(ctr: &Value, f: &str, volumes: &[&str], c: &mut Vec<Cause>) {
    if ctr["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
        c.push(Cause::required(format!("{f}.image")));
    }
    check_one_of(
        &ctr["imagePullPolicy"],
        &format!("{f}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        c,
    );
    let mut port_names: Vec<&str> = Vec::new();
    for (j, p) in ctr["ports"].as_array().into_iter().flatten().enumerate() {
        let pf = format!("{f}.ports[{j}]");
        if !port_ok(&p["containerPort"]) {
            c.push(Cause::invalid(
                format!("{pf}.containerPort"),
                &p["containerPort"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        if !p["hostPort"].is_null() && p["hostPort"] != json!(0) && !port_ok(&p["hostPort"]) {
            c.push(Cause::invalid(
                format!("{pf}.hostPort"),
                &p["hostPort"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        check_one_of(
            &p["protocol"],
            &format!("{pf}.protocol"),
            &["TCP", "UDP", "SCTP"],
            c,
        );
        if let Some(n) = p["name"].as_str() {
            if !is_port_name(n) {
                c.push(Cause::invalid(format!("{pf}.name"), &p["name"], "must be no more than 15 characters, contain only lower case alphanumerics and '-', and contain at least one letter"));
            } else if port_names.contains(&n) {
                c.push(cause_dup(format!("{pf}.name"), n));
            } else {
                port_names.push(n);
            }
        }
    }
    for (j, e) in ctr["env"].as_array().into_iter().flatten().enumerate() {
        let name = e["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            c.push(Cause::required(format!("{f}.env[{j}].name")));
        } else if name.contains('=') || name.chars().any(|ch| ch.is_control()) {
            c.push(Cause::invalid(
                format!("{f}.env[{j}].name"),
                &e["name"],
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if !e["value"].is_null() && !e["valueFrom"].is_null() {
            c.push(Cause::invalid(
                format!("{f}.env[{j}].valueFrom"),
                &Value::String(String::new()),
                "may not be specified when `value` is not empty",
            ));
        }
    }
    for (j, m) in ctr["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = m["name"].as_str().unwrap_or_default();
        if !volumes.contains(&name) {
            c.push(Cause {
                reason: "FieldValueNotFound".into(),
                field: format!("{f}.volumeMounts[{j}].name"),
                message: format!("Not found: {name:?}"),
            });
        }
        if m["mountPath"].as_str().is_none_or(str::is_empty) {
            c.push(Cause::required(format!("{f}.volumeMounts[{j}].mountPath")));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &ctr[probe];
        if !p.is_object() {
            continue;
        }
        let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
            .iter()
            .filter(|h| p[**h].is_object())
            .count();
        if handlers != 1 {
            c.push(Cause::required(format!(
                "{f}.{probe}: must specify exactly one handler type"
            )));
        }
    }
}

/// An IANA service name: 15 characters at most, lower case alphanumerics and '-', a letter.
fn is_port_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().any(|b| b.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
}

/// The rules of a pod template at `path` whose labels `selector` must select.
pub fn template(tpl: &Value, path: &str, selector: &Value, c: &mut Vec<Cause>) {
    if !tpl.is_object() {
        c.push(Cause::required(path));
        return;
    }
    if let Some(sel) = selector.as_object() {
        let labels = &tpl["metadata"]["labels"];
        let mut matches = true;
        for (k, v) in sel
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            matches &= labels[k.as_str()] == *v;
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let have = &labels[e["key"].as_str().unwrap_or_default()];
            let in_values = e["values"].as_array().is_some_and(|vs| vs.contains(have));
            matches &= match e["operator"].as_str() {
                Some("In") => in_values,
                Some("NotIn") => !in_values,
                Some("Exists") => !have.is_null(),
                Some("DoesNotExist") => have.is_null(),
                _ => false,
            };
        }
        if !matches {
            c.push(Cause::invalid(
                format!("{path}.metadata.labels"),
                labels,
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod_spec(&tpl["spec"], &format!("{path}.spec"), c);
}

/// A selector that selects something: `matchLabels` or `matchExpressions`, not empty.
pub fn selector_required(sel: &Value, path: &str, c: &mut Vec<Cause>) {
    let empty = sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
        && sel["matchExpressions"].as_array().is_none_or(Vec::is_empty);
    if sel.is_null() {
        c.push(Cause::required(path));
    } else if empty {
        c.push(Cause::invalid(path, sel, "empty selector is invalid"));
    }
}

/// kube-apiserver's defaults for a pod spec and its containers.
pub fn pod_spec_defaults(spec: &mut Value) {
    let fill = |v: &mut Value, k: &str, d: Value| {
        if v[k].is_null() {
            v[k] = d;
        }
    };
    fill(spec, "restartPolicy", json!("Always"));
    fill(spec, "dnsPolicy", json!("ClusterFirst"));
    fill(spec, "schedulerName", json!("default-scheduler"));
    fill(spec, "terminationGracePeriodSeconds", json!(30));
    fill(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for ctr in cs {
            let image = ctr["image"].as_str().unwrap_or_default().to_string();
            fill(ctr, "imagePullPolicy", json!(pull_policy(&image)));
            fill(ctr, "terminationMessagePath", json!("/dev/termination-log"));
            fill(ctr, "terminationMessagePolicy", json!("File"));
            if let Some(ports) = ctr.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    fill(p, "protocol", json!("TCP"));
                }
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let p = &mut ctr[probe];
                if !p.is_object() {
                    if p.is_null() {
                        if let Some(m) = ctr.as_object_mut() {
                            m.shift_remove(probe);
                        }
                    }
                    continue;
                }
                fill(p, "timeoutSeconds", json!(1));
                fill(p, "periodSeconds", json!(10));
                fill(p, "successThreshold", json!(1));
                fill(p, "failureThreshold", json!(3));
                if p["httpGet"].is_object() {
                    fill(&mut p["httpGet"], "scheme", json!("HTTP"));
                }
            }
            for e in ctr
                .get_mut("env")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if e["valueFrom"]["fieldRef"].is_object() {
                    fill(&mut e["valueFrom"]["fieldRef"], "apiVersion", json!("v1"));
                }
            }
        }
    }
}

/// `Always` for `:latest` or an untagged image, `IfNotPresent` otherwise.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// READY, STATUS, RESTARTS, AGE; wide: IP, NODE, NOMINATED NODE, READINESS GATES.
pub const PRINTER: Printer = Printer {
    named: true,
    columns: &[
        col("Ready"),
        col("Status"),
        col("Restarts"),
        col("Age"),
        wide("IP"),
        wide("Node"),
        wide("Nominated Node"),
        wide("Readiness Gates"),
    ],
    row: pod_row,
};

fn pod_row(o: &Value) -> Vec<Value> {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|s| s["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let last_restart = statuses
        .iter()
        .filter_map(|s| s["lastState"]["terminated"]["finishedAt"].as_str())
        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
        .max();
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(jiff::Timestamp::now().as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(pod_status(o)),
        json!(restarts),
        created(o),
        json!(or_none(
            o["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        )),
        json!(or_none(
            o["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        )),
        json!("<none>"),
        json!("<none>"),
    ]
}

/// The STATUS kubectl prints: Terminating, a container's waiting or terminated reason, the
/// pod's reason, or its phase.
pub fn pod_status(o: &Value) -> String {
    if o["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let mut status = o["status"]["reason"]
        .as_str()
        .or(o["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    for s in o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let st = &s["state"];
        if let Some(r) = st["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            status = r.to_string();
        } else if let Some(r) = st["terminated"]["reason"].as_str() {
            status = r.to_string();
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(spec: Value) -> Vec<String> {
        let mut c = Vec::new();
        pod_spec(&spec, "spec", &mut c);
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn each_bad_field_of_a_pod_spec_is_named() {
        let ok = json!({"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.9.2"});
        for (spec, want) in [
            (json!({"containers": [ok]}), vec![]),
            (json!({}), vec!["spec.containers"]),
            (
                json!({"containers": [{"name": "podinfo"}]}),
                vec!["spec.containers[0].image"],
            ),
            (
                json!({"containers": [ok, ok]}),
                vec!["spec.containers[1].name"],
            ),
            (
                json!({"containers": [{"name": "Pod", "image": "x"}]}),
                vec!["spec.containers[0].name"],
            ),
            (
                json!({"restartPolicy": "Sometimes", "containers": [ok]}),
                vec!["spec.restartPolicy"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]}),
                vec!["spec.containers[0].ports[0].containerPort"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http-port-is-too-long"}]}]}),
                vec!["spec.containers[0].ports[0].name"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "A=B"}]}]}),
                vec!["spec.containers[0].env[0].name"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}),
                vec!["spec.containers[0].volumeMounts[0].name"],
            ),
            (
                json!({"volumes": [{"name": "data"}, {"name": "data"}], "containers": [ok]}),
                vec!["spec.volumes[1].name"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "readinessProbe": {"periodSeconds": 1}}]}),
                vec!["spec.containers[0].readinessProbe: must specify exactly one handler type"],
            ),
        ] {
            assert_eq!(fields(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn a_template_must_carry_the_labels_its_selector_selects() {
        let tpl = json!({"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let mut c = Vec::new();
        template(
            &tpl,
            "spec.template",
            &json!({"matchLabels": {"app": "podinfo"}}),
            &mut c,
        );
        assert!(c.is_empty(), "{c:?}");
        template(
            &tpl,
            "spec.template",
            &json!({"matchLabels": {"app": "grafana"}}),
            &mut c,
        );
        template(
            &tpl,
            "spec.template",
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["podinfo"]}]}),
            &mut c,
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.template.metadata.labels",
                "spec.template.metadata.labels"
            ]
        );
    }

    #[test]
    fn defaults_follow_kube_apiserver() {
        let mut spec = json!({"containers": [
            {"name": "a", "image": "podinfo", "ports": [{"containerPort": 9898}], "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9898}}},
            {"name": "b", "image": "ghcr.io/x/y:6.9.2"}]});
        pod_spec_defaults(&mut spec);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(
            spec["containers"][0]["readinessProbe"]["httpGet"]["scheme"],
            "HTTP"
        );
        assert!(spec["containers"][1].get("readinessProbe").is_none());
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_columns_show_ready_status_and_restarts() {
        let o = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "mg-a"},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "containerStatuses": [
                {"ready": true, "restartCount": 0, "state": {"running": {}}},
                {"ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let r = pod_row(&o);
        assert_eq!(r[0], "1/2");
        assert_eq!(r[1], "CrashLoopBackOff");
        assert_eq!(r[2], "2");
        assert_eq!(r[4], "10.42.0.5");
        assert_eq!(r[5], "mg-a");
    }
}
