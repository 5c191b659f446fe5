//! Credentials: a CA made on first start and kept in the data directory, a serving certificate
//! signed by it for the listen address, a bearer token, and the kubeconfig that carries them.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Paths and material under `<data-dir>/tls`.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// PEM of the CA certificate.
    pub ca_pem: String,
    /// The bearer token clients must send.
    pub token: String,
    /// The secret ServiceAccount tokens are signed with (32 bytes).
    pub sa_secret: Vec<u8>,
    /// Serving certificate chain (leaf first).
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Serving key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "metalgate-ca");
    p.distinguished_name
        .push(DnType::OrganizationName, "metalgate");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Load the CA and token from `dir`, creating them on first start, and issue a serving
/// certificate for `sans` (IP addresses and DNS names).
pub fn load_or_create(dir: &Path, sans: &[String]) -> anyhow::Result<Credentials> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key_path = dir.join("ca.key");
    let ca_path = dir.join("ca.crt");
    let token_path = dir.join("token");
    let sa_key_path = dir.join("serviceaccount.key");
    if !sa_key_path.exists() {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&sa_key_path, &hex)?;
    }
    if !ca_key_path.exists() || !ca_path.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_private(&ca_path, &cert.pem())?;
    }
    if !token_path.exists() {
        let bytes: [u8; 24] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&token_path, &token)?;
    }
    let ca_key = KeyPair::from_pem(&fs::read_to_string(&ca_key_path)?)?;
    let ca_pem = fs::read_to_string(&ca_path)?;
    // The issuer is rebuilt from the same parameters the CA was made with: signing needs
    // only its name and key, both of which are fixed.
    let issuer = Issuer::new(ca_params()?, ca_key);
    let token = fs::read_to_string(&token_path)?.trim().to_string();
    let sa_hex = fs::read_to_string(&sa_key_path)?;
    let sa_secret: Vec<u8> = (0..sa_hex.trim().len() / 2)
        .filter_map(|i| u8::from_str_radix(sa_hex.trim().get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    anyhow::ensure!(
        sa_secret.len() == 32,
        "{} is not 64 hex digits",
        sa_key_path.display()
    );

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "metalgate-apiserver");
    let mut all: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
    ];
    all.extend(sans.iter().cloned());
    all.sort();
    all.dedup();
    for s in &all {
        params.subject_alt_names.push(match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.clone().try_into()?),
        });
    }
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).context("parsing ca.crt")?;
    Ok(Credentials {
        ca_pem,
        token,
        sa_secret,
        cert_chain: vec![cert.der().clone(), ca_der],
        key_der: key.serialize_der(),
    })
}

/// The rustls server configuration (TLS 1.2 and 1.3; h2 and http/1.1 by ALPN).
pub fn server_config(c: &Credentials) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(c.key_der.clone().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(c.cert_chain.clone(), key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A kubeconfig for `server` (e.g. `https://127.0.0.1:6443`) that kubectl and kube-rs accept.
pub fn kubeconfig(c: &Credentials, server: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(c.ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: metalgate
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: metalgate-admin
  user:
    token: {token}
contexts:
- name: metalgate
  context:
    cluster: metalgate
    user: metalgate-admin
    namespace: default
current-context: metalgate
",
        token = c.token
    )
}

/// Write a kubeconfig file readable only by its owner.
pub fn write_kubeconfig(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent)?;
        }
    }
    write_private(path, contents)
}
