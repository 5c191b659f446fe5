//! Per-Ingress behaviour from annotations, ingress-nginx's names accepted: pure parsing.
//!
//! Every annotation is read under both `nginx.ingress.kubernetes.io/` and `metalgate.io/`
//! (ours wins when both are set). A value that does not parse is reported and left at its
//! default; an annotation under either prefix that we do not implement is reported too, so a
//! user migrating from ingress-nginx learns what is not carried over instead of guessing.
//!
//! Annotations that guard access ([`GUARDS`]) fail closed instead: a bad value, or a guard we do
//! not implement (an `auth-*` annotation), denies every path of the Ingress with 503 — as
//! ingress-nginx denies a location whose annotations do not parse — rather than serving to
//! everyone what the user meant to restrict.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// The two prefixes an annotation is accepted under.
pub const PREFIXES: [&str; 2] = ["metalgate.io/", "nginx.ingress.kubernetes.io/"];

/// Annotations this proxy implements (without prefix).
pub const SUPPORTED: [&str; 11] = [
    "rewrite-target",
    "ssl-redirect",
    "force-ssl-redirect",
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "proxy-send-timeout",
    "backend-protocol",
    "whitelist-source-range",
    "allowlist-source-range",
    "denylist-source-range",
];

/// Annotations (without prefix) that restrict who may reach an Ingress. A bad value of one we
/// implement, or any one we do not (every `auth-*` name, matched by prefix), denies the
/// Ingress's paths: failing open would publish what the user meant to protect.
pub const GUARDS: [&str; 4] = [
    "whitelist-source-range",
    "allowlist-source-range",
    "denylist-source-range",
    "auth-",
];

/// Whether the annotation (without prefix) guards access.
pub fn guards_access(name: &str) -> bool {
    GUARDS.iter().any(|g| {
        if g.ends_with('-') {
            name.starts_with(g)
        } else {
            name == *g
        }
    })
}

/// metalgate.io/ annotations with other owners (the controller's, the speaker's, the GitOps
/// module's, which puts its tracking id on every object it applies): not ours to report as
/// unsupported.
const NOT_OURS: [&str; 7] = [
    "loadBalancerIPs",
    "address-pool",
    "allow-shared-ip",
    "ip-allocated-from-pool",
    "tracking-id",
    "sync-wave",
    "sync-options",
];

/// How the proxy talks to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendProtocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http,
    /// HTTP/1.1 over TLS (the backend's certificate is not verified, as in ingress-nginx).
    Https,
    /// HTTP/2 without TLS, prior knowledge (`H2C`, and `GRPC`).
    H2c,
    /// HTTP/2 over TLS (`GRPCS`).
    H2Tls,
}

/// Who may reach an Ingress's paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Access {
    /// No restriction (no guard annotation).
    #[default]
    Everyone,
    /// `allowlist-`/`whitelist-source-range` and `denylist-source-range`: a client must be in one
    /// of `allow` (when given) and in none of `deny`; others get 403.
    Ranges {
        /// Networks let in; `None` lets in every client not denied.
        allow: Option<Vec<IpNet>>,
        /// Networks refused.
        deny: Vec<IpNet>,
    },
    /// A guard annotation did not parse or is not implemented: every request gets 503.
    Denied {
        /// The annotation that denies, and why (shown in the 503 body's log and the Event).
        reason: String,
    },
}

impl Access {
    /// Whether a client at `client` (unknown: `None`) gets through. An unknown client address
    /// never passes a range check.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        match self {
            Access::Everyone => true,
            Access::Denied { .. } => false,
            Access::Ranges { allow, deny } => {
                let Some(ip) = client else { return false };
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                    v4 => v4,
                };
                allow
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|n| n.contains(&ip)))
                    && !deny.iter().any(|n| n.contains(&ip))
            }
        }
    }
}

/// What an Ingress's annotations ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `rewrite-target`: the path sent upstream (`$1`… refer to the rule path's groups).
    pub rewrite_target: Option<String>,
    /// `ssl-redirect` (default true): redirect HTTP to HTTPS for hosts with TLS.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: redirect even for hosts without a certificate of ours.
    pub force_ssl_redirect: bool,
    /// `proxy-body-size` in bytes (default 1 MiB as in ingress-nginx); `None` is unlimited (`0`).
    pub body_limit: Option<u64>,
    /// `proxy-connect-timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// `proxy-read-timeout` (default 60 s).
    pub read_timeout: Duration,
    /// `proxy-send-timeout` (default 60 s).
    pub send_timeout: Duration,
    /// `backend-protocol`.
    pub protocol: BackendProtocol,
    /// Who gets through: source ranges, or nobody when a guard annotation is bad.
    pub access: Access,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rewrite_target: None,
            ssl_redirect: true,
            force_ssl_redirect: false,
            body_limit: Some(1024 * 1024),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            protocol: BackendProtocol::Http,
            access: Access::Everyone,
        }
    }
}

/// An annotation we could not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationProblem {
    /// Under one of our prefixes but not implemented.
    Unsupported {
        /// The full annotation key.
        key: String,
    },
    /// Implemented, but the value does not parse; the default applies.
    Invalid {
        /// The full annotation key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A guard annotation that is bad or not implemented: the Ingress's paths answer 503.
    Denied {
        /// The full annotation key.
        key: String,
        /// What is wrong (the bad token, or "not supported").
        reason: String,
    },
}

impl std::fmt::Display for AnnotationProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnnotationProblem::Unsupported { key } => write!(
                f,
                "annotation {key} is not supported by metalgate and has no effect"
            ),
            AnnotationProblem::Invalid { key, reason } => {
                write!(f, "annotation {key}: {reason}; the default applies")
            }
            AnnotationProblem::Denied { key, reason } => write!(
                f,
                "annotation {key}: {reason}; it guards access, so every path of this Ingress \
                 answers 503 until it is fixed"
            ),
        }
    }
}

/// Parse an ingress-nginx size (`1m`, `512k`, `10`, `2g`; `0` = unlimited).
pub fn parse_size(v: &str) -> Result<Option<u64>, String> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1024,
                'm' => 1024 * 1024,
                'g' => 1024 * 1024 * 1024,
                _ => return Err(format!("{v:?} is not a size (like 1m, 512k, 0)")),
            };
            (&v[..i], m)
        }
        _ => (v, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a size (like 1m, 512k, 0)"))?;
    Ok(if n == 0 {
        None
    } else {
        Some(n.saturating_mul(mult))
    })
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let t = t.strip_suffix('s').unwrap_or(t);
    match t.parse::<u64>() {
        Ok(n) if n > 0 && n <= 3600 => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{v:?} is not a number of seconds between 1 and 3600"
        )),
    }
}

/// Parse a source-range list (`10.0.0.0/8, 192.168.1.7`). Every entry must be a CIDR or an
/// address: an empty entry or an empty list is an error, never "no restriction".
pub fn parse_ranges(v: &str) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    for part in v.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("{v:?} has an empty entry"));
        }
        match part.parse::<IpNet>() {
            Ok(n) => nets.push(n),
            Err(_) => match part.parse::<IpAddr>() {
                Ok(ip) => nets.push(IpNet::from(ip)),
                Err(_) => return Err(format!("{part:?} is not a CIDR or an IP address")),
            },
        }
    }
    Ok(nets)
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

/// Read an Ingress's annotations: the policy, and every annotation that could not be honoured.
pub fn from_annotations(
    annotations: &BTreeMap<String, String>,
) -> (Policy, Vec<AnnotationProblem>) {
    let mut p = Policy::default();
    let mut problems = Vec::new();
    // Guards are gathered first and decided at the end: one bad guard under either prefix
    // denies, whatever the other prefix says.
    let (mut allow, mut deny, mut denied) = (None, None, None::<String>);
    // nginx's first, then ours, so ours overrides.
    for prefix in PREFIXES.iter().rev() {
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            let res: Result<(), String> = match name {
                "rewrite-target" => {
                    if value.starts_with('/') {
                        p.rewrite_target = Some(value.clone());
                        Ok(())
                    } else {
                        Err(format!("{value:?} must start with /"))
                    }
                }
                "ssl-redirect" => parse_bool(value).map(|b| p.ssl_redirect = b),
                "force-ssl-redirect" => parse_bool(value).map(|b| p.force_ssl_redirect = b),
                "proxy-body-size" => parse_size(value).map(|s| p.body_limit = s),
                "proxy-connect-timeout" => parse_secs(value).map(|d| p.connect_timeout = d),
                "proxy-read-timeout" => parse_secs(value).map(|d| p.read_timeout = d),
                "proxy-send-timeout" => parse_secs(value).map(|d| p.send_timeout = d),
                "backend-protocol" => match value.trim().to_ascii_uppercase().as_str() {
                    "HTTP" => Ok(BackendProtocol::Http),
                    "HTTPS" => Ok(BackendProtocol::Https),
                    "GRPC" | "H2C" => Ok(BackendProtocol::H2c),
                    "GRPCS" => Ok(BackendProtocol::H2Tls),
                    _ => Err(format!(
                        "{value:?} is not one of HTTP, HTTPS, GRPC, GRPCS, H2C"
                    )),
                }
                .map(|b| p.protocol = b),
                "whitelist-source-range" | "allowlist-source-range" => {
                    parse_ranges(value).map(|nets| allow = Some(nets))
                }
                "denylist-source-range" => parse_ranges(value).map(|nets| deny = Some(nets)),
                other if *prefix == "metalgate.io/" && NOT_OURS.contains(&other) => Ok(()),
                other if guards_access(other) => Err("is not supported by metalgate".into()),
                _ => {
                    problems.push(AnnotationProblem::Unsupported { key: key.clone() });
                    Ok(())
                }
            };
            match res {
                Ok(()) => {}
                Err(reason) if guards_access(name) => {
                    denied.get_or_insert_with(|| format!("annotation {key}: {reason}"));
                    problems.push(AnnotationProblem::Denied {
                        key: key.clone(),
                        reason,
                    });
                }
                Err(reason) => problems.push(AnnotationProblem::Invalid {
                    key: key.clone(),
                    reason,
                }),
            }
        }
    }
    p.access = match (denied, allow, deny) {
        (Some(reason), _, _) => Access::Denied { reason },
        (None, None, None) => Access::Everyone,
        (None, allow, deny) => Access::Ranges {
            allow,
            deny: deny.unwrap_or_default(),
        },
    };
    (p, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let (p, probs) = from_annotations(&BTreeMap::new());
        assert!(probs.is_empty());
        assert_eq!(p.body_limit, Some(1 << 20));
        assert_eq!(p.connect_timeout, Duration::from_secs(5));
        assert_eq!(p.read_timeout, Duration::from_secs(60));
        assert!(p.ssl_redirect && !p.force_ssl_redirect);
    }

    #[test]
    fn both_prefixes_are_read_and_ours_wins() {
        let (p, probs) = from_annotations(&ann(&[
            ("nginx.ingress.kubernetes.io/proxy-body-size", "8k"),
            ("nginx.ingress.kubernetes.io/backend-protocol", "GRPC"),
            ("metalgate.io/backend-protocol", "HTTPS"),
            ("metalgate.io/proxy-read-timeout", "5"),
            (
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "10.0.0.0/8, 192.168.1.7",
            ),
        ]));
        assert!(probs.is_empty(), "{probs:?}");
        assert_eq!(p.body_limit, Some(8192));
        assert_eq!(p.protocol, BackendProtocol::Https);
        assert_eq!(p.read_timeout, Duration::from_secs(5));
        assert!(
            matches!(&p.access, Access::Ranges { allow: Some(a), deny } if a.len() == 2 && deny.is_empty())
        );
    }

    #[test]
    fn bad_and_unsupported_annotations_are_named() {
        let (p, probs) = from_annotations(&ann(&[
            ("nginx.ingress.kubernetes.io/proxy-body-size", "lots"),
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("metalgate.io/loadBalancerIPs", "192.168.56.200"),
            (
                "metalgate.io/tracking-id",
                "podinfo:networking.k8s.io/Ingress:podinfo/podinfo",
            ),
            ("example.com/other", "x"),
        ]));
        assert_eq!(p.body_limit, Some(1 << 20), "bad value leaves the default");
        assert_eq!(probs.len(), 2, "{probs:?}");
        assert!(probs.iter().any(|p| matches!(p, AnnotationProblem::Invalid { key, .. } if key.ends_with("proxy-body-size"))));
        assert!(probs.iter().any(
            |p| matches!(p, AnnotationProblem::Unsupported { key } if key.ends_with("canary"))
        ));
    }

    /// Guard annotations fail closed: every bad, empty or unimplemented guard denies the whole
    /// Ingress (503), and the problem names the annotation and the bad token.
    #[test]
    fn guards_fail_closed() {
        const W: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
        const A: &str = "metalgate.io/allowlist-source-range";
        const D: &str = "nginx.ingress.kubernetes.io/denylist-source-range";
        let denied = |pairs: &[(&str, &str)], token: &str| {
            let (p, probs) = from_annotations(&ann(pairs));
            assert!(
                matches!(&p.access, Access::Denied { reason } if reason.contains(token)),
                "{pairs:?}: {:?}",
                p.access
            );
            assert!(
                probs.iter().any(|pr| matches!(pr, AnnotationProblem::Denied { reason, .. } if reason.contains(token))
                    && pr.to_string().contains("503")),
                "{pairs:?}: {probs:?}"
            );
        };
        denied(&[(W, "10.0.0.0/8, bogus")], "\"bogus\"");
        denied(&[(W, "10.0.0.0/33")], "10.0.0.0/33");
        denied(&[(W, "")], "empty entry");
        denied(&[(W, "10.0.0.0/8,")], "empty entry");
        denied(&[(W, " , ")], "empty entry");
        denied(&[(D, "nope")], "\"nope\"");
        // A good value under our prefix does not cover a bad one under nginx's.
        denied(&[(W, "x"), (A, "10.0.0.0/8")], "\"x\"");
        // Authentication we do not implement would otherwise publish the protected page.
        denied(
            &[("nginx.ingress.kubernetes.io/auth-type", "basic")],
            "not supported",
        );
        denied(
            &[("nginx.ingress.kubernetes.io/auth-url", "http://auth/")],
            "not supported",
        );
    }

    #[test]
    fn source_ranges_admit_only_matching_clients() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let access = |pairs: &[(&str, &str)]| {
            let (p, probs) = from_annotations(&ann(pairs));
            assert!(probs.is_empty(), "{probs:?}");
            p.access
        };
        assert!(access(&[]).admits(None), "no guard: everyone");
        let a = access(&[(
            "metalgate.io/allowlist-source-range",
            "10.0.0.0/8, 192.168.1.7",
        )]);
        let cases = [
            ("10.1.2.3", true),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("::ffff:10.0.0.1", true),
            ("::1", false),
        ];
        for (client, want) in cases {
            assert_eq!(a.admits(ip(client)), want, "{client}");
        }
        assert!(
            !a.admits(None),
            "an unknown client address never passes a range"
        );
        let d = access(&[
            (
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "10.0.0.0/8",
            ),
            (
                "nginx.ingress.kubernetes.io/denylist-source-range",
                "10.9.0.0/16",
            ),
        ]);
        assert!(d.admits(ip("10.1.0.1")));
        assert!(!d.admits(ip("10.9.0.1")), "denied inside the allowed range");
        let only_deny = access(&[(
            "nginx.ingress.kubernetes.io/denylist-source-range",
            "127.0.0.1",
        )]);
        assert!(only_deny.admits(ip("127.0.0.2")) && !only_deny.admits(ip("127.0.0.1")));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(None));
        assert_eq!(parse_size("10"), Ok(Some(10)));
        assert_eq!(parse_size("2M"), Ok(Some(2 << 20)));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
    }
}
