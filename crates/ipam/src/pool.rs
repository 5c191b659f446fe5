//! Address pools: parsing and validating MetalLB's `addresses` (CIDRs and `a-b` ranges), and
//! which Services a pool serves.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// An inclusive range of addresses of one family, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Family.
    pub family: Family,
    /// First address.
    pub first: u128,
    /// Last address (inclusive).
    pub last: u128,
}

/// An address as an integer.
pub fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

/// An integer as an address of a family.
pub fn from_int(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((n as u32).into()),
        Family::V6 => IpAddr::V6(n.into()),
    }
}

impl Range {
    /// Whether it holds an address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.first..=self.last).contains(&to_int(ip))
    }

    /// How many addresses (saturating).
    pub fn len(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Never empty (a range holds its first address).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }
}

/// A problem with a pool, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Pool name.
    pub pool: String,
    /// Field path, e.g. `spec.addresses[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Parse one `addresses` entry: a CIDR or an `a-b` range.
pub fn parse_range(s: &str) -> Result<Range, String> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address {:?} in range {s:?}", a.trim()))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address {:?} in range {s:?}", b.trim()))?;
        if Family::of(a) != Family::of(b) {
            return Err(format!("range {s:?} mixes IPv4 and IPv6"));
        }
        let (first, last) = (to_int(a), to_int(b));
        if first > last {
            return Err(format!(
                "range {s:?} is reversed: its start is after its end"
            ));
        }
        return Ok(Range {
            family: Family::of(a),
            first,
            last,
        });
    }
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is neither a CIDR (a.b.c.d/n) nor a range (a-b)"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid CIDR {s:?}: bad address"))?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| *l <= bits)
        .ok_or_else(|| format!("invalid CIDR {s:?}: prefix length must be 0..={bits}"))?;
    let host_bits = bits - len;
    let mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let n = to_int(ip);
    if n & mask != 0 {
        return Err(format!(
            "invalid CIDR {s:?}: host bits are set (did you mean {}/{len}?)",
            from_int(Family::of(ip), n & !mask)
        ));
    }
    Ok(Range {
        family: Family::of(ip),
        first: n,
        last: n | mask,
    })
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// key in values.
    In(String, Vec<String>),
    /// key not in values.
    NotIn(String, Vec<String>),
    /// key present.
    Exists(String),
    /// key absent.
    DoesNotExist(String),
    /// An operator kube-apiserver does not know: matches nothing, and a pool holding one is
    /// invalid.
    Unknown {
        /// The expression's key.
        key: String,
        /// The operator as written.
        operator: String,
        /// Its index in `matchExpressions`.
        index: usize,
    },
}

/// A Kubernetes label selector (`matchLabels` + `matchExpressions`, ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Whether labels match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Unknown { .. } => false,
        })
    }
}

/// MetalLB's `serviceAllocation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower first; None last.
    pub priority: Option<i32>,
    /// Allowed namespaces (by name).
    pub namespaces: Vec<String>,
    /// Allowed namespaces (by labels).
    pub namespace_selectors: Vec<Selector>,
    /// Allowed Services (by labels).
    pub service_selectors: Vec<Selector>,
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Name.
    pub name: String,
    /// Its ranges, in the order given.
    pub ranges: Vec<Range>,
    /// Used without being asked for by name.
    pub auto_assign: bool,
    /// Skip .0 and .255.
    pub avoid_buggy_ips: bool,
    /// Which Services may use it.
    pub allocation: Option<ServiceAllocation>,
}

/// A pool as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// Name.
    pub name: String,
    /// `spec.addresses`.
    pub addresses: Vec<String>,
    /// `spec.autoAssign`.
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`.
    pub allocation: Option<ServiceAllocation>,
}

impl Pool {
    /// Validate a spec: every address entry parses, none reversed, none overlapping.
    pub fn from_spec(spec: &PoolSpec) -> Result<Pool, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut ranges = Vec::new();
        if spec.addresses.is_empty() {
            errors.push(FieldError {
                pool: spec.name.clone(),
                field: "spec.addresses".into(),
                message: "Required value: at least one CIDR or range".into(),
            });
        }
        for (i, a) in spec.addresses.iter().enumerate() {
            match parse_range(a) {
                Ok(r) => {
                    if let Some(j) = ranges.iter().position(|o: &Range| o.overlaps(&r)) {
                        errors.push(FieldError {
                            pool: spec.name.clone(),
                            field: format!("spec.addresses[{i}]"),
                            message: format!(
                                "{a:?} overlaps spec.addresses[{j}] ({:?})",
                                spec.addresses[j]
                            ),
                        });
                    }
                    ranges.push(r);
                }
                Err(m) => errors.push(FieldError {
                    pool: spec.name.clone(),
                    field: format!("spec.addresses[{i}]"),
                    message: m,
                }),
            }
        }
        if let Some(a) = &spec.allocation {
            let lists = [
                ("namespaceSelectors", &a.namespace_selectors),
                ("serviceSelectors", &a.service_selectors),
            ];
            for (list, selectors) in lists {
                for (i, sel) in selectors.iter().enumerate() {
                    for r in &sel.0 {
                        if let Requirement::Unknown {
                            key,
                            operator: op,
                            index: j,
                        } = r
                        {
                            errors.push(FieldError {
                                pool: spec.name.clone(),
                                field: format!(
                                    "spec.serviceAllocation.{list}[{i}].matchExpressions[{j}].operator"
                                ),
                                message: format!(
                                    "Unsupported value: {op:?} (key {key:?}): supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                                ),
                            });
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Pool {
                name: spec.name.clone(),
                ranges,
                auto_assign: spec.auto_assign,
                avoid_buggy_ips: spec.avoid_buggy_ips,
                allocation: spec.allocation.clone(),
            })
        } else {
            Err(errors)
        }
    }

    /// Whether an address is in the pool (and not skipped as buggy).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip)) && !(self.avoid_buggy_ips && is_buggy(ip))
    }

    /// Whether the pool offers a family.
    pub fn has_family(&self, f: Family) -> bool {
        self.ranges.iter().any(|r| r.family == f)
    }

    /// How many usable addresses of a family (saturating at u128::MAX).
    pub fn size(&self, f: Family) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family == f)
            .map(|r| {
                let mut n = r.len();
                if self.avoid_buggy_ips && f == Family::V4 {
                    n -=
                        count_congruent(r.first, r.last, 0) + count_congruent(r.first, r.last, 255);
                }
                n
            })
            .fold(0u128, |a, b| a.saturating_add(b))
    }

    /// Whether a Service in a namespace may use the pool.
    pub fn allows(&self, svc: &ServiceInfo) -> bool {
        let Some(a) = &self.allocation else {
            return true;
        };
        let ns_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
            || a.namespaces.contains(&svc.namespace)
            || a.namespace_selectors
                .iter()
                .any(|s| s.matches(&svc.namespace_labels));
        let svc_ok = a.service_selectors.is_empty()
            || a.service_selectors.iter().any(|s| s.matches(&svc.labels));
        ns_ok && svc_ok
    }
}

/// How many n in [a, b] have n % 256 == r.
fn count_congruent(a: u128, b: u128, r: u128) -> u128 {
    let upto = |x: u128| if x < r { 0 } else { (x - r) / 256 + 1 };
    upto(b) - if a == 0 { 0 } else { upto(a - 1) }
}

/// An IPv4 address ending in .0 or .255.
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => matches!(v.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// What the allocator needs to know about a Service to pick a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace.
    pub namespace: String,
    /// The namespace's labels.
    pub namespace_labels: BTreeMap<String, String>,
    /// The Service's labels.
    pub labels: BTreeMap<String, String>,
}

/// The first of `accepted` that shares an address with `p`.
pub fn overlapping<'a>(p: &Pool, accepted: &'a [Pool]) -> Option<&'a Pool> {
    accepted.iter().find(|o| {
        p.ranges
            .iter()
            .any(|r| o.ranges.iter().any(|or| or.overlaps(r)))
    })
}

/// Validate a set of pools together: each on its own, and no two overlapping.
pub fn validate_all(specs: &[PoolSpec]) -> (Vec<Pool>, Vec<FieldError>) {
    let mut pools: Vec<Pool> = Vec::new();
    let mut errors = Vec::new();
    let mut sorted: Vec<&PoolSpec> = specs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for spec in sorted {
        match Pool::from_spec(spec) {
            Ok(p) => {
                let clash = p.ranges.iter().enumerate().find_map(|(i, r)| {
                    pools
                        .iter()
                        .find(|o| o.ranges.iter().any(|or| or.overlaps(r)))
                        .map(|o| (i, o.name.clone()))
                });
                match clash {
                    Some((i, other)) => errors.push(FieldError {
                        pool: spec.name.clone(),
                        field: format!("spec.addresses[{i}]"),
                        message: format!("{:?} overlaps pool {other:?}", spec.addresses[i]),
                    }),
                    None => pools.push(p),
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    (pools, errors)
}

/// The pools a controller uses, given what the store holds now and each pool's last good
/// version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accepted {
    /// The pools in use, by name.
    pub pools: Vec<Pool>,
    /// Each pool that is invalid now, by name, with what is wrong (fields named).
    pub problems: Vec<(String, String)>,
}

/// Accept pools as the controller runs them, in name order: a valid pool that overlaps no
/// pool accepted before it is used and becomes its last good version; an invalid one, or one
/// that overlaps, is reported and its last good version is used instead — if that overlaps
/// nothing accepted — so a bad edit never takes IPs away. `last_good` is updated and forgets
/// pools that are gone.
pub fn accept(specs: &[PoolSpec], last_good: &mut BTreeMap<String, Pool>) -> Accepted {
    let mut sorted: Vec<&PoolSpec> = specs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Accepted::default();
    for spec in sorted {
        let problem = match Pool::from_spec(spec) {
            Ok(p) => match overlapping(&p, &out.pools) {
                None => {
                    last_good.insert(p.name.clone(), p.clone());
                    out.pools.push(p);
                    None
                }
                Some(other) => Some(format!("spec.addresses: overlaps pool {:?}", other.name)),
            },
            Err(errors) => Some(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        if let Some(problem) = problem {
            out.problems.push((spec.name.clone(), problem));
            if let Some(good) = last_good.get(&spec.name) {
                if overlapping(good, &out.pools).is_none() {
                    out.pools.push(good.clone());
                }
            }
        }
    }
    last_good.retain(|k, _| specs.iter().any(|s| &s.name == k));
    out.pools.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain pool spec with these addresses.
    fn spec(name: &str, a: &[&str]) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            addresses: a.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    #[test]
    fn ranges_and_cidrs() {
        let r = parse_range("192.168.56.200-192.168.56.220").unwrap();
        assert_eq!(r.len(), 21);
        let c = parse_range("192.168.56.0/24").unwrap();
        assert_eq!(c.len(), 256);
        let v6 = parse_range("fd00::/120").unwrap();
        assert_eq!(v6.family, Family::V6);
        assert_eq!(v6.len(), 256);
        assert_eq!(parse_range("10.0.0.1/32").unwrap().len(), 1);
        for (bad, why) in [
            ("192.168.56.220-192.168.56.200", "reversed"),
            ("192.168.56.0/33", "prefix length"),
            ("192.168.56.1/24", "host bits"),
            ("192.168.56.300/24", "bad address"),
            ("10.0.0.1-fd00::1", "mixes"),
            ("nonsense", "neither"),
        ] {
            let e = parse_range(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn overlapping_pools_are_named() {
        let (pools, errors) = validate_all(&[
            spec("a", &["10.0.0.0/24"]),
            spec("b", &["10.0.1.0/24", "10.0.0.128-10.0.0.130"]),
            spec("c", &["10.0.0.0/24", "10.0.0.5-10.0.0.6"]),
        ]);
        assert_eq!(
            pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            (errors[0].pool.as_str(), errors[0].field.as_str()),
            ("b", "spec.addresses[1]")
        );
        assert!(errors[0].message.contains("overlaps pool \"a\""));
        assert_eq!(
            (errors[1].pool.as_str(), errors[1].field.as_str()),
            ("c", "spec.addresses[1]"),
            "{errors:?}"
        );
    }

    #[test]
    fn an_unknown_selector_operator_invalidates_the_pool_and_matches_nothing() {
        let unknown = Selector(vec![
            Requirement::In("team".into(), vec!["a".into()]),
            Requirement::Unknown {
                key: "tier".into(),
                operator: "Matches".into(),
                index: 0,
            },
        ]);
        let labels = [("team".to_string(), "a".to_string())].into();
        assert!(!unknown.matches(&labels), "fails closed");
        let spec = PoolSpec {
            name: "p".into(),
            addresses: vec!["10.0.0.0/24".into()],
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: Some(ServiceAllocation {
                service_selectors: vec![Selector::default(), unknown],
                ..Default::default()
            }),
        };
        let errors = Pool::from_spec(&spec).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].field,
            "spec.serviceAllocation.serviceSelectors[1].matchExpressions[0].operator"
        );
        assert!(errors[0].message.contains("\"Matches\""), "{errors:?}");
    }

    #[test]
    fn buggy_ips_are_skipped_when_asked() {
        let p = Pool::from_spec(&PoolSpec {
            name: "p".into(),
            addresses: vec!["10.0.0.0/23".into()],
            auto_assign: true,
            avoid_buggy_ips: true,
            allocation: None,
        })
        .unwrap();
        assert_eq!(p.size(Family::V4), 512 - 4);
        assert!(!p.contains("10.0.0.255".parse().unwrap()));
        assert!(!p.contains("10.0.1.0".parse().unwrap()));
        assert!(p.contains("10.0.1.1".parse().unwrap()));
    }

    /// What the controller uses, pass after pass: a bad edit keeps the last good version, an
    /// overlap is refused to the later pool (by name), a pool never valid is not used, and a
    /// deleted pool is forgotten.
    #[test]
    fn accept_keeps_last_good_versions_through_bad_edits() {
        let names = |acc: &Accepted| -> Vec<String> {
            acc.pools
                .iter()
                .map(|p| format!("{}:{}", p.name, p.ranges.len()))
                .collect()
        };
        let problems = |acc: &Accepted| -> Vec<String> {
            acc.problems.iter().map(|(n, _)| n.clone()).collect()
        };
        let mut good = BTreeMap::new();

        // Pass 1: two valid pools; "z" was never valid.
        let acc = accept(
            &[
                spec("b", &["10.0.1.0/24"]),
                spec("a", &["10.0.0.0/24"]),
                spec("z", &["not-an-ip"]),
            ],
            &mut good,
        );
        assert_eq!(names(&acc), ["a:1", "b:1"]);
        assert_eq!(problems(&acc), ["z"]);
        assert!(
            acc.problems[0].1.contains("spec.addresses[0]"),
            "{:?}",
            acc.problems
        );

        // Pass 2: "b" edited badly (keeps its last good version), "a" gains a range.
        let acc = accept(
            &[
                spec("a", &["10.0.0.0/24", "10.0.2.0/24"]),
                spec("b", &["10.0.1.0/33"]),
            ],
            &mut good,
        );
        assert_eq!(names(&acc), ["a:2", "b:1"]);
        assert_eq!(problems(&acc), ["b"]);

        // Pass 3: "b" now overlaps "a": refused, and its last good version still fits.
        let acc = accept(
            &[
                spec("a", &["10.0.0.0/24", "10.0.2.0/24"]),
                spec("b", &["10.0.2.5-10.0.2.9"]),
            ],
            &mut good,
        );
        assert_eq!(names(&acc), ["a:2", "b:1"]);
        assert!(
            acc.problems[0].1.contains("overlaps pool \"a\""),
            "{:?}",
            acc.problems
        );

        // Pass 4: "a" now covers b's last good range: b's old version would overlap, so b is
        // not used at all rather than double-booking addresses.
        let acc = accept(
            &[spec("a", &["10.0.0.0/16"]), spec("b", &["10.0.1.0/33"])],
            &mut good,
        );
        assert_eq!(names(&acc), ["a:1"]);

        // Pass 5: "b" deleted: forgotten, so a later invalid "b" has no last good version.
        accept(&[spec("a", &["10.0.0.0/16"])], &mut good);
        assert!(!good.contains_key("b"));
        let acc = accept(
            &[spec("a", &["10.0.0.0/16"]), spec("b", &["bad"])],
            &mut good,
        );
        assert_eq!(names(&acc), ["a:1"]);
    }
}
