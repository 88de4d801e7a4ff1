//! Inbound TLS: the listener's certificate and key, and an optional client
//! CA for mTLS. Files are read and the rustls config is built at load time
//! (so a bad file is a config error naming the key), and again on reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Clients may present a certificate signed by this CA; its subject CN
    /// selects a client with the same `cert_cn`. Tokens keep working.
    pub client_ca_file: Option<PathBuf>,
}

/// The validated inbound TLS setup. Its Debug names the files only: the
/// rustls config inside holds the private key's signing object.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub config: Arc<rustls::ServerConfig>,
    /// The client-certificate verifier `config` uses, to check the
    /// certificates of connections opened under an earlier config.
    pub client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("client_ca_file", &self.client_ca_file)
            .finish_non_exhaustive()
    }
}

/// Build the server config; problems as `(key, message)`.
pub fn build(raw: &RawTls) -> Result<ServerTls, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let certs = read_certs(&raw.cert_file)
        .map_err(|e| problems.push(("tls.cert_file".to_string(), e.to_string())))
        .ok();
    let key = PrivateKeyDer::from_pem_file(&raw.key_file)
        .map_err(|e| {
            problems.push((
                "tls.key_file".to_string(),
                format!(
                    "{}: no usable PEM private key ({e})",
                    raw.key_file.display()
                ),
            ))
        })
        .ok();
    let verifier = raw.client_ca_file.as_ref().and_then(|path| {
        let roots = read_certs(path)
            .and_then(|certs| root_store(path, &certs))
            .map_err(|e| problems.push(("tls.client_ca_file".to_string(), e.to_string())))
            .ok()?;
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| problems.push(("tls.client_ca_file".to_string(), e.to_string())))
            .ok()
    });
    let (Some(certs), Some(key)) = (certs, key) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match verifier.clone() {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        vec![(
            "tls.key_file".to_string(),
            format!("does not match tls.cert_file: {e}"),
        )]
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTls {
        cert_file: raw.cert_file.clone(),
        key_file: raw.key_file.clone(),
        client_ca_file: raw.client_ca_file.clone(),
        config: Arc::new(config),
        client_verifier: verifier,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a certificate file cannot be used; each names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: bad PEM: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    NotCa { path: PathBuf, reason: String },
}

/// Read the PEM certificates of a file (inbound TLS, client CA, upstream
/// extra CA).
pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| CertError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        .collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(CertError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// The certificates as trust anchors: the check rustls makes when they are
/// used, made at load time instead.
pub(super) fn root_store(
    path: &Path,
    certs: &[CertificateDer<'static>],
) -> Result<rustls::RootCertStore, CertError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs {
        store.add(cert.clone()).map_err(|e| CertError::NotCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

/// The subject CN of a client certificate (mTLS identity).
pub fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_paths_never_key_material() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let key_pem = ck.key_pair.serialize_pem();
        std::fs::write(&key, &key_pem).unwrap();
        let tls = build(&RawTls {
            cert_file: cert,
            key_file: key,
            client_ca_file: None,
        })
        .unwrap();
        let out = format!("{tls:?}");
        assert!(out.contains("tls.key"), "{out}");
        let body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!out.contains(&body[..40]), "{out}");
        assert!(!out.to_lowercase().contains("signing"), "{out}");
    }
}
