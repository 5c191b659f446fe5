//! The seed's live demo from the laptop, and its disaster recovery.

use std::time::Duration;

use crate::*;

/// podinfo's colour as the laptop sees it through the VIP.
fn podinfo_colour() -> Option<String> {
    let got = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "2",
        "http://podinfo.192.168.56.200.nip.io/",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).ok()?;
    v["color"].as_str().map(str::to_string)
}

/// Wait (bounded) until podinfo serves `colour`; how long it took.
fn until_colour(colour: &str, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if podinfo_colour().as_deref() == Some(colour) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Wait (bounded) until the `podinfo` app is Healthy at the laptop's HEAD — its rollout
/// finished, old pods gone.
fn until_settled(limit: Duration) {
    let head = String::from_utf8_lossy(&laptop_git(&["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string();
    let settled = format!("Healthy {head}");
    let mut app = String::new();
    let deadline = std::time::Instant::now() + limit;
    while app != settled && std::time::Instant::now() < deadline {
        let out = kubectl(&[
            "get",
            "application",
            "podinfo",
            "-n",
            "metalgate-system",
            "-o",
            "jsonpath={.status.health.status} {.status.sync.revision}",
        ]);
        app = String::from_utf8_lossy(&out.stdout).to_string();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(app, settled, "the rollout settled within {limit:?}");
}

/// Wait (bounded) until `run` requests in a row serve `colour`: nothing serves another one.
fn until_only_colour(colour: &str, run: usize, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    let mut in_a_row = 0;
    while start.elapsed() < limit {
        if podinfo_colour().as_deref() == Some(colour) {
            in_a_row += 1;
            if in_a_row == run {
                return true;
            }
        } else {
            in_a_row = 0;
        }
    }
    false
}

/// The seed's live demo, from the laptop: change podinfo's colour in Git, commit, push — the
/// new colour is served (and shown by a browser) within 5 s, while a bounded load through the
/// rollout gets no failed request; `git revert` + push brings the old colour back; a
/// `kubectl scale` by hand is reverted and reported naming `spec.replicas`.
#[test]
fn the_workshop_live_demo_push_revert_and_drift() {
    let (_lab, _teardown) = lab_up(3);
    let before = podinfo_colour().expect("podinfo through the VIP");
    assert_eq!(before, "#34577c", "the colour in examples/workshop/");

    // Load through the rollout: bounded in count (and time), every request must succeed. At a
    // steady 500 requests/s for 12 s, as an audience would press, not flat out: saturating the
    // machine's two cores would measure the machine, not the rollout.
    let load = std::thread::spawn(|| {
        metalgate(&[
            "lab",
            "exec",
            "--",
            "timeout",
            "60",
            "oha",
            "--no-tui",
            "--output-format",
            "json",
            "-n",
            "6000",
            "-q",
            "500",
            "-c",
            "10",
            "http://podinfo.192.168.56.200.nip.io/",
        ])
    });
    std::thread::sleep(Duration::from_secs(1));
    let deployment = lab_dir().join("laptop/ops-demo/manifests/apps/podinfo/deployment.yaml");
    let text_before = std::fs::read_to_string(&deployment).unwrap();
    let changed = text_before.replace("value: \"#34577c\"", "value: \"#e0115f\"");
    assert_ne!(changed, text_before);
    std::fs::write(&deployment, changed).unwrap();
    laptop_git(&["commit", "-qam", "podinfo: pink for the demo"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    let took = until_colour("#e0115f", Duration::from_secs(20));
    eprintln!("push to new colour served: {took:?}");
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(5)),
        "the new colour was served after {took:?} (goal: 5 s)"
    );
    // The first new pod serves while the old ones still do; once the rollout has finished
    // (the app Healthy at the pushed commit), every request — and so the browser — gets the
    // new colour.
    until_settled(Duration::from_secs(30));
    assert!(
        until_only_colour("#e0115f", 10, Duration::from_secs(3)),
        "after the rollout, some request still served another colour"
    );
    let dom = browser_dom("http://podinfo.192.168.56.200.nip.io/");
    assert!(
        dom.contains("background:#e0115f"),
        "the browser shows the new colour:\n{dom}"
    );
    let load = load.join().unwrap();
    assert!(load.status.success(), "oha: {}", text(&load));
    let report: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert_eq!(
        report["statusCodeDistribution"],
        serde_json::json!({"200": 6000}),
        "every request through the rollout answered: {report}"
    );
    assert_eq!(
        report["errorDistribution"],
        serde_json::json!({}),
        "{report}"
    );

    // The commit is the audit trail, `git revert` the rollback.
    laptop_git(&["revert", "--no-edit", "HEAD"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    let took = until_colour("#34577c", Duration::from_secs(20));
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(5)),
        "the old colour came back after {took:?}"
    );

    // Drift, once the rollback has settled (the app Healthy at the revert's commit), as the
    // seed shows it: scaled by hand from the laptop, reverted within a second and reported.
    // The revert is timed as a user watching the Deployment sees it (`kubectl get -w` from the
    // laptop): from the watch showing the hand edit to it showing Git's value again — what
    // kubectl's own start-up costs before its request lands is not the revert.
    until_settled(Duration::from_secs(30));
    let watch = ReplicasWatch::start();
    let scaled_at = jiff::Timestamp::now();
    let scale = kubectl(&[
        "scale",
        "deployment",
        "podinfo",
        "-n",
        "podinfo",
        "--replicas=5",
    ]);
    assert!(scale.status.success(), "{}", text(&scale));
    let revert = watch.revert_of("5", "2", Duration::from_secs(10));
    eprintln!("kubectl scale seen by a watch, reverted {revert:?} later");
    assert!(
        revert.is_some_and(|t| t < Duration::from_secs(1)),
        "the hand edit was reverted {revert:?} after the watch showed it (goal: 1 s)"
    );
    let out = kubectl(&[
        "get",
        "deployment",
        "podinfo",
        "-n",
        "podinfo",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2",
        "spec.replicas stays at Git's value"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = kubectl(&[
            "get",
            "events",
            "-n",
            "metalgate-system",
            "--field-selector",
            "reason=DriftReverted,involvedObject.name=podinfo",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        let msgs = String::from_utf8_lossy(&events.stdout).to_string();
        if msgs.contains("spec.replicas") {
            // How long until the revert was reported: from just before `kubectl scale`
            // started (its start-up included) to the Event written once the revert was
            // applied — one clock, the machine's, for both.
            let at = kubectl(&[
                "get",
                "events",
                "-n",
                "metalgate-system",
                "--field-selector",
                "reason=DriftReverted,involvedObject.name=podinfo",
                "-o",
                "jsonpath={.items[0].eventTime}",
            ]);
            let at: jiff::Timestamp = String::from_utf8_lossy(&at.stdout)
                .trim()
                .parse()
                .expect("the Event's eventTime");
            let took = at.duration_since(scaled_at);
            eprintln!("kubectl scale reported (Event written) {took:?} after it started");
            assert!(
                took < jiff::SignedDuration::from_secs(3),
                "the revert was reported {took:?} after kubectl scale started (goal: 3 s, \
                 kubectl's start-up included)"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no DriftReverted Event naming spec.replicas: {msgs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl get deployment podinfo -w` from the laptop, bounded to 15 s: each `.spec.replicas`
/// it prints, with when the test read it.
struct ReplicasWatch {
    lines: std::sync::mpsc::Receiver<(std::time::Instant, String)>,
}

impl ReplicasWatch {
    /// Start the watch and wait (bounded) for its first line, the current value: the watch is
    /// open before anything is changed.
    fn start() -> ReplicasWatch {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(["lab", "exec", "--", "timeout", "15", "kubectl", "get"])
            .args(["deployment", "podinfo", "-n", "podinfo", "-w"])
            .arg("-o=jsonpath={.spec.replicas}{\"\\n\"}")
            .env("METALGATE_LAB_DIR", lab_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send((std::time::Instant::now(), line.trim().to_string()));
            }
            // `timeout 15` ends the watch; reap it.
            let _ = child.wait();
        });
        let first = lines.recv_timeout(Duration::from_secs(10));
        assert!(first.is_ok(), "the watch printed the current value");
        ReplicasWatch { lines }
    }

    /// From the first line showing `edited` to the next showing `back`: how long the watch saw
    /// the edit live (None: not seen within `limit`).
    fn revert_of(&self, edited: &str, back: &str, limit: Duration) -> Option<Duration> {
        let deadline = std::time::Instant::now() + limit;
        let mut seen = None;
        while let Ok((at, v)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            match seen {
                None if v == edited => seen = Some(at),
                Some(from) if v == back => return Some(at - from),
                _ => {}
            }
        }
        None
    }
}

/// The seed's disaster recovery: the cluster is lost, Git is not. After a push, `lab down
/// --keep-git` (the VM destroyed; the repository lives elsewhere, as on GitHub), then `lab up`
/// (a new VM, bootstrap, `kubectl apply -f apps/root.yaml`): the smoke check passes and podinfo
/// serves the pushed colour — Git's state, not the example's — with every app at the pushed
/// commit.
#[test]
fn after_a_disaster_everything_comes_back_from_git() {
    let (_lab, _teardown) = lab_up(1);
    let deployment = lab_dir().join("laptop/ops-demo/manifests/apps/podinfo/deployment.yaml");
    let before = std::fs::read_to_string(&deployment).unwrap();
    let after = before.replace("value: \"#34577c\"", "value: \"#ff8c00\"");
    assert_ne!(after, before);
    std::fs::write(&deployment, after).unwrap();
    laptop_git(&["commit", "-qam", "podinfo: orange, before the disaster"]);
    laptop_git(&["push", "-q", "origin", "main"]);
    assert!(
        until_colour("#ff8c00", Duration::from_secs(20)).is_some(),
        "the push was not served"
    );
    let pushed = String::from_utf8_lossy(&laptop_git(&["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string();

    let down = metalgate(&["lab", "down", "--keep-git"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(lab_namespaces().is_empty(), "{:?}", lab_namespaces());
    assert!(
        !lab_dir().join("ops-demo").exists(),
        "the node's data (the cluster) is gone"
    );
    assert_eq!(
        podinfo_colour(),
        None,
        "nothing answers while the lab is down"
    );

    let up = metalgate(&["lab", "up"]);
    assert!(
        up.status.success(),
        "lab up after the disaster:\n{}",
        text(&up)
    );
    let smoke = text(&up);
    assert!(
        smoke.contains(&format!("4 Synced and Healthy at {}", &pushed[..7])),
        "every app at the pushed commit {pushed}:\n{smoke}"
    );
    assert_eq!(
        podinfo_colour().as_deref(),
        Some("#ff8c00"),
        "podinfo as Git says, not as the example was"
    );
}
