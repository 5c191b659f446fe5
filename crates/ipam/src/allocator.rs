//! The allocator: which Service holds which IPs, as an in-memory state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::pool::{Family, Pool, ServiceInfo, from_int, is_buggy};

/// A Service's key: `namespace/name`.
pub type ServiceKey = String;

/// A Service port, for IP sharing (two Services may share an IP only on distinct ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// `TCP`, `UDP`, `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: u16,
}

/// What a Service asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Namespace and labels, for `serviceAllocation`.
    pub service: ServiceInfo,
    /// Families wanted, one IP each (two for dual-stack).
    pub families: Vec<Family>,
    /// Specific IPs asked for (`spec.loadBalancerIP`, the `loadBalancerIPs` annotation).
    pub requested: Vec<IpAddr>,
    /// A pool asked for by name (the `address-pool` annotation).
    pub pool: Option<String>,
    /// The `allow-shared-ip` key.
    pub sharing_key: Option<String>,
    /// Its ports.
    pub ports: Vec<Port>,
}

/// What a Service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// One IP per family, in the order the families were asked for.
    pub ips: Vec<IpAddr>,
    /// The pool they came from.
    pub pool: String,
}

/// Why a Service got no IP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Every candidate pool is full.
    #[error("no available IPs: pool(s) {} exhausted", pools.join(", "))]
    Exhausted {
        /// The pools tried.
        pools: Vec<String>,
    },
    /// No pool may serve this Service.
    #[error(
        "no pool with {family:?} addresses accepts this Service (autoAssign, serviceAllocation)"
    )]
    NoPool {
        /// The family that found none.
        family: Family,
    },
    /// The IP is taken.
    #[error("IP {ip} is already in use by {owner}")]
    InUse {
        /// The IP.
        ip: IpAddr,
        /// Who holds it.
        owner: ServiceKey,
    },
    /// The IP is in no pool.
    #[error("IP {ip} is not in any pool")]
    NotInAnyPool {
        /// The IP.
        ip: IpAddr,
    },
    /// The named pool does not exist.
    #[error("pool {pool:?} does not exist")]
    UnknownPool {
        /// Its name.
        pool: String,
    },
    /// The IP is not in the pool asked for.
    #[error("IP {ip} is not in pool {pool:?}")]
    NotInPool {
        /// The IP.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The pool's serviceAllocation excludes the Service.
    #[error("pool {pool:?} does not accept this Service (serviceAllocation)")]
    NotAllowed {
        /// The pool.
        pool: String,
    },
    /// The request contradicts itself.
    #[error("conflicting request: {0}")]
    Conflict(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    ips: Vec<IpAddr>,
    pool: String,
    sharing_key: Option<String>,
    ports: Vec<Port>,
}

/// A pool's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// IPv4 addresses in use.
    pub assigned_v4: u128,
    /// IPv6 addresses in use.
    pub assigned_v6: u128,
    /// IPv4 addresses free.
    pub available_v4: u128,
    /// IPv6 addresses free.
    pub available_v6: u128,
}

/// The allocator.
#[derive(Debug, Default, Clone)]
pub struct Allocator {
    pools: BTreeMap<String, Pool>,
    services: HashMap<ServiceKey, Held>,
    holders: HashMap<IpAddr, BTreeSet<ServiceKey>>,
    cursors: HashMap<(String, Family), u128>,
}

fn ports_overlap(a: &[Port], b: &[Port]) -> bool {
    a.iter().any(|p| b.contains(p))
}

impl Allocator {
    /// An allocator over these pools.
    pub fn new(pools: Vec<Pool>) -> Self {
        let mut a = Allocator::default();
        a.set_pools(pools);
        a
    }

    /// The pools.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// Replace the pools. Services whose IPs no longer lie in their pool lose them; their keys
    /// are returned. Everyone else keeps what they hold.
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> Vec<ServiceKey> {
        self.pools = pools.into_iter().map(|p| (p.name.clone(), p)).collect();
        let mut cleared: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|(_, h)| match self.pools.get(&h.pool) {
                Some(p) => !h.ips.iter().all(|ip| p.contains(*ip)),
                None => true,
            })
            .map(|(k, _)| k.clone())
            .collect();
        cleared.sort();
        for k in &cleared {
            self.release(k);
        }
        cleared
    }

    /// What a Service holds.
    pub fn assignment(&self, key: &str) -> Option<Assignment> {
        self.services.get(key).map(|h| Assignment {
            ips: h.ips.clone(),
            pool: h.pool.clone(),
        })
    }

    /// Every Service holding IPs, with them.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, Assignment)> {
        self.services.iter().map(|(k, h)| {
            (
                k,
                Assignment {
                    ips: h.ips.clone(),
                    pool: h.pool.clone(),
                },
            )
        })
    }

    /// Who holds an IP.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.holders
            .get(&ip)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Give up a Service's IPs.
    pub fn release(&mut self, key: &str) -> Option<Assignment> {
        let h = self.services.remove(key)?;
        for ip in &h.ips {
            if let Some(set) = self.holders.get_mut(ip) {
                set.remove(key);
                if set.is_empty() {
                    self.holders.remove(ip);
                }
            }
        }
        Some(Assignment {
            ips: h.ips,
            pool: h.pool,
        })
    }

    /// Why `key` may not use `ip`, if it may not: someone else holds it and they cannot share.
    fn blocker(
        &self,
        key: &str,
        ip: IpAddr,
        sharing_key: &Option<String>,
        ports: &[Port],
    ) -> Option<ServiceKey> {
        let holders = self.holders.get(&ip)?;
        for other in holders.iter().filter(|o| o.as_str() != key) {
            let h = &self.services[other];
            let shareable = sharing_key.is_some()
                && h.sharing_key == *sharing_key
                && !ports_overlap(&h.ports, ports);
            if !shareable {
                return Some(other.clone());
            }
        }
        None
    }

    fn still_valid(&self, key: &str, held: &Held, req: &Request) -> bool {
        let Some(pool) = self.pools.get(&held.pool) else {
            return false;
        };
        let families: Vec<Family> = held.ips.iter().map(|ip| Family::of(*ip)).collect();
        held.ips.iter().all(|ip| pool.contains(*ip))
            && pool.allows(&req.service)
            && req.pool.as_ref().is_none_or(|p| *p == held.pool)
            && (req.requested.is_empty() || req.requested == held.ips)
            && families == req.families
            && held.ips.iter().all(|ip| {
                self.blocker(key, *ip, &req.sharing_key, &req.ports)
                    .is_none()
            })
    }

    /// Assign IPs to a Service, or keep what it holds when that still fits its request
    /// (so calling it again changes nothing).
    pub fn assign(&mut self, key: &str, req: &Request) -> Result<Assignment, AllocError> {
        if req.families.is_empty()
            || req.families.len() > 2
            || (req.families.len() == 2 && req.families[0] == req.families[1])
        {
            return Err(AllocError::Conflict(
                "a Service gets one IP per family, one or two families".into(),
            ));
        }
        if let Some(held) = self.services.get(key) {
            if self.still_valid(key, held, req) {
                let held = held.clone();
                if held.sharing_key != req.sharing_key || held.ports != req.ports {
                    self.services.insert(
                        key.into(),
                        Held {
                            sharing_key: req.sharing_key.clone(),
                            ports: req.ports.clone(),
                            ..held.clone()
                        },
                    );
                }
                return Ok(Assignment {
                    ips: held.ips,
                    pool: held.pool,
                });
            }
        }
        // What it held no longer fits its request: it is released (like MetalLB's
        // ClearAssignment) whether or not a new assignment succeeds.
        self.release(key);
        let a = if req.requested.is_empty() {
            self.pick(key, req)?
        } else {
            self.take_requested(key, req)?
        };
        self.hold(key, &a, req);
        Ok(a)
    }

    fn hold(&mut self, key: &str, a: &Assignment, req: &Request) {
        for ip in &a.ips {
            self.holders.entry(*ip).or_default().insert(key.to_string());
        }
        self.services.insert(
            key.into(),
            Held {
                ips: a.ips.clone(),
                pool: a.pool.clone(),
                sharing_key: req.sharing_key.clone(),
                ports: req.ports.clone(),
            },
        );
    }

    fn take_requested(&self, key: &str, req: &Request) -> Result<Assignment, AllocError> {
        let families: Vec<Family> = req.requested.iter().map(|ip| Family::of(*ip)).collect();
        if families != req.families {
            return Err(AllocError::Conflict(format!(
                "requested IPs {} do not match the Service's IP families {:?}",
                req.requested
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                req.families
            )));
        }
        let mut pool_name: Option<String> = None;
        for ip in &req.requested {
            let pool = match &req.pool {
                Some(p) => {
                    let pool = self
                        .pools
                        .get(p)
                        .ok_or_else(|| AllocError::UnknownPool { pool: p.clone() })?;
                    if !pool.contains(*ip) {
                        return Err(AllocError::NotInPool {
                            ip: *ip,
                            pool: p.clone(),
                        });
                    }
                    pool
                }
                None => self
                    .pools
                    .values()
                    .find(|p| p.contains(*ip))
                    .ok_or(AllocError::NotInAnyPool { ip: *ip })?,
            };
            if !pool.allows(&req.service) {
                return Err(AllocError::NotAllowed {
                    pool: pool.name.clone(),
                });
            }
            match &pool_name {
                Some(n) if *n != pool.name => {
                    return Err(AllocError::Conflict(format!(
                        "requested IPs are in different pools ({n}, {})",
                        pool.name
                    )));
                }
                _ => pool_name = Some(pool.name.clone()),
            }
            if let Some(owner) = self.blocker(key, *ip, &req.sharing_key, &req.ports) {
                return Err(AllocError::InUse { ip: *ip, owner });
            }
        }
        Ok(Assignment {
            ips: req.requested.clone(),
            pool: pool_name.expect("at least one requested IP"),
        })
    }

    fn candidates(&self, req: &Request) -> Result<Vec<&Pool>, AllocError> {
        if let Some(name) = &req.pool {
            let p = self
                .pools
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if !p.allows(&req.service) {
                return Err(AllocError::NotAllowed { pool: name.clone() });
            }
            return Ok(vec![p]);
        }
        let mut pools: Vec<&Pool> = self
            .pools
            .values()
            .filter(|p| p.auto_assign && p.allows(&req.service))
            .collect();
        pools.sort_by_key(|p| {
            (
                p.allocation
                    .as_ref()
                    .and_then(|a| a.priority)
                    .map_or((1, 0), |pr| (0, pr)),
                p.name.clone(),
            )
        });
        Ok(pools)
    }

    fn pick(&mut self, key: &str, req: &Request) -> Result<Assignment, AllocError> {
        let pools: Vec<Pool> = self.candidates(req)?.into_iter().cloned().collect();
        let mut tried = Vec::new();
        for fam in &req.families {
            if !pools.iter().any(|p| p.has_family(*fam)) {
                return Err(AllocError::NoPool { family: *fam });
            }
        }
        for pool in pools
            .iter()
            .filter(|p| req.families.iter().all(|f| p.has_family(*f)))
        {
            tried.push(pool.name.clone());
            let mut ips = Vec::new();
            for fam in &req.families {
                match self
                    .shared_ip(key, pool, *fam, req)
                    .or_else(|| self.free_ip(pool, *fam))
                {
                    Some(ip) => ips.push(ip),
                    None => break,
                }
            }
            if ips.len() == req.families.len() {
                return Ok(Assignment {
                    ips,
                    pool: pool.name.clone(),
                });
            }
        }
        Err(AllocError::Exhausted { pools: tried })
    }

    /// An IP already used by Services sharing this one's key, on other ports.
    fn shared_ip(&self, key: &str, pool: &Pool, fam: Family, req: &Request) -> Option<IpAddr> {
        let sk = req.sharing_key.as_ref()?;
        let mut candidates: Vec<IpAddr> = self
            .services
            .iter()
            .filter(|(k, h)| {
                k.as_str() != key && h.sharing_key.as_ref() == Some(sk) && h.pool == pool.name
            })
            .flat_map(|(_, h)| h.ips.iter().copied())
            .filter(|ip| Family::of(*ip) == fam)
            .collect();
        candidates.sort();
        candidates.into_iter().find(|ip| {
            self.blocker(key, *ip, &req.sharing_key, &req.ports)
                .is_none()
        })
    }

    /// The next free IP of a family in a pool, scanning from where the last one was found.
    fn free_ip(&mut self, pool: &Pool, fam: Family) -> Option<IpAddr> {
        let ranges: Vec<_> = pool
            .ranges
            .iter()
            .filter(|r| r.family == fam)
            .copied()
            .collect();
        let total: u128 = ranges
            .iter()
            .map(|r| r.len())
            .fold(0u128, |a, b| a.saturating_add(b));
        if total == 0 {
            return None;
        }
        // The cursor makes the usual case one step; a full pool is scanned once (capped, for
        // IPv6 pools too large to be full).
        let budget = total.min(1 << 24);
        let cursor = self.cursors.entry((pool.name.clone(), fam)).or_insert(0);
        let start = *cursor % total;
        let mut step = 0u128;
        while step < budget {
            let offset = (start + step) % total;
            step += 1;
            let ip = nth(&ranges, offset);
            if pool.avoid_buggy_ips && is_buggy(ip) {
                continue;
            }
            if !self.holders.contains_key(&ip) {
                *self
                    .cursors
                    .get_mut(&(pool.name.clone(), fam))
                    .expect("cursor") = offset + 1;
                return Some(ip);
            }
        }
        None
    }

    /// Usage of a pool.
    pub fn stats(&self, pool: &str) -> PoolStats {
        let Some(p) = self.pools.get(pool) else {
            return PoolStats::default();
        };
        let mut v4 = BTreeSet::new();
        let mut v6 = BTreeSet::new();
        for h in self.services.values().filter(|h| h.pool == pool) {
            for ip in &h.ips {
                match Family::of(*ip) {
                    Family::V4 => v4.insert(*ip),
                    Family::V6 => v6.insert(*ip),
                };
            }
        }
        let (a4, a6) = (v4.len() as u128, v6.len() as u128);
        PoolStats {
            assigned_v4: a4,
            assigned_v6: a6,
            available_v4: p.size(Family::V4).saturating_sub(a4),
            available_v6: p.size(Family::V6).saturating_sub(a6),
        }
    }
}

fn nth(ranges: &[crate::pool::Range], mut offset: u128) -> IpAddr {
    for r in ranges {
        let len = r.len();
        if offset < len {
            return from_int(r.family, r.first + offset);
        }
        offset -= len;
    }
    let r = ranges[0];
    from_int(r.family, r.first)
}
