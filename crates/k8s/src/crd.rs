//! metalgate's custom resources, with MetalLB's field names and meanings so a MetalLB user
//! changes only `apiVersion` (`metallb.io/v1beta1` → `metalgate.io/v1beta1`), and the GitOps
//! [`Application`] with ArgoCD's (`argoproj.io/v1alpha1` → `metalgate.io/v1beta1`).
//!
//! The CRD YAML under `manifests/crds/` is generated from these types by `metalgate crdgen`,
//! and a test fails when the checked-in YAML drifts from what the types generate.

mod application;

pub use application::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

/// A pool of LoadBalancer IPs (MetalLB's `IPAddressPool`).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "metalgate.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "metalgate",
    printcolumn = r#"{"name":"Auto Assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"Avoid Buggy IPs","type":"boolean","jsonPath":".spec.avoidBuggyIPs"}"#,
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"Assigned IPv4","type":"integer","jsonPath":".status.assignedIPv4"}"#,
    printcolumn = r#"{"name":"Available IPv4","type":"integer","jsonPath":".status.availableIPv4"}"#,
    printcolumn = r#"{"name":"Assigned IPv6","type":"integer","jsonPath":".status.assignedIPv6","priority":1}"#,
    printcolumn = r#"{"name":"Available IPv6","type":"integer","jsonPath":".status.availableIPv6","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// CIDRs (`192.168.56.0/24`) or ranges (`192.168.56.200-192.168.56.220`), IPv4 or IPv6.
    pub addresses: Vec<String>,
    /// Whether Services get IPs from this pool without asking for it by name.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Skip addresses ending in .0 and .255, which some old equipment drops.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which Services may use the pool, and with what priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// MetalLB's `serviceAllocation`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; pools without a priority come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Selectors of such namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Selectors of Services that may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// How full a pool is.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses assigned to Services.
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: i64,
    /// IPv6 addresses assigned to Services.
    #[serde(rename = "assignedIPv6", default)]
    pub assigned_ipv6: i64,
    /// IPv4 addresses still free.
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: i64,
    /// IPv6 addresses still free (capped at i64::MAX).
    #[serde(rename = "availableIPv6", default)]
    pub available_ipv6: i64,
}

/// Where and how IPs from pools are announced over ARP (MetalLB's `L2Advertisement`).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metalgate.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    shortname = "l2adv",
    category = "metalgate",
    printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
    printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces"}"#,
    printcolumn = r#"{"name":"Node Selectors","type":"string","jsonPath":".spec.nodeSelectors","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools announced, by name (all pools when this and the selectors are empty).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "ipAddressPools"
    )]
    pub ip_address_pools: Vec<String>,
    /// Pools announced, by label.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "ipAddressPoolSelectors"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on (the one whose subnet holds the IP when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// Every CRD metalgate defines.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        Application::crd(),
    ]
}

/// The CRDs as multi-document YAML, exactly as checked in under `manifests/crds/`.
pub fn yaml() -> anyhow::Result<String> {
    let mut out = String::from(
        "# Generated by `metalgate crdgen` from crates/k8s/src/crd.rs. Do not edit.\n",
    );
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
