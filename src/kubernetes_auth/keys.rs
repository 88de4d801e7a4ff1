//! `Verifier`: the cluster's signing keys and the tokens verified with
//! them. The keys come from a `jwks_file` (read at config load) or from
//! OIDC discovery at the issuer, fetched at start, every
//! `REFRESH_INTERVAL`, and at once (at most every `ON_DEMAND_MIN`) when a
//! token names a `kid` the set does not hold, so a key rotation in the
//! cluster costs no failed request. While discovery fails, static-token
//! and certificate clients are served as ever; JWT clients get 401.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use super::cache::Cache;
use super::jwks::Jwks;
use super::spec::{KeySource, KubernetesAuth, ServiceAccount};
use super::verify::{kid_of, verify, Expect, JwtError, Verified};
use crate::config::read_secret_file;
use crate::proxy::{root_cause, ClientSet, OwnClient};
use crate::telemetry::unix_now;

/// Discovery refreshes the keys this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// An unknown `kid` refreshes the keys at most this often.
pub const ON_DEMAND_MIN: Duration = Duration::from_secs(10);
/// After a failed refresh, the next try comes this soon.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// What `/ready?verbose` says about the keys.
#[derive(Debug, Clone, Default)]
pub struct KeyStatus {
    pub keys: usize,
    /// Unix seconds of the last successful load; 0 for never.
    pub last_refresh: f64,
    pub last_error: Option<String>,
}

pub struct Verifier {
    config: KubernetesAuth,
    keys: ArcSwapOption<Jwks>,
    cache: Cache,
    status: Mutex<KeyStatus>,
    /// Held by the fetch in progress.
    refreshing: tokio::sync::Mutex<Fetches>,
    /// Clients for discovery (the issuer's and the `jwks_uri`'s authority).
    clients: Mutex<ClientSet>,
    refreshed: prometheus::Gauge,
}

/// When fetches ended and started, for `refresh_on_demand`.
#[derive(Default)]
struct Fetches {
    last_ended: Option<tokio::time::Instant>,
    last_on_demand: Option<tokio::time::Instant>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    /// A verifier whose discovery (if any) runs in a task of its own
    /// (outside a runtime, as in unit tests, none is started).
    pub fn start(config: KubernetesAuth, refreshed: prometheus::Gauge) -> Arc<Self> {
        let v = Self::new(config, refreshed);
        if v.discovers() && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(refresh_forever(Arc::downgrade(&v)));
        }
        v
    }

    /// `refreshed` is `lgtm_proxy_jwks_last_refresh_timestamp_seconds`.
    pub fn new(config: KubernetesAuth, refreshed: prometheus::Gauge) -> Arc<Self> {
        let v = Verifier {
            keys: ArcSwapOption::empty(),
            cache: Cache::default(),
            status: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(Fetches::default()),
            clients: Mutex::new(ClientSet::new()),
            refreshed,
            config,
        };
        if let KeySource::File { jwks, .. } = &v.config.keys {
            v.store(jwks.clone());
        }
        Arc::new(v)
    }

    pub fn config(&self) -> &KubernetesAuth {
        &self.config
    }

    /// Take a reloaded `jwks_file`'s keys (same issuer and audiences).
    pub fn take_file_keys(&self, jwks: &Jwks) {
        if self.keys.load().as_deref() != Some(jwks) {
            self.store(jwks.clone());
        }
    }

    fn store(&self, jwks: Jwks) {
        let n = jwks.len();
        self.keys.store(Some(Arc::new(jwks)));
        self.cache.clear();
        let now = unix_now();
        self.refreshed.set(now);
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        *s = KeyStatus {
            keys: n,
            last_refresh: now,
            last_error: None,
        };
    }

    pub fn status(&self) -> KeyStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A token verified before and not expired: one hash lookup.
    pub fn cached(&self, digest: &[u8; 32]) -> Option<Verified> {
        self.cache.get(digest, unix_now() as i64)
    }

    /// The account `headers`' bearer JWT names, verified now with the keys
    /// held (no refresh): how an open connection's identity is checked
    /// again after a reload.
    pub fn account_now(&self, headers: &http::HeaderMap) -> Option<ServiceAccount> {
        let token = super::verify::bearer_jwt(headers)?;
        let digest = crate::tenant::token_hash(token.as_bytes());
        match self.cached(&digest) {
            Some(v) => Some(v.account),
            None => self.verify_now(token).ok().map(|v| v.account),
        }
    }

    /// Verify `token` with the keys held now.
    pub fn verify_now(&self, token: &str) -> Result<Verified, JwtError> {
        let keys = self.keys.load();
        let empty = Jwks::default();
        verify(
            token,
            keys.as_deref().unwrap_or(&empty),
            &Expect {
                issuer: &self.config.issuer,
                audiences: &self.config.audiences,
                now: unix_now() as i64,
            },
        )
    }

    /// Verify `token` (whose SHA-256 digest is `digest`), refreshing the
    /// keys first when it names a `kid` they do not hold.
    pub async fn verify(&self, token: &str, digest: [u8; 32]) -> Result<Verified, JwtError> {
        let result = match self.verify_now(token) {
            Err(JwtError::UnknownKid(_)) if self.discovers() => {
                self.refresh_on_demand().await;
                self.verify_now(token)
            }
            other => other,
        };
        if let Ok(v) = &result {
            self.cache.insert(digest, v.clone(), unix_now() as i64);
        } else if let Err(e) = &result {
            // The kid is the client's text: at most 64 characters of it.
            let kid = kid_of(token).unwrap_or_default();
            tracing::info!(
                error = %e,
                kid = kid.get(..64).unwrap_or(&kid),
                "ServiceAccount token refused"
            );
        }
        result
    }

    fn discovers(&self) -> bool {
        matches!(self.config.keys, KeySource::Discovery { .. })
    }

    /// Refresh now unless an on-demand refresh started within
    /// `ON_DEMAND_MIN`. Requests arriving during a fetch (on demand or the
    /// periodic one) wait for it and use its keys instead of starting
    /// their own.
    async fn refresh_on_demand(&self) {
        let asked = tokio::time::Instant::now();
        let mut fetches = self.refreshing.lock().await;
        if fetches.last_ended.is_some_and(|t| t >= asked) {
            return;
        }
        if fetches
            .last_on_demand
            .is_some_and(|t| t.elapsed() < ON_DEMAND_MIN)
        {
            return;
        }
        // The first fetch of all (a token that came before the periodic
        // task's) does not count against the on-demand budget.
        if fetches.last_ended.is_some() {
            fetches.last_on_demand = Some(tokio::time::Instant::now());
        }
        let _ = self.fetch_and_store().await;
        fetches.last_ended = Some(tokio::time::Instant::now());
    }

    async fn fetch_and_store(&self) -> Result<(), String> {
        match tokio::time::timeout(FETCH_TIMEOUT * 2, self.fetch()).await {
            Ok(Ok(jwks)) => {
                let changed = self.keys.load().as_deref() != Some(&jwks);
                if changed {
                    tracing::info!(keys = jwks.len(), issuer = %self.config.issuer, "JWKS loaded");
                    self.store(jwks);
                } else {
                    let now = unix_now();
                    self.refreshed.set(now);
                    let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
                    s.last_refresh = now;
                    s.last_error = None;
                }
                Ok(())
            }
            result => {
                let error = match result {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {:?}", FETCH_TIMEOUT * 2),
                };
                tracing::warn!(
                    issuer = %self.config.issuer,
                    %error,
                    "JWKS refresh failed; ServiceAccount tokens are verified with the keys held ({})",
                    self.keys.load().as_ref().map_or(0, |k| k.len())
                );
                self.status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// OIDC discovery, then the JWKS it names.
    async fn fetch(&self) -> Result<Jwks, String> {
        let KeySource::Discovery { ca, token_file } = &self.config.keys else {
            return Err("no discovery for a jwks_file".into());
        };
        // kubelet rewrites the token file: read it at each fetch, off the
        // runtime and bounded like every secret file.
        let token = match token_file.clone() {
            Some(path) => tokio::task::spawn_blocking(move || read_secret_file(&path).ok())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let bearer = token
            .and_then(|t| HeaderValue::from_str(&format!("Bearer {}", t.expose().trim())).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        let issuer = self.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc = self.get(&url, ca.as_deref(), bearer.as_ref()).await?;
        let d: Discovery = serde_json::from_slice(&doc)
            .map_err(|e| format!("{url}: not an OpenID configuration: {e}"))?;
        if d.issuer != self.config.issuer {
            return Err(format!(
                "{url}: names issuer {:?}, not {:?}",
                d.issuer, self.config.issuer
            ));
        }
        let body = self
            .get(&d.jwks_uri, ca.as_deref(), bearer.as_ref())
            .await?;
        Jwks::parse(&body).map_err(|e| format!("{}: {e}", d.jwks_uri))
    }

    async fn get(
        &self,
        url: &str,
        ca: Option<&[rustls::pki_types::CertificateDer<'static>]>,
        bearer: Option<&HeaderValue>,
    ) -> Result<Bytes, String> {
        let uri: Uri = url.parse().map_err(|_| format!("{url}: not a URL"))?;
        let client = {
            let mut set = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            OwnClient::at(&mut set, &uri, ca, FETCH_TIMEOUT)
                .ok_or_else(|| format!("{url}: not an http:// or https:// URL"))?
        };
        let mut req = Request::get(uri)
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .body(Full::<Bytes>::default())
            .map_err(|e| format!("{url}: {e}"))?;
        if let Some(b) = bearer {
            req.headers_mut().insert(AUTHORIZATION, b.clone());
        }
        let res = tokio::time::timeout(FETCH_TIMEOUT, client.request(req))
            .await
            .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("{url}: {}", root_cause(&e)))?;
        let status = res.status();
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(res.into_body(), MAX_DOCUMENT_BYTES).collect(),
        )
        .await
        .map_err(|_| format!("{url}: body not read within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("{url}: {status}"));
        }
        Ok(body)
    }
}

/// Discovery at start, every `REFRESH_INTERVAL` after (sooner after a
/// failure), until no state holds the verifier any more.
async fn refresh_forever(verifier: std::sync::Weak<Verifier>) {
    loop {
        let Some(v) = verifier.upgrade() else { return };
        let ok = {
            let mut fetches = v.refreshing.lock().await;
            let ok = v.fetch_and_store().await.is_ok();
            fetches.last_ended = Some(tokio::time::Instant::now());
            ok
        };
        drop(v);
        let wait = if ok {
            REFRESH_INTERVAL
        } else {
            RETRY_AFTER_FAILURE
        };
        tokio::time::sleep(wait).await;
    }
}
