//! What `[kubernetes_auth]` and a client's `service_account` say, as the
//! config holds them: the issuer, audiences and key source, and the
//! ServiceAccount patterns that select clients.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::jwks;

/// Where the pod's own ServiceAccount files are mounted.
pub const POD_SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A ServiceAccount, as a verified token names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl std::fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `[kubernetes_auth]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesAuth {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
}

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A JWKS file, read at config load (a change reloads the config).
    File { path: PathBuf, jwks: jwks::Jwks },
    /// OIDC discovery from the issuer: `<issuer>/.well-known/openid-configuration`,
    /// then its `jwks_uri`, trusting `ca` (besides the web PKI roots) and
    /// sending the token in `token_file` (read at each refresh) as bearer.
    Discovery {
        ca: Option<Vec<CertificateDer<'static>>>,
        token_file: Option<PathBuf>,
    },
}

/// A client's `service_account`: one ServiceAccount, or every one of a
/// namespace (`team-a/*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountPattern {
    One(ServiceAccount),
    Namespace(Arc<str>),
}

impl AccountPattern {
    /// `namespace/name` or `namespace/*`, each part a DNS label or
    /// subdomain as Kubernetes names are.
    pub fn parse(s: &str) -> Option<AccountPattern> {
        let (ns, name) = s.split_once('/')?;
        let label = |p: &str| {
            !p.is_empty()
                && p.len() <= 253
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        if !label(ns) || ns.contains('.') || ns.len() > 63 {
            return None;
        }
        match name {
            "*" => Some(AccountPattern::Namespace(ns.into())),
            n if label(n) => Some(AccountPattern::One(ServiceAccount {
                namespace: ns.into(),
                name: n.into(),
            })),
            _ => None,
        }
    }
}

impl std::fmt::Display for AccountPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountPattern::One(sa) => write!(f, "{sa}"),
            AccountPattern::Namespace(ns) => write!(f, "{ns}/*"),
        }
    }
}
