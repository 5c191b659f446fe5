//! Tracking: which Application an object belongs to, written on the object itself as ArgoCD's
//! annotation tracking does (`<app>:<group>/<kind>:<namespace>/<name>`), so ownership survives a
//! restart and an object copied by hand is not mistaken for one of ours.

use crate::object::{ObjRef, annotation};

/// The annotation that carries the tracking id.
pub const ANNOTATION: &str = "metalgate.io/tracking-id";
/// ArgoCD's, read (never written) so an object an Argo app owns is recognised as taken.
pub const ARGO_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";

/// A tracking id: the owning Application (namespace-qualified when not in the module's
/// namespace, as ArgoCD writes `<ns>_<app>`) and the object it was written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingId {
    /// The Application, as written before the first `:`.
    pub app: String,
    /// The object the id says it is on.
    pub obj: ObjRef,
}

impl TrackingId {
    /// The id an object of `app` carries.
    pub fn new(app: &str, obj: &ObjRef) -> Self {
        TrackingId {
            app: app.to_string(),
            obj: obj.clone(),
        }
    }

    /// The annotation's value.
    pub fn value(&self) -> String {
        format!(
            "{}:{}/{}:{}/{}",
            self.app, self.obj.group, self.obj.kind, self.obj.namespace, self.obj.name
        )
    }

    /// Parse an annotation's value; `None` when it is not of the form above.
    pub fn parse(v: &str) -> Option<Self> {
        let (app, rest) = v.split_once(':')?;
        let (gk, nn) = rest.split_once(':')?;
        let (group, kind) = gk.split_once('/')?;
        let (namespace, name) = nn.split_once('/')?;
        if app.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(TrackingId {
            app: app.into(),
            obj: ObjRef {
                group: group.into(),
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
            },
        })
    }
}

/// Who owns a live object, as far as tracking tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No tracking annotation, or one copied onto another object (its id names a different
    /// object): nobody.
    Nobody,
    /// This Application.
    Us,
    /// Another Application (metalgate's or ArgoCD's), by the name in its id.
    Other(String),
}

/// Who owns `live` when `app` wants it. An id that names another object was copied (with
/// `kubectl get -o yaml` and edited, say) and does not count, as in ArgoCD.
pub fn owner(app: &str, live: &serde_json::Value) -> Owner {
    let me = ObjRef::of(live);
    let ours = annotation(live, ANNOTATION).and_then(TrackingId::parse);
    let argo = annotation(live, ARGO_ANNOTATION).and_then(TrackingId::parse);
    match ours.or(argo) {
        Some(id) if id.obj != me => Owner::Nobody,
        Some(id) if id.app == app => Owner::Us,
        Some(id) => Owner::Other(id.app),
        None => Owner::Nobody,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ann: Option<(&str, &str)>) -> serde_json::Value {
        let mut o = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "demo"}});
        if let Some((k, v)) = ann {
            o["metadata"]["annotations"] = json!({ k: v });
        }
        o
    }

    #[test]
    fn ids_round_trip() {
        let r = ObjRef::of(&obj(None));
        let id = TrackingId::new("podinfo", &r);
        assert_eq!(id.value(), "podinfo:apps/Deployment:demo/podinfo");
        assert_eq!(TrackingId::parse(&id.value()), Some(id));
        let ns = TrackingId::new(
            "root",
            &ObjRef::of(&json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}})),
        );
        assert_eq!(ns.value(), "root:/Namespace:/demo");
        assert_eq!(TrackingId::parse(&ns.value()), Some(ns));
        for bad in ["", "x", "a:b", "a:/Kind:ns", ":/K:n/m", "a:/:n/m"] {
            assert_eq!(TrackingId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn owners() {
        let v = "podinfo:apps/Deployment:demo/podinfo";
        assert_eq!(owner("podinfo", &obj(None)), Owner::Nobody);
        assert_eq!(owner("podinfo", &obj(Some((ANNOTATION, v)))), Owner::Us);
        assert_eq!(
            owner("other", &obj(Some((ANNOTATION, v)))),
            Owner::Other("podinfo".into())
        );
        assert_eq!(
            owner("other", &obj(Some((ARGO_ANNOTATION, v)))),
            Owner::Other("podinfo".into()),
            "an ArgoCD app's object is taken too"
        );
        assert_eq!(
            owner(
                "other",
                &obj(Some((ANNOTATION, "podinfo:apps/Deployment:demo/copy")))
            ),
            Owner::Nobody,
            "an id copied from another object does not count"
        );
    }
}
