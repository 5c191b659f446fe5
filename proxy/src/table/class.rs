//! Which Ingresses are ours: by `ingressClassName` (or the old annotation), an IngressClass
//! naming our controller, the default-class annotation, and `nginx` in migration mode.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The controller name our IngressClasses carry in `spec.controller`.
pub const CONTROLLER: &str = "metalgate.io/ingress-controller";

/// Which Ingresses are ours.
#[derive(Debug, Clone)]
pub struct ClassSettings {
    /// The class name accepted even without an IngressClass object (`metalgate`).
    pub class: String,
    /// Also serve Ingresses of class `nginx` (drop-in migration from ingress-nginx).
    pub accept_nginx: bool,
}

impl Default for ClassSettings {
    fn default() -> Self {
        ClassSettings {
            class: "metalgate".into(),
            accept_nginx: false,
        }
    }
}

pub(super) fn our_classes(
    classes: &[Arc<IngressClass>],
    s: &ClassSettings,
) -> (HashSet<String>, bool) {
    let mut names: HashSet<String> = [s.class.clone()].into_iter().collect();
    if s.accept_nginx {
        names.insert("nginx".into());
    }
    let mut default = false;
    for c in classes {
        if c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER) {
            if let Some(n) = &c.metadata.name {
                names.insert(n.clone());
            }
            if c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("ingressclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true")
            {
                default = true;
            }
        }
    }
    (names, default)
}

pub(super) fn is_ours(i: &Ingress, (names, default): &(HashSet<String>, bool)) -> bool {
    let class = i
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            i.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class"))
                .map(String::as_str)
        });
    match class {
        Some(c) => names.contains(c),
        None => *default,
    }
}
