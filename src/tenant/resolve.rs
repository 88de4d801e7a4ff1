//! Tenant resolution, the contract's four rules in order (only when at
//! least one tenant exists):
//! 1. client credentials matching a client select its tenant; an
//!    X-Scope-OrgID naming another tenant is 403;
//! 2. if client auth is required, no or unknown credentials are 401;
//! 3. otherwise an X-Scope-OrgID naming a tenant selects it (unknown: 403);
//! 4. otherwise the default tenant.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use http::HeaderMap;

use super::credentials::presented_token_hash;
use super::limits::ClientRate;
use crate::access::AccessSet;
use crate::kubernetes_auth::spec::{AccountPattern, ServiceAccount};

/// The tenant header: which tenant a request acts for (Mimir, Loki and
/// Tempo read it as the org id).
pub static X_SCOPE_ORGID: http::HeaderName = http::HeaderName::from_static("x-scope-orgid");

pub struct ClientEntry {
    /// SHA-256 of the client's token (`None`: certificate only).
    hash: Option<[u8; 32]>,
    /// mTLS: the certificate subject CN that identifies this client.
    cert_cn: Option<Box<str>>,
    pub tenant: usize,
    pub name: Arc<str>,
    pub access: AccessSet,
    /// The client's buckets when it has a `rate` (carried across reloads).
    pub rate: Option<Arc<ClientRate>>,
    /// The ServiceAccount(s) whose verified tokens are this client.
    account: Option<AccountPattern>,
    /// Its place in the resolver (`Resolver::client`), set by `Resolver::new`.
    index: usize,
}

impl ClientEntry {
    pub fn new(
        hash: Option<[u8; 32]>,
        cert_cn: Option<&str>,
        tenant: usize,
        name: &str,
        access: AccessSet,
        rate: Option<Arc<ClientRate>>,
    ) -> Self {
        ClientEntry {
            hash,
            cert_cn: cert_cn.map(Into::into),
            tenant,
            name: name.into(),
            access,
            rate,
            account: None,
            index: 0,
        }
    }

    /// This client is also (or only) the ServiceAccount(s) `account`.
    pub fn with_account(mut self, account: Option<AccountPattern>) -> Self {
        self.account = account;
        self
    }

    /// Its index for `Resolver::client`.
    pub fn index(&self) -> usize {
        self.index
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials while client auth is required (401).
    Missing,
    /// Credentials that match no client (401).
    Unknown,
    /// A client's X-Scope-OrgID names another tenant (403).
    TenantMismatch,
    /// X-Scope-OrgID names no configured tenant (403).
    UnknownTenant,
}

impl AuthError {
    /// The `reason` label of `lgtm_proxy_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::Unknown => "unknown_credentials",
            Self::TenantMismatch => "tenant_mismatch",
            Self::UnknownTenant => "unknown_tenant",
        }
    }
}

pub struct Resolver {
    /// Tenant names; index 0 is `default`.
    names: Vec<Arc<str>>,
    clients: Vec<ClientEntry>,
    /// Client index by token digest (tokens are unique: config checks it).
    by_digest: HashMap<Digest, usize, BuildHasherDefault<DigestHasher>>,
    /// Client index by ServiceAccount, then by namespace (`ns/*`).
    by_account: HashMap<ServiceAccount, usize>,
    by_namespace: HashMap<Arc<str>, usize>,
    require_auth: bool,
}

impl Resolver {
    pub fn new(names: Vec<Arc<str>>, mut clients: Vec<ClientEntry>, require_auth: bool) -> Self {
        for (i, c) in clients.iter_mut().enumerate() {
            c.index = i;
        }
        let by_digest = clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((Digest(c.hash?), i)))
            .collect();
        let mut by_account = HashMap::new();
        let mut by_namespace = HashMap::new();
        for (i, c) in clients.iter().enumerate() {
            match &c.account {
                Some(AccountPattern::One(sa)) => {
                    by_account.insert(sa.clone(), i);
                }
                Some(AccountPattern::Namespace(ns)) => {
                    by_namespace.insert(ns.clone(), i);
                }
                None => {}
            }
        }
        Resolver {
            names,
            clients,
            by_digest,
            by_account,
            by_namespace,
            require_auth,
        }
    }

    /// The buckets of client `client` of tenant `tenant`, for the next
    /// config's resolver to carry on.
    pub fn client_rate(&self, tenant: &str, client: &str) -> Option<&Arc<ClientRate>> {
        self.clients
            .iter()
            .find(|c| &*c.name == client && &*self.names[c.tenant] == tenant)?
            .rate
            .as_ref()
    }

    /// The client at `index` (`ClientEntry::index` of a resolved one).
    pub fn client(&self, index: usize) -> Option<&ClientEntry> {
        self.clients.get(index)
    }

    pub fn has_tenants(&self) -> bool {
        self.names.len() > 1
    }

    /// Resolve the request's tenant index and client. `peer_cn` is the
    /// subject CN of a verified client certificate (mTLS); a token, when
    /// presented, decides first.
    pub fn resolve(
        &self,
        headers: &HeaderMap,
        peer_cn: Option<&str>,
    ) -> Result<(usize, Option<&ClientEntry>), AuthError> {
        self.resolve_with(headers, peer_cn, None)
    }

    /// `resolve`, with the ServiceAccount a verified bearer JWT named
    /// (`ServiceAccountToken`): that token selects the client whose
    /// `service_account` is that account, else the one of its namespace.
    pub fn resolve_with(
        &self,
        headers: &HeaderMap,
        peer_cn: Option<&str>,
        account: Option<&ServiceAccount>,
    ) -> Result<(usize, Option<&ClientEntry>), AuthError> {
        if !self.has_tenants() && !self.require_auth {
            return Ok((0, None));
        }
        let org = headers.get(&X_SCOPE_ORGID).map(|v| v.as_bytes());
        // A verified JWT is never compared as a static token.
        let token = match account {
            Some(_) => None,
            None => presented_token_hash(headers),
        };
        let presented = account.is_some() || token.is_some() || peer_cn.is_some();
        match presented {
            true => {
                let client = match (account, token) {
                    (Some(sa), _) => self.find_account(sa),
                    (None, Some(hash)) => self.find(&hash),
                    (None, None) => peer_cn.and_then(|cn| {
                        self.clients
                            .iter()
                            .find(|c| c.cert_cn.as_deref() == Some(cn))
                    }),
                };
                if let Some(client) = client {
                    if org.is_some_and(|o| o != self.names[client.tenant].as_bytes()) {
                        return Err(AuthError::TenantMismatch);
                    }
                    return Ok((client.tenant, Some(client)));
                }
                if self.require_auth {
                    return Err(AuthError::Unknown);
                }
            }
            false if self.require_auth => return Err(AuthError::Missing),
            false => {}
        }
        match org {
            None => Ok((0, None)),
            Some(o) => self
                .names
                .iter()
                .position(|n| n.as_bytes() == o)
                .map(|i| (i, None))
                .ok_or(AuthError::UnknownTenant),
        }
    }

    /// The client of ServiceAccount `sa`: its own, else its namespace's.
    fn find_account(&self, sa: &ServiceAccount) -> Option<&ClientEntry> {
        self.by_account
            .get(sa)
            .or_else(|| self.by_namespace.get(&sa.namespace))
            .map(|&i| &self.clients[i])
    }

    /// The client whose token has this SHA-256 digest: one map lookup,
    /// whatever the number of clients. What the lookup's timing could tell
    /// is about digests, and a caller cannot steer a digest toward a stored
    /// one (that would take a SHA-256 preimage), so it reveals nothing
    /// about any token; the stored tokens themselves are never compared.
    fn find(&self, hash: &[u8; 32]) -> Option<&ClientEntry> {
        self.by_digest
            .get(&Digest(*hash))
            .map(|&i| &self.clients[i])
    }
}

/// A token's SHA-256 digest as a map key.
#[derive(PartialEq, Eq)]
struct Digest([u8; 32]);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A digest is uniform already: its first 8 bytes are the hash.
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes `Digest`'s `write_u64` through (no rehashing).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Digest` keys are hashed here, through `write_u64`.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests;
