//! Git, through gix: list a remote's refs (cheap change detection: connect and read the ref
//! advertisement, no objects), fetch a repository once for every Application that uses it
//! (shallow, into a bare cache under the data directory), and check a commit's tree out into a
//! directory for rendering. Blocking: call it from `spawn_blocking`.
//!
//! Which commit an Application's `targetRevision` means is decided by [`resolve`], a pure
//! function over the advertised refs.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use gix::remote::Direction;

/// A ref the remote advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Its full name (`HEAD`, `refs/heads/main`, `refs/tags/v1`).
    pub name: String,
    /// The commit it points to (an annotated tag peeled to its commit).
    pub commit: String,
}

/// A commit an Application is to be synced to, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit's SHA.
    pub sha: String,
    /// The ref it came from (`refs/heads/main`), or `None` for a SHA.
    pub via: Option<String>,
}

/// Why a revision does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// No branch, tag or SHA of that name.
    #[error("revision {revision:?} is not a branch, tag or commit of {url}")]
    UnknownRevision {
        /// The repository.
        url: String,
        /// What was asked for.
        revision: String,
    },
    /// The remote could not be reached or read.
    #[error("{url}: {message}")]
    Remote {
        /// The repository.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The local cache failed.
    #[error("git cache {path}: {message}")]
    Cache {
        /// The cache directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Whether `s` looks like a (possibly abbreviated) commit SHA.
pub fn is_sha(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `revision` names among `refs`, as ArgoCD reads `targetRevision`: `HEAD` (or
/// empty) is the remote's default branch; else a branch, then a tag, by short or full name;
/// else a SHA: abbreviated when it is a ref's tip, else all 40 characters (it must then be
/// fetched with history).
pub fn resolve(url: &str, refs: &[RemoteRef], revision: &str) -> Result<Resolved, GitError> {
    let rev = revision.trim();
    let rev = if rev.is_empty() { "HEAD" } else { rev };
    let by_name = |name: &str| refs.iter().find(|r| r.name == name);
    let candidates = [
        rev.to_string(),
        format!("refs/heads/{rev}"),
        format!("refs/tags/{rev}"),
    ];
    for c in candidates {
        if let Some(r) = by_name(&c) {
            return Ok(Resolved {
                sha: r.commit.clone(),
                via: Some(r.name.clone()),
            });
        }
    }
    if is_sha(rev) {
        let lower = rev.to_ascii_lowercase();
        if let Some(r) = refs.iter().find(|r| r.commit.starts_with(&lower)) {
            return Ok(Resolved {
                sha: r.commit.clone(),
                via: None,
            });
        }
        if lower.len() == 40 {
            return Ok(Resolved {
                sha: lower,
                via: None,
            });
        }
        return Err(GitError::UnknownRevision {
            url: url.into(),
            revision: format!(
                "{revision} (an abbreviated SHA must be a branch or tag tip; give all 40 characters)"
            ),
        });
    }
    Err(GitError::UnknownRevision {
        url: url.into(),
        revision: revision.into(),
    })
}

/// A commit's facts for history and the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// `Name <email>`.
    pub author: String,
    /// The message's first line.
    pub summary: String,
    /// When it was committed (seconds since the epoch).
    pub time: i64,
}

/// What a repository Secret gives: username and password for an `http(s)` repository, a
/// private key for an ssh one; and the hosts an ssh connection trusts.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password or token.
    pub password: String,
    /// An ssh private key (OpenSSH format), for `ssh://` and `user@host:path` URLs.
    pub ssh_private_key: Option<String>,
    /// `known_hosts` lines the ssh connection trusts (from the known-hosts ConfigMap).
    pub ssh_known_hosts: Option<String>,
    /// The Secret's `insecure: "true"`: ssh trusts any host key (ArgoCD's field; logged).
    pub insecure: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({:?}, <hidden>, ssh key: {}, insecure: {})",
            self.username,
            self.ssh_private_key.is_some(),
            self.insecure
        )
    }
}

/// Whether `url` is reached over ssh (`ssh://…` or scp-like `user@host:path`).
pub fn is_ssh(url: &str) -> bool {
    url.starts_with("ssh://")
        || url.starts_with("git+ssh://")
        || (!url.contains("://") && url.split_once(':').is_some_and(|(h, _)| h.contains('@')))
}

/// The `core.sshCommand` for `creds`: never prompting (BatchMode), only the given key, host
/// keys checked against the given known hosts — or not at all when the Secret says `insecure`.
/// Key and known hosts are written under `dir` (0700; the key 0600).
pub fn ssh_command(dir: &Path, creds: Option<&Credentials>) -> std::io::Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // ssh's own messages go to a log the error then quotes (a fresh one per connection).
    let log = dir.join("log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = format!("ssh -o BatchMode=yes -E {}", q(&log));
    let Some(c) = creds else {
        return Ok(cmd);
    };
    let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        if !text.ends_with('\n') {
            std::io::Write::write_all(&mut f, b"\n")?;
        }
        Ok(p)
    };
    if let Some(key) = &c.ssh_private_key {
        let p = write("id", key)?;
        cmd.push_str(&format!(" -o IdentitiesOnly=yes -i {}", q(&p)));
    }
    if c.insecure {
        cmd.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
    } else if let Some(hosts) = &c.ssh_known_hosts {
        let p = write("known_hosts", hosts)?;
        cmd.push_str(&format!(
            " -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
            q(&p)
        ));
    } else {
        cmd.push_str(" -o StrictHostKeyChecking=yes");
    }
    Ok(cmd)
}

/// Bare repositories under one directory, one per URL (so one fetch serves every Application
/// of a repository).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    /// One writer per mirror: Applications of one repository are reconciled in parallel, and
    /// two fetches into one mirror fight over its lock files (`shallow.lock`).
    writers: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<std::sync::Mutex<()>>>>,
    >,
}

/// What the fetches ask for: every branch and tag, so any Application's branch or tag is there.
const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

impl Cache {
    /// A cache in `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        // https remotes go through reqwest's rustls without a provider of its own (the image
        // carries one crypto library, ring, not also aws-lc): make sure ring is installed.
        metalgate_k8s::client::install_crypto_provider();
        Cache {
            dir: dir.into(),
            writers: Default::default(),
        }
    }

    /// The lock to hold while fetching into (or checking out of) the mirror of `url`.
    pub fn writer(&self, url: &str) -> std::sync::Arc<std::sync::Mutex<()>> {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(hash_name(url))
            .or_default()
            .clone()
    }

    /// Where ssh keeps what it says about connections to `url` (key, known hosts, log).
    fn ssh_dir(&self, url: &str) -> PathBuf {
        self.dir.join(format!("{}.ssh", hash_name(url)))
    }

    /// `message`, and for an ssh URL what ssh said (gix reads only some of ssh's messages, and
    /// not reliably: "Permission denied", "Host key verification failed" are the ones a user
    /// needs to see).
    fn with_ssh_log(&self, url: &str, message: String) -> String {
        if !is_ssh(url) {
            return message;
        }
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ssh").is_file()));
        if !on_path {
            return format!("{message} (cannot run ssh: OpenSSH's ssh is not on PATH)");
        }
        let log = std::fs::read_to_string(self.ssh_dir(url).join("log")).unwrap_or_default();
        let said: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !message.contains(l))
            .filter(|l| !l.starts_with("Pseudo-terminal will not be allocated"))
            .collect();
        if said.is_empty() {
            message
        } else {
            format!("{message} (ssh: {})", said.join("; "))
        }
    }

    /// The bare repository that mirrors `url`.
    pub fn path_of(&self, url: &str) -> PathBuf {
        self.dir.join(hash_name(url))
    }

    fn open(&self, url: &str, creds: Option<&Credentials>) -> Result<gix::Repository, GitError> {
        let path = self.path_of(url);
        let cache_err = |e: &dyn std::fmt::Display| GitError::Cache {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut opts = gix::open::Options::isolated();
        if is_ssh(url) {
            let dir = self.ssh_dir(url);
            let cmd = ssh_command(&dir, creds).map_err(|e| cache_err(&e))?;
            // OpenSSH's (gix would otherwise guess the variant by running the command).
            opts = opts.config_overrides([
                format!("core.sshCommand={cmd}"),
                "ssh.variant=ssh".to_string(),
            ]);
        }
        if !path.join("HEAD").exists() {
            std::fs::create_dir_all(&path).map_err(|e| cache_err(&e))?;
            gix::init_bare(&path).map_err(|e| cache_err(&e))?;
        }
        gix::open_opts(&path, opts).map_err(|e| cache_err(&e))
    }

    /// The refs `url` advertises, without fetching anything.
    pub fn ls_remote(
        &self,
        url: &str,
        creds: Option<&Credentials>,
    ) -> Result<Vec<RemoteRef>, GitError> {
        let repo = self.open(url, creds)?;
        let remote_err = |e: &dyn std::error::Error| GitError::Remote {
            url: url.into(),
            message: self.with_ssh_log(url, chain(e)),
        };
        let remote = repo
            .remote_at(url)
            .map_err(|e| remote_err(&e))?
            .with_refspecs(REFSPECS, Direction::Fetch)
            .map_err(|e| remote_err(&e))?;
        let conn = remote
            .connect(Direction::Fetch)
            .map_err(|e| remote_err(&e))?;
        let conn = with_creds(conn, creds);
        let (map, _) = conn
            .ref_map(
                gix::progress::Discard,
                gix::remote::ref_map::Options {
                    prefix_from_spec_as_filter_on_remote: false,
                    ..Default::default()
                },
            )
            .map_err(|e| remote_err(&e))?;
        Ok(advertised(&map.remote_refs))
    }

    /// Fetch every branch and tag of `url` (one commit deep unless `full`), and return what the
    /// remote advertised. A SHA that is no ref's tip needs `full`.
    pub fn fetch(
        &self,
        url: &str,
        creds: Option<&Credentials>,
        full: bool,
    ) -> Result<Vec<RemoteRef>, GitError> {
        let repo = self.open(url, creds)?;
        let remote_err = |e: &dyn std::error::Error| GitError::Remote {
            url: url.into(),
            message: self.with_ssh_log(url, chain(e)),
        };
        let remote = repo
            .remote_at(url)
            .map_err(|e| remote_err(&e))?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs(REFSPECS, Direction::Fetch)
            .map_err(|e| remote_err(&e))?;
        let conn = remote
            .connect(Direction::Fetch)
            .map_err(|e| remote_err(&e))?;
        let conn = with_creds(conn, creds);
        let shallow = if full {
            if repo.is_shallow().unwrap_or(true) {
                // git's --unshallow.
                gix::remote::fetch::Shallow::DepthAtRemote(
                    NonZeroU32::new(i32::MAX as u32).expect("non-zero"),
                )
            } else {
                gix::remote::fetch::Shallow::NoChange
            }
        } else {
            gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::new(1).expect("non-zero"))
        };
        let prepared = conn
            .prepare_fetch(
                gix::progress::Discard,
                gix::remote::ref_map::Options {
                    prefix_from_spec_as_filter_on_remote: false,
                    ..Default::default()
                },
            )
            .map_err(|e| remote_err(&e))?;
        let refs = advertised(&prepared.ref_map().remote_refs);
        prepared
            .with_shallow(shallow)
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| remote_err(&e))?;
        Ok(refs)
    }

    /// Whether the cache of `url` holds commit `sha`.
    pub fn has_commit(&self, url: &str, sha: &str) -> bool {
        let Ok(repo) = self.open(url, None) else {
            return false;
        };
        find_commit(&repo, sha).is_ok()
    }

    /// A commit's author, message and time.
    pub fn commit_info(&self, url: &str, sha: &str) -> Result<CommitInfo, GitError> {
        let repo = self.open(url, None)?;
        let c = find_commit(&repo, sha)?;
        let err = |e: &dyn std::fmt::Display| GitError::Cache {
            path: self.path_of(url).display().to_string(),
            message: e.to_string(),
        };
        let author = c.author().map_err(|e| err(&e))?;
        let summary = c
            .message()
            .map(|m| m.summary().to_str_lossy().into_owned())
            .unwrap_or_default();
        let time = c.time().map(|t| t.seconds).unwrap_or(0);
        Ok(CommitInfo {
            sha: c.id.to_string(),
            author: format!("{} <{}>", author.name, author.email),
            summary,
            time,
        })
    }

    /// Write commit `sha`'s tree into `dest` (which must not exist yet): files, directories and
    /// symlinks as they are in Git (so the renderer can refuse a link that leaves the checkout);
    /// submodules are left empty.
    pub fn checkout(&self, url: &str, sha: &str, dest: &Path) -> Result<(), GitError> {
        let repo = self.open(url, None)?;
        let c = find_commit(&repo, sha)?;
        let err = |e: &dyn std::fmt::Display| GitError::Cache {
            path: dest.display().to_string(),
            message: e.to_string(),
        };
        let tree = c.tree().map_err(|e| err(&e))?;
        std::fs::create_dir_all(dest).map_err(|e| err(&e))?;
        write_tree(&repo, tree.id, dest).map_err(|e| err(&e))
    }
}

/// An error with its causes ("handshake failed: …: HTTP 401"), so a condition says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

fn with_creds<'a, 'r, T: gix::protocol::transport::client::blocking_io::Transport>(
    conn: gix::remote::Connection<'a, 'static, 'r, T>,
    creds: Option<&Credentials>,
) -> gix::remote::Connection<'a, 'static, 'r, T> {
    // Without credentials, none: gix would otherwise ask on the terminal (and hang a
    // `metalgate run` started from one).
    let Some(c) = creds.cloned() else {
        return conn.with_credentials(|_| Ok(None));
    };
    conn.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: c.username.clone(),
                    password: c.password.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            }))
        }
        _ => Ok(None),
    })
}

/// A stable directory name for a URL: readable part + FNV-1a hash (no crypto needed: the
/// name only has to be distinct and stable).
pub fn hash_name(url: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let readable: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    format!("{readable}-{h:016x}.git")
}

fn find_commit<'r>(repo: &'r gix::Repository, sha: &str) -> Result<gix::Commit<'r>, GitError> {
    let unknown = || GitError::UnknownRevision {
        url: repo.path().display().to_string(),
        revision: sha.into(),
    };
    let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(|_| unknown())?;
    repo.find_object(id)
        .ok()
        .and_then(|o| o.try_into_commit().ok())
        .ok_or_else(unknown)
}

fn write_tree(repo: &gix::Repository, id: gix::ObjectId, dir: &Path) -> std::io::Result<()> {
    let io = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let tree = repo.find_tree(id).map_err(|e| io(&e))?;
    let decoded = tree.decode().map_err(|e| io(&e))?;
    for entry in &decoded.entries {
        let name = entry.filename.to_str_lossy();
        if name.contains('/') || name == ".." || name == "." || name.is_empty() {
            return Err(io(&format!("tree entry {name:?} is not a file name")));
        }
        let path = dir.join(name.as_ref());
        let mode = entry.mode;
        if mode.is_tree() {
            std::fs::create_dir(&path)?;
            write_tree(repo, entry.oid.to_owned(), &path)?;
        } else if mode.is_link() {
            let blob = repo.find_blob(entry.oid.to_owned()).map_err(|e| io(&e))?;
            let target = blob.data.to_str_lossy().into_owned();
            std::os::unix::fs::symlink(target, &path)?;
        } else if mode.is_blob() {
            let blob = repo.find_blob(entry.oid.to_owned()).map_err(|e| io(&e))?;
            std::fs::write(&path, &blob.data)?;
        } else {
            // A submodule (commit entry): an empty directory, as `git clone` leaves it.
            std::fs::create_dir(&path)?;
        }
    }
    Ok(())
}

fn advertised(refs: &[gix::protocol::handshake::Ref]) -> Vec<RemoteRef> {
    use gix::protocol::handshake::Ref;
    refs.iter()
        .filter_map(|r| match r {
            Ref::Peeled {
                full_ref_name,
                object,
                ..
            }
            | Ref::Direct {
                full_ref_name,
                object,
            }
            | Ref::Symbolic {
                full_ref_name,
                object,
                ..
            } => Some(RemoteRef {
                name: full_ref_name.to_str_lossy().into_owned(),
                commit: object.to_string(),
            }),
            Ref::Unborn { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> Vec<RemoteRef> {
        let r = |n: &str, c: &str| RemoteRef {
            name: n.into(),
            commit: c.repeat(40 / c.len()),
        };
        vec![
            r("HEAD", "aa"),
            r("refs/heads/main", "aa"),
            r("refs/heads/v1", "bb"),
            r("refs/heads/feature/x", "cc"),
            r("refs/tags/v1", "dd"),
            r("refs/tags/v2.0.0", "ee"),
        ]
    }

    #[test]
    fn target_revisions_resolve_as_argo_reads_them() {
        let refs = refs();
        let sha = |rev: &str| resolve("u", &refs, rev).map(|r| r.sha[..2].to_string());
        assert_eq!(sha("").unwrap(), "aa");
        assert_eq!(sha("HEAD").unwrap(), "aa");
        assert_eq!(sha("main").unwrap(), "aa");
        assert_eq!(sha("refs/heads/main").unwrap(), "aa");
        assert_eq!(sha("feature/x").unwrap(), "cc");
        assert_eq!(
            sha("v1").unwrap(),
            "bb",
            "a branch wins over a tag of the same name"
        );
        assert_eq!(sha("refs/tags/v1").unwrap(), "dd");
        assert_eq!(sha("v2.0.0").unwrap(), "ee");
        assert_eq!(sha("eeeeeee").unwrap(), "ee", "an abbreviated tip");
        let loose = resolve("u", &refs, "0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(loose.via, None, "a SHA that is no tip must be fetched");
        assert_eq!(
            resolve("u", &refs, "gone"),
            Err(GitError::UnknownRevision {
                url: "u".into(),
                revision: "gone".into()
            })
        );
    }

    #[test]
    fn cache_names_are_stable_and_distinct() {
        let a = hash_name("https://github.com/example/ops-demo.git");
        assert_eq!(a, hash_name("https://github.com/example/ops-demo.git"));
        assert!(a.starts_with("ops-demo-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, hash_name("https://gitlab.com/example/ops-demo.git"));
        assert!(hash_name("file:///../../etc").starts_with("etc-"));
    }
}
