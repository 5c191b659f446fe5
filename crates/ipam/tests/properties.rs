//! Properties of the allocator under random sequences of requests and releases.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use metalgate_ipam::{Allocator, Assignment, Family, Pool, PoolSpec, Port, Request, ServiceInfo};
use proptest::prelude::*;

fn pools() -> Vec<Pool> {
    let spec = |name: &str, addrs: &[&str], auto: bool| PoolSpec {
        name: name.into(),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
        auto_assign: auto,
        avoid_buggy_ips: false,
        allocation: None,
    };
    vec![
        Pool::from_spec(&spec("a", &["10.0.0.0/29", "fd00::/125"], true)).unwrap(),
        Pool::from_spec(&spec("b", &["10.0.1.1-10.0.1.4"], false)).unwrap(),
        Pool::from_spec(&spec("c", &["10.0.2.0-10.0.2.2"], true)).unwrap(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Assign {
        svc: u8,
        families: Vec<Family>,
        requested: Option<&'static str>,
        pool: Option<&'static str>,
        sharing: Option<&'static str>,
        ports: Vec<u16>,
    },
    Release {
        svc: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let families = prop_oneof![
        Just(vec![Family::V4]),
        Just(vec![Family::V6]),
        Just(vec![Family::V4, Family::V6])
    ];
    let requested = prop_oneof![4 => Just(None), 1 => Just(Some("10.0.0.3")), 1 => Just(Some("10.0.1.2")), 1 => Just(Some("10.9.9.9"))];
    let pool = prop_oneof![4 => Just(None), 1 => Just(Some("a")), 1 => Just(Some("b")), 1 => Just(Some("nope"))];
    let sharing = prop_oneof![2 => Just(None), 1 => Just(Some("k1")), 1 => Just(Some("k2"))];
    let ports = proptest::sample::subsequence(vec![53u16, 80, 443], 1..=2);
    prop_oneof![
        4 => (0u8..12, families, requested, pool, sharing, ports).prop_map(|(svc, families, requested, pool, sharing, ports)| Op::Assign { svc, families, requested, pool, sharing, ports }),
        1 => (0u8..12).prop_map(|svc| Op::Release { svc }),
    ]
}

fn request(
    families: &[Family],
    requested: Option<&str>,
    pool: Option<&str>,
    sharing: Option<&str>,
    ports: &[u16],
) -> Request {
    let requested: Vec<IpAddr> = requested
        .map(|r| vec![r.parse().unwrap()])
        .unwrap_or_default();
    Request {
        service: ServiceInfo {
            namespace: "default".into(),
            ..Default::default()
        },
        families: if requested.is_empty() {
            families.to_vec()
        } else {
            vec![Family::V4]
        },
        requested,
        pool: pool.map(str::to_string),
        sharing_key: sharing.map(str::to_string),
        ports: ports
            .iter()
            .map(|p| Port {
                protocol: "TCP".into(),
                port: *p,
            })
            .collect(),
    }
}

fn snapshot(a: &Allocator) -> BTreeMap<String, Assignment> {
    a.assignments().map(|(k, v)| (k.clone(), v)).collect()
}

fn check_invariants(
    a: &Allocator,
    requests: &HashMap<String, Request>,
) -> Result<(), TestCaseError> {
    let pools: HashMap<String, Pool> = a.pools().map(|p| (p.name.clone(), p.clone())).collect();
    let mut by_ip: HashMap<IpAddr, Vec<String>> = HashMap::new();
    for (k, asg) in a.assignments() {
        for ip in &asg.ips {
            prop_assert!(
                pools[&asg.pool].contains(*ip),
                "{k} holds {ip}, outside pool {}",
                asg.pool
            );
            by_ip.entry(*ip).or_default().push(k.clone());
        }
    }
    for (ip, holders) in by_ip {
        if holders.len() > 1 {
            for (i, x) in holders.iter().enumerate() {
                for y in &holders[i + 1..] {
                    let (rx, ry) = (&requests[x], &requests[y]);
                    prop_assert!(
                        rx.sharing_key.is_some() && rx.sharing_key == ry.sharing_key,
                        "{ip} held by {x} and {y} without a common sharing key"
                    );
                    prop_assert!(
                        !rx.ports.iter().any(|p| ry.ports.contains(p)),
                        "{ip} shared by {x} and {y} on overlapping ports"
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn allocations_stay_sound_idempotent_and_rebuildable(ops in proptest::collection::vec(op(), 1..60)) {
        let mut a = Allocator::new(pools());
        let mut requests: HashMap<String, Request> = HashMap::new();
        for op in ops {
            match op {
                Op::Assign { svc, families, requested, pool, sharing, ports } => {
                    let key = format!("default/s{svc}");
                    let req = request(&families, requested, pool, sharing, &ports);
                    let first = a.assign(&key, &req);
                    requests.insert(key.clone(), req.clone());
                    if let Ok(asg) = &first {
                        prop_assert_eq!(asg.ips.iter().map(|ip| Family::of(*ip)).collect::<Vec<_>>(), req.families.clone());
                        // Asking again changes nothing.
                        let before = snapshot(&a);
                        let again = a.assign(&key, &req);
                        prop_assert_eq!(again.as_ref(), Ok(asg));
                        prop_assert_eq!(snapshot(&a), before);
                    } else {
                        prop_assert!(a.assignment(&key).is_none(), "a failed assign leaves nothing held");
                    }
                }
                Op::Release { svc } => {
                    a.release(&format!("default/s{svc}"));
                }
            }
            check_invariants(&a, &requests)?;
        }
        // A restart rebuilds from the assignments (as the controller does from Service status).
        let held = snapshot(&a);
        let mut rebuilt = Allocator::new(pools());
        for (k, asg) in &held {
            let orig = &requests[k];
            let req = Request {
                requested: asg.ips.clone(),
                families: asg.ips.iter().map(|ip| Family::of(*ip)).collect(),
                pool: Some(asg.pool.clone()),
                ..orig.clone()
            };
            let got = rebuilt.assign(k, &req);
            prop_assert_eq!(got.as_ref(), Ok(asg), "rebuilding {}", k);
        }
        prop_assert_eq!(snapshot(&rebuilt), held);
    }
}

#[test]
fn exhaustion_requested_ips_sharing_and_release() {
    let mut a = Allocator::new(pools());
    let v4 =
        |ports: &[u16], sharing: Option<&str>| request(&[Family::V4], None, None, sharing, ports);
    // Pool a has 8 IPv4 addresses, c has 3 (a comes first by name; both auto-assign).
    for i in 0..11 {
        a.assign(&format!("default/s{i}"), &v4(&[80], None))
            .unwrap();
    }
    let err = a.assign("default/s11", &v4(&[80], None)).unwrap_err();
    assert_eq!(err.to_string(), "no available IPs: pool(s) a, c exhausted");
    let freed = a.release("default/s3").unwrap();
    let again = a.assign("default/s11", &v4(&[80], None)).unwrap();
    assert_eq!(again.ips, freed.ips, "a released IP is reused");

    // Requested IPs: in use, not in any pool, in a pool that does not auto-assign.
    let taken = a.assignment("default/s0").unwrap().ips[0];
    let err = a
        .assign(
            "default/x",
            &Request {
                requested: vec![taken],
                ..v4(&[80], None)
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("IP {taken} is already in use by default/s0")
    );
    let err = a
        .assign(
            "default/x",
            &request(&[Family::V4], Some("10.9.9.9"), None, None, &[80]),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "IP 10.9.9.9 is not in any pool");
    assert_eq!(
        a.assign(
            "default/x",
            &request(&[Family::V4], Some("10.0.1.2"), None, None, &[80])
        )
        .unwrap()
        .pool,
        "b"
    );

    // Sharing: same key, distinct ports share; overlapping ports do not.
    let mut s = Allocator::new(pools());
    let one = s
        .assign("default/dns-tcp", &v4(&[53], Some("dns")))
        .unwrap();
    let two = s
        .assign("default/dns-udp", &v4(&[80], Some("dns")))
        .unwrap();
    assert_eq!(one.ips, two.ips);
    let three = s
        .assign("default/dns-clash", &v4(&[53], Some("dns")))
        .unwrap();
    assert_ne!(three.ips, one.ips);
}

#[test]
fn shrinking_a_pool_clears_only_what_falls_outside() {
    let mut a = Allocator::new(pools());
    let req = request(&[Family::V4], None, Some("a"), None, &[80]);
    for i in 0..8 {
        a.assign(&format!("default/s{i}"), &req).unwrap();
    }
    let mut shrunk = pools();
    shrunk[0] = Pool::from_spec(&PoolSpec {
        name: "a".into(),
        addresses: vec!["10.0.0.0/30".into()],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    })
    .unwrap();
    let before = snapshot(&a);
    let cleared = a.set_pools(shrunk);
    assert_eq!(cleared.len(), 4);
    for (k, asg) in snapshot(&a) {
        assert_eq!(before[&k], asg, "{k} kept its IP");
    }
    assert_eq!(a.stats("a").assigned_v4, 4);
    assert_eq!(a.stats("a").available_v4, 0);
}

#[test]
fn service_allocation_namespaces_selectors_and_priority() {
    use metalgate_ipam::{Requirement, Selector, ServiceAllocation};
    let spec = |name: &str, addr: &str, alloc: Option<ServiceAllocation>| {
        Pool::from_spec(&PoolSpec {
            name: name.into(),
            addresses: vec![addr.into()],
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: alloc,
        })
        .unwrap()
    };
    let pools = vec![
        spec("general", "10.0.0.0/30", None),
        spec(
            "team-a",
            "10.0.1.0/30",
            Some(ServiceAllocation {
                priority: Some(10),
                namespaces: vec!["team-a".into()],
                ..Default::default()
            }),
        ),
        spec(
            "gold",
            "10.0.2.0/30",
            Some(ServiceAllocation {
                priority: Some(1),
                namespace_selectors: vec![Selector(vec![Requirement::In(
                    "tier".into(),
                    vec!["gold".into()],
                )])],
                service_selectors: vec![Selector(vec![Requirement::Exists("public".into())])],
                ..Default::default()
            }),
        ),
    ];
    let mut a = Allocator::new(pools);
    let req = |ns: &str, ns_tier: Option<&str>, public: bool| Request {
        service: ServiceInfo {
            namespace: ns.into(),
            namespace_labels: ns_tier
                .map(|t| [("tier".to_string(), t.to_string())].into())
                .unwrap_or_default(),
            labels: if public {
                [("public".to_string(), "yes".to_string())].into()
            } else {
                Default::default()
            },
        },
        families: vec![Family::V4],
        ..Default::default()
    };
    assert_eq!(
        a.assign("team-a/x", &req("team-a", None, false))
            .unwrap()
            .pool,
        "team-a",
        "a pool with a priority comes before one without"
    );
    assert_eq!(
        a.assign("other/x", &req("other", None, false))
            .unwrap()
            .pool,
        "general",
        "team-a's pool is not for other namespaces"
    );
    assert_eq!(
        a.assign("shop/x", &req("shop", Some("gold"), true))
            .unwrap()
            .pool,
        "gold",
        "priority 1 wins when both selectors match"
    );
    assert_eq!(
        a.assign("shop/y", &req("shop", Some("gold"), false))
            .unwrap()
            .pool,
        "general",
        "the service selector must match too"
    );
    let err = a
        .assign(
            "z/x",
            &Request {
                pool: Some("team-a".into()),
                ..req("z", None, false)
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pool \"team-a\" does not accept this Service (serviceAllocation)"
    );
}
