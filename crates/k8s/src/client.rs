//! Building a `kube::Client` for the embedded store or a cluster.

use std::path::Path;

use anyhow::Context;

/// Install ring as rustls' process-wide crypto provider (several are linked in; without a
/// choice rustls refuses to build a client). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client from a kubeconfig file.
pub async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    Ok(kube::Client::try_from(cfg)?)
}

/// A client from kubeconfig text.
pub async fn from_kubeconfig_str(text: &str) -> anyhow::Result<kube::Client> {
    install_crypto_provider();
    let kc = kube::config::Kubeconfig::from_yaml(text).context("parsing kubeconfig")?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// The client the environment gives (in-cluster, `KUBECONFIG`, `~/.kube/config`).
pub async fn infer() -> anyhow::Result<kube::Client> {
    install_crypto_provider();
    Ok(kube::Client::try_default().await?)
}
