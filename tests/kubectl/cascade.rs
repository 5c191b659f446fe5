//! Deletes that cascade (background, foreground, orphan; across a restart) and watches whose
//! selector an object leaves and re-enters.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{Metalgate, eventually, free_port};

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
