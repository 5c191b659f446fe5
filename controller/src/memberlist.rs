//! The speakers' gossip key: the controller creates the Secret holding it when it is missing,
//! as MetalLB's controller does for its memberlist, so `kubectl apply -k manifests/` needs no
//! manual step and no key is ever committed to Git. An existing Secret is never changed (a
//! rotation is the operator's edit; see `metalgate_speaker::keyring`).

use base64::Engine;
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
    let created =
        metalgate_k8s::secrets::ensure(client, namespace, name, "secretkey", fresh_key).await?;
    Ok(if created {
        Outcome::Created
    } else {
        Outcome::Present
    })
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
