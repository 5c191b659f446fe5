//! Table-driven tests of route matching (pure: no sockets): the path examples of the Kubernetes
//! Ingress documentation, hosts, wildcards, classes, conflicts, endpoints and rewrites.

mod tables;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use metalgate_proxy::table::{ClassSettings, RouteTable, Snapshot};
use tables::*;

fn routed(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.find(host, path).map(|m| m.backend.service.name.clone())
}

#[test]
fn kubernetes_documentation_path_examples() {
    // (paths as (type, path)), request path, expected index of the matching path or None.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<usize>,
    );
    let cases: &[Case] = &[
        (&[("Prefix", "/")], "/anything/at/all", Some(0)),
        (&[("Exact", "/foo")], "/foo", Some(0)),
        (&[("Exact", "/foo")], "/bar", None),
        (&[("Exact", "/foo")], "/foo/", None),
        (&[("Exact", "/foo/")], "/foo", None),
        (&[("Prefix", "/foo")], "/foo", Some(0)),
        (&[("Prefix", "/foo")], "/foo/", Some(0)),
        (&[("Prefix", "/foo/")], "/foo", Some(0)),
        (&[("Prefix", "/foo/")], "/foo/", Some(0)),
        (&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/aaa/bbb",
            Some(2),
        ),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/ccc",
            Some(0),
        ),
        (&[("Prefix", "/aaa")], "/ccc", None),
        (&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
        // ImplementationSpecific is served as Prefix.
        (&[("ImplementationSpecific", "/api")], "/api/v1", Some(0)),
        (&[("ImplementationSpecific", "/api")], "/apiv1", None),
    ];
    for (paths, request, want) in cases {
        let names: Vec<String> = (0..paths.len()).map(|i| format!("svc-{i}")).collect();
        let ps: Vec<(&str, &str, &str)> = paths
            .iter()
            .zip(&names)
            .map(|((t, p), n)| (*t, *p, n.as_str()))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let snap = snapshot(
            vec![ingress("i", "2026-01-01T00:00:00Z", "foo.example", &ps)],
            &refs,
        );
        let t = RouteTable::build(&snap, &ClassSettings::default(), None);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let got = routed(&t, "foo.example", request);
        let want = want.map(|i| names[i].clone());
        assert_eq!(got, want, "paths {paths:?}, request {request}");
    }
}

#[test]
fn hosts_are_case_insensitive_ignore_the_port_and_wildcards_cover_one_label() {
    let snap = snapshot(
        vec![
            ingress(
                "a",
                "2026-01-01T00:00:00Z",
                "podinfo.example",
                &[("Prefix", "/", "podinfo")],
            ),
            ingress(
                "b",
                "2026-01-01T00:00:01Z",
                "*.apps.example",
                &[("Prefix", "/", "wild")],
            ),
            ingress(
                "c",
                "2026-01-01T00:00:02Z",
                "exact.apps.example",
                &[("Prefix", "/", "exact")],
            ),
        ],
        &["podinfo", "wild", "exact"],
    );
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let cases = [
        ("podinfo.example", Some("podinfo")),
        ("PodInfo.Example:8080", Some("podinfo")),
        ("podinfo.example.", Some("podinfo")),
        ("x.apps.example", Some("wild")),
        ("EXACT.apps.example", Some("exact")),
        ("a.b.apps.example", None),
        ("apps.example", None),
        ("other.example", None),
    ];
    for (host, want) in cases {
        assert_eq!(routed(&t, host, "/").as_deref(), want, "host {host}");
    }
}

#[test]
fn a_host_header_normalises_to_its_lowercase_name_without_port_or_final_dot() {
    for (raw, want) in [
        ("PodInfo.Example:8080", "podinfo.example"),
        ("podinfo.example.", "podinfo.example"),
        (" podinfo.example ", "podinfo.example"),
        ("podinfo.example.:80", "podinfo.example"),
        ("192.168.56.200:80", "192.168.56.200"),
        ("[fd00::1]:8443", "fd00::1"),
        ("[FD00::1]", "fd00::1"),
        // More than one colon without brackets: an IPv6 address, kept whole.
        ("fd00::1", "fd00::1"),
        ("a:b:c", "a:b:c"),
        (":80", ""),
        ("", ""),
    ] {
        assert_eq!(metalgate_proxy::table::normalize_host(raw), want, "{raw:?}");
    }
}

#[test]
fn rules_without_host_and_the_default_backend() {
    let catch_all = ingress(
        "any",
        "2026-01-01T00:00:00Z",
        "",
        &[("Prefix", "/api", "api")],
    );
    let with_default: Arc<Ingress> = yaml(
        "metadata: {name: d, namespace: default, creationTimestamp: \"2026-01-01T00:00:01Z\"}\nspec:\n  ingressClassName: metalgate\n  defaultBackend: {service: {name: fallback, port: {number: 80}}}",
    );
    let snap = snapshot(vec![catch_all, with_default], &["api", "fallback"]);
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert_eq!(
        routed(&t, "whatever.example", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(
        routed(&t, "whatever.example", "/web").as_deref(),
        Some("fallback")
    );

    // Without a default backend an unknown host matches nothing (the proxy answers 404).
    let snap = snapshot(
        vec![ingress(
            "h",
            "2026-01-01T00:00:00Z",
            "known.example",
            &[("Prefix", "/", "api")],
        )],
        &["api"],
    );
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert!(t.find("unknown.example", "/").is_none());
}

#[test]
fn the_oldest_ingress_wins_a_conflict_and_the_newer_is_reported() {
    let newer = ingress(
        "newer",
        "2026-03-01T00:00:00Z",
        "c.example",
        &[("Prefix", "/", "new")],
    );
    let older = ingress(
        "older",
        "2026-01-01T00:00:00Z",
        "c.example",
        &[("Prefix", "/", "old")],
    );
    let snap = snapshot(vec![newer, older], &["new", "old"]);
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert_eq!(routed(&t, "c.example", "/").as_deref(), Some("old"));
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
    let p = &t.problems[0];
    assert_eq!(p.ingress.name, "newer");
    assert_eq!(p.field, "spec.rules[0].http.paths[0].path");
    assert!(p.message.contains("default/older"), "{}", p.message);
}

#[test]
fn only_ingresses_of_our_class() {
    let mk = |name: &str, class: Option<&str>| -> Arc<Ingress> {
        let cls = class
            .map(|c| format!("  ingressClassName: {c}\n"))
            .unwrap_or_default();
        yaml(&format!(
            "metadata: {{name: {name}, namespace: default}}\nspec:\n{cls}  rules:\n  - host: {name}.example\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}"
        ))
    };
    let mut snap = snapshot(
        vec![
            mk("ours", Some("metalgate")),
            mk("theirs", Some("traefik")),
            mk("classless", None),
            mk("nginxed", Some("nginx")),
            mk("custom", Some("edge")),
        ],
        &["s"],
    );
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    let served = |t: &RouteTable| {
        ["ours", "theirs", "classless", "nginxed", "custom"]
            .into_iter()
            .filter(|n| t.find(&format!("{n}.example"), "/").is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(served(&t), ["ours"]);

    // Our IngressClass named "edge", marked default: class-less Ingresses become ours too.
    let class: Arc<IngressClass> = yaml(
        "metadata: {name: edge, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}\nspec: {controller: metalgate.io/ingress-controller}",
    );
    snap.classes.push(class);
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert_eq!(served(&t), ["ours", "classless", "custom"]);

    let migrating = ClassSettings {
        accept_nginx: true,
        ..Default::default()
    };
    let t = RouteTable::build(&snap, &migrating, None);
    assert_eq!(served(&t), ["ours", "classless", "nginxed", "custom"]);
}

#[test]
fn ready_endpoints_and_terminating_ones_only_as_a_last_resort() {
    let svc: Arc<Service> = yaml(
        "metadata: {name: web, namespace: default}\nspec: {ports: [{name: http, port: 80}, {name: admin, port: 9000}]}",
    );
    let slice = |eps: &str| -> Arc<EndpointSlice> {
        yaml(&format!(
            "metadata: {{name: web-x, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}, {{name: admin, port: 9090}}]\nendpoints:\n{eps}"
        ))
    };
    let ing = ingress(
        "i",
        "2026-01-01T00:00:00Z",
        "w.example",
        &[("Prefix", "/", "web")],
    );
    let eps_of = |slice: Arc<EndpointSlice>| {
        let snap = Snapshot {
            ingresses: vec![ing.clone()],
            services: vec![svc.clone()],
            slices: vec![slice],
            ..Default::default()
        };
        let t = RouteTable::build(&snap, &ClassSettings::default(), None);
        let m = t.find("w.example", "/").expect("routed");
        let mut v: Vec<String> = m
            .backend
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        eps_of(slice(
            "- {addresses: [10.0.0.1], conditions: {ready: true}}\n- {addresses: [10.0.0.2], conditions: {ready: false}}\n- {addresses: [10.0.0.3], conditions: {ready: false, serving: true, terminating: true}}\n- {addresses: [10.0.0.4]}"
        )),
        ["10.0.0.1:8080", "10.0.0.4:8080"],
        "ready (or unknown) endpoints, on the port named like the Service port"
    );
    assert_eq!(
        eps_of(slice(
            "- {addresses: [10.0.0.2], conditions: {ready: false}}\n- {addresses: [10.0.0.3], conditions: {ready: false, serving: true, terminating: true}}"
        )),
        ["10.0.0.3:8080"],
        "terminating-but-serving when nothing is ready"
    );
    assert!(
        eps_of(slice(
            "- {addresses: [10.0.0.2], conditions: {ready: false}}"
        ))
        .is_empty()
    );
}

#[test]
fn missing_service_and_bad_fields_are_named() {
    let bad: Arc<Ingress> = yaml(
        "metadata: {name: bad, namespace: default}\nspec:\n  ingressClassName: metalgate\n  rules:\n  - host: \"a.*.example\"\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n  - host: ok.example\n    http:\n      paths:\n      - {path: nope, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}\n      - {path: /x, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}\n      - {path: /y, pathType: Prefix, backend: {service: {name: s, port: {number: 81}}}}\n      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}",
    );
    let snap = snapshot(vec![bad], &["s"]);
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    let fields: Vec<(&str, &str)> = t
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.reason))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.rules[0].host", "InvalidHost"),
            ("spec.rules[1].http.paths[0].path", "InvalidPath"),
            (
                "spec.rules[1].http.paths[1].backend.service.name",
                "ServiceNotFound"
            ),
            (
                "spec.rules[1].http.paths[2].backend.service.port",
                "ServicePortNotFound"
            ),
        ]
    );
    // The good rule still works next to the bad ones; the broken backends answer 503 (no
    // endpoints), they do not fall through to another route.
    assert_eq!(routed(&t, "ok.example", "/").as_deref(), Some("s"));
    let ghost = t.find("ok.example", "/x/1").expect("route kept");
    assert!(ghost.backend.endpoints.is_empty());
}

#[test]
fn rewrite_target_with_and_without_groups() {
    let ing: Arc<Ingress> = yaml(
        "metadata: {name: rw, namespace: default, annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$2}}\nspec:\n  ingressClassName: metalgate\n  rules:\n  - host: rw.example\n    http: {paths: [{path: \"/something(/|$)(.*)\", pathType: ImplementationSpecific, backend: {service: {name: s, port: {number: 80}}}}]}",
    );
    let plain: Arc<Ingress> = yaml(
        "metadata: {name: plain, namespace: default, annotations: {metalgate.io/rewrite-target: /}}\nspec:\n  ingressClassName: metalgate\n  rules:\n  - host: plain.example\n    http: {paths: [{path: /app, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}",
    );
    let snap = snapshot(vec![ing, plain], &["s"]);
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let up = |h: &str, p: &str| t.find(h, p).and_then(|m| m.upstream_path);
    assert_eq!(
        up("rw.example", "/something/new/x").as_deref(),
        Some("/new/x")
    );
    assert_eq!(up("rw.example", "/something").as_deref(), Some("/"));
    assert_eq!(up("plain.example", "/app/deep").as_deref(), Some("/"));
    assert!(t.find("plain.example", "/other").is_none());
}

#[test]
fn certificates_by_host_and_bad_secrets_named() {
    let cert = rcgen::generate_simple_self_signed(vec!["secure.example".to_string()]).unwrap();
    let good: Arc<Secret> = yaml(&format!(
        "metadata: {{name: good, namespace: default, resourceVersion: \"1\"}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}",
        indent(&cert.cert.pem()),
        indent(&cert.signing_key.serialize_pem())
    ));
    let broken: Arc<Secret> = yaml(
        "metadata: {name: broken, namespace: default}\ntype: kubernetes.io/tls\nstringData: {tls.crt: nonsense, tls.key: nonsense}",
    );
    let ing: Arc<Ingress> = yaml(
        "metadata: {name: tls, namespace: default}\nspec:\n  ingressClassName: metalgate\n  tls:\n  - {hosts: [secure.example, \"*.wild.example\"], secretName: good}\n  - {hosts: [broken.example], secretName: broken}\n  - {hosts: [missing.example], secretName: missing}\n  rules:\n  - host: secure.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}",
    );
    let mut snap = snapshot(vec![ing], &["s"]);
    snap.secrets = vec![good, broken];
    let t = RouteTable::build(&snap, &ClassSettings::default(), None);
    assert!(t.certs.get("SECURE.example").is_some());
    assert!(t.certs.get("a.wild.example").is_some());
    assert!(t.certs.get("broken.example").is_none());
    assert!(t.find("secure.example", "/").expect("routed").tls_host);
    let fields: Vec<&str> = t.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["spec.tls[1].secretName", "spec.tls[2].secretName"]);
    assert!(t.problems[0].message.contains("default/broken"));
    assert!(t.problems[1].message.contains("not found"));
}
