//! metalgate's CRDs: generated from the Rust types, checked in, served in standalone mode.

mod common;

use common::{Metalgate, free_port};

#[test]
fn checked_in_crds_match_what_the_types_generate() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .arg("crdgen")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/crds/metalgate.io.yaml"
    );
    let checked_in = std::fs::read_to_string(path).unwrap();
    assert!(
        generated == checked_in,
        "manifests/crds/metalgate.io.yaml drifted from crates/k8s/src/crd.rs; regenerate it with:\n  cargo run -- crdgen > manifests/crds/metalgate.io.yaml"
    );
}

const METALLB_POOL: &str = "\
apiVersion: metalgate.io/v1beta1
kind: IPAddressPool
metadata:
  name: lab-pool
  namespace: metalgate-system
spec:
  addresses:
  - 192.168.56.200-192.168.56.220
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [podinfo]
    serviceSelectors:
    - matchLabels: {exposed: \"true\"}
---
apiVersion: metalgate.io/v1beta1
kind: L2Advertisement
metadata:
  name: lab-l2
  namespace: metalgate-system
spec:
  ipAddressPools: [lab-pool]
  interfaces: [eth1]
";

#[test]
fn standalone_mode_serves_the_crds_with_metallb_yaml_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let ns = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: metalgate-system}\n",
    );
    assert!(ns.status.success());
    let applied = mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], METALLB_POOL);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let table = mg.kubectl_ok(&["get", "ipaddresspools", "-n", "metalgate-system"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AUTO ASSIGN",
            "AVOID BUGGY IPS",
            "ADDRESSES",
            "ASSIGNED IPV4",
            "AVAILABLE IPV4",
            "AGE"
        ],
        "{table}"
    );
    assert!(
        table.contains("lab-pool")
            && table.contains("true")
            && table.contains("192.168.56.200-192.168.56.220"),
        "{table}"
    );
    let auto = mg.kubectl_ok(&[
        "get",
        "ipp",
        "lab-pool",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.spec.autoAssign}",
    ]);
    assert_eq!(auto, "true", "autoAssign defaults to true, as in MetalLB");
    let l2 = mg.kubectl_ok(&[
        "get",
        "l2advertisements",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.items[0].spec.interfaces[0]}",
    ]);
    assert_eq!(l2, "eth1");

    let bad = mg.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: metalgate.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: metalgate-system}\nspec:\n  addresses: [192.168.56.0/24]\n  autoAssign: \"yes\"\n");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.autoAssign"), "{err}");
}

/// The seed's podinfo Application as an ArgoCD user writes it, `apiVersion` changed only.
const ARGO_APP: &str = "\
apiVersion: metalgate.io/v1beta1
kind: Application
metadata:
  name: podinfo
  namespace: metalgate-system
spec:
  project: default
  source:
    repoURL: https://github.com/example/ops-demo.git
    targetRevision: main
    path: manifests/apps/podinfo
    directory: {recurse: true}
  destination:
    server: https://kubernetes.default.svc
    namespace: demo
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
    retry: {limit: 3, backoff: {duration: 5s, factor: 2, maxDuration: 1m}}
";

#[test]
fn an_argo_application_is_accepted_as_written_and_listed_with_sync_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let ns = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: metalgate-system}\n",
    );
    assert!(ns.status.success());
    let applied = mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], ARGO_APP);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // An Argo field the module does not implement is kept as written, so it can be named in a
    // condition rather than dropped.
    let kept = mg.kubectl_ok(&[
        "get",
        "application",
        "podinfo",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.spec.ignoreDifferences[0].jsonPointers[0]}",
    ]);
    assert_eq!(kept, "/spec/replicas");
    let table = mg.kubectl_ok(&["get", "applications", "-n", "metalgate-system"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        ["NAME", "SYNC STATUS", "HEALTH", "REVISION", "AGE"],
        "{table}"
    );
    let bad = mg.kubectl_stdin(
        &["apply", "-f", "-"],
        &ARGO_APP.replace("prune: true", "prune: \"yes\""),
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.syncPolicy.automated.prune"), "{err}");
}
