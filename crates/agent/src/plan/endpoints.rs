//! A Service with a selector as an EndpointSlice, as kube-controller-manager's EndpointSlice
//! controller writes it: one endpoint per pod of the Service's namespace that the selector
//! selects and that has an IP, `ready`/`serving` from the pod's Ready condition (or always,
//! with `publishNotReadyAddresses`), `terminating` while it is deleted, the node it runs on and
//! a reference to it; ports by the Service's `targetPort`, a named one looked up in the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{controller_ref, pod_ready};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Kubernetes' EndpointSlice controller's name, which ours stands in for.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";

fn port_of(pod: &Pod, target: &IntOrString) -> Option<i32> {
    match target {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The slice for `svc` given the pods of its namespace; `None` when it has no selector (its
/// slices are the user's to write).
pub fn slice(svc: &Service, pods: &[&Pod]) -> Option<EndpointSlice> {
    let spec = svc.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let name = svc.metadata.name.clone()?;
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let selected: Vec<&&Pod> = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
        .collect();
    let svc_ports = spec.ports.clone().unwrap_or_default();
    // Ports as the first selected pod resolves them (named target ports differ only if the
    // pods' templates differ, which a rollout makes brief).
    let ports: Vec<EndpointPort> = svc_ports
        .iter()
        .map(|sp| {
            let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                port: selected.iter().find_map(|p| port_of(p, &target)),
                app_protocol: sp.app_protocol.clone(),
            }
        })
        .collect();
    let mut endpoints: Vec<Endpoint> = selected
        .iter()
        .map(|p| {
            let ready = pod_ready(p) || publish_not_ready;
            let terminating = p.metadata.deletion_timestamp.is_some();
            Endpoint {
                addresses: vec![
                    p.status
                        .as_ref()
                        .and_then(|s| s.pod_ip.clone())
                        .unwrap_or_default(),
                ],
                conditions: Some(EndpointConditions {
                    ready: Some(ready && !terminating),
                    serving: Some(ready),
                    terminating: Some(terminating),
                }),
                node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    namespace: p.metadata.namespace.clone(),
                    name: p.metadata.name.clone(),
                    uid: p.metadata.uid.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    let labels: BTreeMap<String, String> = [
        (SERVICE_NAME.to_string(), name.clone()),
        (MANAGED_BY.to_string(), CONTROLLER.to_string()),
    ]
    .into();
    Some(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{name}-pods")),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref("v1", "Service", &svc.metadata)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };

    fn svc(selector: Option<&str>, target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("podinfo".into()),
                namespace: Some("podinfo".into()),
                uid: Some("svc".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: selector.map(|s| [("app".to_string(), s.to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, app: &str, ip: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("podinfo".into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("ops-demo".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 9898,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_string),
                conditions: Some(crate::plan::ready_conditions(ready)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn selected_pods_with_ips_become_endpoints_with_their_readiness() {
        let (a, b, c, d) = (
            pod("a", "podinfo", Some("10.42.0.5"), true),
            pod("b", "podinfo", Some("10.42.1.5"), false),
            pod("c", "podinfo", None, false),
            pod("d", "other", Some("10.42.0.6"), true),
        );
        let s = slice(
            &svc(Some("podinfo"), IntOrString::String("http".into())),
            &[&a, &b, &c, &d],
        )
        .unwrap();
        let got: Vec<(String, Option<bool>)> = s
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().unwrap().ready))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.42.0.5".into(), Some(true)),
                ("10.42.1.5".into(), Some(false))
            ]
        );
        assert_eq!(
            s.ports.as_ref().unwrap()[0].port,
            Some(9898),
            "the named targetPort resolved in the pod"
        );
        assert_eq!(s.metadata.labels.as_ref().unwrap()[SERVICE_NAME], "podinfo");
        assert_eq!(
            s.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_service_without_a_selector_is_left_alone() {
        assert!(slice(&svc(None, IntOrString::Int(80)), &[]).is_none());
        let mut publish = svc(Some("podinfo"), IntOrString::Int(8080));
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let b = pod("b", "podinfo", Some("10.42.1.5"), false);
        let s = slice(&publish, &[&b]).unwrap();
        assert_eq!(
            s.endpoints[0].conditions.as_ref().unwrap().ready,
            Some(true)
        );
        assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
    }
}
