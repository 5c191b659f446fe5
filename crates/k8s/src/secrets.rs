//! Secrets a component makes for itself (the speakers' gossip key, the UI's admin password):
//! created with a generated value when missing — as MetalLB's memberlist and ArgoCD's initial
//! admin secret are — and never changed afterwards (rotation is the operator's edit).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

/// Create `namespace/name` holding `key: value()` unless it exists; whether it was created.
/// `value` runs only when the Secret is missing. A concurrent creator (another replica) wins
/// quietly.
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<bool> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    if api.get_opt(name).await?.is_some() {
        return Ok(false);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(
                [(
                    "app.kubernetes.io/part-of".to_string(),
                    "metalgate".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some([(key.to_string(), value()?)].into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
