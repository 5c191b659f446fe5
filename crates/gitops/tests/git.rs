//! The Git layer against real repositories made with the `git` CLI: `file://` and `git://`
//! (a `git daemon` on loopback), refs listed without fetching, shallow fetches, branches, tags,
//! SHAs, a push, a force-push, a deleted branch and an unreachable remote.

mod common;

use std::path::Path;
use std::process::{Child, Command};

use common::{Repo, git};
use metalgate_gitops::git::{Cache, GitError, resolve};

#[test]
fn refs_fetch_checkout_and_history_over_file_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let first = repo.commit(
        &[
            ("apps/podinfo/deploy.yaml", "kind: ConfigMap\n"),
            ("README.md", "x"),
        ],
        "podinfo: first version",
    );
    git(&repo.work, &["tag", "-a", "v1", "-m", "release 1"]);
    git(&repo.work, &["push", "-q", "origin", "v1"]);
    let second = repo.commit(
        &[("apps/podinfo/deploy.yaml", "kind: Secret\n")],
        "podinfo: blue",
    );

    let cache = Cache::new(tmp.path().join("cache"));
    let refs = cache.ls_remote(&repo.url(), None).unwrap();
    assert_eq!(resolve(&repo.url(), &refs, "HEAD").unwrap().sha, second);
    assert_eq!(resolve(&repo.url(), &refs, "main").unwrap().sha, second);
    assert_eq!(
        resolve(&repo.url(), &refs, "v1").unwrap().sha,
        first,
        "an annotated tag is peeled to its commit"
    );
    assert!(
        !cache.has_commit(&repo.url(), &second),
        "listing refs fetches nothing"
    );

    cache.fetch(&repo.url(), None, false).unwrap();
    assert!(cache.has_commit(&repo.url(), &second));
    let info = cache.commit_info(&repo.url(), &second).unwrap();
    assert_eq!(info.author, "Ada Ops <ada@example.com>");
    assert_eq!(info.summary, "podinfo: blue");

    let out = tmp.path().join("checkout");
    cache.checkout(&repo.url(), &second, &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("apps/podinfo/deploy.yaml")).unwrap(),
        "kind: Secret\n"
    );
    let old = tmp.path().join("checkout-v1");
    cache.checkout(&repo.url(), &first, &old).unwrap();
    assert_eq!(
        std::fs::read_to_string(old.join("apps/podinfo/deploy.yaml")).unwrap(),
        "kind: ConfigMap\n"
    );

    // A push moves the branch; the listing sees it before any fetch.
    let third = repo.commit(
        &[("apps/podinfo/deploy.yaml", "kind: Service\n")],
        "podinfo: red",
    );
    let refs = cache.ls_remote(&repo.url(), None).unwrap();
    assert_eq!(resolve(&repo.url(), &refs, "main").unwrap().sha, third);

    // A force-push back to the first commit: the branch follows it.
    git(&repo.work, &["reset", "-q", "--hard", &first]);
    git(
        &repo.work,
        &["push", "-q", "--force", "origin", "HEAD:main"],
    );
    let refs = cache.fetch(&repo.url(), None, false).unwrap();
    assert_eq!(resolve(&repo.url(), &refs, "main").unwrap().sha, first);

    // A commit that is no branch's tip any more is found with a full fetch.
    let loose = resolve(&repo.url(), &refs, &second).unwrap();
    assert_eq!(
        (loose.sha.as_str(), loose.via.as_deref()),
        (second.as_str(), None)
    );
    cache.fetch(&repo.url(), None, true).unwrap();
    assert!(cache.has_commit(&repo.url(), &second));

    // A deleted branch no longer resolves.
    git(
        &repo.work,
        &["push", "-q", "origin", "HEAD:refs/heads/feature"],
    );
    let refs = cache.ls_remote(&repo.url(), None).unwrap();
    assert!(resolve(&repo.url(), &refs, "feature").is_ok());
    git(&repo.work, &["push", "-q", "origin", "--delete", "feature"]);
    let refs = cache.ls_remote(&repo.url(), None).unwrap();
    assert!(matches!(
        resolve(&repo.url(), &refs, "feature"),
        Err(GitError::UnknownRevision { .. })
    ));
}

#[test]
fn symlinks_are_checked_out_as_links() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    std::fs::create_dir_all(repo.work.join("apps")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.work.join("apps/leak.yaml")).unwrap();
    let sha = repo.commit(
        &[("apps/ok.yaml", "a: 1\n")],
        "a link out of the repository",
    );
    let cache = Cache::new(tmp.path().join("cache"));
    cache.fetch(&repo.url(), None, false).unwrap();
    let out = tmp.path().join("checkout");
    cache.checkout(&repo.url(), &sha, &out).unwrap();
    let link = std::fs::read_link(out.join("apps/leak.yaml")).unwrap();
    assert_eq!(link, Path::new("/etc/passwd"), "the renderer refuses it");
}

#[test]
fn an_unreachable_remote_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().join("cache"));
    let url = format!("file://{}/nowhere.git", tmp.path().display());
    let err = cache.ls_remote(&url, None).unwrap_err();
    assert!(
        matches!(&err, GitError::Remote { url: u, .. } if *u == url),
        "{err:?}"
    );
    // Nothing listens on this loopback port: refused at once.
    let port = metalgate_testkit::free_port();
    let url = format!("git://127.0.0.1:{port}/repo.git");
    assert!(matches!(
        cache.fetch(&url, None, false),
        Err(GitError::Remote { .. })
    ));
}

/// `git daemon` on a loopback port, stopped (by its PID) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_git_daemon_remote_over_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let sha = repo.commit(&[("apps/a.yaml", "a: 1\n")], "over the network");
    let port = metalgate_testkit::free_port();
    // `git daemon` would fork `git-daemon` and leave it behind when killed: run the server
    // itself, so the PID we end is the one listening.
    let exec_path = git(tmp.path(), &["--exec-path"]);
    let _daemon = Daemon(
        Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", tmp.path().display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon starts"),
    );
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let cache = Cache::new(tmp.path().join("cache"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refs = loop {
        match cache.ls_remote(&url, None) {
            Ok(r) => break r,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    assert_eq!(resolve(&url, &refs, "main").unwrap().sha, sha);
    cache.fetch(&url, None, false).unwrap();
    assert_eq!(
        cache.commit_info(&url, &sha).unwrap().summary,
        "over the network"
    );
}
