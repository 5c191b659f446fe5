//! How components follow the API: a cached, self-restarting watch per resource kind, each
//! waking one shared [`Notify`] on every change, so a component recomputes from all its
//! caches at once; and the Event recorder each component reports with.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Watch `api` (filtered by `cfg`) into a cache, on a task in `tasks` that notifies `notify`
/// after every event and retries with backoff when the watch fails. Await the returned store's
/// `wait_until_ready` before trusting it.
pub fn store<K>(
    api: Api<K>,
    cfg: watcher::Config,
    notify: &Arc<Notify>,
    tasks: &mut JoinSet<()>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, cfg)).default_backoff();
    let notify = notify.clone();
    tasks.spawn(async move { events.for_each(|_| async { notify.notify_one() }).await });
    reader
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
