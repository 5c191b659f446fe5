//! The real `kubectl` against `metalgate run`'s embedded store.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Metalgate, eventually, free_port, write};

const APPS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: apps
  labels: {app: podinfo}
spec:
  type: LoadBalancer
  ports:
  - name: http
    port: 80
    targetPort: 9898
";

const CONFIG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: apps
data:
  color: blue
";

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn server_side_apply_of_a_directory_and_get_svc_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let manifests = dir.path().join("manifests");
    write(&manifests, "10-apps.yaml", APPS);
    write(&manifests, "nested/20-config.yaml", CONFIG);
    let out = mg.kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        manifests.to_str().unwrap(),
        "--recursive",
    ]);
    assert!(out.contains("service/podinfo serverside-applied"), "{out}");
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );

    let table = mg.kubectl_ok(&["get", "svc", "-n", "apps"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        columns(lines[0]),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{table}"
    );
    let row = columns(lines[1]);
    assert_eq!(row[0], "podinfo");
    assert_eq!(row[1], "LoadBalancer");
    assert!(
        row[2].starts_with("10.43."),
        "ClusterIP from 10.43.0.0/16: {table}"
    );
    assert_eq!(row[3], "<pending>");
    assert!(
        row[4].starts_with("80:3") && row[4].ends_with("/TCP"),
        "{table}"
    );

    let cm = mg.kubectl_ok(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "apps",
        "-o",
        "jsonpath={.data.color}",
    ]);
    assert_eq!(cm, "blue");
    let nodes = mg.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes.contains("test-node") && nodes.contains("Ready"),
        "{nodes}"
    );
}

#[test]
fn get_watch_prints_a_change_made_by_another_client() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], APPS);
    let mut watch = Command::new("kubectl")
        .args(["get", "svc", "-n", "apps", "-w"])
        .env("KUBECONFIG", mg.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The header and the current row first.
    let header = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("watch header");
    assert!(header.starts_with("NAME"), "{header}");
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("first row");
    assert!(first.contains("LoadBalancer"), "{first}");

    // Another client changes the Service.
    mg.kubectl_ok(&[
        "patch",
        "svc",
        "podinfo",
        "-n",
        "apps",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.contains("NodePort") => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        found,
        "kubectl get -w never printed the change; saw {seen:?}"
    );
}

#[test]
fn client_side_apply_of_an_edit_then_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let file = write(dir.path(), "svc.yaml", APPS);
    mg.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let edited = APPS
        .replace("targetPort: 9898", "targetPort: 8080")
        .replace("app: podinfo", "app: podinfo, tier: web");
    std::fs::write(&file, edited).unwrap();
    let out = mg.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.contains("service/podinfo configured"), "{out}");
    let port = mg.kubectl_ok(&[
        "get",
        "svc",
        "podinfo",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.ports[0].targetPort} {.metadata.labels.tier} {.metadata.generation}",
    ]);
    assert_eq!(port, "8080 web 2");
    // Applying the same file again changes nothing.
    let out = mg.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.contains("unchanged"), "{out}");

    let out = mg.kubectl_ok(&["delete", "svc", "podinfo", "-n", "apps"]);
    assert!(out.contains("deleted"), "{out}");
    let gone = mg.kubectl(&["get", "svc", "podinfo", "-n", "apps"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, description: How many sprockets a widget turns.}
";

#[test]
fn crds_make_their_kinds_served_with_printer_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_stdin(&["apply", "-f", "-"], CRD);
    let crds = mg.kubectl_ok(&["get", "crd"]);
    assert!(crds.contains("widgets.example.io"), "{crds}");
    let out = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = mg.kubectl_ok(&["get", "widgets"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(columns(lines[0]), ["NAME", "SIZE", "AGE"], "{table}");
    assert_eq!(columns(lines[1])[..2], ["w1", "3"], "{table}");
    let short = mg.kubectl_ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(short, "3");

    // The CRD's schema is enforced, naming the field.
    let bad = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.size"), "{err}");
    // So are unknown fields, which kubectl asks the server to reject.
    let unknown = mg.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 2, colour: red}\n");
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("spec.colour"), "{err}");

    // `kubectl explain` reads the CRD's schema, with `metadata` as every kind's ObjectMeta.
    let explained = mg.kubectl_ok(&["explain", "widgets.spec"]);
    assert!(explained.contains("GROUP:      example.io"), "{explained}");
    assert!(explained.contains("size\t<integer>"), "{explained}");
    assert!(
        explained.contains("How many sprockets a widget turns."),
        "{explained}"
    );
    let meta = mg.kubectl_ok(&["explain", "widgets.metadata.labels"]);
    assert!(meta.contains("FIELD: labels <map[string]string>"), "{meta}");
}

/// `kubectl explain` on built-in kinds, as a newcomer runs it: a kind, a nested field, a field
/// of a list's items, a value that is a number or a name — and a field that does not exist.
#[test]
fn kubectl_explain_describes_built_in_kinds_and_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);

    let deploy = mg.kubectl_ok(&["explain", "deployment"]);
    assert!(deploy.contains("GROUP:      apps"), "{deploy}");
    assert!(deploy.contains("KIND:       Deployment"), "{deploy}");
    assert!(
        deploy.contains("Deployment enables declarative updates for Pods and ReplicaSets."),
        "{deploy}"
    );
    assert!(deploy.contains("spec\t<DeploymentSpec>"), "{deploy}");
    // `metadata` is not required: the API fills in what is left out.
    assert!(deploy.contains("metadata\t<ObjectMeta>\n"), "{deploy}");

    let replicas = mg.kubectl_ok(&["explain", "deploy.spec.replicas"]);
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
    assert!(replicas.contains("Number of desired pods."), "{replicas}");

    let ports = mg.kubectl_ok(&["explain", "pods.spec.containers.ports"]);
    assert!(ports.contains("FIELD: ports <[]ContainerPort>"), "{ports}");
    assert!(
        ports.contains("containerPort\t<integer> -required-"),
        "{ports}"
    );

    let target = mg.kubectl_ok(&["explain", "svc.spec.ports.targetPort"]);
    assert!(
        target.contains("FIELD: targetPort <IntOrString>"),
        "{target}"
    );

    let ing = mg.kubectl_ok(&["explain", "ingress.spec.rules.http.paths.pathType"]);
    assert!(ing.contains("Prefix"), "{ing}");

    let rb = mg.kubectl_ok(&["explain", "clusterrolebinding.roleRef"]);
    assert!(rb.contains("GROUP:      rbac.authorization.k8s.io"), "{rb}");
    assert!(rb.contains("apiGroup\t<string> -required-"), "{rb}");

    let recursive = mg.kubectl_ok(&["explain", "cronjob.spec", "--recursive"]);
    assert!(
        recursive.contains("schedule\t<string> -required-"),
        "{recursive}"
    );
    assert!(
        recursive.contains("containers\t<[]Container> -required-"),
        "{recursive}"
    );

    let missing = mg.kubectl(&["explain", "deploy.spec.colour"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn unknown_and_invalid_fields_of_built_in_kinds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let unknown = mg.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n  typo: x\n");
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("spec.typo"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let invalid = mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 192.168.56.999\n  ports: [{port: 80}]\n");
    assert!(!invalid.status.success());
    let err = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        err.contains("spec.loadBalancerIP") && err.contains("192.168.56.999"),
        "{err}"
    );
    let none = mg.kubectl_ok(&["get", "svc"]);
    assert!(!none.contains(" s "), "nothing was created: {none}");
}

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

#[test]
fn kubectl_create_generators_and_auth_commands_work_through_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let said = |args: &[&str]| mg.kubectl_ok(args).trim().to_string();
    assert_eq!(
        said(&["create", "namespace", "apps"]),
        "namespace/apps created"
    );
    assert_eq!(
        said(&[
            "create",
            "configmap",
            "ui",
            "-n",
            "apps",
            "--from-literal=PODINFO_UI_COLOR=#34577c"
        ]),
        "configmap/ui created"
    );
    assert_eq!(
        said(&[
            "create",
            "secret",
            "generic",
            "pw",
            "-n",
            "apps",
            "--from-literal=password=s3cret"
        ]),
        "secret/pw created"
    );
    let cert =
        rcgen::generate_simple_self_signed(vec!["podinfo.192.168.56.200.nip.io".into()]).unwrap();
    let crt = write(dir.path(), "tls.crt", &cert.cert.pem());
    let key = write(dir.path(), "tls.key", &cert.signing_key.serialize_pem());
    assert_eq!(
        said(&[
            "create",
            "secret",
            "tls",
            "podinfo-tls",
            "-n",
            "apps",
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ]),
        "secret/podinfo-tls created"
    );
    assert_eq!(
        said(&["create", "serviceaccount", "bot", "-n", "apps"]),
        "serviceaccount/bot created"
    );
    assert_eq!(
        said(&[
            "create",
            "role",
            "read-config",
            "-n",
            "apps",
            "--verb=get,list",
            "--resource=configmaps"
        ]),
        "role.rbac.authorization.k8s.io/read-config created"
    );
    assert_eq!(
        said(&[
            "create",
            "rolebinding",
            "bot-reads",
            "-n",
            "apps",
            "--role=read-config",
            "--serviceaccount=apps:bot"
        ]),
        "rolebinding.rbac.authorization.k8s.io/bot-reads created"
    );

    // The workload and network generators, and `run`/`expose`.
    assert_eq!(
        said(&[
            "create",
            "deployment",
            "podinfo",
            "-n",
            "apps",
            "--image=ghcr.io/stefanprodan/podinfo:6.7.0",
            "--port=9898",
            "--replicas=2"
        ]),
        "deployment.apps/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "deployment",
            "idle",
            "-n",
            "apps",
            "--image=busybox",
            "--replicas=0"
        ]),
        "deployment.apps/idle created"
    );
    assert_eq!(
        said(&[
            "create",
            "service",
            "loadbalancer",
            "podinfo",
            "-n",
            "apps",
            "--tcp=80:9898"
        ]),
        "service/podinfo created"
    );
    assert_eq!(
        said(&[
            "expose",
            "deployment",
            "podinfo",
            "-n",
            "apps",
            "--name=podinfo-internal",
            "--port=9898"
        ]),
        "service/podinfo-internal exposed"
    );
    assert_eq!(
        said(&[
            "create",
            "ingress",
            "podinfo",
            "-n",
            "apps",
            "--class=metalgate",
            "--rule=podinfo.192.168.56.200.nip.io/*=podinfo:80"
        ]),
        "ingress.networking.k8s.io/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "cronjob",
            "tick",
            "-n",
            "apps",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "date"
        ]),
        "cronjob.batch/tick created"
    );
    assert_eq!(
        said(&[
            "create",
            "job",
            "hello",
            "-n",
            "apps",
            "--image=busybox",
            "--",
            "echo",
            "hi"
        ]),
        "job.batch/hello created"
    );
    assert_eq!(
        said(&[
            "create",
            "job",
            "tick-now",
            "-n",
            "apps",
            "--from=cronjob/tick"
        ]),
        "job.batch/tick-now created"
    );
    assert_eq!(
        said(&[
            "create",
            "poddisruptionbudget",
            "podinfo",
            "-n",
            "apps",
            "--selector=app=podinfo",
            "--min-available=1"
        ]),
        "poddisruptionbudget.policy/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "quota",
            "small",
            "-n",
            "apps",
            "--hard=pods=10,cpu=2"
        ]),
        "resourcequota/small created"
    );
    assert_eq!(
        said(&[
            "run",
            "shell",
            "-n",
            "apps",
            "--image=busybox",
            "--env=GREETING=hi",
            "--port=8080"
        ]),
        "pod/shell created"
    );
    let get = |args: &[&str], path: &str| {
        let mut all = vec!["get"];
        all.extend(args);
        let jp = format!("jsonpath={path}");
        all.extend(["-n", "apps", "-o", &jp]);
        said(&all)
    };
    let podinfo = ["deployment", "podinfo"];
    assert_eq!(get(&podinfo, "{.spec.replicas}"), "2");
    assert_eq!(
        get(
            &podinfo,
            "{.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "9898"
    );
    assert_eq!(get(&podinfo, "{.spec.selector.matchLabels.app}"), "podinfo");
    assert_eq!(get(&["deployment", "idle"], "{.spec.replicas}"), "0");
    let svc = ["service", "podinfo"];
    assert_eq!(get(&svc, "{.spec.type}"), "LoadBalancer");
    assert_eq!(
        get(&svc, "{.spec.ports[0].port}/{.spec.ports[0].targetPort}"),
        "80/9898"
    );
    assert_eq!(
        get(&["service", "podinfo-internal"], "{.spec.selector.app}"),
        "podinfo"
    );
    let ing = ["ingress", "podinfo"];
    assert_eq!(
        get(
            &ing,
            "{.spec.ingressClassName} {.spec.rules[0].host} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].backend.service.port.number}"
        ),
        "metalgate podinfo.192.168.56.200.nip.io Prefix 80"
    );
    assert_eq!(
        get(
            &["job", "hello"],
            "{.spec.template.spec.containers[0].command}"
        ),
        r#"["echo","hi"]"#
    );
    assert_eq!(
        get(&["job", "tick-now"], "{.metadata.ownerReferences[0].name}"),
        "tick"
    );
    assert_eq!(get(&["cronjob", "tick"], "{.spec.schedule}"), "*/5 * * * *");
    assert_eq!(get(&["pdb", "podinfo"], "{.spec.minAvailable}"), "1");
    assert_eq!(get(&["quota", "small"], "{.spec.hard.pods}"), "10");
    assert_eq!(
        get(&["pod", "shell"], "{.spec.containers[0].env[0].value}"),
        "hi"
    );

    // What the user reads back.
    let cm = said(&[
        "get",
        "configmap",
        "ui",
        "-n",
        "apps",
        "-o",
        "jsonpath={.data.PODINFO_UI_COLOR}",
    ]);
    assert_eq!(cm, "#34577c");
    let secrets = said(&["get", "secrets", "-n", "apps"]);
    assert!(
        secrets.contains("pw") && secrets.contains("Opaque"),
        "{secrets}"
    );
    assert!(
        secrets.contains("podinfo-tls") && secrets.contains("kubernetes.io/tls"),
        "{secrets}"
    );

    // kubectl auth can-i --as: impersonation and a SelfSubjectAccessReview.
    let can = |args: &[&str]| {
        let out = mg.kubectl(args);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let bot = "--as=system:serviceaccount:apps:bot";
    assert_eq!(
        can(&["auth", "can-i", "get", "configmaps", "-n", "apps", bot]),
        "yes"
    );
    assert_eq!(
        can(&["auth", "can-i", "delete", "configmaps", "-n", "apps", bot]),
        "no"
    );
    assert_eq!(
        can(&["auth", "can-i", "get", "configmaps", "-n", "default", bot]),
        "no"
    );
    assert_eq!(
        can(&["auth", "can-i", "get", "secrets", "-n", "apps", bot]),
        "no"
    );
    let whoami = said(&["auth", "whoami", bot]);
    assert!(
        whoami.contains("system:serviceaccount:apps:bot"),
        "{whoami}"
    );

    // kubectl create token: a token that acts as the account.
    let token = said(&["create", "token", "bot", "-n", "apps"]);
    let kc = mg.kubeconfig_with_token(dir.path(), "bot.kubeconfig", &token);
    let read = common::kubectl_with(
        &kc,
        &["get", "configmap", "ui", "-n", "apps", "-o", "name"],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "configmap/ui");
    let denied = common::kubectl_with(&kc, &["get", "secrets", "-n", "apps"], None);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains(
            "cannot list resource \"secrets\" in API group \"\" in the namespace \"apps\""
        ),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}

/// A Deployment, a ReplicaSet it owns and a Pod the ReplicaSet owns (what
/// kube-controller-manager would make; nothing makes them in the store, so the test does).
fn owned_chain(mg: &Metalgate, pod_finalizer: bool) {
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo, namespace: apps}\nspec:\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.9.2}]}\n",
    );
    let uid = |kind: &str, name: &str| {
        mg.kubectl_ok(&[
            "get",
            kind,
            name,
            "-n",
            "apps",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
    };
    let d = uid("deployment", "podinfo");
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: podinfo-5d8f\n  namespace: apps\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: podinfo, uid: {d}, controller: true, blockOwnerDeletion: true}}]\nspec:\n  selector: {{matchLabels: {{app: podinfo}}}}\n  template:\n    metadata: {{labels: {{app: podinfo}}}}\n    spec: {{containers: [{{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.9.2}}]}}\n"),
    );
    let rs = uid("replicaset", "podinfo-5d8f");
    let fin = if pod_finalizer {
        "\n  finalizers: [example.com/hold]"
    } else {
        ""
    };
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: podinfo-5d8f-x2x9p\n  namespace: apps{fin}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: podinfo-5d8f, uid: {rs}, controller: true, blockOwnerDeletion: true}}]\nspec: {{containers: [{{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.9.2}}]}}\n"),
    );
}

fn names_in_apps(mg: &Metalgate) -> String {
    mg.kubectl_ok(&["get", "deploy,rs,pods", "-n", "apps", "-o", "name"])
}

#[test]
fn deleting_an_owner_cascades_in_background_foreground_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mg = Metalgate::start(&data, port, &[]);

    // Background (kubectl's default): the Deployment goes, then its ReplicaSet and Pod.
    owned_chain(&mg, false);
    assert_eq!(
        names_in_apps(&mg).lines().count(),
        3,
        "{}",
        names_in_apps(&mg)
    );
    mg.kubectl_ok(&["delete", "deployment", "podinfo", "-n", "apps"]);
    assert!(
        eventually(Duration::from_secs(10), || names_in_apps(&mg).is_empty()),
        "left after a background delete: {}",
        names_in_apps(&mg)
    );

    // Orphan: the ReplicaSet and Pod stay, without the reference to the gone Deployment.
    owned_chain(&mg, false);
    mg.kubectl_ok(&[
        "delete",
        "deployment",
        "podinfo",
        "-n",
        "apps",
        "--cascade=orphan",
    ]);
    assert!(eventually(Duration::from_secs(10), || !names_in_apps(&mg)
        .contains("deployment")));
    std::thread::sleep(Duration::from_millis(500));
    let left = names_in_apps(&mg);
    assert!(
        left.contains("replicaset.apps/podinfo-5d8f") && left.contains("pod/podinfo-5d8f-x2x9p"),
        "{left}"
    );
    let owners = mg.kubectl_ok(&[
        "get",
        "rs",
        "podinfo-5d8f",
        "-n",
        "apps",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert!(owners.is_empty() || owners == "[]", "{owners}");
    mg.kubectl_ok(&["delete", "rs,pods", "--all", "-n", "apps"]);

    // Foreground: the Deployment waits, marked, for its ReplicaSet, which waits for its Pod (held
    // here by a finalizer) — across a restart of the store.
    owned_chain(&mg, true);
    mg.kubectl_ok(&[
        "delete",
        "deployment",
        "podinfo",
        "-n",
        "apps",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let marked = || {
        mg.kubectl_ok(&[
            "get",
            "deploy",
            "podinfo",
            "-n",
            "apps",
            "-o",
            "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            let m = marked();
            m.contains("foregroundDeletion") && m.contains('T')
        }),
        "{}",
        marked()
    );
    assert!(eventually(Duration::from_secs(10), || {
        let rs = mg.kubectl_ok(&[
            "get",
            "rs",
            "podinfo-5d8f",
            "-n",
            "apps",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ]);
        rs.contains("foregroundDeletion")
    }));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        names_in_apps(&mg).lines().count(),
        3,
        "all three wait for the held Pod"
    );
    mg.kill();
    let mg = Metalgate::start(&data, port, &[]);
    mg.kubectl_ok(&[
        "patch",
        "pod",
        "podinfo-5d8f-x2x9p",
        "-n",
        "apps",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"finalizers\":null}}",
    ]);
    assert!(
        eventually(Duration::from_secs(15), || names_in_apps(&mg).is_empty()),
        "the cascade did not finish after the restart: {}",
        names_in_apps(&mg)
    );
}

#[test]
fn a_watch_with_a_label_selector_sees_objects_leave_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let mut watch = Command::new("kubectl")
        .args(["get", "configmaps", "-l", "tier=web", "-w"])
        .arg("--output-watch-events")
        .env("KUBECONFIG", mg.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let label = |tier: &str| {
        mg.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ui, namespace: default, labels: {{tier: {tier}}}}}\ndata: {{color: blue}}\n"),
        );
    };
    let next = || rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    // Nothing matches yet: the header comes once the first row does.
    label("web");
    let header = next();
    let added = next();
    label("api");
    let left = next();
    label("web");
    let back = next();
    let _ = watch.kill();
    let _ = watch.wait();
    let first_two = |l: &str| {
        l.split_whitespace()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(first_two(&header), ["EVENT", "NAME"], "{header}");
    assert_eq!(first_two(&added), ["ADDED", "ui"]);
    assert_eq!(
        first_two(&left),
        ["DELETED", "ui"],
        "stopped matching tier=web"
    );
    assert_eq!(first_two(&back), ["ADDED", "ui"], "matches again");
}

/// A newcomer's everyday edits: label, annotate, set image and env, diff before an apply, edit
/// in an editor, replace, and wait — for a value, a condition and a deletion.
#[test]
fn everyday_edits_diff_edit_replace_set_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);

    mg.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    mg.kubectl_ok(&["label", "deploy", "web", "tier=front"]);
    mg.kubectl_ok(&["annotate", "deploy", "web", "owner=workshop"]);
    mg.kubectl_ok(&["set", "image", "deploy/web", "nginx=nginx:1.28"]);
    mg.kubectl_ok(&["set", "env", "deploy/web", "COLOR=blue"]);
    let seen = mg.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner} \
         {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}",
    ]);
    assert_eq!(seen, "front workshop nginx:1.28 blue");

    // diff: what an apply would change, and only that (exit status 1 = differences).
    let cfg = |colour: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: default}}\ndata: {{colour: {colour}}}\n"
        )
    };
    let file = write(dir.path(), "cfg.yaml", &cfg("blue"));
    mg.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let same = mg.kubectl(&["diff", "-f", file.to_str().unwrap()]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    write(dir.path(), "cfg.yaml", &cfg("red"));
    let diff = mg.kubectl(&["diff", "-f", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(
        text.contains("-  colour: blue") && text.contains("+  colour: red"),
        "{text}"
    );
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(changed, ["-  colour: blue", "+  colour: red"], "{text}");
    // A diff changes nothing.
    assert_eq!(
        mg.kubectl_ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.colour}"]),
        "blue"
    );

    // edit: kubectl opens $EDITOR on the object and sends what was saved.
    let edit = Command::new("timeout")
        .args(["60", "kubectl", "edit", "cm", "cfg"])
        .env("KUBECONFIG", mg.kubeconfig())
        .env("EDITOR", "sed -i s/colour:.blue/colour:\\ green/")
        .output()
        .unwrap();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    assert_eq!(
        mg.kubectl_ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.colour}"]),
        "green"
    );

    // replace: the whole object from the file.
    let out = mg.kubectl_ok(&["replace", "-f", file.to_str().unwrap()]);
    assert!(out.contains("replaced"), "{out}");
    assert_eq!(
        mg.kubectl_ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.colour}"]),
        "red"
    );

    // wait: for a value, for a condition the status reports, for a deletion.
    let out = mg.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.data.colour}=red",
        "cm/cfg",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let not_yet = mg.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=1s",
    ]);
    assert!(!not_yet.status.success(), "no status says Available yet");
    mg.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}}"#,
    ]);
    let out = mg.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let kubeconfig = mg.kubeconfig();
    let deleter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        common::kubectl_with(&kubeconfig, &["delete", "cm", "cfg"], None)
    });
    let out = mg.kubectl_ok(&["wait", "--for=delete", "cm/cfg", "--timeout=20s"]);
    assert!(out.contains("condition met"), "{out}");
    assert!(deleter.join().unwrap().status.success());
}
