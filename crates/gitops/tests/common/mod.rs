//! What the GitOps tests share: Git repositories made with the `git` CLI, and the embedded API
//! store with metalgate's CRDs.
#![allow(dead_code)]

pub mod apps;

use std::path::{Path, PathBuf};

pub use metalgate_testkit::git;

/// A work tree with a bare "remote" beside it, committed to with fixed author data.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
}

impl Repo {
    pub fn new(root: &Path) -> Repo {
        let work = root.join("work");
        let bare = root.join("remote.git");
        std::fs::create_dir_all(&work).unwrap();
        git(
            root,
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo { work, bare }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Write files, commit them with `message`, push; the new SHA.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "HEAD"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// The embedded API store on a loopback port, with metalgate's CRDs and namespace for
/// Applications; dropped with the test.
pub async fn store() -> metalgate_testkit::Store {
    metalgate_testkit::Store::start()
        .await
        .with_metalgate()
        .await
}
