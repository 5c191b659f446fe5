//! A newcomer's everyday edits: label, annotate, set, diff, edit, replace, wait.

use std::process::Command;
use std::time::Duration;

use crate::common::{self, Metalgate, free_port, write};

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
