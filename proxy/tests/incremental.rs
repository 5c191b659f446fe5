//! The table a [`TableBuilder`] makes from its last one is the table built afresh: after each of
//! a list of changes a watch would deliver, and after random sequences of them.

mod tables;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use metalgate_proxy::metrics::RouteStats;
use metalgate_proxy::table::{ClassSettings, RouteTable, Snapshot, TableBuilder};
use tables::*;

/// What a user can observe of a table: where each host and path goes (Service and endpoints),
/// the certificates, and the problems reported.
fn observed(t: &RouteTable) -> String {
    let mut out = format!("hosts {:?}\n", t.hosts());
    for host in [
        "a.example",
        "b.example",
        "c.example",
        "tls.example",
        "other.example",
    ] {
        for path in ["/", "/x", "/y"] {
            let to = t.find(host, path).map(|m| {
                let eps: Vec<String> = m
                    .backend
                    .endpoints
                    .iter()
                    .map(|e| e.addr.to_string())
                    .collect();
                format!("{} {eps:?}", m.backend.service)
            });
            out += &format!(
                "{host}{path} -> {to:?} tls {}\n",
                t.certs.get(host).is_some()
            );
        }
    }
    for p in &t.problems {
        out += &format!("problem {p} ({})\n", p.reason);
    }
    out
}

#[test]
fn a_table_built_from_the_last_one_is_the_table_built_afresh() {
    let cert = rcgen::generate_simple_self_signed(vec!["tls.example".to_string()]).unwrap();
    let secret = |name: &str, rv: &str, crt: &str, key: &str| -> Arc<Secret> {
        yaml(&format!(
            "metadata: {{name: {name}, namespace: default, resourceVersion: \"{rv}\"}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}",
            indent(crt),
            indent(key)
        ))
    };
    let tls_ing: Arc<Ingress> = yaml(
        "metadata: {name: tls, namespace: default, creationTimestamp: \"2024-01-05T00:00:00Z\"}\nspec:\n  ingressClassName: metalgate\n  tls: [{hosts: [tls.example], secretName: cert}]\n  rules:\n  - host: tls.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s1, port: {number: 80}}}}]}",
    );
    let a = ingress(
        "a",
        "2024-01-02T00:00:00Z",
        "a.example",
        &[("Prefix", "/", "s1")],
    );
    let b = ingress(
        "b",
        "2024-01-03T00:00:00Z",
        "b.example",
        &[("Prefix", "/x", "s2")],
    );
    let mut snap = snapshot(vec![a, b, tls_ing], &["s1", "s2"]);
    snap.secrets = vec![secret(
        "cert",
        "1",
        &cert.cert.pem(),
        &cert.signing_key.serialize_pem(),
    )];
    let s = ClassSettings::default();

    // Each step changes the snapshot as a watch would: a new object for what changed.
    type Step<'a> = Box<dyn Fn(&mut Snapshot) + 'a>;
    let steps: Vec<(&str, Step)> = vec![
        ("nothing changes", Box::new(|_| {})),
        (
            "an Ingress points elsewhere",
            Box::new(|s| {
                s.ingresses[0] = ingress(
                    "a",
                    "2024-01-02T00:00:00Z",
                    "a.example",
                    &[("Prefix", "/", "s2")],
                );
            }),
        ),
        (
            "a Service's endpoints change",
            Box::new(|s| {
                s.slices[1] = service("default", "s2", &["10.9.9.9", "10.9.9.8"]).1;
            }),
        ),
        (
            "an older Ingress claims a taken path",
            Box::new(|s| {
                s.ingresses.push(ingress(
                    "c",
                    "2024-01-01T00:00:00Z",
                    "b.example",
                    &[("Prefix", "/x", "s1")],
                ));
            }),
        ),
        (
            "a Service goes away",
            Box::new(|s| {
                s.services.remove(0);
                s.slices.remove(0);
            }),
        ),
        (
            "the Service comes back",
            Box::new(|s| {
                let (svc, slice) = service("default", "s1", &["10.7.7.7"]);
                s.services.push(svc);
                s.slices.push(slice);
            }),
        ),
        (
            "the certificate's Secret breaks",
            Box::new(|s| {
                s.secrets[0] = secret("cert", "2", "nonsense", "nonsense");
            }),
        ),
        (
            "an Ingress goes away",
            Box::new(|s| {
                s.ingresses
                    .retain(|i| i.metadata.name.as_deref() != Some("c"));
            }),
        ),
    ];
    let mut builder = TableBuilder::new(s.clone());
    let stats = |i: &str, s: &str| Arc::new(RouteStats::new(i, s));
    let mut prev = builder.build(&snap, &stats);
    for (what, step) in steps {
        let before = prev.find("b.example", "/x").map(|m| m.backend.clone());
        step(&mut snap);
        let next = builder.build(&snap, &stats);
        let afresh = RouteTable::build(&snap, &s, None);
        assert_eq!(observed(&next), observed(&afresh), "after: {what}");
        if what == "nothing changes" {
            // Reused, not compiled again: the very backend of the last table.
            let after = next.find("b.example", "/x").map(|m| m.backend.clone());
            assert!(
                Arc::ptr_eq(&before.unwrap(), &after.unwrap()),
                "{what}: compiled again"
            );
        }
        prev = next;
    }
}

mod random_changes {
    //! A table the builder makes from its last one is the table built afresh, after random
    //! sequences of changes: Ingresses (hosts, wildcards, rules without host, default backends,
    //! TLS, classes) claiming and releasing the same paths, Services and EndpointSlices coming
    //! and going, certificates breaking, IngressClasses changing which Ingresses are ours.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const HOSTS: [&str; 4] = ["a.example", "b.example", "*.w.example", ""];
    const PATHS: [&str; 3] = ["/", "/x", "/x/y"];
    const KINDS: [&str; 3] = ["Prefix", "Exact", "ImplementationSpecific"];
    const CLASSES: [&str; 4] = ["metalgate", "mine", "other", ""];

    #[derive(Debug, Clone)]
    enum Step {
        PutIngress {
            name: u8,
            created: u8,
            class: u8,
            /// (host, path, kind, service)
            rules: Vec<(u8, u8, u8, u8)>,
            default: Option<u8>,
            tls: Option<(u8, u8)>,
        },
        DeleteIngress(u8),
        PutService {
            name: u8,
            port_80: bool,
            addr: u8,
        },
        DeleteService(u8),
        PutSlice {
            name: u8,
            addr: u8,
        },
        PutSecret {
            name: u8,
            good: bool,
        },
        DeleteSecret(u8),
        /// No IngressClass `mine`, one of ours, or one of ours that is the default.
        Class(u8),
        /// The same objects again.
        Nothing,
    }

    fn step() -> impl Strategy<Value = Step> {
        let rule = (0..4u8, 0..3u8, 0..3u8, 0..3u8);
        prop_oneof![
            4 => (
                0..5u8,
                0..3u8,
                0..4u8,
                proptest::collection::vec(rule, 0..4),
                proptest::option::of(0..3u8),
                proptest::option::of((0..2u8, 0..4u8)),
            )
                .prop_map(|(name, created, class, rules, default, tls)| Step::PutIngress {
                    name,
                    created,
                    class,
                    rules,
                    default,
                    tls
                }),
            1 => (0..5u8).prop_map(Step::DeleteIngress),
            2 => (0..3u8, any::<bool>(), 0..3u8)
                .prop_map(|(name, port_80, addr)| Step::PutService { name, port_80, addr }),
            1 => (0..3u8).prop_map(Step::DeleteService),
            1 => (0..3u8, 0..3u8).prop_map(|(name, addr)| Step::PutSlice { name, addr }),
            1 => (0..2u8, any::<bool>()).prop_map(|(name, good)| Step::PutSecret { name, good }),
            1 => (0..2u8).prop_map(Step::DeleteSecret),
            1 => (0..3u8).prop_map(Step::Class),
            1 => Just(Step::Nothing),
        ]
    }

    #[derive(Default)]
    struct World {
        ingresses: BTreeMap<u8, Arc<Ingress>>,
        services: BTreeMap<u8, Arc<Service>>,
        slices: BTreeMap<u8, Arc<EndpointSlice>>,
        secrets: BTreeMap<u8, Arc<Secret>>,
        class: Option<Arc<IngressClass>>,
        version: u32,
    }

    impl World {
        fn apply(&mut self, step: &Step, cert: &(String, String)) {
            self.version += 1;
            let rv = self.version;
            match step {
                Step::PutIngress {
                    name,
                    created,
                    class,
                    rules,
                    default,
                    tls,
                } => {
                    let class = match CLASSES[*class as usize] {
                        "" => String::new(),
                        c => format!("  ingressClassName: {c}\n"),
                    };
                    let backend =
                        |s: u8| format!("{{service: {{name: s{s}, port: {{number: 80}}}}}}");
                    let mut spec = class;
                    if let Some(d) = default {
                        spec += &format!("  defaultBackend: {}\n", backend(*d));
                    }
                    if let Some((secret, host)) = tls {
                        let hosts = match HOSTS[*host as usize] {
                            "" => String::new(),
                            h => format!("hosts: [\"{h}\"], "),
                        };
                        spec += &format!("  tls: [{{{hosts}secretName: c{secret}}}]\n");
                    }
                    if !rules.is_empty() {
                        spec += "  rules:\n";
                        for (h, p, k, s) in rules {
                            let host = match HOSTS[*h as usize] {
                                "" => String::new(),
                                h => format!("host: \"{h}\", "),
                            };
                            spec += &format!(
                                "  - {{{host}http: {{paths: [{{path: \"{}\", pathType: {}, backend: {}}}]}}}}\n",
                                PATHS[*p as usize],
                                KINDS[*k as usize],
                                backend(*s)
                            );
                        }
                    }
                    self.ingresses.insert(
                        *name,
                        yaml(&format!(
                            "metadata: {{name: i{name}, namespace: default, resourceVersion: \"{rv}\", creationTimestamp: \"2024-01-0{}T00:00:00Z\"}}\nspec:\n{spec}",
                            created + 1
                        )),
                    );
                }
                Step::DeleteIngress(n) => {
                    self.ingresses.remove(n);
                }
                Step::PutService {
                    name,
                    port_80,
                    addr,
                } => {
                    let port = if *port_80 { 80 } else { 81 };
                    self.services.insert(
                        *name,
                        yaml(&format!(
                            "metadata: {{name: s{name}, namespace: default, resourceVersion: \"{rv}\"}}\nspec: {{ports: [{{name: http, port: {port}}}]}}"
                        )),
                    );
                    self.slices.insert(
                        *name,
                        service(
                            "default",
                            &format!("s{name}"),
                            &[&format!("10.0.{name}.{addr}")],
                        )
                        .1,
                    );
                }
                Step::DeleteService(n) => {
                    self.services.remove(n);
                    self.slices.remove(n);
                }
                Step::PutSlice { name, addr } => {
                    let addrs = [format!("10.1.{name}.{addr}"), format!("10.2.{name}.{addr}")];
                    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
                    self.slices
                        .insert(*name, service("default", &format!("s{name}"), &addrs).1);
                }
                Step::PutSecret { name, good } => {
                    let (crt, key) = if *good {
                        (cert.0.clone(), cert.1.clone())
                    } else {
                        ("nonsense".to_string(), "nonsense".to_string())
                    };
                    self.secrets.insert(
                        *name,
                        yaml(&format!(
                            "metadata: {{name: c{name}, namespace: default, resourceVersion: \"{rv}\"}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}",
                            indent(&crt),
                            indent(&key)
                        )),
                    );
                }
                Step::DeleteSecret(n) => {
                    self.secrets.remove(n);
                }
                Step::Class(c) => {
                    self.class = match c {
                        0 => None,
                        _ => Some(yaml(&format!(
                            "metadata: {{name: mine, annotations: {{ingressclass.kubernetes.io/is-default-class: \"{}\"}}}}\nspec: {{controller: {}}}",
                            *c == 2,
                            metalgate_proxy::table::CONTROLLER
                        ))),
                    };
                }
                Step::Nothing => {}
            }
        }

        fn snapshot(&self) -> Snapshot {
            Snapshot {
                ingresses: self.ingresses.values().cloned().collect(),
                classes: self.class.iter().cloned().collect(),
                services: self.services.values().cloned().collect(),
                slices: self.slices.values().cloned().collect(),
                secrets: self.secrets.values().cloned().collect(),
            }
        }
    }

    /// Everything a request or an operator can see of a table.
    fn seen(t: &RouteTable) -> String {
        let mut out = format!(
            "hosts {:?}, {} routes, {} ingresses\n",
            t.hosts(),
            t.route_count(),
            t.ingress_count()
        );
        for host in ["a.example", "b.example", "x.w.example", "other.example"] {
            for path in ["/", "/x", "/x/y", "/x/y/z", "/q"] {
                let to = t.find(host, path).map(|m| {
                    let eps: Vec<String> = m
                        .backend
                        .endpoints
                        .iter()
                        .map(|e| e.addr.to_string())
                        .collect();
                    format!(
                        "{} via {} {eps:?} tls {}",
                        m.backend.service, m.backend.ingress, m.tls_host
                    )
                });
                out += &format!("{host}{path} -> {to:?}\n");
            }
            out += &format!("{host} certificate {}\n", t.certs.get(host).is_some());
        }
        for p in &t.problems {
            out += &format!("problem {p} ({})\n", p.reason);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300)
        ))]

        #[test]
        fn after_any_changes_the_table_is_the_one_built_afresh(
            steps in proptest::collection::vec(step(), 1..30)
        ) {
            let cert = rcgen::generate_simple_self_signed(vec![
                "a.example".to_string(),
                "*.w.example".to_string(),
            ])
            .unwrap();
            let cert = (cert.cert.pem(), cert.signing_key.serialize_pem());
            let settings = ClassSettings::default();
            let stats = |i: &str, s: &str| Arc::new(RouteStats::new(i, s));
            let mut world = World::default();
            let mut builder = TableBuilder::new(settings.clone());
            for (i, step) in steps.iter().enumerate() {
                world.apply(step, &cert);
                let snap = world.snapshot();
                let next = builder.build(&snap, &stats);
                let afresh = RouteTable::build(&snap, &settings, None);
                prop_assert_eq!(seen(&next), seen(&afresh), "after step {} {:?}", i, step);
            }
        }
    }
}
