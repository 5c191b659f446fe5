//! The deploy path, checked offline: `manifests/` builds with kustomize and passes strict
//! schema validation for the Kubernetes versions k3s ships, applies server-side to the store
//! (our own CRs validated by their CRDs), the workshop example carries metalgate as built, an
//! overlay can drop a component, and the scripts, Vagrantfile and Dockerfile pass their linters.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Metalgate, Netns, free_port, write};

/// Kubernetes minor versions k3s has current releases of (the VM pins one of them).
const KUBE_VERSIONS: [&str; 3] = ["1.31.0", "1.32.0", "1.33.0"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/deps.sh installs it): {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn kustomize(dir: &Path) -> String {
    let out = run("kubectl", &["kustomize", dir.to_str().unwrap()]);
    assert!(out.status.success(), "kubectl kustomize: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `kind/name` of every document in a YAML stream.
fn objects(yaml: &str) -> Vec<String> {
    yaml.split("\n---\n")
        .filter_map(|doc| {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(doc).ok()?;
            Some(format!(
                "{}/{}",
                v["kind"].as_str()?.to_ascii_lowercase(),
                v["metadata"]["name"].as_str()?
            ))
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
}

#[test]
fn manifests_build_offline_and_pass_strict_schema_validation() {
    let dir = tempfile::tempdir().unwrap();
    let built = write(
        dir.path(),
        "metalgate.yaml",
        &kustomize(&repo().join("manifests")),
    );
    let mut files = vec![built.to_str().unwrap().to_string()];
    let mut examples = Vec::new();
    yaml_files(&repo().join("examples/workshop"), &mut examples);
    files.extend(examples.iter().map(|p| p.to_str().unwrap().to_string()));
    for v in KUBE_VERSIONS {
        let mut args = vec!["--strict", "--quiet", "-k", v];
        args.extend(files.iter().map(String::as_str));
        let out = run("kubernetes-validate", &args);
        let said = text(&out);
        assert!(
            out.status.success() && !said.contains("ERROR") && !said.contains("FAIL"),
            "kubernetes-validate --strict -k {v}:\n{said}"
        );
    }
}

#[test]
fn a_bad_field_in_a_manifest_fails_strict_validation() {
    // The check above can fail: the same validator on a Deployment with a misspelt field.
    let dir = tempfile::tempdir().unwrap();
    let built = kustomize(&repo().join("manifests"))
        .replace("revisionHistoryLimit: 3", "revisionHistoryLimt: 3");
    let f = write(dir.path(), "bad.yaml", &built);
    let out = run(
        "kubernetes-validate",
        &["--strict", "--quiet", "-k", "1.33.0", f.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revisionHistoryLimt"), "{}", text(&out));
}

#[test]
fn the_workshop_example_carries_metalgate_as_built() {
    let committed = std::fs::read_to_string(
        repo().join("examples/workshop/manifests/networking/metalgate/metalgate.yaml"),
    )
    .unwrap();
    let body = committed
        .split_once('\n')
        .map(|(first, rest)| {
            assert!(first.starts_with("# Generated"), "{first}");
            rest
        })
        .unwrap();
    assert!(
        body == kustomize(&repo().join("manifests")),
        "examples/workshop/manifests/networking/metalgate/metalgate.yaml is stale: regenerate it with\n  (echo '{}'; kubectl kustomize manifests) > examples/workshop/manifests/networking/metalgate/metalgate.yaml",
        committed.lines().next().unwrap()
    );
}

#[test]
fn manifests_apply_server_side_to_the_store_and_every_object_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let manifests = repo().join("manifests");
    let built = kustomize(&manifests);
    let want = objects(&built);
    assert!(want.len() >= 30, "{want:?}");
    let applied = mg.kubectl_ok(&["apply", "--server-side", "-k", manifests.to_str().unwrap()]);
    assert_eq!(
        applied.lines().count(),
        want.len(),
        "one line per object:\n{applied}"
    );
    let got = mg.kubectl_ok(&["get", "-k", manifests.to_str().unwrap(), "-o", "name"]);
    for o in &want {
        let (kind, name) = o.split_once('/').unwrap();
        assert!(
            got.lines()
                .any(|l| l.starts_with(kind) && l.ends_with(&format!("/{name}"))),
            "{o} is missing after apply:\n{got}"
        );
    }
    // The VIP the proxy's Service asks for is in the workshop pool.
    let ip = mg.kubectl_ok(&[
        "get",
        "ipaddresspool",
        "workshop",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.spec.addresses[0]}",
    ]);
    assert_eq!(ip, "192.168.56.200/32");

    // The workshop's Applications and metalgate.io objects pass their CRDs' schemas, and the
    // built-in objects their kinds' rules (helm.cattle.io is k3s's, not served here).
    for ns in ["podinfo", "monitoring"] {
        let out = mg.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let mut examples = Vec::new();
    yaml_files(&repo().join("examples/workshop"), &mut examples);
    for f in examples {
        let yaml = std::fs::read_to_string(&f).unwrap();
        if yaml.contains("helm.cattle.io/") {
            continue;
        }
        let out = mg.kubectl(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            f.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}: {}", f.display(), text(&out));
    }
}

#[test]
fn an_overlay_can_drop_the_proxy_or_the_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let base = repo().join("manifests");
    let rel = pathdiff(&base, dir.path());
    for (kind, name) in [
        ("DaemonSet", "metalgate-proxy"),
        ("DaemonSet", "metalgate-speaker"),
    ] {
        let overlay = dir.path().join(name);
        write(
            &overlay,
            "kustomization.yaml",
            &format!(
                "resources: [../{rel}]\npatches:\n- patch: '{{\"$patch\": \"delete\", \"apiVersion\": \"apps/v1\", \"kind\": \"{kind}\", \"metadata\": {{\"name\": \"{name}\", \"namespace\": \"metalgate-system\"}}}}'\n"
            ),
        );
        let built = kustomize(&overlay);
        let left = objects(&built);
        assert!(
            !left.contains(&format!("daemonset/{name}")),
            "{name} still there"
        );
        assert!(left.len() >= 30, "the rest stays: {left:?}");
    }
}

/// `to` relative to `from` (both absolute), as kustomize wants resource paths.
fn pathdiff(to: &Path, from: &Path) -> String {
    let depth = from.components().count() - 1;
    let up = "../".repeat(depth);
    format!("{up}{}", to.strip_prefix("/").unwrap().to_str().unwrap())
}

#[test]
fn scripts_pass_shellcheck() {
    let mut scripts: Vec<String> = std::fs::read_dir(repo().join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    scripts.sort();
    assert!(scripts.iter().any(|s| s.ends_with("bootstrap.sh")));
    let mut args = vec!["--severity=warning"];
    args.extend(scripts.iter().map(String::as_str));
    let out = run("shellcheck", &args);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_vagrantfile_validates() {
    let out = run("vagrant", &["validate", "--ignore-provider"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Vagrantfile validated successfully"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = run("hadolint", &["Dockerfile"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Metric families (`# TYPE name …`) in a Prometheus text exposition.
fn families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_metalgate_exports() {
    // Every component of `metalgate run`, in a namespace with only loopback (the speaker sees
    // no NIC to answer on), scraped on its admin endpoint.
    let ns = Netns::new("dash");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_metalgate"),
            "run",
        ])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--api-listen", "127.0.0.1:6443", "--node-name", "dash"])
        .args(["--admin-listen", "127.0.0.1:7472"])
        .args([
            "--http-listen",
            "127.0.0.1:8080",
            "--https-listen",
            "127.0.0.1:8443",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wanted_prefixes = [
        "metalgate_speaker_",
        "metalgate_controller_",
        "metalgate_proxy_",
        "metalgate_gitops_",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut exported = Vec::new();
    while std::time::Instant::now() < deadline {
        let out = ns.exec(
            "curl",
            &["-s", "--max-time", "2", "http://127.0.0.1:7472/metrics"],
        );
        exported = families(&String::from_utf8_lossy(&out.stdout));
        if wanted_prefixes
            .iter()
            .all(|p| exported.iter().any(|f| f.starts_with(p)))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // End the metalgate this test started (`ip netns exec` became it), by its PID.
    let _ = child.kill();
    let _ = child.wait();
    for p in wanted_prefixes {
        assert!(
            exported.iter().any(|f| f.starts_with(p)),
            "no {p}* family on /metrics: {exported:?}"
        );
    }

    let dashboard =
        std::fs::read_to_string(repo().join("manifests/grafana/metalgate.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in json["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("metalgate_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 8, "{queried:?}");
    for name in &queried {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.iter().any(|f| f == family),
            "the dashboard queries {name}, which metalgate does not export; it does: {exported:?}"
        );
    }
}
