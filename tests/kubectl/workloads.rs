//! Workloads and RBAC applied and printed as kubectl prints them, `kubectl scale`, and a
//! Deployment refused by field.

use crate::columns;
use crate::common::{Metalgate, free_port};

const WORKLOADS: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: apps}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      serviceAccountName: podinfo
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.9.2
        env: [{name: PODINFO_UI_COLOR, value: '#34577c'}]
        ports: [{name: http, containerPort: 9898}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: podinfo, namespace: apps}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-config, namespace: apps}
rules:
- {apiGroups: [''], resources: [configmaps], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: podinfo-reads-config, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-config}
subjects:
- {kind: ServiceAccount, name: podinfo, namespace: apps}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: apps}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: busybox:1.36, command: [sh, -c, 'true']}]
";

#[test]
fn workloads_and_rbac_apply_print_like_kubectl_and_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], WORKLOADS);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for created in [
        "deployment.apps/podinfo created",
        "serviceaccount/podinfo created",
        "role.rbac.authorization.k8s.io/read-config created",
        "rolebinding.rbac.authorization.k8s.io/podinfo-reads-config created",
        "job.batch/migrate created",
    ] {
        assert!(said.contains(created), "{said}");
    }

    let table = mg.kubectl_ok(&["get", "deploy", "-n", "apps", "-o", "wide"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        columns(lines[0]),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{table}"
    );
    let row = columns(lines[1]);
    assert_eq!(row[..4], ["podinfo", "0/2", "0", "0"], "{table}");
    assert_eq!(
        row[5..],
        [
            "podinfo",
            "ghcr.io/stefanprodan/podinfo:6.9.2",
            "app=podinfo"
        ],
        "{table}"
    );
    // What kube-apiserver defaults is there for `kubectl get -o yaml` readers.
    let strategy = mg.kubectl_ok(&[
        "get",
        "deploy",
        "podinfo",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.containers[0].imagePullPolicy}",
    ]);
    assert_eq!(strategy, "25% IfNotPresent");

    let scaled = mg.kubectl_ok(&["scale", "deploy", "podinfo", "-n", "apps", "--replicas=3"]);
    assert!(
        scaled.contains("deployment.apps/podinfo scaled"),
        "{scaled}"
    );
    let replicas = mg.kubectl_ok(&[
        "get",
        "deploy",
        "podinfo",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ]);
    assert_eq!(replicas, "3 2", "scaled through /scale, generation moved");

    let bindings = mg.kubectl_ok(&["get", "rolebinding", "-n", "apps", "-o", "wide"]);
    assert!(
        bindings.contains("Role/read-config") && bindings.contains("apps/podinfo"),
        "{bindings}"
    );
    let job = mg.kubectl_ok(&[
        "get",
        "job",
        "migrate",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.selector.matchLabels}",
    ]);
    assert!(
        job.contains("batch.kubernetes.io/controller-uid"),
        "a Job's selector is generated from its uid: {job}"
    );
    let all = mg.kubectl_ok(&["get", "all", "-n", "apps"]);
    assert!(
        all.contains("deployment.apps/podinfo") && all.contains("job.batch/migrate"),
        "{all}"
    );
    let resources = mg.kubectl_ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    for r in [
        "deployments.apps",
        "daemonsets.apps",
        "statefulsets.apps",
        "replicasets.apps",
    ] {
        assert!(resources.lines().any(|l| l == r), "{resources}");
    }
}

#[test]
fn a_deployment_whose_selector_misses_its_template_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let bad = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: web, image: nginx:1.27}]}\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.template.metadata.labels")
            && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let none = mg.kubectl_ok(&["get", "deploy"]);
    assert!(!none.contains("web"), "nothing was created: {none}");
    let neg = mg.kubectl(&["scale", "deploy", "web", "--replicas=-1"]);
    assert!(!neg.status.success());
}
