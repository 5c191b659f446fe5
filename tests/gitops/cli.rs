//! `metalgate gitops` as a user types it: list, show, history, sync, refresh, validate.

use std::process::Command;
use std::time::Duration;

use crate::common::workshop::{podinfo_app, push_color, wait_color, workshop_repo};
use crate::common::{Metalgate, free_port};

#[test]
fn the_gitops_cli_lists_shows_history_and_syncs_on_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    let mg = Metalgate::start_with(
        &tmp.path().join("data"),
        free_port(),
        "gitops",
        &["--gitops-poll", "10m"],
    );
    // No automated sync: only `metalgate gitops sync` applies.
    let app = podinfo_app(&format!("file://{}", bare.display()), false)
        .replace("    automated: {prune: true, selfHeal: false}\n", "");
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, said) = mg.cli(&["gitops", "sync", "podinfo"]);
    assert!(ok, "{said}");
    assert!(said.contains("Sync:       Synced"), "{said}");
    assert!(
        said.contains("ConfigMap") && said.contains("podinfo-ui"),
        "{said}"
    );
    wait_color(&mg, "#34577c", Duration::from_secs(5));

    let sha = push_color(&work, "#ff8800");
    let (ok, said) = mg.cli(&["gitops", "refresh", "podinfo"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("OutOfSync"),
        "a new commit without auto-sync: {said}"
    );
    let (ok, said) = mg.cli(&["gitops", "sync", "podinfo"]);
    assert!(ok, "{said}");
    wait_color(&mg, "#ff8800", Duration::from_secs(5));

    let (ok, list) = mg.cli(&["gitops", "list"]);
    assert!(ok, "{list}");
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["podinfo", "Synced", "Healthy", &sha[..7]],
        "{list}"
    );
    let (ok, history) = mg.cli(&["gitops", "history", "podinfo"]);
    assert!(ok, "{history}");
    let newest = history.lines().nth(1).unwrap();
    assert!(
        newest.contains(&sha[..7])
            && newest.contains("Ada Ops")
            && newest.contains("podinfo: #ff8800"),
        "{history}"
    );

    // diff: nothing differs after the sync; a hand edit is named by field, values and manager,
    // and the exit code says so (as `argocd app diff`).
    let (ok, diff) = mg.cli(&["gitops", "diff", "podinfo"]);
    assert!(ok, "{diff}");
    assert!(
        diff.contains("0 changed, 0 missing, 0 not in Git"),
        "{diff}"
    );
    mg.kubectl_ok(&[
        "patch",
        "configmap",
        "podinfo-ui",
        "-n",
        "demo",
        "-p",
        r##"{"data":{"PODINFO_UI_COLOR":"#abcdef"}}"##,
    ]);
    let (ok, diff) = mg.cli(&["gitops", "diff", "podinfo"]);
    assert!(!ok, "diff exits 1 when something differs: {diff}");
    assert!(
        diff.contains(r##"data.PODINFO_UI_COLOR: Git "#ff8800", cluster "#abcdef"  (changed by kubectl-patch)"##),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("revision {} podinfo: #ff8800", &sha[..7])),
        "{diff}"
    );

    // validate: a directory as the module would read it, problems named.
    std::fs::write(
        work.join("apps/podinfo/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, map]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["gitops", "validate"])
        .arg(work.join("apps/podinfo"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yaml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    validate_checks_schemas_and_renders_charts(&mg, tmp.path());
}

/// `metalgate gitops validate` (the seed's CI step): offline it still knows the built-in kinds'
/// schemas; a Helm chart is rendered as the module renders it; with --kubeconfig it dry-runs
/// against that cluster; exit 1 and the file, object and field when something is wrong.
fn validate_checks_schemas_and_renders_charts(mg: &Metalgate, tmp: &std::path::Path) {
    let validate = |args: &[&str], path: &std::path::Path, envs: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(["gitops", "validate"])
            .args(args)
            .arg(path)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let svc = tmp.join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: podinfo}\nspec:\n  ports: [{port: 80}]\n  colour: red\n",
    )
    .unwrap();
    let (ok, said) = validate(&[], &svc, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("svc/svc.yaml: document 1: Service default/podinfo")
            && said.contains("spec.colour"),
        "{said}"
    );
    assert!(
        !said.contains(" INFO "),
        "a client command logs warnings only: {said}"
    );
    let kubeconfig = mg.kubeconfig();
    let (ok, said) = validate(&["--kubeconfig", kubeconfig.to_str().unwrap()], &svc, &[]);
    assert!(!ok && said.contains("spec.colour"), "{said}");

    let chart = tmp.join("podinfo-chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: podinfo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "color: '#34577c'\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo-ui}\ndata:\n  PODINFO_UI_COLOR: {{ .Values.color | quote }}\n",
    )
    .unwrap();
    let (ok, said) = validate(&["-n", "demo"], &chart, &[]);
    assert!(ok, "{said}");
    assert!(said.contains("1 object(s), all valid"), "{said}");
    // Without helm on PATH: the condition the module would show.
    let (ok, said) = validate(&[], &chart, &[("PATH", "/usr/bin:/bin")]);
    assert!(!ok && said.contains("cannot run helm"), "{said}");
}
