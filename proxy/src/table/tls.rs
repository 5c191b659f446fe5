//! Certificates for SNI: a table by exact and `*.` wildcard host, and the parsing of a
//! `kubernetes.io/tls` Secret, each failure naming the Secret and the key.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;

use super::{Map, key};

/// Certificates by host name, for SNI. Looked up on every plain HTTP request too (does its host
/// have TLS, for the redirect): foldhash, as the route maps, not SipHash.
#[derive(Debug, Default, Clone)]
pub struct CertTable {
    pub(super) exact: Map<String, Arc<CertifiedKey>>,
    pub(super) wildcard: Map<String, Arc<CertifiedKey>>,
}

impl CertTable {
    /// The certificate for a server name: exact, then `*.` wildcard.
    pub fn get(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.get_normalized(&host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// [`CertTable::get`] for a lowercase name without trailing dot.
    pub fn get_normalized(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        })
    }
    /// How many host names have a certificate.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }
    /// Whether no host has a certificate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parse a `kubernetes.io/tls` Secret into a certificate for rustls.
pub fn parse_tls_secret(s: &Secret) -> Result<CertifiedKey, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let name = key(&s.metadata);
    let data: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .chain(
            s.string_data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        )
        .collect();
    let crt = data
        .get("tls.crt")
        .ok_or_else(|| format!("Secret {name} has no data[tls.crt]"))?;
    let key_pem = data
        .get("tls.key")
        .ok_or_else(|| format!("Secret {name} has no data[tls.key]"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Secret {name} data[tls.crt]: not a PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err(format!("Secret {name} data[tls.crt]: no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("Secret {name} data[tls.key]: not a PEM private key: {e}"))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| format!("Secret {name}: certificate and key do not make a pair: {e}"))
}
