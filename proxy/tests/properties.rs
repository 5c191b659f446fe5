//! Randomised input into the proxy's checks (#13 item 8), bounded for CI; set
//! `PROPTEST_CASES=100000` for a longer run. No input panics; every rejection is a typed error;
//! a guard annotation that does not parse never lets everyone in.

use std::collections::BTreeMap;

use metalgate_proxy::policy::{Access, from_annotations};
use metalgate_proxy::uri::{BadPath, normalize_path};
use proptest::prelude::*;

/// Paths made mostly of the characters that matter: separators, dots, escapes.
fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2F".to_string()),
            Just("%".to_string()),
            Just("%00".to_string()),
            Just("%+1".to_string()),
            "[a-z0-9]{1,3}",
            "[ -~]{1,2}",
        ],
        0..16,
    )
    .prop_map(|parts| format!("/{}", parts.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn a_normalised_path_has_no_dot_segments_or_double_slashes(raw in path()) {
        match normalize_path(&raw) {
            Ok(p) => {
                prop_assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
                prop_assert!(!p.contains("//"), "{raw:?} -> {p:?}");
                for seg in p.split('/') {
                    prop_assert!(seg != "." && seg != "..", "{raw:?} -> {p:?}");
                }
            }
            Err(BadPath::AboveRoot) | Err(BadPath::BadEscape) => {}
        }
    }

    #[test]
    fn an_escape_is_two_hex_digits_or_the_path_is_refused(a in "[ -~]", b in "[ -~]") {
        let raw = format!("/x%{a}{b}");
        let hex = a.chars().all(|c| c.is_ascii_hexdigit()) && b.chars().all(|c| c.is_ascii_hexdigit());
        let got = normalize_path(&raw);
        if !hex {
            prop_assert_eq!(got, Err(BadPath::BadEscape), "{:?}", raw);
        }
    }

    #[test]
    fn a_guard_that_does_not_parse_never_admits_everyone(
        value in "[ -~]{0,40}",
        which in prop_oneof![
            Just("nginx.ingress.kubernetes.io/whitelist-source-range"),
            Just("nginx.ingress.kubernetes.io/allowlist-source-range"),
            Just("nginx.ingress.kubernetes.io/denylist-source-range"),
            Just("metalgate.io/whitelist-source-range"),
            Just("nginx.ingress.kubernetes.io/auth-url"),
        ],
        other in "[ -~]{0,20}",
    ) {
        let mut a = BTreeMap::new();
        a.insert(which.to_string(), value.clone());
        a.insert("nginx.ingress.kubernetes.io/proxy-body-size".to_string(), other);
        let (policy, problems) = from_annotations(&a);
        match &policy.access {
            Access::Everyone => prop_assert!(false, "{which}: {value:?} let everyone in"),
            Access::Denied { reason } => {
                prop_assert!(reason.contains(which), "{reason}");
                prop_assert!(!problems.is_empty());
            }
            Access::Ranges { .. } => {
                // Only when every token parsed as an address or a network.
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    prop_assert!(
                        t.parse::<ipnet::IpNet>().is_ok() || t.parse::<std::net::IpAddr>().is_ok(),
                        "{t:?} accepted in {value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn random_annotations_never_panic_and_bad_ones_are_named(
        pairs in proptest::collection::btree_map(
            prop_oneof![
                "nginx.ingress.kubernetes.io/[a-z-]{1,24}",
                "metalgate.io/[a-z-]{1,24}",
                Just("nginx.ingress.kubernetes.io/proxy-read-timeout".to_string()),
                Just("nginx.ingress.kubernetes.io/rewrite-target".to_string()),
                Just("nginx.ingress.kubernetes.io/backend-protocol".to_string()),
            ],
            "[ -~]{0,20}",
            0..6,
        )
    ) {
        let (_, problems) = from_annotations(&pairs);
        for p in problems {
            let text = format!("{p:?}");
            prop_assert!(pairs.keys().any(|k| text.contains(k.as_str())), "{text}");
        }
    }
}
