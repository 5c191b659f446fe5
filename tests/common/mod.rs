//! Shared helpers for the root package's integration tests: a `metalgate run` process on
//! loopback with its own data directory, and the real `kubectl` pointed at it.
#![allow(dead_code)]

pub mod git_http;
pub mod workshop;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use metalgate_testkit::free_port;

/// A running `metalgate run`; killed (by its PID) when dropped.
pub struct Metalgate {
    pub child: Child,
    pub data_dir: PathBuf,
    pub port: u16,
    pub stderr: mpsc::Receiver<String>,
    pub ready_line: String,
    /// The network namespace it runs in (kubectl then runs there too).
    pub netns: Option<String>,
}

impl Metalgate {
    /// Start the store alone on `data_dir` and `port`, with extra arguments; waits for the
    /// ready line.
    pub fn start(data_dir: &Path, port: u16, extra: &[&str]) -> Metalgate {
        Self::start_with(data_dir, port, "none", extra)
    }

    /// Start with these components.
    pub fn start_with(data_dir: &Path, port: u16, components: &str, extra: &[&str]) -> Metalgate {
        Self::start_with_env(data_dir, port, components, extra, &[])
    }

    /// Start with these components and environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        port: u16,
        components: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Metalgate {
        Self::spawn(
            None,
            "127.0.0.1",
            "test-node",
            data_dir,
            port,
            components,
            extra,
            envs,
        )
    }

    /// Start inside network namespace `netns` (which the test made), listening on `ip` there,
    /// as node `node`. Stopped with SIGTERM when dropped, so what it started can stop too.
    pub fn start_in(
        netns: &str,
        ip: &str,
        node: &str,
        data_dir: &Path,
        components: &str,
        extra: &[&str],
    ) -> Metalgate {
        Self::spawn(
            Some(netns),
            ip,
            node,
            data_dir,
            6443,
            components,
            extra,
            &[],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        netns: Option<&str>,
        ip: &str,
        node: &str,
        data_dir: &Path,
        port: u16,
        components: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Metalgate {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_metalgate")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_metalgate")),
        };
        let mut child = cmd
            .envs(envs.iter().copied())
            .args(["run", "--data-dir"])
            .arg(data_dir)
            .args([
                "--api-listen",
                &format!("{ip}:{port}"),
                "--node-name",
                node,
                "--components",
                components,
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("METALGATE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn metalgate");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (ltx, lrx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = ltx.send(line);
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let ready_line = match lrx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.starts_with("metalgate ready") => l,
            other => {
                let _ = child.kill();
                let errs: Vec<String> = rx.try_iter().collect();
                panic!(
                    "metalgate did not become ready: {other:?}\nstderr:\n{}",
                    errs.join("\n")
                );
            }
        };
        Metalgate {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
            stderr: rx,
            ready_line,
            netns: netns.map(str::to_string),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// This instance's kubeconfig with another bearer token (a ServiceAccount's), written to
    /// `dir/name`.
    pub fn kubeconfig_with_token(&self, dir: &Path, name: &str, token: &str) -> PathBuf {
        kubeconfig_with_token(&self.kubeconfig(), dir, name, token)
    }

    /// Run kubectl against this instance, bounded to 60 s.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_in(self.netns.as_deref(), &self.kubeconfig(), args, None)
    }

    /// kubectl with standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        kubectl_in(self.netns.as_deref(), &self.kubeconfig(), args, Some(input))
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `metalgate ARGS --kubeconfig <this instance's>` as a user types it: whether it
    /// succeeded, and its stdout then stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
            .args(args)
            .args(["--kubeconfig", self.kubeconfig().to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `kubectl get application NAME -n metalgate-system -o jsonpath=PATH`.
    pub fn app_jsonpath(&self, name: &str, path: &str) -> String {
        let jsonpath = format!("jsonpath={path}");
        self.kubectl_ok(&[
            "get",
            "application",
            name,
            "-n",
            "metalgate-system",
            "-o",
            &jsonpath,
        ])
    }

    /// Lines on stderr starting with `prefix`, waiting (up to 10 s) until there are `want`.
    pub fn stderr_lines_with(&self, prefix: &str, want: usize) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < want {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => got.push(l),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got.extend(self.stderr.try_iter().filter(|l| l.starts_with(prefix)));
        got
    }

    /// SIGKILL it and wait.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Metalgate {
    fn drop(&mut self) {
        if self.netns.is_some() {
            // SIGTERM first: the agent stops its pods and removes their namespaces.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(40);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn kubectl_with(kubeconfig: &Path, args: &[&str], input: Option<&str>) -> Output {
    kubectl_in(None, kubeconfig, args, input)
}

/// kubectl, inside network namespace `netns` when given, bounded to 60 s.
pub fn kubectl_in(
    netns: Option<&str>,
    kubeconfig: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Output {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "kubectl"]);
            c
        }
        None => Command::new("kubectl"),
    };
    let mut child = cmd
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be installed (.ci/run installs it)");
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // End the kubectl we started, by its PID.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("kubectl {args:?} timed out after 60 s");
        }
    }
}

/// Polls `probe` every 200 ms until it returns `Ok`, for at most `limit`; panics with its last
/// `Err` (what it saw) when it never does.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "not within {limit:?}: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until `probe` says yes, asking every 100 ms for at most `limit`; whether it did.
pub fn eventually(limit: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The kubeconfig at `admin` with another bearer token, written to `dir/name`.
pub fn kubeconfig_with_token(admin: &Path, dir: &Path, name: &str, token: &str) -> PathBuf {
    let text = std::fs::read_to_string(admin).unwrap_or_default();
    let swapped: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                format!("    token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect();
    write(dir, name, &swapped.join("\n"))
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// A network namespace of this test's own, with only loopback up; deleted when dropped.
pub struct Netns(pub String);

impl Netns {
    /// A new namespace `mgt-TAG-PID` (root only).
    pub fn new(tag: &str) -> Netns {
        let name = format!("mgt-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name} (needs root)");
        let ns = Netns(name);
        let up = ns.exec("ip", &["link", "set", "lo", "up"]);
        assert!(up.status.success());
        ns
    }

    /// Run a command inside it.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, cmd])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
