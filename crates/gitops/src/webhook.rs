//! Git webhooks (`POST /api/webhook` on the admin endpoint), as ArgoCD takes them: a push from
//! GitHub, Gitea/Forgejo or GitLab names a repository, and every Application whose `repoURL`
//! is that repository gets a pass at once instead of at the next poll.
//!
//! Signatures: with a secret for the provider in the Secret `metalgate-gitops-webhook` (keys
//! `github`, `gitea`, `gitlab`, as ArgoCD's `webhook.<provider>.secret`), a push must carry a
//! valid one (GitHub's and Gitea's HMAC-SHA256 of the body, GitLab's token) or it is refused
//! with 401. Without a secret for that provider the push is taken — all a webhook can do is make
//! the module look at Git sooner.

use ring::hmac;
use serde_json::Value;

/// The Secret holding the webhook secrets, in the module's namespace.
pub const SECRET: &str = "metalgate-gitops-webhook";

/// Who sent a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (`X-GitHub-Event`).
    GitHub,
    /// Gitea, Forgejo or Gogs (`X-Gitea-Event` / `X-Gogs-Event`).
    Gitea,
    /// GitLab (`X-Gitlab-Event`).
    GitLab,
}

impl Provider {
    /// The key of its secret in [`SECRET`].
    pub fn key(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
        }
    }
}

/// Why a webhook is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No provider's headers (400).
    Unknown,
    /// A secret is set and the signature or token is missing or wrong (401).
    BadSignature(Provider),
    /// Not a push (`ping`, …): answered, nothing to do (200).
    NotAPush(String),
    /// The body is not a payload (400).
    BadPayload(String),
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn hmac_ok(secret: &str, body: &[u8], sig_hex: Option<&str>) -> bool {
    let Some(sig) = sig_hex.and_then(unhex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &sig).is_ok()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The provider of a push, its signature checked against `secret_for(provider)`.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret_for: impl Fn(Provider) -> Option<String>,
) -> Result<Provider, Refusal> {
    let (provider, event) = if let Some(e) = header(headers, "x-github-event") {
        (Provider::GitHub, e)
    } else if let Some(e) =
        header(headers, "x-gitea-event").or_else(|| header(headers, "x-gogs-event"))
    {
        (Provider::Gitea, e)
    } else if let Some(e) = header(headers, "x-gitlab-event") {
        (Provider::GitLab, e)
    } else {
        return Err(Refusal::Unknown);
    };
    if let Some(secret) = secret_for(provider).filter(|s| !s.is_empty()) {
        let ok = match provider {
            Provider::GitHub => hmac_ok(
                &secret,
                body,
                header(headers, "x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")),
            ),
            Provider::Gitea => hmac_ok(
                &secret,
                body,
                header(headers, "x-gitea-signature")
                    .or_else(|| header(headers, "x-gogs-signature")),
            ),
            Provider::GitLab => header(headers, "x-gitlab-token")
                .is_some_and(|t| same(t.as_bytes(), secret.as_bytes())),
        };
        if !ok {
            return Err(Refusal::BadSignature(provider));
        }
    }
    let push = match provider {
        Provider::GitHub | Provider::Gitea => event == "push",
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
    };
    if !push {
        return Err(Refusal::NotAPush(event.to_string()));
    }
    Ok(provider)
}

/// The repository URLs a push payload names.
pub fn repositories(payload: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (obj, keys) in [
        (
            &payload["repository"],
            &[
                "html_url",
                "clone_url",
                "ssh_url",
                "git_url",
                "url",
                "git_http_url",
                "git_ssh_url",
                "homepage",
            ][..],
        ),
        (
            &payload["project"],
            &["web_url", "git_http_url", "git_ssh_url"][..],
        ),
    ] {
        for k in keys {
            if let Some(u) = obj[*k].as_str().filter(|u| !u.is_empty()) {
                out.push(u.to_string());
            }
        }
    }
    out
}

/// A repository URL reduced to `host/path` for comparison: no scheme, user, port or `.git`,
/// lower case; `git@host:owner/repo` as `host/owner/repo`.
pub fn normalize(url: &str) -> String {
    let u = url.trim().to_ascii_lowercase();
    let (rest, scp) = match u.split_once("://") {
        Some((_, r)) => (r.to_string(), false),
        None => (u.clone(), true),
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, r)| r);
    let rest = if scp {
        rest.replacen(':', "/", 1)
    } else {
        rest.to_string()
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

/// Whether a push naming `pushed` concerns an Application on `repo_url`.
pub fn concerns(pushed: &[String], repo_url: &str) -> bool {
    let want = normalize(repo_url);
    pushed.iter().any(|p| normalize(p) == want)
}

/// GitHub's signature header for `body` under `secret` (for senders and tests).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_of_one_repository_compare_equal() {
        let https = "https://github.com/you/ops-demo.git";
        for other in [
            "https://github.com/you/ops-demo",
            "http://GitHub.com/you/ops-demo/",
            "git@github.com:you/ops-demo.git",
            "ssh://git@github.com:22/you/ops-demo.git",
            "git://github.com/you/ops-demo",
        ] {
            assert_eq!(normalize(other), normalize(https), "{other}");
        }
        assert_ne!(
            normalize("https://github.com/you/ops-demo2"),
            normalize(https)
        );
        assert_ne!(
            normalize("https://gitlab.com/you/ops-demo"),
            normalize(https)
        );
    }

    #[test]
    fn signatures_are_checked_when_a_secret_is_set() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let secret = |_| Some("s3cret".to_string());
        let good = github_signature("s3cret", body);
        assert_eq!(
            verify(
                &h(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)]),
                body,
                secret
            ),
            Ok(Provider::GitHub)
        );
        let wrong = github_signature("other", body);
        for headers in [
            h(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &wrong)]),
            h(&[("X-GitHub-Event", "push")]),
            h(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", "sha256=zz"),
            ]),
        ] {
            assert_eq!(
                verify(&headers, body, secret),
                Err(Refusal::BadSignature(Provider::GitHub))
            );
        }
        // Gitea: the bare hex HMAC; GitLab: the token itself.
        let gitea = good.trim_start_matches("sha256=").to_string();
        assert_eq!(
            verify(
                &h(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &gitea)]),
                body,
                secret
            ),
            Ok(Provider::Gitea)
        );
        assert_eq!(
            verify(
                &h(&[
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Token", "s3cret")
                ]),
                body,
                secret
            ),
            Ok(Provider::GitLab)
        );
        assert_eq!(
            verify(
                &h(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "s3cre")]),
                body,
                secret
            ),
            Err(Refusal::BadSignature(Provider::GitLab))
        );
        // No secret for the provider: taken, as ArgoCD does.
        assert_eq!(
            verify(&h(&[("X-GitHub-Event", "push")]), body, |_| None),
            Ok(Provider::GitHub)
        );
    }

    #[test]
    fn other_events_and_senders_are_named() {
        assert_eq!(
            verify(&h(&[("X-GitHub-Event", "ping")]), b"{}", |_| None),
            Err(Refusal::NotAPush("ping".into()))
        );
        assert_eq!(
            verify(&h(&[("Content-Type", "application/json")]), b"{}", |_| None),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn payloads_name_their_repositories() {
        let github = json!({"ref": "refs/heads/main", "repository": {"html_url": "https://github.com/you/ops-demo", "clone_url": "https://github.com/you/ops-demo.git", "ssh_url": "git@github.com:you/ops-demo.git"}});
        assert!(concerns(
            &repositories(&github),
            "git@github.com:you/ops-demo.git"
        ));
        let gitlab = json!({"project": {"web_url": "https://gitlab.com/you/ops-demo", "git_ssh_url": "git@gitlab.com:you/ops-demo.git"}});
        assert!(concerns(
            &repositories(&gitlab),
            "https://gitlab.com/you/ops-demo.git"
        ));
        assert!(!concerns(
            &repositories(&gitlab),
            "https://github.com/you/ops-demo.git"
        ));
    }
}
