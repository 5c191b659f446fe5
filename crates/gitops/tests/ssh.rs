//! An ssh repository, end to end: an OpenSSH server on loopback (started by the test, with its
//! own host key and one authorized key) serves the bare repository; the Application reads it
//! with the key of its repository Secret, and the host key is checked against the known-hosts
//! ConfigMap — an unknown host is refused unless the Secret says `insecure`, a wrong key is
//! refused, and neither applies anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::apps::{app, cm, color, pass, put_app};
use common::{Repo, store};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use metalgate_gitops::reconciler::Context;
use serde_json::json;

/// sshd on 127.0.0.1, stopped (by its PID) when dropped.
struct Sshd {
    child: Child,
    port: u16,
    host_pub: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (openssh-client; scripts/deps.sh installs it)");
    assert!(st.success());
}

fn sshd(dir: &Path, authorized: &Path) -> Sshd {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "/usr/sbin/sshd is missing: scripts/deps.sh installs openssh-server"
    );
    // sshd's privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let host = dir.join("host_key");
    keygen(&host);
    let port = metalgate_testkit::free_port();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\n",
            host.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .expect("sshd starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host_pub = std::fs::read_to_string(host.with_extension("pub")).unwrap();
    Sshd {
        child,
        port,
        host_pub,
    }
}

async fn secret(client: &kube::Client, url: &str, key: &Path, insecure: bool) {
    let api: Api<Secret> = Api::namespaced(client.clone(), "metalgate-system");
    let mut data = json!({"url": url, "sshPrivateKey": std::fs::read_to_string(key).unwrap()});
    if insecure {
        data["insecure"] = json!("true");
    }
    api.patch(
        "ops-demo-repo",
        &PatchParams::apply("test").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "ops-demo-repo", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
            "stringData": data})),
    )
    .await
    .unwrap();
}

fn error_of(s: &metalgate_k8s::crd::ApplicationStatus) -> String {
    s.conditions
        .iter()
        .find(|c| c.type_ == "ComparisonError")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_repository_is_read_with_its_key_and_checked_host() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    repo.commit(&[("apps/podinfo/cm.yaml", &cm("#34577c"))], "first");
    let (client_key, other_key): (PathBuf, PathBuf) =
        (tmp.path().join("deploy_key"), tmp.path().join("other_key"));
    keygen(&client_key);
    keygen(&other_key);
    let authorized = tmp.path().join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
    let server = sshd(tmp.path(), &authorized);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim(),
        server.port,
        repo.bare.display()
    );

    let store = store().await;
    let client = store.client.clone();
    let ctx = Context::new(client.clone(), &tmp.path().join("data"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "demo");
    let hosts: Api<ConfigMap> = Api::namespaced(client.clone(), "metalgate-system");
    let known = format!("[127.0.0.1]:{} {}", server.port, server.host_pub.trim());
    hosts
        .patch(
            "metalgate-ssh-known-hosts",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "metalgate-ssh-known-hosts"},
                "data": {"ssh_known_hosts": known}})),
        )
        .await
        .unwrap();
    secret(&client, &url, &client_key, false).await;
    put_app(&client, &app("podinfo", &url, "apps/podinfo", true)).await;

    // The key and the known host: synced.
    let s = pass(&ctx, "podinfo").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#34577c");
    repo.commit(&[("apps/podinfo/cm.yaml", &cm("#ff0000"))], "red");
    pass(&ctx, "podinfo").await;
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");

    // A key the server does not know: refused, nothing applied.
    repo.commit(&[("apps/podinfo/cm.yaml", &cm("#00ff00"))], "green");
    secret(&client, &url, &other_key, false).await;
    let s = pass(&ctx, "podinfo").await;
    let e = error_of(&s);
    assert!(
        e.contains(&url) && e.to_lowercase().contains("permission denied"),
        "{e}"
    );
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");

    // The right key, but the host is not among the known ones: refused.
    secret(&client, &url, &client_key, false).await;
    hosts
        .delete("metalgate-ssh-known-hosts", &DeleteParams::default())
        .await
        .unwrap();
    let s = pass(&ctx, "podinfo").await;
    let e = error_of(&s);
    assert!(e.contains("Host key verification failed"), "{e}");
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#ff0000");

    // ... unless the Secret says insecure (ArgoCD's field).
    secret(&client, &url, &client_key, true).await;
    let s = pass(&ctx, "podinfo").await;
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
    assert_eq!(color(&cms.get("podinfo-ui").await.unwrap()), "#00ff00");
    drop(server);
}
