//! `[kubernetes_auth]`: the issuer and audiences ServiceAccount tokens must
//! carry, and where the signing keys come from.

use std::path::{Path, PathBuf};

use crate::config::{read_small_file, RawKubernetesAuth, Tenant};
use crate::kubernetes_auth::jwks::Jwks;
use crate::kubernetes_auth::spec::{KeySource, KubernetesAuth, POD_SA_DIR};

use super::problems::Problems;
use super::upstreams::read_ca_file;

pub(super) fn kubernetes_auth(
    p: &mut Problems,
    raw: Option<&RawKubernetesAuth>,
    tenants: &std::collections::BTreeMap<String, Tenant>,
) -> Option<KubernetesAuth> {
    let Some(raw) = raw else {
        for t in tenants.values() {
            for c in t.clients.iter().filter(|c| c.service_account.is_some()) {
                p.add(
                    format!("tenants.{}.clients.{}.service_account", t.name, c.name),
                    "needs a [kubernetes_auth] table (issuer and audiences)",
                );
            }
        }
        return None;
    };
    let before = p.0.len();
    let issuer = raw.issuer.clone().unwrap_or_default();
    match issuer.parse::<http::Uri>() {
        Ok(u)
            if u.scheme_str() == Some("https")
                && u.authority().is_some()
                && u.query().is_none() => {}
        _ => p.add(
            "kubernetes_auth.issuer",
            "must be the cluster's service-account-issuer, an https:// URL",
        ),
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        p.add(
            "kubernetes_auth.audiences",
            "must name at least one audience (the tokens' projected audience, e.g. \"lgtm-proxy\")",
        );
    }
    let keys = match &raw.jwks_file {
        Some(path) => {
            p.watch(path);
            // Bounded like every secret file.
            match read_small_file(path) {
                Ok(text) => match Jwks::parse(text.as_bytes()) {
                    Ok(jwks) => Some(KeySource::File {
                        path: path.clone(),
                        jwks,
                    }),
                    Err(e) => {
                        p.add(
                            "kubernetes_auth.jwks_file",
                            format!("{}: {e}", path.display()),
                        );
                        None
                    }
                },
                Err(e) => {
                    p.add("kubernetes_auth.jwks_file", e);
                    None
                }
            }
        }
        None => {
            let pod = |f: &str| Some(Path::new(POD_SA_DIR).join(f)).filter(|p| p.exists());
            let ca_path: Option<PathBuf> = raw.ca_file.clone().or_else(|| pod("ca.crt"));
            let ca = match &ca_path {
                Some(path) => {
                    p.watch(path);
                    match read_ca_file(path) {
                        Ok(certs) => Some(certs),
                        Err(e) => {
                            p.add("kubernetes_auth.ca_file", e);
                            None
                        }
                    }
                }
                None => None,
            };
            if let Some(t) = &raw.token_file {
                if !t.exists() {
                    p.add(
                        "kubernetes_auth.token_file",
                        format!("{}: no such file", t.display()),
                    );
                }
            }
            Some(KeySource::Discovery {
                ca,
                token_file: raw.token_file.clone().or_else(|| pod("token")),
            })
        }
    };
    if p.0.len() != before {
        return None;
    }
    Some(KubernetesAuth {
        issuer,
        audiences: raw.audiences.clone(),
        keys: keys?,
    })
}
