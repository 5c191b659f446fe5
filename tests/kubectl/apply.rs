//! Applying and reading: server-side and client-side apply, `get -w`, CRDs and their printer
//! columns, `kubectl explain`, and unknown or invalid fields named by path.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{Metalgate, free_port, write};
use crate::{APPS, CONFIG, columns};

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
