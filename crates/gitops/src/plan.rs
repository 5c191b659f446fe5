//! The sync plan: from what Git asks for, what the app owned before and what the cluster holds,
//! decide what to apply in which order and what to prune — a pure function, carried out by the
//! applier. Order as Flux's `ApplyAllStaged` and ArgoCD's waves: Namespaces and CRDs first (then
//! discovery again), then each sync wave in turn (`metalgate.io/sync-wave`, or ArgoCD's), kinds in
//! ArgoCD's order within a wave; prune last, in reverse wave order, behind two guards.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::live::LiveFacts;
use crate::object::{Manifest, ObjRef, annotation};
use crate::tracking::Owner;

/// The sync-wave annotations, ours first.
pub const WAVE_ANNOTATIONS: [&str; 2] = ["metalgate.io/sync-wave", "argocd.argoproj.io/sync-wave"];
/// The per-object sync-option annotations, ours first (`Prune=false`).
pub const OPTION_ANNOTATIONS: [&str; 2] = [
    "metalgate.io/sync-options",
    "argocd.argoproj.io/sync-options",
];

/// Kinds in the order ArgoCD applies them within one wave (gitops-engine's `kindOrder`).
const KIND_ORDER: [&str; 33] = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
];

/// What the plan needs to know about the app.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The Application's name (as written in tracking ids).
    pub app: String,
    /// `syncPolicy.automated.prune`.
    pub prune: bool,
    /// `syncPolicy.automated.allowEmpty`.
    pub allow_empty: bool,
    /// `syncPolicy.automated.allowMassPrune`: lift the mass-deletion guard.
    pub allow_mass_prune: bool,
}

/// An object the app owned at its last sync (from `status.resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The object.
    pub obj: ObjRef,
    /// Its wave.
    pub wave: i64,
    /// A namespace the module created for the app (`CreateNamespace=true`): never pruned.
    pub created_namespace: bool,
}

/// One stage of applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage<'a> {
    /// `None` for the definitions stage (Namespaces, CRDs); else the wave.
    pub wave: Option<i64>,
    /// The objects, in apply order (the manifests the plan was made from, not copies).
    pub objects: Vec<&'a Manifest>,
}

/// Why something in Git is not applied, or something gone from Git is not pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Another Application owns the object (`SharedResourceWarning`).
    OwnedByOther {
        /// The object.
        obj: ObjRef,
        /// The other Application.
        other: String,
    },
    /// The same object twice in Git (`RepeatedResourceWarning`); the first is applied.
    Repeated {
        /// The object.
        obj: ObjRef,
        /// Where it appears again.
        origin: String,
    },
    /// Git is empty and `allowEmpty` is off: nothing is pruned (`PruneGuard`).
    EmptyNotAllowed {
        /// How many objects would have been deleted.
        would_prune: usize,
    },
    /// More than half of the app's objects would go in one sync (`PruneGuard`).
    MassPrune {
        /// How many.
        would_prune: usize,
        /// Out of.
        owned: usize,
    },
    /// Left in place because `prune` is off (the app is OutOfSync).
    PruneDisabled {
        /// The object.
        obj: ObjRef,
    },
    /// Left in place because it says `Prune=false`.
    PruneFalse {
        /// The object.
        obj: ObjRef,
    },
}

impl Held {
    /// The condition type ArgoCD would report it under.
    pub fn condition_type(&self) -> &'static str {
        match self {
            Held::OwnedByOther { .. } => "SharedResourceWarning",
            Held::Repeated { .. } => "RepeatedResourceWarning",
            Held::EmptyNotAllowed { .. } | Held::MassPrune { .. } => "PruneGuard",
            Held::PruneDisabled { .. } | Held::PruneFalse { .. } => "OrphanedResourceWarning",
        }
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::OwnedByOther { obj, other } => write!(
                f,
                "{obj} is managed by Application {other:?}; it is not taken over"
            ),
            Held::Repeated { obj, origin } => {
                write!(f, "{obj} appears again in {origin}; the first one is used")
            }
            Held::EmptyNotAllowed { would_prune } => write!(
                f,
                "Git has no objects for this app; pruning all {would_prune} of its objects needs syncPolicy.automated.allowEmpty"
            ),
            Held::MassPrune { would_prune, owned } => write!(
                f,
                "this sync would prune {would_prune} of the app's {owned} objects (more than half); \
                 nothing was pruned — set syncPolicy.automated.allowMassPrune to allow it"
            ),
            Held::PruneDisabled { obj } => {
                write!(f, "{obj} is no longer in Git and is kept (prune is off)")
            }
            Held::PruneFalse { obj } => write!(f, "{obj} is no longer in Git and says Prune=false"),
        }
    }
}

/// What one sync does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan<'a> {
    /// Apply stages in order; each waits for the previous one to be healthy.
    pub stages: Vec<Stage<'a>>,
    /// Objects to delete, in order (reverse wave, reverse kind order).
    pub prune: Vec<ObjRef>,
    /// What is left alone, and why.
    pub held: Vec<Held>,
}

/// Problems that stop a plan: each names the object and the annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {obj}: {message}")]
pub struct PlanError {
    /// Where the object was read.
    pub origin: String,
    /// The object.
    pub obj: ObjRef,
    /// What is wrong.
    pub message: String,
}

/// An object's sync wave (0 when not annotated).
pub fn wave_of(obj: &Value) -> Result<i64, String> {
    for key in WAVE_ANNOTATIONS {
        if let Some(v) = annotation(obj, key) {
            return v
                .trim()
                .parse()
                .map_err(|_| format!("annotation {key}: {v:?} is not a whole number"));
        }
    }
    Ok(0)
}

/// Whether an object's sync-options annotation holds `option` (`Prune=false`).
pub fn has_option(obj: &Value, option: &str) -> bool {
    OPTION_ANNOTATIONS.iter().any(|key| {
        annotation(obj, key)
            .is_some_and(|v| v.split(',').any(|o| o.trim().eq_ignore_ascii_case(option)))
    })
}

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

fn is_definition(r: &ObjRef) -> bool {
    (r.group.is_empty() && r.kind == "Namespace")
        || (r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition")
}

/// Make the plan. `live` holds what the cluster has for every object of `desired` and `owned`
/// (absent: not there), judged for this app. Bad wave annotations are errors, all reported at
/// once.
pub fn plan<'a>(
    settings: &Settings,
    desired: &'a [Manifest],
    owned: &[Owned],
    live: &HashMap<ObjRef, LiveFacts>,
) -> Result<Plan<'a>, Vec<PlanError>> {
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    let mut seen: HashSet<ObjRef> = HashSet::new();
    let mut definitions = Vec::new();
    let mut waves: BTreeMap<i64, Vec<&Manifest>> = BTreeMap::new();
    for m in desired {
        let r = m.obj_ref();
        if !seen.insert(r.clone()) {
            plan.held.push(Held::Repeated {
                obj: r,
                origin: m.origin.to_string(),
            });
            continue;
        }
        let wave = match wave_of(&m.object) {
            Ok(w) => w,
            Err(message) => {
                errors.push(PlanError {
                    origin: m.origin.to_string(),
                    obj: r,
                    message,
                });
                continue;
            }
        };
        if let Some(Owner::Other(other)) = live.get(&r).map(|l| &l.owner) {
            plan.held.push(Held::OwnedByOther {
                obj: r,
                other: other.clone(),
            });
            continue;
        }
        if is_definition(&r) {
            definitions.push(m);
        } else {
            waves.entry(wave).or_default().push(m);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let by_kind_then_name = |a: &&Manifest, b: &&Manifest| {
        let (ra, rb) = (a.obj_ref(), b.obj_ref());
        (kind_rank(&ra.kind), &ra.kind, &ra.namespace, &ra.name).cmp(&(
            kind_rank(&rb.kind),
            &rb.kind,
            &rb.namespace,
            &rb.name,
        ))
    };
    if !definitions.is_empty() {
        definitions.sort_by(by_kind_then_name);
        plan.stages.push(Stage {
            wave: None,
            objects: definitions,
        });
    }
    for (wave, mut objects) in waves {
        objects.sort_by(by_kind_then_name);
        plan.stages.push(Stage {
            wave: Some(wave),
            objects,
        });
    }

    // Prune: what the app owned, is gone from Git, is still there and still ours.
    let mut gone: Vec<&Owned> = owned
        .iter()
        .filter(|o| !seen.contains(&o.obj) && !o.created_namespace)
        .filter(|o| live.get(&o.obj).is_some_and(|l| l.owner == Owner::Us))
        .collect();
    gone.sort_by(|a, b| {
        (b.wave, kind_rank(&b.obj.kind), &b.obj).cmp(&(a.wave, kind_rank(&a.obj.kind), &a.obj))
    });
    let mut candidates = Vec::new();
    for o in gone {
        if live.get(&o.obj).is_some_and(|l| l.prune_false) {
            plan.held.push(Held::PruneFalse { obj: o.obj.clone() });
        } else if !settings.prune {
            plan.held.push(Held::PruneDisabled { obj: o.obj.clone() });
        } else {
            candidates.push(o.obj.clone());
        }
    }
    let owned_count = owned.iter().filter(|o| !o.created_namespace).count();
    if candidates.is_empty() {
    } else if desired.is_empty() && !settings.allow_empty {
        plan.held.push(Held::EmptyNotAllowed {
            would_prune: candidates.len(),
        });
    } else if !settings.allow_mass_prune && candidates.len() * 2 > owned_count && owned_count > 1 {
        plan.held.push(Held::MassPrune {
            would_prune: candidates.len(),
            owned: owned_count,
        });
    } else {
        plan.prune = candidates;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Origin;
    use crate::tracking::{ANNOTATION, TrackingId};
    use serde_json::json;

    fn m(api: &str, kind: &str, ns: &str, name: &str, wave: Option<&str>) -> Manifest {
        let mut o = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
        if !ns.is_empty() {
            o["metadata"]["namespace"] = json!(ns);
        }
        if let Some(w) = wave {
            o["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": w});
        }
        Manifest {
            origin: Origin {
                file: format!("apps/{name}.yaml"),
                document: 1,
            },
            object: o,
        }
    }

    fn live_of(app: &str, m: &Manifest) -> Value {
        let mut o = m.object.clone();
        o["metadata"]["annotations"] =
            json!({ANNOTATION: TrackingId::new(app, &m.obj_ref()).value()});
        o
    }

    /// Live objects as a pass judges them for app `demo`.
    fn judged(live: &HashMap<ObjRef, Value>) -> HashMap<ObjRef, LiveFacts> {
        live.iter()
            .map(|(r, l)| {
                (
                    r.clone(),
                    LiveFacts::of("demo", None, l, "metalgate-gitops"),
                )
            })
            .collect()
    }

    fn names(stage: &Stage) -> Vec<String> {
        stage
            .objects
            .iter()
            .map(|m| m.obj_ref().to_string())
            .collect()
    }

    fn settings(prune: bool) -> Settings {
        Settings {
            app: "demo".into(),
            prune,
            ..Settings::default()
        }
    }

    #[test]
    fn definitions_first_then_waves_then_kind_order() {
        let desired = vec![
            m("apps/v1", "Deployment", "demo", "web", None),
            m("v1", "Service", "demo", "web", None),
            m("networking.k8s.io/v1", "Ingress", "demo", "web", Some("2")),
            m("v1", "ConfigMap", "demo", "early", Some("-1")),
            m("v1", "Namespace", "", "demo", Some("5")),
            m(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "things.example.com",
                None,
            ),
            m("example.com/v1", "Thing", "demo", "t", None),
        ];
        let p = plan(&settings(true), &desired, &[], &HashMap::new()).unwrap();
        let waves: Vec<_> = p.stages.iter().map(|s| s.wave).collect();
        assert_eq!(waves, [None, Some(-1), Some(0), Some(2)]);
        assert_eq!(
            names(&p.stages[0]),
            [
                "Namespace demo",
                "CustomResourceDefinition things.example.com"
            ]
        );
        assert_eq!(
            names(&p.stages[2]),
            ["Service demo/web", "Deployment demo/web", "Thing demo/t"]
        );
        assert!(p.prune.is_empty() && p.held.is_empty());
    }

    #[test]
    fn bad_waves_are_all_named() {
        let desired = vec![
            m("v1", "ConfigMap", "demo", "a", Some("soon")),
            m("v1", "ConfigMap", "demo", "b", Some("1.5")),
        ];
        let errs = plan(&settings(true), &desired, &[], &HashMap::new()).unwrap_err();
        let msgs: Vec<_> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "apps/a.yaml: document 1: ConfigMap demo/a: annotation argocd.argoproj.io/sync-wave: \"soon\" is not a whole number",
                "apps/b.yaml: document 1: ConfigMap demo/b: annotation argocd.argoproj.io/sync-wave: \"1.5\" is not a whole number",
            ]
        );
    }

    #[test]
    fn objects_of_other_apps_are_not_taken_and_repeats_are_reported() {
        let cm = m("v1", "ConfigMap", "demo", "shared", None);
        let live = HashMap::from([(cm.obj_ref(), live_of("other", &cm))]);
        let twice = [cm.clone(), cm.clone()];
        let p = plan(&settings(true), &twice, &[], &judged(&live)).unwrap();
        assert!(p.stages.is_empty());
        assert_eq!(
            p.held,
            [
                Held::OwnedByOther {
                    obj: cm.obj_ref(),
                    other: "other".into()
                },
                Held::Repeated {
                    obj: cm.obj_ref(),
                    origin: "apps/shared.yaml: document 1".into()
                },
            ]
        );
        assert_eq!(p.held[0].condition_type(), "SharedResourceWarning");
    }

    fn owned(ms: &[&Manifest]) -> Vec<Owned> {
        ms.iter()
            .map(|m| Owned {
                obj: m.obj_ref(),
                wave: wave_of(&m.object).unwrap(),
                created_namespace: false,
            })
            .collect()
    }

    #[test]
    fn prune_what_left_git_in_reverse_wave_order() {
        let keep = m("v1", "ConfigMap", "demo", "keep", None);
        let keep2 = m("v1", "ConfigMap", "demo", "keep2", None);
        let a = m("v1", "Service", "demo", "a", Some("1"));
        let b = m("apps/v1", "Deployment", "demo", "b", Some("3"));
        let all = [&keep, &keep2, &a, &b];
        let live: HashMap<_, _> = all
            .iter()
            .map(|m| (m.obj_ref(), live_of("demo", m)))
            .collect();
        let desired = vec![keep.clone(), keep2.clone()];
        let p = plan(&settings(true), &desired, &owned(&all), &judged(&live)).unwrap();
        assert_eq!(p.prune, [b.obj_ref(), a.obj_ref()], "wave 3 before wave 1");
        assert!(p.held.is_empty(), "{:?}", p.held);

        // Without prune: nothing deleted, each kept object named.
        let p = plan(&settings(false), &desired, &owned(&all), &judged(&live)).unwrap();
        assert!(p.prune.is_empty());
        assert_eq!(
            p.held,
            [
                Held::PruneDisabled { obj: b.obj_ref() },
                Held::PruneDisabled { obj: a.obj_ref() }
            ]
        );
    }

    #[test]
    fn prune_skips_prune_false_created_namespaces_gone_and_foreign_objects() {
        let keep = m("v1", "ConfigMap", "demo", "keep", None);
        let pf = m("v1", "ConfigMap", "demo", "pf", None);
        let ns = m("v1", "Namespace", "", "demo", None);
        let taken = m("v1", "ConfigMap", "demo", "taken", None);
        let vanished = m("v1", "ConfigMap", "demo", "vanished", None);
        let mut live: HashMap<_, _> = [&keep, &pf, &ns]
            .iter()
            .map(|m| (m.obj_ref(), live_of("demo", m)))
            .collect();
        live.get_mut(&pf.obj_ref()).unwrap()["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] =
            json!("Prune=false");
        live.insert(taken.obj_ref(), live_of("other", &taken));
        let mut inv = owned(&[&keep, &pf, &taken, &vanished]);
        inv.push(Owned {
            obj: ns.obj_ref(),
            wave: 0,
            created_namespace: true,
        });
        let p = plan(
            &settings(true),
            std::slice::from_ref(&keep),
            &inv,
            &judged(&live),
        )
        .unwrap();
        assert!(p.prune.is_empty(), "{:?}", p.prune);
        assert_eq!(p.held, [Held::PruneFalse { obj: pf.obj_ref() }]);
    }

    #[test]
    fn guards_against_emptying_and_mass_deletion() {
        let objs: Vec<Manifest> = (0..4)
            .map(|i| m("v1", "ConfigMap", "demo", &format!("c{i}"), None))
            .collect();
        let refs: Vec<&Manifest> = objs.iter().collect();
        let live: HashMap<_, _> = objs
            .iter()
            .map(|m| (m.obj_ref(), live_of("demo", m)))
            .collect();

        let p = plan(&settings(true), &[], &owned(&refs), &judged(&live)).unwrap();
        assert!(p.prune.is_empty());
        assert_eq!(p.held, [Held::EmptyNotAllowed { would_prune: 4 }]);
        let empty_ok = Settings {
            allow_empty: true,
            allow_mass_prune: true,
            ..settings(true)
        };
        assert_eq!(
            plan(&empty_ok, &[], &owned(&refs), &judged(&live))
                .unwrap()
                .prune
                .len(),
            4
        );

        // 3 of 4 would go: refused.
        let p = plan(&settings(true), &objs[..1], &owned(&refs), &judged(&live)).unwrap();
        assert!(p.prune.is_empty());
        assert_eq!(
            p.held,
            [Held::MassPrune {
                would_prune: 3,
                owned: 4
            }]
        );
        assert!(p.held[0].to_string().contains("3 of the app's 4"));
        // Exactly half is allowed; more with allowMassPrune.
        assert_eq!(
            plan(&settings(true), &objs[..2], &owned(&refs), &judged(&live))
                .unwrap()
                .prune
                .len(),
            2
        );
        let mass_ok = Settings {
            allow_mass_prune: true,
            ..settings(true)
        };
        assert_eq!(
            plan(&mass_ok, &objs[..1], &owned(&refs), &judged(&live))
                .unwrap()
                .prune
                .len(),
            3
        );
    }
}
