//! One writer at a time: a coordination Lease held by the active replica of a component (the
//! IPAM controller's `metalgate-controller`, the GitOps module's `metalgate-gitops`).

use std::time::Duration;

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

fn expired(l: &Lease) -> bool {
    let Some(spec) = &l.spec else { return true };
    let (Some(renew), Some(dur)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renew.0.as_second() + i64::from(dur) < jiff::Timestamp::now().as_second()
}

async fn try_acquire(api: &Api<Lease>, lease: &str, me: &str) -> Result<bool, kube::Error> {
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
            let holder = l
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty());
            // Held by someone else, not expired and not released: theirs.
            if holder.as_ref().is_some_and(|h| h != me) && !expired(&l) {
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
    loop {
        match try_acquire(&api, lease, me).await {
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
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RENEW) => {}
            }
            match try_acquire(&api2, &lease2, &me2).await {
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
