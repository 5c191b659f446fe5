//! The embedded store under bad input and faults, as a kubectl user meets them: a body over
//! kube-apiserver's 3 MiB limit is 413, a malformed one 400 with a Status naming the problem; a
//! corrupt data file stops `metalgate run` with a message naming the file (it never starts
//! empty); a full disk fails the write with a Status, keeps what was written before, and the
//! store writes again once there is room.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Metalgate, eventually, free_port, write};

#[test]
fn a_body_over_3_mib_is_413_and_a_malformed_one_is_400_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    // 3.5 MiB of data in one ConfigMap.
    let big = format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "big"}}, "data": {{"blob": "{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 512 * 1024)
    );
    let f = write(dir.path(), "big.json", &big);
    let out = mg.kubectl(&["create", "-f", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "a 3.5 MiB object was stored");
    assert!(
        err.contains("Request entity too large") || err.contains("413"),
        "kubectl's message: {err}"
    );
    // Malformed JSON, straight to the API: 400 and a Status that says where.
    let f = write(
        dir.path(),
        "bad.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"k": }"#,
    );
    let out = mg.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        f.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(err.contains("BadRequest") || err.contains("400"), "{err}");
    assert!(
        err.contains("line 1 column"),
        "the Status names the position: {err}"
    );
    // A wrong type in a known field is named by path.
    let f = write(
        dir.path(),
        "typed.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"k": 5}}"#,
    );
    let out = mg.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        f.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(err.contains("data"), "the Status names the field: {err}");
    // A JSON patch whose later operation fails after an earlier one applied (the json-patch
    // crate panicked undoing it; the connection was reset): 422, nothing changed.
    mg.kubectl_ok(&["create", "configmap", "patched", "--from-literal=k=v"]);
    let out = mg.kubectl(&[
        "patch",
        "configmap",
        "patched",
        "--type=json",
        "-p",
        r#"[{"op": "move", "from": "/data/k", "path": ""}, {"op": "add", "path": "/data", "value": "1"}]"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(err.contains("could not be applied"), "{err}");
    let data = mg.kubectl_ok(&["get", "configmap", "patched", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"k":"v"}"#, "a failed patch changed the object");
    // None of them was stored; the store still works.
    let names = mg.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(
        !names.contains("big") && !names.contains("bad") && !names.contains("typed"),
        "{names}"
    );
    mg.kubectl_ok(&["create", "configmap", "fine", "--from-literal=k=v"]);
}

#[test]
fn a_corrupt_data_file_stops_run_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A store that ran once (so the TLS files and the database exist) …
    let mg = Metalgate::start(&data, free_port(), &[]);
    mg.kubectl_ok(&["create", "configmap", "kept", "--from-literal=k=v"]);
    mg.kill();
    // … whose database is then overwritten with garbage.
    let db = data.join("store.redb");
    assert!(db.exists(), "no store.redb in {}", data.display());
    std::fs::write(&db, vec![0x5au8; 64 * 1024]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metalgate"))
        .args(["run", "--components", "none", "--data-dir"])
        .arg(&data)
        .args(["--api-listen", &format!("127.0.0.1:{}", free_port())])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on a corrupt database:\n{err}"
    );
    assert!(
        err.contains(&db.display().to_string()),
        "the message names the file:\n{err}"
    );
    // And the file is left as it was, for the operator to look at or restore.
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5au8; 64 * 1024]);
}

/// A small tmpfs mounted for the test, unmounted when dropped (even on failure).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_with_a_status_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("small"), "24m") else {
        panic!("mounting a tmpfs needs root (CI runs as root)");
    };
    let data = fs.0.join("data");
    let mg = Metalgate::start(&data, free_port(), &[]);
    mg.kubectl_ok(&["create", "configmap", "before", "--from-literal=k=v"]);
    // Fill what is left, leaving the store no room.
    let filler = fs.0.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    // Writes of 512 KiB until one fails (bounded).
    let blob = "y".repeat(512 * 1024);
    let mut failure = None;
    for i in 0..40 {
        let f = write(
            dir.path(),
            "cm.json",
            &format!(
                r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "fill-{i}"}}, "data": {{"blob": "{blob}"}}}}"#
            ),
        );
        let out = mg.kubectl(&["create", "-f", f.to_str().unwrap()]);
        if !out.status.success() {
            failure = Some((i, String::from_utf8_lossy(&out.stderr).to_string()));
            break;
        }
    }
    let (failed_at, message) = failure.expect("no write failed on a full disk");
    eprintln!("write {failed_at} failed on the full disk: {message}");
    assert!(
        message.contains("No space left") || message.contains("storage"),
        "the Status says why: {message}"
    );
    // Earlier writes are intact; the failed one is not half there.
    let names = mg.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(names.contains("configmap/before"), "{names}");
    assert!(
        !names.contains(&format!("configmap/fill-{failed_at}\n")),
        "{names}"
    );
    // Room again: the store writes again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let recovered = eventually(Duration::from_secs(10), || {
        mg.kubectl(&["create", "configmap", "after", "--from-literal=k=v"])
            .status
            .success()
    });
    assert!(
        recovered,
        "the store did not write again once there was room"
    );
    let names = mg.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(names.contains("configmap/after") && names.contains("configmap/before"));
    mg.kill();
    // And it starts again from that directory with everything in it.
    let mg = Metalgate::start(&data, free_port(), &[]);
    let names = mg.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    assert!(
        names.contains("configmap/after") && names.contains("configmap/before"),
        "{names}"
    );
    mg.kill();
}
