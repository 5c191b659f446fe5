//! Render: a checkout's path → the objects it describes, or every reason it cannot.
//!
//! A plain directory is read here (multi-document YAML and JSON, `directory.recurse`,
//! `include`/`exclude` globs; other files skipped). A `kustomization.yaml` directory or a Helm
//! chart is built by an external tool ([`Builder`]) and its output parsed the same way. The
//! parsing and the checks are pure ([`parse_documents`], [`resolve_inside`]); only
//! [`read_directory`] touches the file system. A checkout that leaves the repository (through
//! `..`, an absolute path or a symlink) renders nothing.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::object::{Manifest, Origin};
use globset::{Glob, GlobMatcher};

/// Why a revision could not be rendered. Every variant names the file (and document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The application's path is not inside the repository.
    #[error("path {path:?} leaves the repository")]
    Escapes {
        /// The path as given, or the file found through a symlink.
        path: String,
    },
    /// The application's path does not exist in this revision.
    #[error("path {path:?} does not exist in this revision")]
    Missing {
        /// The path as given.
        path: String,
    },
    /// A file could not be read.
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// A document is not valid YAML or JSON, or not a Kubernetes object: names the file, the
    /// document (from 1), the object when it got that far, and the field.
    #[error("{0}")]
    Document(metalgate_k8s::manifests::ManifestError),
    /// An include or exclude glob does not parse.
    #[error("spec.source.directory.{field}: {message}")]
    BadGlob {
        /// `include` or `exclude`.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// `kubectl kustomize` or `helm template` failed, or is not installed.
    #[error("{tool} {path}: {message}")]
    Tool {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The directory it was run on.
        path: String,
        /// Its error output.
        message: String,
    },
}

/// How a directory is to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    /// Plain YAML and JSON files.
    Directory,
    /// `kubectl kustomize`.
    Kustomize,
    /// `helm template`.
    Helm,
}

impl fmt::Display for SourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
        })
    }
}

/// The files that make a directory a kustomization or a chart, as ArgoCD detects them.
pub fn detect(file_names: &[&str], kustomize_asked: bool, helm_asked: bool) -> SourceType {
    let has = |n: &str| file_names.contains(&n);
    if helm_asked || has("Chart.yaml") {
        SourceType::Helm
    } else if kustomize_asked
        || has("kustomization.yaml")
        || has("kustomization.yml")
        || has("Kustomization")
    {
        SourceType::Kustomize
    } else {
        SourceType::Directory
    }
}

/// The directory options of `spec.source.directory`, with the globs compiled.
#[derive(Debug, Clone, Default)]
pub struct DirectoryOptions {
    /// Read subdirectories too.
    pub recurse: bool,
    include: Option<GlobMatcher>,
    exclude: Option<GlobMatcher>,
}

impl DirectoryOptions {
    /// Compile the options; a glob that does not parse is an error naming its field.
    pub fn new(
        recurse: bool,
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, RenderError> {
        let compile = |field: &'static str, g: Option<&str>| {
            g.filter(|g| !g.trim().is_empty())
                .map(|g| {
                    Glob::new(g.trim())
                        .map(|g| g.compile_matcher())
                        .map_err(|e| RenderError::BadGlob {
                            field,
                            message: e.to_string(),
                        })
                })
                .transpose()
        };
        Ok(DirectoryOptions {
            recurse,
            include: compile("include", include)?,
            exclude: compile("exclude", exclude)?,
        })
    }

    /// Whether a file (path relative to the application's path) is read: a YAML or JSON file
    /// that the include glob matches (when there is one) and the exclude glob does not. A glob
    /// matches the relative path or the bare file name, as ArgoCD's users write both.
    pub fn wants(&self, rel: &str) -> bool {
        let lower = rel.to_ascii_lowercase();
        if !(lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")) {
            return false;
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let m = |g: &GlobMatcher| g.is_match(rel) || g.is_match(name);
        self.include.as_ref().is_none_or(m) && !self.exclude.as_ref().is_some_and(m)
    }
}

/// The application's path made safe: relative, normalised, never above the repository's root.
/// `""`, `.` and `/` mean the root (ArgoCD accepts all three).
pub fn resolve_inside(path: &str) -> Result<PathBuf, RenderError> {
    let trimmed = path.trim();
    let rel = trimmed.trim_start_matches('/');
    if trimmed.starts_with("//") {
        return Err(RenderError::Escapes { path: path.into() });
    }
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(RenderError::Escapes { path: path.into() });
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(RenderError::Escapes { path: path.into() });
            }
        }
    }
    Ok(out)
}

/// Split a file's text into objects, with the same parser `metalgate run --manifests` uses:
/// each document on its own (one broken document does not hide the next), comment-only
/// documents skipped, a `List` yielding its items. Every bad document is reported.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Manifest>, Vec<RenderError>> {
    let (docs, errors) = metalgate_k8s::manifests::parse(Path::new(file), text);
    if !errors.is_empty() {
        return Err(errors.into_iter().map(RenderError::Document).collect());
    }
    Ok(docs
        .into_iter()
        .map(|d| Manifest {
            origin: Origin {
                file: file.into(),
                document: d.index,
            },
            object: d.object,
        })
        .collect())
}

/// Read a plain directory of the checkout `root` at `path` (already [`resolve_inside`]d): the
/// files [`DirectoryOptions::wants`], in name order, parsed. A symlink that points outside the
/// checkout is an error; hidden files and directories (`.git`) are skipped.
pub fn read_directory(
    root: &Path,
    path: &Path,
    opts: &DirectoryOptions,
) -> Result<Vec<Manifest>, Vec<RenderError>> {
    let root = root.canonicalize().map_err(|e| {
        vec![RenderError::Read {
            file: root.display().to_string(),
            message: e.to_string(),
        }]
    })?;
    let dir = root.join(path);
    let rel_name = |p: &Path| {
        p.strip_prefix(&root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    match dir.canonicalize() {
        Ok(real) if !real.starts_with(&root) => {
            return Err(vec![RenderError::Escapes {
                path: rel_name(&dir),
            }]);
        }
        Ok(real) if real.is_dir() => {}
        _ => {
            return Err(vec![RenderError::Missing {
                path: path.to_string_lossy().into(),
            }]);
        }
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    walk(&root, &dir, &dir, opts, &mut files, &mut errors);
    files.sort();
    let mut out = Vec::new();
    for (rel_to_root, full) in files {
        match std::fs::read_to_string(&full) {
            Ok(text) => match parse_documents(&rel_to_root, &text) {
                Ok(mut m) => out.append(&mut m),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(RenderError::Read {
                file: rel_to_root,
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `p` with `.` and `..` resolved by name, without touching the file system.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn walk(
    root: &Path,
    base: &Path,
    dir: &Path,
    opts: &DirectoryOptions,
    files: &mut Vec<(String, PathBuf)>,
    errors: &mut Vec<RenderError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(RenderError::Read {
                file: dir.display().to_string(),
                message: e.to_string(),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let rel_to_root = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .replace('\\', "/");
        let real = match p.canonicalize() {
            Ok(r) => r,
            // A dangling symlink: nothing to read now — but one aimed out of the checkout is
            // refused all the same (its target could appear later).
            Err(_) => {
                let target = std::fs::read_link(&p)
                    .map(|t| lexical(&p.parent().unwrap_or(root).join(t)))
                    .unwrap_or_else(|_| p.clone());
                if !target.starts_with(root) {
                    errors.push(RenderError::Escapes { path: rel_to_root });
                }
                continue;
            }
        };
        if !real.starts_with(root) {
            errors.push(RenderError::Escapes { path: rel_to_root });
            continue;
        }
        if real.is_dir() {
            if opts.recurse {
                walk(root, base, &p, opts, files, errors);
            }
            continue;
        }
        let rel_to_base = p
            .strip_prefix(base)
            .unwrap_or(&p)
            .to_string_lossy()
            .replace('\\', "/");
        if opts.wants(&rel_to_base) {
            files.push((rel_to_root, real));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_repository() {
        for (path, want) in [
            ("", Some("")),
            (".", Some("")),
            ("/", Some("")),
            ("apps", Some("apps")),
            ("./apps/", Some("apps")),
            ("/apps/podinfo", Some("apps/podinfo")),
            ("apps/../manifests", Some("manifests")),
            ("..", None),
            ("apps/../../etc", None),
            ("//host/share", None),
        ] {
            let got = resolve_inside(path).ok();
            assert_eq!(
                got.as_deref().map(|p| p.to_string_lossy().to_string()),
                want.map(str::to_string),
                "{path:?}"
            );
        }
    }

    #[test]
    fn documents_lists_and_empty_documents() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n";
        let m = parse_documents("x.yaml", text).unwrap();
        let names: Vec<_> = m
            .iter()
            .map(|m| (m.obj_ref().kind, m.obj_ref().name, m.origin.document))
            .collect();
        assert_eq!(
            names,
            [
                ("ConfigMap".into(), "a".into(), 1),
                ("Secret".into(), "s".into(), 2),
                ("ConfigMap".into(), "b".into(), 2)
            ]
        );
    }

    #[test]
    fn bad_documents_name_file_and_document() {
        let errs = parse_documents(
            "apps/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\nkind: ConfigMap\nmetadata: {name: x}\n---\nmetadata: [1, 2\n---\n- a\n",
        )
        .unwrap_err();
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "apps/bad.yaml: document 2 (ConfigMap x): apiVersion: Required value"
        );
        assert!(
            msgs[1].starts_with("apps/bad.yaml: document 3: invalid YAML at line 9"),
            "{}",
            msgs[1]
        );
        assert!(msgs[2].contains("document 4") && msgs[2].contains("must be a mapping"));
    }

    #[test]
    fn include_exclude_and_file_types() {
        let o = DirectoryOptions::new(true, Some("{*.yaml,extra/*.json}"), Some("*-test.yaml"))
            .unwrap();
        for (rel, want) in [
            ("a.yaml", true),
            ("sub/b.yaml", true),
            ("a-test.yaml", false),
            ("extra/c.json", true),
            ("d.json", false),
            ("README.md", false),
            ("notes.txt", false),
        ] {
            assert_eq!(o.wants(rel), want, "{rel}");
        }
        let all = DirectoryOptions::new(false, None, Some("")).unwrap();
        assert!(all.wants("x.yml") && all.wants("X.JSON") && !all.wants("Chart.lock"));
        assert!(matches!(
            DirectoryOptions::new(false, Some("{a"), None),
            Err(RenderError::BadGlob {
                field: "include",
                ..
            })
        ));
    }

    #[test]
    fn directories_recurse_skip_hidden_files_and_refuse_links_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let w = |p: &str, text: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\n");
        w("apps/b.yaml", &cm("b"));
        w("apps/a.yaml", &cm("a"));
        w(
            "apps/sub/c.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        );
        w("apps/.hidden/d.yaml", &cm("d"));
        w("apps/README.md", "not yaml: [");
        w("other/e.yaml", &cm("e"));
        let names = |opts: &DirectoryOptions| -> Vec<String> {
            read_directory(root, Path::new("apps"), opts)
                .unwrap()
                .iter()
                .map(|m| format!("{}:{}", m.origin.file, m.obj_ref().name))
                .collect()
        };
        assert_eq!(
            names(&DirectoryOptions::default()),
            ["apps/a.yaml:a", "apps/b.yaml:b"]
        );
        let rec = DirectoryOptions::new(true, None, Some("b.yaml")).unwrap();
        assert_eq!(names(&rec), ["apps/a.yaml:a", "apps/sub/c.json:c"]);

        // A symlink inside the path that points out of the checkout renders nothing.
        std::os::unix::fs::symlink("/etc/hostname", root.join("apps/leak.yaml")).unwrap();
        let errs =
            read_directory(root, Path::new("apps"), &DirectoryOptions::default()).unwrap_err();
        assert_eq!(
            errs,
            [RenderError::Escapes {
                path: "apps/leak.yaml".into()
            }]
        );
        // A dangling link is refused when it aims out of the checkout (its target may appear),
        // skipped when it stays inside.
        std::fs::remove_file(root.join("apps/leak.yaml")).unwrap();
        std::os::unix::fs::symlink("../../nowhere.yaml", root.join("apps/leak.yaml")).unwrap();
        std::os::unix::fs::symlink("nowhere.yaml", root.join("apps/gone.yaml")).unwrap();
        let errs =
            read_directory(root, Path::new("apps"), &DirectoryOptions::default()).unwrap_err();
        assert_eq!(
            errs,
            [RenderError::Escapes {
                path: "apps/leak.yaml".into()
            }]
        );
        std::fs::remove_file(root.join("apps/leak.yaml")).unwrap();
        assert_eq!(
            names(&DirectoryOptions::default()),
            ["apps/a.yaml:a", "apps/b.yaml:b"]
        );
        // ... and so does a path that is itself such a link, or that does not exist.
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        let errs =
            read_directory(root, Path::new("etc-link"), &DirectoryOptions::default()).unwrap_err();
        assert!(
            matches!(&errs[..], [RenderError::Escapes { .. }]),
            "{errs:?}"
        );
        let errs =
            read_directory(root, Path::new("gone"), &DirectoryOptions::default()).unwrap_err();
        assert_eq!(
            errs,
            [RenderError::Missing {
                path: "gone".into()
            }]
        );
    }

    #[test]
    fn detects_kustomize_and_helm() {
        assert_eq!(detect(&["a.yaml"], false, false), SourceType::Directory);
        assert_eq!(
            detect(&["kustomization.yaml", "a.yaml"], false, false),
            SourceType::Kustomize
        );
        assert_eq!(
            detect(&["Chart.yaml", "values.yaml"], false, false),
            SourceType::Helm
        );
        assert_eq!(detect(&[], true, false), SourceType::Kustomize);
    }
}
