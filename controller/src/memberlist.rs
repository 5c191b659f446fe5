//! The speakers' gossip key: the controller creates the Secret holding it when it is missing,
//! as MetalLB's controller does for its memberlist, so `kubectl apply -k manifests/` needs no
//! manual step and no key is ever committed to Git. An existing Secret is never changed (a
//! rotation is the operator's edit; see `metalgate_speaker::keyring`).

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use ring::rand::SecureRandom;

/// What [`ensure`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret was there; left as it is.
    Present,
    /// It was missing and is now created with a fresh random key.
    Created,
}

/// A fresh key: 32 random bytes, base64 (as `openssl rand -base64 32` would print them).
pub fn fresh_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for the gossip key"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Create `namespace/name` with a random `secretkey` unless it exists.
pub async fn ensure(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<Outcome> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    if api.get_opt(name).await?.is_some() {
        return Ok(Outcome::Present);
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
        string_data: Some([("secretkey".to_string(), fresh_key()?)].into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Outcome::Created),
        // Another replica (or the operator) was first: theirs stands.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Present),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_are_long_enough_and_differ() {
        let (a, b) = (fresh_key().unwrap(), fresh_key().unwrap());
        assert_eq!(a.len(), 44);
        assert_ne!(a, b);
    }
}
