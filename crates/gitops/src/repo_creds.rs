//! Repository credentials from Secrets, as ArgoCD reads them: a Secret in the module's namespace
//! labelled `argocd.argoproj.io/secret-type` (or `metalgate.io/secret-type`) `repository` holds
//! one repository's `url` with `username`/`password`; one labelled `repo-creds` is a template
//! whose `url` is a prefix of every repository it serves (the longest prefix wins; a
//! `repository` Secret for the exact URL wins over any template). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::git::Credentials;
use crate::webhook::normalize;

/// The ConfigMaps (in the Application's namespace) whose `ssh_known_hosts` lines ssh
/// repositories are checked against: ours, and ArgoCD's.
pub const KNOWN_HOSTS_CONFIGMAPS: [&str; 2] =
    ["metalgate-ssh-known-hosts", "argocd-ssh-known-hosts-cm"];

/// The labels that mark a repository Secret (ArgoCD's, and ours).
pub const TYPE_LABELS: [&str; 2] = ["argocd.argoproj.io/secret-type", "metalgate.io/secret-type"];

fn data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn kind(s: &Secret) -> Option<&str> {
    let labels = s.metadata.labels.as_ref()?;
    TYPE_LABELS
        .iter()
        .find_map(|l| labels.get(*l))
        .map(String::as_str)
}

/// The credentials for `url`, if a repository Secret has some: `username`/`password` (https),
/// `sshPrivateKey` (ssh URLs), `insecure: "true"` (ssh without host key checks). An error names
/// the Secret when the one that matches cannot be used.
pub fn find(secrets: &[Secret], url: &str) -> Result<Option<Credentials>, String> {
    let want = normalize(url);
    let exact = secrets.iter().find(|s| {
        kind(s) == Some("repository") && data(s).get("url").is_some_and(|u| normalize(u) == want)
    });
    let template = || {
        secrets
            .iter()
            .filter(|s| kind(s) == Some("repo-creds"))
            .filter_map(|s| {
                let prefix = data(s).get("url")?.trim_end_matches('/').to_string();
                (url.starts_with(&prefix) || want.starts_with(&normalize(&prefix)))
                    .then_some((prefix.len(), s))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, s)| s)
    };
    let Some(secret) = exact.or_else(template) else {
        return Ok(None);
    };
    let d = data(secret);
    let name = secret.metadata.name.clone().unwrap_or_default();
    let username = d
        .get("username")
        .filter(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| "git".into());
    let insecure = d.get("insecure").is_some_and(|v| v.trim() == "true");
    match (d.get("password"), d.get("sshPrivateKey")) {
        (Some(p), _) => Ok(Some(Credentials {
            username,
            password: p.clone(),
            insecure,
            ..Default::default()
        })),
        (None, Some(_)) if !crate::git::is_ssh(url) => Err(format!(
            "Secret {name}: sshPrivateKey is for ssh URLs, and {url} is not one"
        )),
        (None, Some(k)) if !k.contains("PRIVATE KEY") => Err(format!(
            "Secret {name}: sshPrivateKey is not a private key (no PRIVATE KEY block)"
        )),
        (None, Some(k)) => Ok(Some(Credentials {
            username,
            ssh_private_key: Some(k.clone()),
            insecure,
            ..Default::default()
        })),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"argocd.argoproj.io/secret-type": kind}},
            "stringData": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        }))
        .unwrap()
    }

    #[test]
    fn an_exact_repository_secret_wins_over_a_template() {
        let all = [
            secret(
                "org",
                "repo-creds",
                &[
                    ("url", "https://git.example/org"),
                    ("username", "bot"),
                    ("password", "t1"),
                ],
            ),
            secret(
                "one",
                "repository",
                &[
                    ("url", "https://git.example/org/ops.git"),
                    ("username", "ada"),
                    ("password", "t2"),
                ],
            ),
        ];
        let c = find(&all, "https://git.example/org/ops").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ada", "t2"));
        let c = find(&all, "https://git.example/org/other.git")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bot", "t1"));
        assert!(
            find(&all, "https://elsewhere.example/x.git")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_longest_template_wins_and_a_token_alone_gets_a_user() {
        let all = [
            secret(
                "host",
                "repo-creds",
                &[("url", "https://git.example"), ("password", "host")],
            ),
            secret(
                "org",
                "repo-creds",
                &[("url", "https://git.example/org"), ("password", "org")],
            ),
        ];
        let c = find(&all, "https://git.example/org/ops.git")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("git", "org"));
    }

    #[test]
    fn unlabelled_secrets_are_ignored_and_ssh_keys_are_read_and_checked() {
        let mut plain = secret(
            "plain",
            "repository",
            &[("url", "https://git.example/a.git"), ("password", "x")],
        );
        plain.metadata.labels = None;
        assert!(
            find(&[plain], "https://git.example/a.git")
                .unwrap()
                .is_none()
        );
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
        let url = "git@git.example:a.git";
        let ssh = |data: &[(&str, &str)]| {
            let mut d = vec![("url", url)];
            d.extend_from_slice(data);
            secret("deploy-key", "repository", &d)
        };
        let c = find(&[ssh(&[("sshPrivateKey", key)])], url)
            .unwrap()
            .unwrap();
        assert_eq!(c.ssh_private_key.as_deref(), Some(key));
        assert!(!c.insecure);
        let c = find(&[ssh(&[("sshPrivateKey", key), ("insecure", "true")])], url)
            .unwrap()
            .unwrap();
        assert!(c.insecure);
        // Not a key, or a key for an https URL: an error naming the Secret and the field.
        let err = find(&[ssh(&[("sshPrivateKey", "-----BEGIN")])], url).unwrap_err();
        assert!(
            err.contains("deploy-key") && err.contains("sshPrivateKey"),
            "{err}"
        );
        let https = secret(
            "deploy-key",
            "repository",
            &[("url", "https://git.example/a.git"), ("sshPrivateKey", key)],
        );
        let err = find(&[https], "https://git.example/a.git").unwrap_err();
        assert!(err.contains("not one"), "{err}");
    }

    #[test]
    fn ssh_urls_are_told_apart() {
        for url in [
            "ssh://git@h/r.git",
            "git@github.com:o/r.git",
            "git+ssh://h/r",
        ] {
            assert!(crate::git::is_ssh(url), "{url}");
        }
        for url in [
            "https://h/r.git",
            "file:///r.git",
            "git://h/r",
            "/srv/r.git",
            "C:/r",
        ] {
            assert!(!crate::git::is_ssh(url), "{url}");
        }
    }

    #[test]
    fn the_ssh_command_never_prompts_and_checks_hosts_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            crate::git::ssh_command(dir.path(), None).unwrap(),
            format!("ssh -o BatchMode=yes -E '{}/log'", dir.path().display())
        );
        let mut c = Credentials {
            ssh_private_key: Some("KEY".into()),
            ssh_known_hosts: Some("h ssh-ed25519 AAAA".into()),
            ..Default::default()
        };
        let cmd = crate::git::ssh_command(&dir.path().join("s"), Some(&c)).unwrap();
        assert!(cmd.contains("StrictHostKeyChecking=yes"), "{cmd}");
        assert!(cmd.contains("IdentitiesOnly=yes"), "{cmd}");
        let key = dir.path().join("s/id");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "KEY\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        c.insecure = true;
        let cmd = crate::git::ssh_command(&dir.path().join("s"), Some(&c)).unwrap();
        assert!(cmd.contains("StrictHostKeyChecking=no"), "{cmd}");
    }
}
