//! How components follow the API: [`Watches`], a cached, self-restarting watch per resource
//! kind, each waking one shared [`Notify`] on every change, so a component recomputes from all
//! its caches at once; and the Event recorder each component reports with.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The `namespace/name` key a namespaced object is known by in every component's maps (the
/// speaker's plan, its endpoint index and its announcer; the controller's allocations). One
/// function, so a lookup always uses the key its map was built with.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// [`key`] of an object, from its metadata (empty namespace or name when unset).
pub fn key_of(meta: &ObjectMeta) -> String {
    key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// A component's watches: a cached, self-restarting watch per resource kind, all waking one
/// [`Notify`]. Dropping it stops them.
#[derive(Default)]
pub struct Watches {
    notify: Arc<Notify>,
    tasks: JoinSet<()>,
}

impl Watches {
    /// No watches yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watch `api` (filtered by `cfg`) into a cache, on a task that wakes [`Watches::changed`]
    /// after every event and retries with backoff when the watch fails. Await the returned
    /// store's `wait_until_ready` before trusting it.
    pub fn store<K>(&mut self, api: Api<K>, cfg: watcher::Config) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (reader, writer) = reflector::store();
        let events = reflector::reflector(writer, watcher(api, cfg)).default_backoff();
        let notify = self.notify.clone();
        self.tasks
            .spawn(async move { events.for_each(|_| async { notify.notify_one() }).await });
        reader
    }

    /// Resolves once any watched object changed since the last call (at once if one did).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

/// The Event recorder of component `controller` (its field manager) on `instance` (the node).
pub fn recorder(client: &Client, controller: &str, instance: &str) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: controller.into(),
            instance: Some(instance.into()),
        },
    )
}

/// Publish an Event about `regarding` — the one way every component writes Events (a warning
/// is logged when it cannot be written: an Event is a report, never a reason to fail).
/// `action` is what the component was doing (`Announce`, `Route`, …).
pub async fn publish(
    recorder: &Recorder,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    type_: kube::runtime::events::EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, regarding).await {
        tracing::warn!(error = %e, reason, "publishing an event failed");
    }
}
