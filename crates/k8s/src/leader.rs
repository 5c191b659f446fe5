//! One writer at a time: a coordination Lease held by the active replica of a component (the
//! IPAM controller's `metalgate-controller`, the GitOps module's `metalgate-gitops`).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

/// How long a holder keeps the Lease without renewing it.
pub const DURATION_SECS: i32 = 15;
const RENEW: Duration = Duration::from_secs(3);

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// The most of a Lease's apparent age (this node's wall clock minus the holder's renewTime) a
/// replica credits when it first sees the Lease. Below `DURATION_SECS - RENEW` with room to
/// spare, so a live holder always renews before a candidate whose clock runs ahead would take
/// the Lease, however far ahead it runs.
const FIRST_SIGHT_CREDIT: Duration = Duration::from_secs(8);
const _: () = assert!(FIRST_SIGHT_CREDIT.as_secs() + RENEW.as_secs() < DURATION_SECS as u64);

/// What decides whether a Lease is live: everything its holder writes when it renews.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew: Option<MicroTime>,
    duration: Option<i32>,
    transitions: Option<i32>,
}

impl Record {
    fn of(l: &Lease) -> Record {
        let spec = l.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew: spec.renew_time,
            duration: spec.lease_duration_seconds,
            transitions: spec.lease_transitions,
        }
    }
}

/// What a replica last saw of a Lease, and since when by its own monotonic clock — client-go's
/// `observedRecord`/`observedTime`. A holder's renewTime is not compared with this node's wall
/// clock for the verdict (nodes' clocks may be 30 s apart; the Lease lasts 15 s): a holder whose
/// clock runs behind is not cut off while it renews, and one whose clock runs ahead is not kept
/// after it stops.
///
/// Unlike client-go, a Lease seen for the first time is credited its apparent age up to
/// [`FIRST_SIGHT_CREDIT`]: a new replica (a replaced pod) that finds its predecessor's Lease
/// unrenewed for a long while takes over `DURATION_SECS - 8 s` after its first look, not a whole
/// duration after; a live holder renews within 3 s, long before.
#[derive(Debug, Default)]
struct Observer {
    seen: Option<(Record, Instant)>,
}

impl Observer {
    /// Whether Lease `l` belongs to a replica other than `me` that renewed it within its
    /// duration, as measured here. `now` is this replica's monotonic clock, `wall` its wall
    /// clock (used only for the bounded first-sight credit). Released (no holder) or held by
    /// `me`: false.
    fn held_by_other(&mut self, l: &Lease, me: &str, now: Instant, wall: jiff::Timestamp) -> bool {
        let record = Record::of(l);
        let since = match &self.seen {
            Some((seen, at)) if *seen == record => *at,
            // A change seen while watching: renewed now.
            Some(_) => now,
            None => {
                let age = record
                    .renew
                    .as_ref()
                    .and_then(|r| wall.duration_since(r.0).try_into().ok())
                    .unwrap_or(Duration::ZERO)
                    .min(FIRST_SIGHT_CREDIT);
                now.checked_sub(age).unwrap_or(now)
            }
        };
        let duration = Duration::from_secs(record.duration.unwrap_or(0).max(0) as u64);
        let theirs = record.holder.as_ref().is_some_and(|h| h != me) && now < since + duration;
        self.seen = Some((record, since));
        theirs
    }
}

async fn try_acquire(
    api: &Api<Lease>,
    lease: &str,
    me: &str,
    observer: &mut Observer,
) -> Result<bool, kube::Error> {
    match api.get_opt(lease).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(lease.into()),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    holder_identity: Some(me.into()),
                    lease_duration_seconds: Some(DURATION_SECS),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut l) => {
            let holder = Record::of(&l).holder;
            // Held by someone else, renewed and not released: theirs.
            if observer.held_by_other(&l, me, Instant::now(), jiff::Timestamp::now()) {
                return Ok(false);
            }
            let spec = l.spec.get_or_insert_with(Default::default);
            if holder.as_deref() != Some(me) {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(now());
            }
            spec.holder_identity = Some(me.into());
            spec.lease_duration_seconds = Some(DURATION_SECS);
            spec.renew_time = Some(now());
            // The resourceVersion in `l` makes this a compare-and-swap.
            match api.replace(lease, &PostParams::default(), &l).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Hand Lease `lease` back if this replica holds it (on shutdown, as client-go's
/// `ReleaseOnCancel`): the next replica takes over at once instead of after the Lease's
/// duration. A compare-and-swap, so a Lease someone else took meanwhile is left alone.
pub async fn release(client: &kube::Client, namespace: &str, lease: &str, me: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(mut l)) = api.get_opt(lease).await else {
        return;
    };
    let Some(spec) = l.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    match api.replace(lease, &PostParams::default(), &l).await {
        Ok(_) => tracing::info!(identity = me, lease, "leadership released"),
        Err(e) => tracing::debug!(error = %e, lease, "releasing the lease failed"),
    }
}

/// Wait until this replica holds Lease `lease` (or `shutdown`). Returns a token cancelled when
/// the Lease is lost; a task keeps renewing it until then.
pub async fn acquire(
    client: &kube::Client,
    namespace: &str,
    lease: &str,
    me: &str,
    shutdown: &CancellationToken,
) -> Option<CancellationToken> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let mut observer = Observer::default();
    loop {
        match try_acquire(&api, lease, me, &mut observer).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "lease not acquired yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::info!(identity = me, lease, "leadership acquired");
    let lost = CancellationToken::new();
    let (api2, me2, lost2, stop) = (api.clone(), me.to_string(), lost.clone(), shutdown.clone());
    let lease2 = lease.to_string();
    tokio::spawn(async move {
        let mut failures = 0;
        let mut observer = Observer::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RENEW) => {}
            }
            match try_acquire(&api2, &lease2, &me2, &mut observer).await {
                Ok(true) => failures = 0,
                Ok(false) => {
                    tracing::warn!(lease = %lease2, "leadership lost");
                    lost2.cancel();
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(lease = %lease2, error = %e, "renewing the lease failed");
                    if failures * RENEW.as_secs() as i32 >= DURATION_SECS {
                        lost2.cancel();
                        return;
                    }
                }
            }
        }
    });
    Some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Lease as `holder` writes it when its clock reads `clock` (seconds since the epoch).
    fn lease(holder: &str, clock: i64) -> Lease {
        Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(DURATION_SECS),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(clock).unwrap())),
                lease_transitions: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// This node's wall clock at `start + k` seconds, with the test's wall clock at `start`
    /// fixed at 1 000 000 s.
    fn wall(k: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_000_000 + k).unwrap()
    }

    const DUR: Duration = Duration::from_secs(DURATION_SECS as u64);

    #[test]
    fn a_holder_whose_clock_runs_behind_keeps_the_lease_while_it_renews() {
        // Its renewTime reads a minute before ours: compared with our clock it would look
        // expired at every look, and every standby would take the Lease from a live leader.
        let start = Instant::now();
        let mut o = Observer::default();
        for k in 0..40 {
            let t = 3 * i64::from(k);
            let l = lease("a", 1_000_000 - 60 + t);
            assert!(
                o.held_by_other(&l, "b", start + RENEW * k, wall(t)),
                "taken at renewal {k}"
            );
        }
    }

    #[test]
    fn a_holder_whose_clock_runs_ahead_loses_the_lease_one_duration_after_it_stops() {
        // Its last renewTime reads a minute after ours: by our clock alone it would stay valid
        // for 75 s after it died.
        let start = Instant::now();
        let mut o = Observer::default();
        let l = lease("a", 1_000_000 + 60);
        assert!(o.held_by_other(&l, "b", start, wall(0)));
        assert!(o.held_by_other(&l, "b", start + DUR - Duration::from_millis(1), wall(14)));
        assert!(!o.held_by_other(&l, "b", start + DUR, wall(15)));
        // A renewal seen later makes it live again, for a full duration from then.
        let later = start + DUR + Duration::from_secs(1);
        let renewed = lease("a", 1_000_000 + 63);
        assert!(o.held_by_other(&renewed, "b", later, wall(16)));
        assert!(o.held_by_other(&renewed, "b", later + DUR / 2, wall(23)));
    }

    #[test]
    fn a_lease_unrenewed_for_long_is_taken_soon_after_the_first_look_but_never_at_once() {
        // A replaced replica finds its predecessor's Lease last renewed 10 minutes ago (same
        // clocks): credited 8 s of it, so it takes over 7 s after its first look.
        let start = Instant::now();
        let mut o = Observer::default();
        let l = lease("a", 1_000_000 - 600);
        let wait = DUR - FIRST_SIGHT_CREDIT;
        assert!(o.held_by_other(&l, "b", start, wall(0)));
        assert!(o.held_by_other(&l, "b", start + wait - Duration::from_millis(1), wall(6)));
        assert!(!o.held_by_other(&l, "b", start + wait, wall(7)));
        // A Lease renewed a second ago by our clock is credited just that second.
        let mut o = Observer::default();
        let fresh = lease("a", 1_000_000 - 1);
        assert!(o.held_by_other(&fresh, "b", start, wall(0)));
        assert!(o.held_by_other(
            &fresh,
            "b",
            start + DUR - Duration::from_millis(1_001),
            wall(14)
        ));
        assert!(!o.held_by_other(&fresh, "b", start + DUR - Duration::from_secs(1), wall(14)));
    }

    #[test]
    fn a_candidate_far_ahead_never_takes_a_lease_its_holder_keeps_renewing() {
        // Our clock reads 30 s (or an hour) ahead of the holder's: every renewal looks 30 s
        // old. The holder renews every 3 s; we look every second.
        for ahead in [30, 3600] {
            let start = Instant::now();
            let mut o = Observer::default();
            for k in 0..60u32 {
                let t = i64::from(k);
                let renewed = 3 * (t / 3);
                let l = lease("a", 1_000_000 - ahead + renewed);
                let now = start + Duration::from_secs(u64::from(k));
                assert!(
                    o.held_by_other(&l, "b", now, wall(t)),
                    "{ahead} s ahead, taken at {k} s"
                );
            }
        }
    }

    #[test]
    fn a_released_lease_or_one_of_our_own_is_free_at_once() {
        let now = Instant::now();
        let mut released = lease("a", 1_000_000);
        released.spec.as_mut().unwrap().holder_identity = None;
        assert!(!Observer::default().held_by_other(&released, "b", now, wall(0)));
        released.spec.as_mut().unwrap().holder_identity = Some(String::new());
        assert!(!Observer::default().held_by_other(&released, "b", now, wall(0)));
        let ours = lease("b", 1_000_000);
        assert!(!Observer::default().held_by_other(&ours, "b", now, wall(0)));
        assert!(!Observer::default().held_by_other(&Lease::default(), "b", now, wall(0)));
    }
}
