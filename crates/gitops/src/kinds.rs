//! The two Application kinds the module reconciles: metalgate's own (`metalgate.io/v1beta1`)
//! and, for migrating an ArgoCD repository unchanged, ArgoCD's (`argoproj.io/v1alpha1`) — the
//! latter only when asked (`--gitops-argo-applications`) and only where ArgoCD has not installed
//! its CRD: metalgate serves that CRD itself, labelled as its own, and never takes over ArgoCD's.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use metalgate_k8s::crd::{ARGO_CRD_LABEL, Application, ArgoApplication, argo_application_crd};

/// The annotations that ask for a pass now (ours, and ArgoCD's; any value); removed when that
/// pass has ended, unless set again meanwhile.
pub const REFRESH_ANNOTATIONS: [&str; 2] = ["metalgate.io/refresh", "argocd.argoproj.io/refresh"];
/// The annotation that asks for a sync now, even without automated sync (`metalgate gitops
/// sync`); removed when that pass has ended.
pub const SYNC_ANNOTATION: &str = "metalgate.io/sync";
/// The annotation that pauses self-heal (any value; the UI's Pause button): a hand edit stays
/// in place and the app shows OutOfSync, as for a manual rollback; new commits still sync.
pub const PAUSE_ANNOTATION: &str = "metalgate.io/pause-self-heal";

/// Which API an Application lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppKind {
    /// `metalgate.io/v1beta1`.
    #[default]
    Metalgate,
    /// `argoproj.io/v1alpha1`.
    Argo,
}

impl AppKind {
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            AppKind::Metalgate => "metalgate.io",
            AppKind::Argo => "argoproj.io",
        }
    }

    /// `group/version`.
    pub fn api_version(self) -> &'static str {
        match self {
            AppKind::Metalgate => "metalgate.io/v1beta1",
            AppKind::Argo => "argoproj.io/v1alpha1",
        }
    }

    /// The API of this kind's Applications in `namespace`, untyped (both read as
    /// [`Application`] through [`read`]).
    pub fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        let ar = match self {
            AppKind::Metalgate => ApiResource::erase::<Application>(&()),
            AppKind::Argo => ApiResource::erase::<ArgoApplication>(&()),
        };
        Api::namespaced_with(client.clone(), namespace, &ar)
    }
}

/// An Application of either kind, as metalgate's (the fields are the same).
pub fn read(obj: DynamicObject) -> Result<Application, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(obj)?)
}

/// What serving ArgoCD's Application kind found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoCrd {
    /// metalgate serves it (created now, or earlier).
    Ours,
    /// ArgoCD's own CRD is installed: its Applications are ArgoCD's, not ours.
    Theirs,
}

/// Whether `crd` is the one metalgate serves.
pub fn is_ours(crd: &CustomResourceDefinition) -> bool {
    crd.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ARGO_CRD_LABEL.0))
        .is_some_and(|v| v == ARGO_CRD_LABEL.1)
}

/// Serve `applications.argoproj.io` unless ArgoCD already does.
pub async fn serve_argo_crd(client: &kube::Client) -> Result<ArgoCrd, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let want = argo_application_crd();
    let name = want.metadata.name.clone().unwrap_or_default();
    let found = match crds.get_opt(&name).await? {
        Some(c) => c,
        None => match crds.create(&PostParams::default(), &want).await {
            Ok(_) => return Ok(ArgoCrd::Ours),
            // Someone made it meanwhile (another replica, or ArgoCD): whose is it?
            Err(kube::Error::Api(e)) if e.code == 409 => crds.get(&name).await?,
            Err(e) => return Err(e),
        },
    };
    Ok(if is_ours(&found) {
        ArgoCrd::Ours
    } else {
        ArgoCrd::Theirs
    })
}
