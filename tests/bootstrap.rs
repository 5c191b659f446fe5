//! `scripts/bootstrap.sh` on a pretend VM: the script itself runs, unchanged, with `ip`, `k3s`,
//! `systemctl` and `curl` replaced by stubs on PATH that log their arguments and play the
//! machine's part (its addresses, an installed k3s or none, the proxy's EXTERNAL-IP), and with
//! `/etc` an overlay in a mount namespace of its own, so what it writes under `/etc/rancher`
//! lands in the test's directory and the host's `/etc` is never touched. What a person at the
//! VM would see is checked: the message when the host-only NIC is missing, a fresh install,
//! a second run that changes nothing, an older k3s kept unless `K3S_UPGRADE=1`, a wrong
//! LoadBalancer IP, no image and no cargo. (The real VM run is `tests/vm.rs`, which needs
//! VirtualBox.)

use std::path::{Path, PathBuf};
use std::process::Command;

const K3S_PINNED: &str = "v1.33.5+k3s1";

/// The workshop VM's addresses, as `ip -o -4 addr show` prints them.
const VM_ADDRS: &str = "1: lo    inet 127.0.0.1/8 scope host lo\n\
    2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\n\
    3: enp0s8    inet 192.168.56.10/24 brd 192.168.56.255 scope global enp0s8\n";

/// `k3s`: answers `--version` from the pretend install, logs everything else; `kubectl get
/// svc metalgate-proxy` prints the EXTERNAL-IP the test chose.
const K3S: &str = r#"#!/bin/bash
echo "k3s $*" >> "$STUB_STATE/log"
case "$1" in
  --version) echo "k3s version $(cat "$STUB_STATE/version") (0123abcd)"; echo "go version go1.24.6" ;;
  kubectl)
    case "$*" in
      *"get svc metalgate-proxy"*) printf '%s' "$(cat "$STUB_STATE/external-ip")" ;;
    esac ;;
esac
"#;

/// `systemctl`: k3s's unit; starting it writes the kubeconfig k3s writes.
const SYSTEMCTL: &str = r#"#!/bin/bash
echo "systemctl $*" >> "$STUB_STATE/log"
case "$1" in
  is-active) [ -f "$STUB_STATE/active" ] ;;
  start|restart)
    touch "$STUB_STATE/active"
    mkdir -p /etc/rancher/k3s
    printf 'apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n' > /etc/rancher/k3s/k3s.yaml ;;
esac
"#;

/// `curl https://get.k3s.io`: prints an installer that puts the `k3s` stub on PATH at the
/// version asked for, as the real one installs k3s and starts it.
const CURL: &str = r#"#!/bin/bash
echo "curl $*" >> "$STUB_STATE/log"
cat <<EOF
echo "installer INSTALL_K3S_VERSION=\$INSTALL_K3S_VERSION" >> "$STUB_STATE/log"
cp "$STUB_STATE/k3s" "$STUB_BIN/k3s"
echo "\$INSTALL_K3S_VERSION" > "$STUB_STATE/version"
systemctl start k3s
EOF
"#;

const IP: &str = r#"#!/bin/bash
cat "$STUB_STATE/addrs"
"#;

/// A pretend VM: its stubs, its state and its `/etc` overlay, in one temporary directory.
struct Vm {
    dir: tempfile::TempDir,
}

struct Run {
    ok: bool,
    out: String,
}

impl Vm {
    fn new(addrs: &str, external_ip: &str) -> Vm {
        let vm = Vm {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in ["bin", "state", "upper", "work", "repo"] {
            std::fs::create_dir_all(vm.path(d)).unwrap();
        }
        for (name, text) in [("ip", IP), ("systemctl", SYSTEMCTL), ("curl", CURL)] {
            vm.exec(&vm.path("bin").join(name), text);
        }
        vm.exec(&vm.path("state").join("k3s"), K3S);
        std::fs::write(vm.path("state").join("addrs"), addrs).unwrap();
        std::fs::write(vm.path("state").join("external-ip"), external_ip).unwrap();
        std::fs::write(vm.path("state").join("log"), "").unwrap();
        std::fs::write(vm.path("repo").join("image.tar"), "an image").unwrap();
        vm
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn exec(&self, path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// k3s already installed at `version`, running.
    fn with_k3s(self, version: &str) -> Vm {
        std::fs::copy(self.path("state/k3s"), self.path("bin/k3s")).unwrap();
        std::fs::write(self.path("state/version"), version).unwrap();
        std::fs::write(self.path("state/active"), "").unwrap();
        let kc = self.path("upper/rancher/k3s");
        std::fs::create_dir_all(&kc).unwrap();
        std::fs::write(kc.join("k3s.yaml"), "server: https://127.0.0.1:6443\n").unwrap();
        self
    }

    /// The stubs' log since the last call.
    fn log(&self) -> String {
        let p = self.path("state/log");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, "").unwrap();
        text
    }

    /// What bootstrap wrote to k3s's config (in the overlay's upper layer).
    fn k3s_config(&self) -> Option<String> {
        std::fs::read_to_string(self.path("upper/rancher/k3s/config.yaml")).ok()
    }

    fn bootstrap(&self, env: &[(&str, &str)]) -> Run {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bootstrap.sh");
        let (upper, work) = (self.path("upper"), self.path("work"));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "bash", "-c"])
            .arg(format!(
                "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && exec bash {}",
                upper.display(),
                work.display(),
                script.display()
            ))
            .env_clear()
            // No cargo here: the VM has none unless someone installs it.
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.path("bin").display()),
            )
            .env("STUB_BIN", self.path("bin"))
            .env("STUB_STATE", self.path("state"))
            .env("REPO", self.path("repo"))
            .env("IMAGE_TAR", self.path("repo/image.tar"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("unshare (util-linux) runs");
        Run {
            ok: out.status.success(),
            out: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

#[test]
fn a_fresh_vm_gets_k3s_metalgate_and_a_kubeconfig_and_a_second_run_changes_nothing() {
    let vm = Vm::new(VM_ADDRS, "192.168.56.200");
    let run = vm.bootstrap(&[]);
    assert!(run.ok, "{}", run.out);
    assert!(
        run.out.contains("host-only NIC: enp0s8 (192.168.56.10)"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("metalgate-proxy: EXTERNAL-IP 192.168.56.200"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("http://podinfo.192.168.56.200.nip.io"),
        "{}",
        run.out
    );
    let log = vm.log();
    assert!(log.contains("curl -sfL https://get.k3s.io"), "{log}");
    assert!(
        log.contains(&format!("INSTALL_K3S_VERSION={K3S_PINNED}")),
        "{log}"
    );
    assert!(log.contains("images import"), "{log}");
    let apply = format!(
        "apply --server-side --force-conflicts -k {}/manifests",
        vm.path("repo").display()
    );
    assert!(log.contains(&apply), "{log}");
    for w in [
        "daemonset/metalgate-speaker",
        "deployment/metalgate-controller",
        "deployment/metalgate-gitops",
        "daemonset/metalgate-proxy",
    ] {
        assert!(log.contains(&format!("rollout status {w}")), "{w}: {log}");
    }
    let config = vm.k3s_config().expect("config.yaml written");
    for line in [
        "node-ip: 192.168.56.10",
        "flannel-iface: enp0s8",
        "  - servicelb",
        "  - traefik",
    ] {
        assert!(config.contains(line), "{line}: {config}");
    }
    let kubeconfig = std::fs::read_to_string(vm.path("repo/kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("https://192.168.56.10:6443"),
        "{kubeconfig}"
    );

    // Again: nothing installed or restarted, the same result.
    let again = vm.bootstrap(&[]);
    assert!(again.ok, "{}", again.out);
    assert!(
        again
            .out
            .contains(&format!("k3s {K3S_PINNED} already installed")),
        "{}",
        again.out
    );
    let log = vm.log();
    assert!(!log.contains("curl"), "installed again: {log}");
    assert!(
        !log.contains("systemctl restart"),
        "restarted though nothing changed: {log}"
    );
    assert_eq!(vm.k3s_config().unwrap(), config);
}

#[test]
fn no_host_only_nic_stops_before_anything_is_written_and_says_what_to_attach() {
    let vm = Vm::new(
        "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.0.2.15/24 scope global eth0\n",
        "192.168.56.200",
    );
    let run = vm.bootstrap(&[]);
    assert!(!run.ok);
    assert!(
        run.out.contains(r#"FAILED in step "checking the machine": no interface holds 192.168.56.10 (found: lo 127.0.0.1/8;eth0 10.0.2.15/24;)"#),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("host-only adapter (vboxnet0"),
        "{}",
        run.out
    );
    assert_eq!(vm.log(), "", "nothing may run");
    assert!(vm.k3s_config().is_none());
}

#[test]
fn an_older_k3s_is_kept_unless_an_upgrade_is_asked_for() {
    let vm = Vm::new(VM_ADDRS, "192.168.56.200").with_k3s("v1.31.4+k3s1");
    let run = vm.bootstrap(&[]);
    assert!(run.ok, "{}", run.out);
    assert!(
        run.out.contains(&format!("k3s v1.31.4+k3s1 is already installed (pinned: {K3S_PINNED}): keeping it; K3S_UPGRADE=1 replaces it")),
        "{}",
        run.out
    );
    let log = vm.log();
    assert!(!log.contains("curl"), "{log}");
    // The config was new, so k3s restarts to read it.
    assert!(log.contains("systemctl restart k3s"), "{log}");

    let up = vm.bootstrap(&[("K3S_UPGRADE", "1")]);
    assert!(up.ok, "{}", up.out);
    let log = vm.log();
    assert!(
        log.contains(&format!("INSTALL_K3S_VERSION={K3S_PINNED}")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(vm.path("state/version"))
            .unwrap()
            .trim(),
        K3S_PINNED
    );
}

#[test]
fn a_wrong_external_ip_or_a_missing_image_fails_in_its_step_with_what_to_do() {
    let vm = Vm::new(VM_ADDRS, "192.168.56.201");
    let run = vm.bootstrap(&[]);
    assert!(!run.ok);
    assert!(
        run.out.contains(r#"FAILED in step "the LoadBalancer IP": the proxy's Service has EXTERNAL-IP '192.168.56.201', not 192.168.56.200"#),
        "{}",
        run.out
    );
    assert!(
        !vm.path("repo/kubeconfig").exists(),
        "a kubeconfig before the VIP works"
    );

    let vm = Vm::new(VM_ADDRS, "192.168.56.200");
    std::fs::remove_file(vm.path("repo/image.tar")).unwrap();
    let run = vm.bootstrap(&[]);
    assert!(!run.ok);
    assert!(
        run.out
            .contains(r#"FAILED in step "metalgate's image": no image at"#)
            && run
                .out
                .contains("and no cargo here: run ./scripts/image.sh on the host"),
        "{}",
        run.out
    );
    assert!(!vm.log().contains("apply"), "applied without an image");
}
