//! `metalgate run`: persistence across SIGKILL, manifests with bad documents, joining.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Metalgate, free_port, write};

#[test]
fn sigkill_and_restart_keep_every_object_with_its_uid_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mg = Metalgate::start(&data, port, &[]);
    let manifests = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {k: v}
";
    mg.kubectl_stdin(&["apply", "--server-side", "-f", "-"], manifests);
    // Writes right before the kill are acknowledged, so they must survive it.
    for i in 0..20 {
        mg.kubectl_ok(&[
            "label",
            "configmap",
            "c",
            &format!("round={i}"),
            "--overwrite",
        ]);
    }
    let query = [
        "get",
        "svc,configmap",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.metadata.resourceVersion} {.spec.clusterIP}{\"\\n\"}{end}",
    ];
    let before = mg.kubectl_ok(&query);
    mg.kill();

    let mg = Metalgate::start(&data, port, &[]);
    let after = mg.kubectl_ok(&query);
    assert_eq!(
        before, after,
        "objects, uids and resourceVersions survive SIGKILL"
    );
    let round = mg.kubectl_ok(&[
        "get",
        "configmap",
        "c",
        "-o",
        "jsonpath={.metadata.labels.round}",
    ]);
    assert_eq!(round, "19");
    // And the version keeps growing.
    let max_before: u64 = before
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .max()
        .unwrap();
    let out = mg.kubectl_stdin(
        &[
            "apply",
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\n",
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.parse::<u64>().unwrap() > max_before,
        "{out} > {max_before}"
    );
}

#[test]
fn bad_manifest_documents_are_named_and_the_good_ones_apply() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("manifests");
    write(
        &m,
        "good.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\ndata: {a: b}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: good-svc}\nspec: {ports: [{port: 80}]}\n",
    );
    write(
        &m,
        "bad/wrong-version.yaml",
        "apiVersion: v2\nkind: Service\nmetadata: {name: wrong-version}\nspec: {ports: [{port: 80}]}\n",
    );
    write(
        &m,
        "bad/mixed.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: unknown-field}\nspec:\n  ports: [{port: 80}]\n  portz: 1\n---\napiVersion: v1\nkind: Service\nmetadata: {name: bad-ip}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 10.0.0.300\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: also-good}\n",
    );
    write(
        &m,
        "bad/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    );
    let mg = Metalgate::start(
        &dir.path().join("data"),
        free_port(),
        &["--manifests", m.to_str().unwrap()],
    );
    assert!(
        mg.ready_line.contains("4 bad manifest document(s)"),
        "{}",
        mg.ready_line
    );
    let errors = mg.stderr_lines_with("manifest error:", 4);
    let find = |needle: &str| {
        errors
            .iter()
            .find(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no error mentions {needle:?}: {errors:#?}"))
            .clone()
    };
    let e = find("wrong-version");
    assert!(
        e.contains("wrong-version.yaml: document 1") && e.contains("\"v2\""),
        "{e}"
    );
    let e = find("unknown-field");
    assert!(
        e.contains("mixed.yaml: document 1") && e.contains("spec.portz"),
        "{e}"
    );
    let e = find("bad-ip");
    assert!(
        e.contains("mixed.yaml: document 2")
            && e.contains("spec.loadBalancerIP")
            && e.contains("10.0.0.300"),
        "{e}"
    );
    let e = find("broken.yaml");
    assert!(
        e.contains("document 1") && e.contains("invalid YAML at line"),
        "{e}"
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");

    let cms = mg.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(
        cms.contains("configmap/good") && cms.contains("configmap/also-good"),
        "{cms}"
    );
    let svcs = mg.kubectl_ok(&["get", "svc", "-o", "name"]);
    assert_eq!(svcs.trim(), "service/good-svc");
}

#[test]
fn a_second_node_joins_with_api_server_or_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mg = Metalgate::start(&data, free_port(), &[]);
    let bin = env!("CARGO_BIN_EXE_metalgate");
    let mut joined = Vec::new();
    let url = format!("https://127.0.0.1:{}", mg.port);
    let token = data.join("tls/token");
    let ca = data.join("tls/ca.crt");
    let mut by_url = Command::new(bin)
        .args([
            "run",
            "--components",
            "none",
            "--node-name",
            "node2",
            "--api-server",
            &url,
            "--token-file",
        ])
        .arg(&token)
        .arg("--ca-file")
        .arg(&ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut by_kubeconfig = Command::new(bin)
        .args([
            "run",
            "--components",
            "none",
            "--node-name",
            "node3",
            "--kubeconfig",
        ])
        .arg(mg.kubeconfig())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        let nodes = mg.kubectl_ok(&["get", "nodes", "-o", "name"]);
        joined = nodes.lines().map(str::to_string).collect();
        if joined.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = by_url.kill();
    let _ = by_kubeconfig.kill();
    let _ = by_url.wait();
    let _ = by_kubeconfig.wait();
    joined.sort();
    assert_eq!(joined, ["node/node2", "node/node3", "node/test-node"]);
}

#[test]
fn unknown_components_are_refused_with_the_known_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args([
            "run",
            "--data-dir",
            "/nonexistent-never-created",
            "--components",
            "speaker,frobnicator",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frobnicator") && err.contains("controller, gitops, speaker, proxy"),
        "{err}"
    );
}

/// SIGTERM ends `metalgate run` — proxy included — even when whoever read its output is gone
/// (a `| grep` killed with it): a log line to a closed pipe must not stand in the way.
#[test]
fn sigterm_stops_run_even_when_its_output_pipes_are_closed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--api-listen",
            "127.0.0.1:0",
            "--node-name",
            "test-node",
            "--components",
            "proxy",
            "--http-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("metalgate ready"), "{line}");
    // Close both pipes: every later write fails with EPIPE.
    drop(child.stderr.take());
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("metalgate run still running 20 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Joining an API server verifies its certificate: without `--ca-file` it takes an explicit
/// `--insecure-skip-tls-verify` (with a warning), and a CA that did not sign the server's
/// certificate is refused.
#[test]
fn joining_an_api_server_needs_its_ca_or_an_explicit_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mg = Metalgate::start(&data, free_port(), &[]);
    let bin = env!("CARGO_BIN_EXE_metalgate");
    let url = format!("https://127.0.0.1:{}", mg.port);
    let token = data.join("tls/token");
    let join = |extra: &[&str], node: &str| {
        Command::new(bin)
            .args([
                "run",
                "--components",
                "none",
                "--node-name",
                node,
                "--api-server",
                &url,
                "--token-file",
            ])
            .arg(&token)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let nodes = || mg.kubectl_ok(&["get", "nodes", "-o", "name"]);

    // No CA: refused at once, naming both ways out; no Node registered.
    let mut plain = join(&[], "plain");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while plain.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = plain.kill();
            let _ = plain.wait();
            panic!("metalgate joined --api-server without a CA or the insecure flag");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = plain.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ca-file") && err.contains("--insecure-skip-tls-verify"),
        "{err}"
    );
    assert!(!nodes().contains("plain"));

    // A CA that did not sign the server's certificate: the node never gets in.
    let other_ca = dir.path().join("other-ca.crt");
    let c = rcgen::generate_simple_self_signed(vec!["elsewhere".into()]).unwrap();
    std::fs::write(&other_ca, c.cert.pem()).unwrap();
    let mut wrong = join(&["--ca-file", other_ca.to_str().unwrap()], "wrong-ca");

    // The explicit flag joins, and says what it gives up.
    let mut insecure = join(&["--insecure-skip-tls-verify"], "insecure");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = nodes();
        if seen.contains("insecure") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.contains("node/insecure"), "{seen}");
    assert!(
        !seen.contains("wrong-ca"),
        "a wrong CA must not be accepted: {seen}"
    );
    for child in [&mut wrong, &mut insecure] {
        let _ = child.kill();
    }
    let out = insecure.wait_with_output().unwrap();
    let _ = wrong.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOT verified"), "{err}");
}

/// GET `path` on loopback `port`: the status code, or `None` while nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn components_alone_serve_their_admin_endpoint_for_probes() {
    // What the manifests' liveness and readiness probes ask of `metalgate controller` and
    // `metalgate gitops` run as their own Deployments.
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    for (cmd, extra) in [
        ("controller", vec!["--no-gitops"]),
        (
            "gitops",
            vec!["run", "--data-dir", dir.path().to_str().unwrap()],
        ),
    ] {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .arg(cmd)
            .args(&extra)
            .args(["--kubeconfig", mg.kubeconfig().to_str().unwrap()])
            .args(["--admin-listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut seen = (None, None);
        while std::time::Instant::now() < deadline {
            seen = (http_status(port, "/healthz"), http_status(port, "/readyz"));
            if seen == (Some(200), Some(200)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let metrics = http_status(port, "/metrics");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            seen,
            (Some(200), Some(200)),
            "metalgate {cmd}: /healthz, /readyz"
        );
        assert_eq!(metrics, Some(200), "metalgate {cmd}: /metrics");
    }
}
