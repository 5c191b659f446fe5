//! The persisted object store: every object as JSON in redb, a monotonic resourceVersion,
//! and an in-memory window of recent changes that watches replay from.
//!
//! Writes are serialised by one lock and each is committed (fsync'd) by redb before it is
//! acknowledged, so a crash loses nothing the client was told succeeded.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, broadcast, watch};

use crate::error::{ApiError, ApiResult};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// How many recent changes watches can resume from before they get 410 Gone.
pub const DEFAULT_HISTORY: usize = 10_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of this change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Storage key.
    pub key: String,
    /// The object after the change (before it, for deletes, with the delete's resourceVersion).
    pub object: Arc<Value>,
    /// For a modification, the object before it (so a watch with a selector can tell an
    /// object that stopped or started matching).
    pub prev: Option<Arc<Value>>,
}

/// A write to make in one transaction.
#[derive(Debug)]
pub enum Write {
    /// Create or replace the object at a key.
    Put(String, Value),
    /// Remove the object at a key.
    Delete(String),
}

struct Inner {
    objects: BTreeMap<String, Arc<Value>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// Watches may resume from any resourceVersion >= this.
    oldest_resumable: u64,
    history_limit: usize,
}

/// The store.
pub struct Store {
    /// The open database; `None` after a failed write until the next write reopens it (redb
    /// refuses every write after an I/O error until it is opened again).
    db: std::sync::Mutex<Option<Database>>,
    path: std::path::PathBuf,
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Bumped to end every open watch stream (clients reconnect).
    epoch: watch::Sender<u64>,
}

/// Exclusive access for a read-modify-write.
pub struct Txn<'a> {
    store: &'a Store,
    inner: MutexGuard<'a, Inner>,
}

fn storage_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("storage: {e}"))
}

impl Store {
    /// Open (or create) the database at `path` and load every object.
    pub fn open(path: &Path, history_limit: usize) -> anyhow::Result<Self> {
        let db = Database::create(path)?;
        let mut objects = BTreeMap::new();
        let mut rv = 0;
        {
            let w = db.begin_write()?;
            w.open_table(OBJECTS)?;
            w.open_table(META)?;
            w.commit()?;
            let r = db.begin_read()?;
            let t = r.open_table(OBJECTS)?;
            for entry in t.iter()? {
                let (k, v) = entry?;
                let value: Value = serde_json::from_slice(v.value())?;
                objects.insert(k.value().to_string(), Arc::new(value));
            }
            let m = r.open_table(META)?;
            if let Some(v) = m.get("rv")? {
                rv = v.value();
            }
        }
        let (changes, _) = broadcast::channel(4096);
        Ok(Store {
            db: std::sync::Mutex::new(Some(db)),
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                objects,
                rv,
                history: VecDeque::new(),
                oldest_resumable: rv,
                history_limit,
            }),
            changes,
            epoch: watch::channel(0).0,
        })
    }

    /// Run one write transaction on the database. After a failed one (a full disk, say) the
    /// database is closed, and the next write opens it again — redb then recovers it to its
    /// last commit — so the store writes again once the fault is gone, without a restart.
    /// Callers hold the `inner` lock, so writes never race here.
    fn with_db<T>(&self, write: impl FnOnce(&Database) -> ApiResult<T>) -> ApiResult<T> {
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let db = Database::create(&self.path).map_err(|e| {
                storage_err(format!(
                    "reopening {} after a failed write: {e}",
                    self.path.display()
                ))
            })?;
            tracing::info!(path = %self.path.display(), "store database reopened after a failed write");
            *slot = Some(db);
        }
        let result = write(slot.as_ref().expect("opened above"));
        if let Err(e) = &result {
            tracing::warn!(path = %self.path.display(), error = %e.message, "a store write failed; the database is reopened on the next write");
            *slot = None;
        }
        result
    }

    /// Begin a read-modify-write; writes from others wait until it ends.
    pub async fn txn(&self) -> Txn<'_> {
        Txn {
            store: self,
            inner: self.inner.lock().await,
        }
    }

    /// The object at a key.
    pub async fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.inner.lock().await.objects.get(key).cloned()
    }

    /// Every object under a key prefix, in key order, and the current resourceVersion.
    pub async fn list(&self, prefix: &str) -> (Vec<(String, Arc<Value>)>, u64) {
        let inner = self.inner.lock().await;
        (list_prefix(&inner.objects, prefix), inner.rv)
    }

    /// The current resourceVersion.
    pub async fn resource_version(&self) -> u64 {
        self.inner.lock().await.rv
    }

    /// Subscribe to changes after `from`, replaying the kept history.
    /// Errors with 410 Gone when `from` is older than the history kept.
    pub async fn watch_from(
        &self,
        from: u64,
    ) -> ApiResult<(Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>, u64)> {
        let inner = self.inner.lock().await;
        if from < inner.oldest_resumable {
            return Err(ApiError::gone(format!(
                "too old resource version: {from} ({})",
                inner.oldest_resumable
            )));
        }
        let rx = self.changes.subscribe();
        let replay = inner
            .history
            .iter()
            .filter(|c| c.rv > from)
            .cloned()
            .collect();
        Ok((replay, rx, inner.rv))
    }

    /// A snapshot of a prefix plus a subscription starting right after it.
    pub async fn snapshot_and_watch(
        &self,
        prefix: &str,
    ) -> (
        Vec<(String, Arc<Value>)>,
        broadcast::Receiver<Arc<Change>>,
        u64,
    ) {
        let inner = self.inner.lock().await;
        let rx = self.changes.subscribe();
        (list_prefix(&inner.objects, prefix), rx, inner.rv)
    }

    /// A receiver that changes whenever every watch must end.
    pub fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// End every open watch stream now (clients reconnect and resume).
    pub fn drop_watches(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forget the change history: a watch resuming from any version up to now gets 410 Gone.
    /// The compaction takes a resourceVersion of its own (persisted), so lists made after it
    /// return a version that watches can resume from.
    pub async fn compact(&self) -> ApiResult<()> {
        let mut inner = self.inner.lock().await;
        let rv = inner.rv + 1;
        self.with_db(|db| {
            let wtx = db.begin_write().map_err(storage_err)?;
            wtx.open_table(META)
                .map_err(storage_err)?
                .insert("rv", rv)
                .map_err(storage_err)?;
            wtx.commit().map_err(storage_err)
        })?;
        inner.rv = rv;
        inner.history.clear();
        inner.oldest_resumable = rv;
        Ok(())
    }
}

fn list_prefix(objects: &BTreeMap<String, Arc<Value>>, prefix: &str) -> Vec<(String, Arc<Value>)> {
    objects
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Txn<'_> {
    /// The object at a key.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.inner.objects.get(key).cloned()
    }

    /// Every object under a prefix.
    pub fn list(&self, prefix: &str) -> Vec<(String, Arc<Value>)> {
        list_prefix(&self.inner.objects, prefix)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.rv
    }

    /// Commit writes atomically: each gets its own resourceVersion (written into
    /// `metadata.resourceVersion`), they are fsync'd, then published to watches.
    /// Returns the stored objects (for deletes, the last state with the delete's version).
    pub fn commit(&mut self, writes: Vec<Write>) -> ApiResult<Vec<Arc<Value>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut rv = self.inner.rv;
        let mut changes = Vec::with_capacity(writes.len());
        let objects = &self.inner.objects;
        self.store.with_db(|db| {
            let wtx = db.begin_write().map_err(storage_err)?;
            {
                let mut table = wtx.open_table(OBJECTS).map_err(storage_err)?;
                for w in writes {
                    rv += 1;
                    match w {
                        Write::Put(key, mut obj) => {
                            obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                            let bytes = serde_json::to_vec(&obj).map_err(storage_err)?;
                            table
                                .insert(key.as_str(), bytes.as_slice())
                                .map_err(storage_err)?;
                            let prev = objects.get(&key).cloned();
                            let kind = if prev.is_some() {
                                EventType::Modified
                            } else {
                                EventType::Added
                            };
                            changes.push(Change {
                                rv,
                                kind,
                                key,
                                object: Arc::new(obj),
                                prev,
                            });
                        }
                        Write::Delete(key) => {
                            table.remove(key.as_str()).map_err(storage_err)?;
                            let mut last = objects
                                .get(&key)
                                .map(|o| (**o).clone())
                                .unwrap_or(Value::Null);
                            if last.is_object() {
                                last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                            }
                            changes.push(Change {
                                rv,
                                kind: EventType::Deleted,
                                key,
                                object: Arc::new(last),
                                prev: None,
                            });
                        }
                    }
                }
                let mut meta = wtx.open_table(META).map_err(storage_err)?;
                meta.insert("rv", rv).map_err(storage_err)?;
            }
            wtx.commit().map_err(storage_err)
        })?;

        let inner = &mut *self.inner;
        inner.rv = rv;
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            match c.kind {
                EventType::Deleted => {
                    inner.objects.remove(&c.key);
                }
                _ => {
                    inner.objects.insert(c.key.clone(), c.object.clone());
                }
            }
            out.push(c.object.clone());
            let c = Arc::new(c);
            inner.history.push_back(c.clone());
            while inner.history.len() > inner.history_limit {
                if let Some(old) = inner.history.pop_front() {
                    inner.oldest_resumable = old.rv;
                }
            }
            // No receivers is fine: nobody is watching.
            let _ = self.store.changes.send(c);
        }
        Ok(out)
    }
}
