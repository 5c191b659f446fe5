//! The applier: the one place that changes the cluster for the module. It server-side applies
//! (field manager [`FIELD_MANAGER`], forced, strict field validation) with the tracking id
//! written on each object, dry-runs a whole revision first so a bad one changes nothing, reads
//! live objects for the plan and diff, and deletes what the plan prunes.

use std::collections::HashMap;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use metalgate_k8s::manifests::{api_message, resolve_kind, wait_established};
use serde_json::Value;

use crate::live::LiveFacts;
use crate::object::{Manifest, ObjRef, split_api_version, str_at};
use crate::tracking::{ANNOTATION, TrackingId};

/// Requests one pass has in flight at once (dry runs, applies within a wave, reads): the
/// store answers several while one waits on its disk, as ArgoCD applies a wave's resources
/// concurrently.
const IN_FLIGHT: usize = 8;

/// The field manager of every write the module makes.
pub const FIELD_MANAGER: &str = "metalgate-gitops";

/// What one apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object did not exist.
    Created,
    /// It existed and changed.
    Updated,
    /// It was already as Git says.
    Unchanged,
}

/// A manifest that could not be applied (or dry-run): where it came from, and the API server's
/// message, which names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {obj}: {message}")]
pub struct ApplyError {
    /// File and document.
    pub origin: String,
    /// The object.
    pub obj: String,
    /// What the API server said.
    pub message: String,
}

/// Server-side apply and friends, with the kinds looked up once.
pub struct Applier {
    client: kube::Client,
    kinds: HashMap<(String, String), Result<(ApiResource, ApiCapabilities), String>>,
}

impl Applier {
    /// An applier on `client`.
    pub fn new(client: kube::Client) -> Self {
        Applier {
            client,
            kinds: HashMap::new(),
        }
    }

    /// Forget the kinds looked up (after CRDs were applied: discovery again).
    pub fn rediscover(&mut self) {
        self.kinds.clear();
    }

    async fn kind(&mut self, obj: &Value) -> Result<(ApiResource, ApiCapabilities), String> {
        let av = str_at(obj, &["apiVersion"]).to_string();
        let kind = str_at(obj, &["kind"]).to_string();
        let key = (av.clone(), kind.clone());
        if let Some(Ok(found)) = self.kinds.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = split_api_version(&av);
        let found = resolve_kind(&self.client, &GroupVersionKind::gvk(group, version, &kind)).await;
        self.kinds.insert(key, found.clone());
        found
    }

    async fn api(&mut self, obj: &Value) -> Result<Api<DynamicObject>, String> {
        let (ar, caps) = self.kind(obj).await?;
        Ok(match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                match str_at(obj, &["metadata", "namespace"]) {
                    "" => "default",
                    ns => ns,
                },
                &ar,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Fill in `namespace` on namespaced objects that name none, and drop one a cluster-scoped
    /// object names (as kubectl does). Kinds the server does not serve are errors, each named.
    pub async fn place(&mut self, manifests: &mut [Manifest], namespace: &str) -> Vec<ApplyError> {
        let mut errors = Vec::new();
        for m in manifests.iter_mut() {
            match self.kind(&m.object).await {
                Ok((_, caps)) => {
                    let meta = &mut m.object["metadata"];
                    match caps.scope {
                        Scope::Namespaced if str_at(meta, &["namespace"]).is_empty() => {
                            meta["namespace"] = Value::String(namespace.to_string());
                        }
                        Scope::Cluster => {
                            if let Some(map) = meta.as_object_mut() {
                                map.remove("namespace");
                            }
                        }
                        Scope::Namespaced => {}
                    }
                }
                Err(message) => errors.push(error(m, message)),
            }
        }
        errors
    }

    /// The object with the tracking id of `app` added, as it is applied.
    pub fn tracked(app: &str, m: &Manifest) -> Value {
        let mut o = m.object.clone();
        let id = TrackingId::new(app, &m.obj_ref()).value();
        let meta = &mut o["metadata"];
        if !meta["annotations"].is_object() {
            meta["annotations"] = Value::Object(Default::default());
        }
        meta["annotations"][ANNOTATION] = Value::String(id);
        o
    }

    /// Server-side apply every manifest with `dryRun=All`: every error, each naming its file,
    /// document, object and field. Nothing is written. Objects whose kind a CRD of the same
    /// revision defines cannot be checked before that CRD exists and are skipped; objects in a
    /// namespace that does not exist yet but will (the revision has it, or `CreateNamespace`
    /// makes it: `coming`) are checked in `default` instead, since the API server cannot dry-run
    /// into a missing namespace and the fields do not depend on it.
    pub async fn dry_run(
        &mut self,
        app: &str,
        manifests: &[Manifest],
        coming: &[String],
    ) -> Vec<ApplyError> {
        let defined: Vec<(String, String)> = manifests
            .iter()
            .filter(|m| m.obj_ref().kind == "CustomResourceDefinition")
            .map(|m| {
                (
                    str_at(&m.object, &["spec", "group"]).to_string(),
                    str_at(&m.object, &["spec", "names", "kind"]).to_string(),
                )
            })
            .collect();
        // The kinds looked up one by one (cached), then the dry runs several at a time.
        let mut errors = Vec::new();
        let mut todo = Vec::new();
        for m in manifests {
            let r = m.obj_ref();
            let api = match self.api(&m.object).await {
                Ok(api) => api,
                Err(_) if defined.contains(&(r.group.clone(), r.kind.clone())) => continue,
                Err(message) => {
                    errors.push(error(m, message));
                    continue;
                }
            };
            // An object in a namespace the sync makes first is tried in `default` instead.
            let elsewhere = if coming.contains(&r.namespace) {
                let probe = serde_json::json!({"apiVersion": m.object["apiVersion"],
                    "kind": r.kind, "metadata": {"namespace": "default"}});
                Some(self.api(&probe).await.unwrap_or_else(|_| api.clone()))
            } else {
                None
            };
            todo.push((m, api, elsewhere));
        }
        let runs = DryRuns {
            app,
            todo: todo.into_iter(),
        };
        let results: Vec<Option<ApplyError>> = futures::stream::iter(runs)
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        errors.extend(results.into_iter().flatten());
        errors
    }

    /// Apply one stage's manifests for `app`, several at a time, in order of the results;
    /// `live` (what was read before) tells created from updated from unchanged.
    pub async fn apply_all(
        &mut self,
        app: &str,
        manifests: &[&Manifest],
        live: &HashMap<ObjRef, LiveFacts>,
    ) -> Vec<Result<Applied, ApplyError>> {
        let mut todo = Vec::with_capacity(manifests.len());
        for m in manifests {
            todo.push((*m, self.api(&m.object).await));
        }
        let runs = Applies {
            app,
            todo: todo.into_iter(),
            live,
            client: self.client.clone(),
        };
        futures::stream::iter(runs)
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    /// What `f` makes of each live object of `refs` that exists, read several at a time; each
    /// object is dropped as soon as `f` has seen it (a pass over a thousand objects need not
    /// hold them all).
    pub async fn live_with<T>(
        &mut self,
        refs: &[(ObjRef, String)],
        mut f: impl FnMut(&ObjRef, Value) -> T,
    ) -> HashMap<ObjRef, T> {
        let mut jobs = Vec::with_capacity(refs.len());
        for (r, av) in refs {
            let probe = serde_json::json!({"apiVersion": av, "kind": r.kind,
                "metadata": {"name": r.name, "namespace": r.namespace}});
            if let Ok(api) = self.api(&probe).await {
                jobs.push((r.clone(), api));
            }
        }
        // Futures made lazily, as in `dry_run`.
        let runs = jobs.into_iter().map(read);
        let mut out = HashMap::new();
        let mut found = futures::stream::iter(runs).buffer_unordered(IN_FLIGHT);
        while let Some(next) = found.next().await {
            if let Some((r, v)) = next {
                let t = f(&r, v);
                out.insert(r, t);
            }
        }
        out
    }

    /// Apply one manifest for `app` (read first, to tell created from updated from unchanged).
    pub async fn apply(&mut self, app: &str, m: &Manifest) -> Result<Applied, ApplyError> {
        let r = m.obj_ref();
        let av = str_at(&m.object, &["apiVersion"]).to_string();
        let mut live = HashMap::new();
        if let Ok(Some(l)) = self.live(&r, &av).await {
            live.insert(r, LiveFacts::of(app, None, &l, FIELD_MANAGER));
        }
        self.apply_all(app, &[m], &live)
            .await
            .pop()
            .unwrap_or_else(|| Err(error(m, "nothing applied".into())))
    }

    /// The live object, or `None` when it does not exist (or its kind is not served).
    pub async fn live(&mut self, r: &ObjRef, api_version: &str) -> Result<Option<Value>, String> {
        let probe = serde_json::json!({"apiVersion": api_version, "kind": r.kind,
            "metadata": {"name": r.name, "namespace": r.namespace}});
        let Ok(api) = self.api(&probe).await else {
            return Ok(None);
        };
        match api.get_opt(&r.name).await {
            Ok(o) => Ok(o.map(|o| serde_json::to_value(o).unwrap_or_default())),
            Err(e) => Err(api_message(&e)),
        }
    }

    /// Delete a pruned object (background propagation, as ArgoCD); gone already is fine.
    pub async fn delete(&mut self, r: &ObjRef, api_version: &str) -> Result<(), String> {
        let probe = serde_json::json!({"apiVersion": api_version, "kind": r.kind,
            "metadata": {"name": r.name, "namespace": r.namespace}});
        let api = self.api(&probe).await?;
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(api_message(&e)),
        }
    }

    /// Create namespace `name` for `CreateNamespace=true` when it is missing; `true` when this
    /// call created it (the app's inventory then marks it as never to be pruned).
    pub async fn ensure_namespace(&mut self, name: &str) -> Result<bool, String> {
        use k8s_openapi::api::core::v1::Namespace;
        let api: Api<Namespace> = Api::all(self.client.clone());
        if api
            .get_opt(name)
            .await
            .map_err(|e| api_message(&e))?
            .is_some()
        {
            return Ok(false);
        }
        let ns: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}}}),
        )
        .map_err(|e| e.to_string())?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(api_message(&e)),
        }
    }
}

/// A pass's dry runs, each request's body (a copy of its object with the tracking id) and future
/// made only when `buffered` asks for the next: a kube request future holds the whole client
/// call (tens of KiB), so a thousand made up front cost tens of MiB per pass. A named iterator
/// with boxed futures that own what they use, not a closure: a stream mapped by a closure over
/// borrowed manifests is not `Send` for every lifetime, which a spawned pass requires.
struct DryRuns<'a> {
    app: &'a str,
    todo: std::vec::IntoIter<DryRunTodo<'a>>,
}

/// A manifest with its API, and the API of `default` for one whose namespace is coming.
type DryRunTodo<'a> = (&'a Manifest, Api<DynamicObject>, Option<Api<DynamicObject>>);

impl Iterator for DryRuns<'_> {
    type Item = BoxFuture<'static, Option<ApplyError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (m, api, elsewhere) = self.todo.next()?;
        let obj = Applier::tracked(self.app, m);
        let elsewhere = elsewhere.map(|api| {
            let mut e = obj.clone();
            e["metadata"]["namespace"] = Value::String("default".into());
            (api, e)
        });
        let run = DryRun {
            origin: m.origin.to_string(),
            r: m.obj_ref(),
            api,
            obj,
            elsewhere,
        };
        Some(run.run().boxed())
    }
}

/// A stage's applies, made one at a time as [`DryRuns`] are.
struct Applies<'a> {
    app: &'a str,
    todo: std::vec::IntoIter<(&'a Manifest, Result<Api<DynamicObject>, String>)>,
    live: &'a HashMap<ObjRef, LiveFacts>,
    client: kube::Client,
}

impl Iterator for Applies<'_> {
    type Item = BoxFuture<'static, Result<Applied, ApplyError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (m, api) = self.todo.next()?;
        let r = m.obj_ref();
        let run = Apply {
            origin: m.origin.to_string(),
            body: Applier::tracked(self.app, m),
            before: self.live.get(&r).and_then(|f| f.resource_version.clone()),
            r,
            api,
            client: self.client.clone(),
        };
        Some(run.run().boxed())
    }
}

/// One object's dry run, owning what its future needs.
struct DryRun {
    origin: String,
    r: ObjRef,
    api: Api<DynamicObject>,
    obj: Value,
    /// The same object tried in `default`, for a namespace that does not exist yet.
    elsewhere: Option<(Api<DynamicObject>, Value)>,
}

impl DryRun {
    async fn run(self) -> Option<ApplyError> {
        let DryRun {
            origin,
            r,
            api,
            obj,
            elsewhere,
        } = self;
        let mut params = apply_params();
        params.dry_run = true;
        let mut result = api.patch(&r.name, &params, &Patch::Apply(&obj)).await;
        if let (Err(kube::Error::Api(s)), Some((api, e))) = (&result, &elsewhere) {
            let missing_ns =
                s.code == 404 && s.message == format!("namespaces \"{}\" not found", r.namespace);
            if missing_ns {
                result = api.patch(&r.name, &params, &Patch::Apply(e)).await;
            }
        }
        result.err().map(|e| ApplyError {
            origin,
            obj: r.to_string(),
            message: api_message(&e),
        })
    }
}

/// One object's apply, owning what its future needs.
struct Apply {
    origin: String,
    r: ObjRef,
    api: Result<Api<DynamicObject>, String>,
    body: Value,
    /// Its resourceVersion before (None: it did not exist).
    before: Option<String>,
    client: kube::Client,
}

impl Apply {
    async fn run(self) -> Result<Applied, ApplyError> {
        let Apply {
            origin,
            r,
            api,
            body,
            before,
            client,
        } = self;
        let fail = |message: String| ApplyError {
            origin: origin.clone(),
            obj: r.to_string(),
            message,
        };
        let api = api.map_err(fail)?;
        let after = api
            .patch(&r.name, &apply_params(), &Patch::Apply(body))
            .await
            .map_err(|e| fail(api_message(&e)))?;
        if r.kind == "CustomResourceDefinition" && r.group == "apiextensions.k8s.io" {
            wait_established(&client, &r.name).await;
        }
        Ok(match before {
            None => Applied::Created,
            Some(rv) if Some(rv.as_str()) == after.metadata.resource_version.as_deref() => {
                Applied::Unchanged
            }
            Some(_) => Applied::Updated,
        })
    }
}

/// One live object read: `None` when it does not exist or cannot be read.
async fn read((r, api): (ObjRef, Api<DynamicObject>)) -> Option<(ObjRef, Value)> {
    let o = api.get_opt(&r.name).await.ok().flatten()?;
    Some((r, serde_json::to_value(o).ok()?))
}

fn apply_params() -> PatchParams {
    let mut p = PatchParams::apply(FIELD_MANAGER).force();
    p.field_validation = Some(ValidationDirective::Strict);
    p
}

fn error(m: &Manifest, message: String) -> ApplyError {
    ApplyError {
        origin: m.origin.to_string(),
        obj: m.obj_ref().to_string(),
        message,
    }
}
