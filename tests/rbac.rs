//! RBAC in the store, with the RBAC that `manifests/` ships: each component, run with only its
//! own ServiceAccount's token, does its job; take away one rule and it is refused with
//! kube-apiserver's 403 naming the missing permission. Tokens of deleted accounts, forged ones,
//! and reviews (what `kubectl auth can-i` asks) are checked too.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Metalgate, Netns, eventually, free_port, kubeconfig_with_token, kubectl_with, write};

fn manifests() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .to_str()
        .unwrap()
        .to_string()
}

/// A token for a ServiceAccount (TokenRequest, as `kubectl create token` asks for one).
fn token(mg: &Metalgate, dir: &Path, ns: &str, sa: &str) -> String {
    let req = write(
        dir,
        "tokenrequest.json",
        r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}"#,
    );
    let out = mg.kubectl_ok(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
        "-f",
        req.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["status"]["token"].as_str().unwrap().to_string()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_service_account_gets_what_its_role_grants_and_a_403_naming_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_ok(&["apply", "--server-side", "-k", &manifests()]);
    let t = token(&mg, dir.path(), "metalgate-system", "metalgate-controller");
    let kc = mg.kubeconfig_with_token(dir.path(), "controller.kubeconfig", &t);

    let svcs = kubectl_with(&kc, &["get", "svc", "-A"], None);
    assert!(svcs.status.success(), "{}", stderr_of(&svcs));
    let secrets = kubectl_with(&kc, &["get", "secrets", "-A"], None);
    assert!(!secrets.status.success());
    assert!(
        stderr_of(&secrets).contains("secrets is forbidden: User \"system:serviceaccount:metalgate-system:metalgate-controller\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"),
        "{}",
        stderr_of(&secrets)
    );
    // Discovery is everyone's.
    let disco = kubectl_with(
        &kc,
        &["api-resources", "--api-group=apps", "-o", "name"],
        None,
    );
    assert!(disco.status.success(), "{}", stderr_of(&disco));

    // What kubectl auth can-i asks: a SelfSubjectAccessReview.
    let review = |verb: &str, resource: &str, sub: &str| -> bool {
        let body = write(
            dir.path(),
            "ssar.json",
            &format!(
                r#"{{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {{"resourceAttributes": {{"verb": "{verb}", "resource": "{resource}", "subresource": "{sub}", "namespace": "apps"}}}}}}"#
            ),
        );
        let out = kubectl_with(
            &kc,
            &[
                "create",
                "--raw",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "-f",
                body.to_str().unwrap(),
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"]["allowed"].as_bool().unwrap()
    };
    assert!(review("patch", "services", "status"));
    assert!(!review("delete", "services", ""));
    assert!(!review("get", "secrets", ""));
}

#[test]
fn tokens_of_deleted_accounts_and_forged_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_ok(&["apply", "--server-side", "-k", &manifests()]);
    let t = token(&mg, dir.path(), "metalgate-system", "metalgate-proxy");
    let kc = mg.kubeconfig_with_token(dir.path(), "proxy.kubeconfig", &t);
    assert!(
        kubectl_with(&kc, &["get", "ingresses", "-A"], None)
            .status
            .success()
    );

    // One character of the signature changed: another token, refused.
    let mut forged = t.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let kc_forged = mg.kubeconfig_with_token(
        dir.path(),
        "forged.kubeconfig",
        &String::from_utf8(forged).unwrap(),
    );
    let out = kubectl_with(&kc_forged, &["get", "ingresses", "-A"], None);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Unauthorized"),
        "{}",
        stderr_of(&out)
    );

    mg.kubectl_ok(&[
        "delete",
        "serviceaccount",
        "metalgate-proxy",
        "-n",
        "metalgate-system",
    ]);
    let out = kubectl_with(&kc, &["get", "ingresses", "-A"], None);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Unauthorized"),
        "{}",
        stderr_of(&out)
    );
    // A new account of the same name is another account: the old token stays refused.
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: metalgate-proxy, namespace: metalgate-system}\n",
    );
    assert!(
        !kubectl_with(&kc, &["get", "ingresses", "-A"], None)
            .status
            .success()
    );
}

#[test]
fn the_controller_assigns_ips_with_only_its_own_rbac_and_names_the_rule_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_ok(&["apply", "--server-side", "-k", &manifests()]);
    let t = token(&mg, dir.path(), "metalgate-system", "metalgate-controller");
    let kc = mg.kubeconfig_with_token(dir.path(), "controller.kubeconfig", &t);
    let log = dir.path().join("controller.log");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["controller", "--no-gitops", "--admin-listen", "none"])
        .args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--node-name",
            "ops-demo",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ip_of = |svc: &str, ns: &str| {
        mg.kubectl_ok(&[
            "get",
            "svc",
            svc,
            "-n",
            ns,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
    };
    // The proxy's Service asks for the workshop's address; the controller, as itself, gives it.
    let assigned = eventually(Duration::from_secs(15), || {
        ip_of("metalgate-proxy", "metalgate-system") == "192.168.56.200"
    });
    // And, as itself, it created the speakers' gossip key (a random one, base64 of 32 bytes).
    let gossip_key = mg.kubectl_ok(&[
        "get",
        "secret",
        "metalgate-memberlist",
        "-n",
        "metalgate-system",
        "-o",
        "jsonpath={.data.secretkey}",
    ]);

    // Without services/status, the next assignment is refused and the log says which rule.
    let role = mg.kubectl_ok(&["get", "clusterrole", "metalgate-controller", "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_str(&role).unwrap();
    role["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["resources"] != serde_json::json!(["services/status"]));
    role["metadata"] = serde_json::json!({"name": "metalgate-controller"});
    mg.kubectl_stdin(&["replace", "-f", "-"], &role.to_string());
    mg.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: metalgate.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: more, namespace: metalgate-system}\nspec: {addresses: [192.168.56.210/32]}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: apps}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
    );
    let refused = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains(
            "cannot patch resource \\\"services/status\\\" in API group \\\"\\\" in the namespace \\\"apps\\\"",
        )
    });
    let web_ip = ip_of("web", "apps");
    let _ = controller.kill();
    let _ = controller.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(assigned, "no IP with the controller's own RBAC:\n{text}");
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(gossip_key.trim())
        .unwrap_or_default();
    assert_eq!(key.len(), 44, "no gossip key Secret created:\n{text}");
    assert!(refused, "no 403 naming services/status in the log:\n{text}");
    assert_eq!(web_ip, "", "nothing is written without the rule");
}

#[test]
fn the_proxy_becomes_ready_with_only_its_own_rbac_and_not_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    mg.kubectl_ok(&["apply", "--server-side", "-k", &manifests()]);
    let t = token(&mg, dir.path(), "metalgate-system", "metalgate-proxy");
    let kc = mg.kubeconfig_with_token(dir.path(), "proxy.kubeconfig", &t);
    let ready_with = |log: &Path| -> (bool, String) {
        let admin = free_port();
        let mut proxy = Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(["proxy", "--kubeconfig", kc.to_str().unwrap()])
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--https-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let ready = eventually(Duration::from_secs(10), || {
            Command::new("curl")
                .args([
                    "-sf",
                    "--max-time",
                    "1",
                    &format!("http://127.0.0.1:{admin}/readyz"),
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let _ = proxy.kill();
        let _ = proxy.wait();
        (ready, std::fs::read_to_string(log).unwrap_or_default())
    };
    let (ready, text) = ready_with(&dir.path().join("proxy1.log"));
    assert!(ready, "the proxy is not ready with its own RBAC:\n{text}");

    let role = mg.kubectl_ok(&["get", "clusterrole", "metalgate-proxy", "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_str(&role).unwrap();
    role["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["resources"] != serde_json::json!(["secrets"]));
    role["metadata"] = serde_json::json!({"name": "metalgate-proxy"});
    mg.kubectl_stdin(&["replace", "-f", "-"], &role.to_string());
    let (ready, text) = ready_with(&dir.path().join("proxy2.log"));
    assert!(!ready, "ready without reading Secrets?\n{text}");
    assert!(
        text.contains("cannot list resource \\\"secrets\\\""),
        "the log names the missing rule:\n{text}"
    );
}

#[test]
fn the_speaker_is_ready_with_only_its_own_rbac_and_not_without_endpointslices() {
    // The speaker opens raw sockets on the node's NICs: it runs, with the store, in a network
    // namespace of the test's own (loopback only).
    let ns = Netns::new("rbac-speaker");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut store = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_metalgate"),
            "run",
        ])
        .args(["--components", "none", "--data-dir", data.to_str().unwrap()])
        .args(["--api-listen", "127.0.0.1:6443", "--node-name", "ops-demo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kc = data.join("kubeconfig");
    let kubectl = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", kc.to_str().unwrap()];
        full.extend_from_slice(args);
        ns.exec("kubectl", &full)
    };
    let up = eventually(Duration::from_secs(15), || {
        kubectl(&["get", "ns"]).status.success()
    });
    let applied = kubectl(&["apply", "--server-side", "-k", &manifests()]);
    let req = write(
        dir.path(),
        "tokenrequest.json",
        r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}"#,
    );
    let tr = kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/metalgate-system/serviceaccounts/metalgate-speaker/token",
        "-f",
        req.to_str().unwrap(),
    ]);
    let token = serde_json::from_slice::<serde_json::Value>(&tr.stdout)
        .ok()
        .and_then(|v| v["status"]["token"].as_str().map(str::to_string))
        .unwrap_or_default();
    let sa_kc = kubeconfig_with_token(&kc, dir.path(), "speaker.kubeconfig", &token);
    let readiness = |log: &Path| -> (bool, String, String, bool) {
        let mut speaker = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                env!("CARGO_BIN_EXE_metalgate"),
                "speaker",
            ])
            .args([
                "--kubeconfig",
                sa_kc.to_str().unwrap(),
                "--node-name",
                "ops-demo",
                "--node-ip",
                "127.0.0.1",
            ])
            .args(["--admin-listen", "127.0.0.1:7472"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut body = String::new();
        let ready = eventually(Duration::from_secs(8), || {
            let out = ns.exec(
                "curl",
                &[
                    "-s",
                    "--max-time",
                    "1",
                    "-w",
                    " %{http_code}",
                    "http://127.0.0.1:7472/readyz",
                ],
            );
            body = String::from_utf8_lossy(&out.stdout).to_string();
            body.ends_with(" 200")
        });
        // Once ready, it reads the gossip keys (its one Secret) with its own RBAC.
        let keyed = ready
            && eventually(Duration::from_secs(12), || {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .contains("gossip keys loaded")
            });
        let _ = speaker.kill();
        let _ = speaker.wait();
        (
            ready,
            body,
            std::fs::read_to_string(log).unwrap_or_default(),
            keyed,
        )
    };
    // The key the controller would create (it is not running here).
    let created = kubectl(&[
        "create",
        "secret",
        "generic",
        "metalgate-memberlist",
        "-n",
        "metalgate-system",
        "--from-literal=secretkey=0123456789abcdef0123456789abcdef",
    ]);
    let first = readiness(&dir.path().join("speaker1.log"));

    let role = kubectl(&["get", "clusterrole", "metalgate-speaker", "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_slice(&role.stdout).unwrap_or_default();
    if let Some(rules) = role["rules"].as_array_mut() {
        rules.retain(|r| r["resources"] != serde_json::json!(["endpointslices"]));
    }
    role["metadata"] = serde_json::json!({"name": "metalgate-speaker"});
    let f = write(dir.path(), "role.json", &role.to_string());
    let replaced = kubectl(&["replace", "-f", f.to_str().unwrap()]);
    let second = readiness(&dir.path().join("speaker2.log"));
    let _ = store.kill();
    let _ = store.wait();

    assert!(up, "the store did not come up in the namespace");
    assert!(applied.status.success(), "{}", stderr_of(&applied));
    assert!(!token.is_empty(), "no token: {}", stderr_of(&tr));
    assert!(
        first.0,
        "the speaker is not ready with its own RBAC: {}\n{}",
        first.1, first.2
    );
    assert!(created.status.success(), "{}", stderr_of(&created));
    assert!(
        first.3,
        "the speaker did not load its gossip keys with its own RBAC:\n{}",
        first.2
    );
    assert!(replaced.status.success(), "{}", stderr_of(&replaced));
    assert!(!second.0, "ready without listing EndpointSlices?");
    assert!(second.1.contains("speaker: not ready"), "{}", second.1);
    assert!(
        second
            .2
            .contains("cannot list resource \\\"endpointslices\\\""),
        "the log names the missing rule:\n{}",
        second.2
    );
}
