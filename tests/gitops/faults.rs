//! What goes wrong: a failed sync retried with back-off, the module killed mid-sync, a leader
//! stopped during a rolling update.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::workshop::{git, podinfo_app, start_gitops, workshop_repo};
use crate::common::{Metalgate, free_port, wait_for};

#[test]
fn a_failed_sync_is_retried_with_back_off_as_syncpolicy_retry_says() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    // A revision that cannot apply yet: its ConfigMap's namespace does not exist.
    std::fs::write(
        work.join("apps/podinfo/ui.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-ui\n  namespace: later\ndata:\n  PODINFO_UI_COLOR: '#123456'\n",
    )
    .unwrap();
    git(
        &work,
        &["commit", "-qam", "podinfo: into a namespace made later"],
    );
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let (mg, _) = start_gitops(tmp.path());
    let app = podinfo_app(&format!("file://{}", bare.display()), false).replace(
        "    syncOptions: [CreateNamespace=true]\n",
        "    syncOptions: [CreateNamespace=true]\n    retry: {limit: 5, backoff: {duration: 1s, factor: 2, maxDuration: 2s}}\n",
    );
    let out = mg.kubectl_stdin(&["apply", "-f", "-"], &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let condition = || mg.app_jsonpath("podinfo", "{.status.conditions[*].type}");
    wait_for(Duration::from_secs(20), || {
        let c = condition();
        c.contains("ComparisonError")
            .then_some(())
            .ok_or(format!("never failed: {c}"))
    });
    // The namespace appears; a retry (1 s, then 2 s) applies the revision — long before the poll.
    mg.kubectl_ok(&["create", "namespace", "later"]);
    wait_for(Duration::from_secs(8), || {
        let color = mg.kubectl(&[
            "get",
            "configmap",
            "podinfo-ui",
            "-n",
            "later",
            "-o",
            "jsonpath={.data.PODINFO_UI_COLOR}",
        ]);
        (String::from_utf8_lossy(&color.stdout) == "#123456")
            .then_some(())
            .ok_or_else(|| format!("no retry applied it; {}", condition()))
    });
}

/// The GitOps module killed (SIGKILL) in the middle of a sync, while a later wave waits for an
/// earlier one, and started again: the sync resumes from Git and ends with every object of the
/// revision exactly once, the revision recorded once in history, nothing lost.
#[test]
fn a_restart_in_the_middle_of_a_sync_loses_nothing_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, bare) = workshop_repo(tmp.path());
    // Wave 0: a LoadBalancer Service (healthy once it has an address; nothing assigns one
    // here) and ten ConfigMaps; wave 1: forty ConfigMaps, applied only after wave 0 is healthy.
    let mut files = vec![(
        "apps/podinfo/gate.yaml".to_string(),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: gate\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n".to_string(),
    )];
    for i in 0..50 {
        let wave = if i < 10 { 0 } else { 1 };
        files.push((
            format!("apps/podinfo/cm-{i:02}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  annotations: {{metalgate.io/sync-wave: '{wave}'}}\ndata:\n  i: '{i}'\n"),
        ));
    }
    for (p, t) in &files {
        std::fs::write(work.join(p), t).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "gate and fifty ConfigMaps"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);

    // The store in one process, the GitOps module in another, so only the module is killed.
    let store = Metalgate::start(&tmp.path().join("store"), free_port(), &[]);
    let kubeconfig = store.kubeconfig();
    let gitops = || {
        Metalgate::start_with(
            &tmp.path().join("gitops"),
            free_port(),
            "gitops",
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--gitops-poll",
                "10m",
            ],
        )
    };
    let first = gitops();
    let out = store.kubectl_stdin(
        &["apply", "-f", "-"],
        &podinfo_app(&format!("file://{}", bare.display()), true),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cms = || -> Vec<String> {
        let out = store.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ]);
        out.lines()
            .filter(|n| n.starts_with("cm-"))
            .map(str::to_string)
            .collect()
    };
    // Wait until wave 0 is in and wave 1 waits for it.
    wait_for(Duration::from_secs(30), || {
        let names = cms();
        (names.len() >= 10)
            .then_some(())
            .ok_or(format!("wave 0 never applied: {names:?}"))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cms().len(), 10, "wave 1 must wait for the Service");
    first.kill();

    // Started again; the Service gets its address while it is down or just after.
    let second = gitops();
    store.kubectl_ok(&[
        "patch",
        "service",
        "gate",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}"#,
    ]);
    let state = || {
        store.app_jsonpath(
            "podinfo",
            "{.status.sync.status}/{.status.health.status}/{.status.sync.revision}",
        )
    };
    // A leader's lease outlives the killed process (15 s), so allow for it.
    wait_for(Duration::from_secs(60), || {
        let now = state();
        (now == format!("Synced/Healthy/{sha}"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "never synced after the restart: {now} with {} ConfigMaps",
                    cms().len()
                )
            })
    });
    let mut names = cms();
    assert_eq!(names.len(), 50, "{names:?}");
    names.dedup();
    assert_eq!(names.len(), 50, "each object exactly once");
    let services = store.kubectl_ok(&["get", "services", "-n", "demo", "-o", "name"]);
    assert_eq!(services.trim(), "service/gate");
    // Every object is the app's (tracked), and the revision is in history once.
    let tracked = store.kubectl_ok(&[
        "get",
        "configmaps",
        "-n",
        "demo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.metalgate\\.io/tracking-id}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        tracked
            .lines()
            .filter(|l| l.starts_with("podinfo:/ConfigMap:demo/cm-"))
            .count(),
        50,
        "{tracked}"
    );
    let history = store.app_jsonpath(
        "podinfo",
        "{range .status.history[*]}{.revision}{\"\\n\"}{end}",
    );
    assert_eq!(
        history.lines().filter(|r| *r == sha).count(),
        1,
        "{history}"
    );
    let inventory = store.app_jsonpath(
        "podinfo",
        "{range .status.resources[*]}{.kind}/{.name}{\"\\n\"}{end}",
    );
    assert_eq!(
        inventory
            .lines()
            .filter(|l| l.starts_with("ConfigMap/cm-"))
            .count(),
        50,
        "{inventory}"
    );
    drop(second);
}

/// A leader that is stopped (SIGTERM, as a rolling update does) hands its Lease back: the next
/// replica leads at once, not after the Lease's 15 s.
#[test]
fn a_stopped_leader_hands_its_lease_to_the_next_replica_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Metalgate::start(&tmp.path().join("store"), free_port(), &[]);
    let kubeconfig = store.kubeconfig();
    let replica = |name: &str| {
        Metalgate::start_with(
            &tmp.path().join(name),
            free_port(),
            "gitops",
            &["--kubeconfig", kubeconfig.to_str().unwrap()],
        )
    };
    let holder = || {
        store.kubectl_ok(&[
            "get",
            "lease",
            "metalgate-gitops",
            "-n",
            "metalgate-system",
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let mut first = replica("a");
    let first_id = format!("test-node-{}", first.child.id());
    wait_for(Duration::from_secs(20), || {
        let h = holder();
        (h == first_id)
            .then_some(())
            .ok_or(format!("the first replica never led: {h}"))
    });
    let second = replica("b");
    let second_id = format!("test-node-{}", second.child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(holder(), first_id, "a standby does not take a held Lease");

    let stopped = Instant::now();
    Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    let _ = first.child.wait();
    while holder() != second_id {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the standby did not take over within 5 s: {:?}",
            holder()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(second);
}
