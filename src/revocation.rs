//! Nothing outlives its identity. A request is authenticated when it
//! arrives, but an HTTP/2 connection carries many requests and an upgraded
//! WebSocket session runs for hours after its one request: when a reload
//! revokes the client's credentials, removes its client or tenant, renames
//! its certificate's client, or rotates the client CA so that its
//! certificate no longer verifies, what is still open must close. Each
//! such connection and session remembers the credentials it was accepted
//! with ([`Identity`]); after every reload it resolves them again against
//! the new state, and closes when they no longer select the same tenant and
//! client ([`revoked`]).

use std::sync::{Arc, Mutex};

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;

use crate::state::State;
use crate::tenant::X_SCOPE_ORGID;

/// The credentials a request was accepted with, and what they selected.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    authorization: Option<HeaderValue>,
    org: Option<HeaderValue>,
    peer_cn: Option<Arc<str>>,
    tenant: Arc<str>,
    client: Option<Arc<str>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential itself.
        f.debug_struct("Identity")
            .field("tenant", &self.tenant)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn new(
        headers: &HeaderMap,
        peer_cn: Option<&str>,
        tenant: &Arc<str>,
        client: Option<&Arc<str>>,
    ) -> Identity {
        Identity {
            authorization: headers.get(AUTHORIZATION).cloned(),
            org: headers.get(&X_SCOPE_ORGID).cloned(),
            peer_cn: peer_cn.map(Arc::from),
            tenant: tenant.clone(),
            client: client.cloned(),
        }
    }

    /// Whether `headers` present exactly these credentials (no allocation).
    fn presented_by(&self, headers: &HeaderMap, peer_cn: Option<&str>) -> bool {
        headers.get(AUTHORIZATION) == self.authorization.as_ref()
            && headers.get(&X_SCOPE_ORGID) == self.org.as_ref()
            && peer_cn == self.peer_cn.as_deref()
    }

    /// The credentials still select the same tenant and client in `state`.
    pub fn holds(&self, state: &State) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(a) = &self.authorization {
            headers.insert(AUTHORIZATION, a.clone());
        }
        if let Some(o) = &self.org {
            headers.insert(X_SCOPE_ORGID.clone(), o.clone());
        }
        let account = state
            .verifier
            .as_ref()
            .and_then(|v| v.account_now(&headers));
        match state
            .resolver
            .resolve_with(&headers, self.peer_cn.as_deref(), account.as_ref())
        {
            Ok((t, client)) => {
                state.tenants[t].name == self.tenant
                    && client.map(|c| &c.name) == self.client.as_ref()
            }
            Err(_) => false,
        }
    }
}

/// The identities one connection was used with. A handful is kept: a
/// connection that keeps presenting new credentials beyond that is closed
/// at the next reload whatever it presented (fail closed).
#[derive(Default)]
pub struct Seen {
    inner: Mutex<SeenInner>,
    /// The client certificate chain the connection was accepted with.
    chain: Arc<[CertificateDer<'static>]>,
}

#[derive(Default)]
struct SeenInner {
    identities: Vec<Identity>,
    overflowed: bool,
}

const MAX_IDENTITIES: usize = 8;

impl Seen {
    pub fn with_chain(chain: Vec<CertificateDer<'static>>) -> Seen {
        Seen {
            inner: Mutex::default(),
            chain: chain.into(),
        }
    }

    /// The connection's client certificate chain (empty without mTLS).
    pub fn chain(&self) -> Arc<[CertificateDer<'static>]> {
        self.chain.clone()
    }

    /// Remember the credentials a request on this connection was accepted
    /// with (a lock and a compare when they are already known).
    pub fn note(
        &self,
        headers: &HeaderMap,
        peer_cn: Option<&str>,
        tenant: &Arc<str>,
        client: Option<&Arc<str>>,
    ) {
        let mut seen = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if seen
            .identities
            .iter()
            .any(|i| i.presented_by(headers, peer_cn))
        {
            return;
        }
        if seen.identities.len() == MAX_IDENTITIES {
            seen.overflowed = true;
            return;
        }
        seen.identities
            .push(Identity::new(headers, peer_cn, tenant, client));
    }

    /// Every identity used on the connection still holds in `state`, and
    /// its client certificate still verifies.
    pub fn all_hold(&self, state: &State) -> bool {
        let seen = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        !seen.overflowed
            && seen.identities.iter().all(|i| i.holds(state))
            && chain_verifies(&self.chain, state)
    }
}

/// A client certificate chain a connection was accepted with (end entity
/// first) still verifies under `state`'s client CA. A config without one
/// (mTLS turned off, or TLS altogether) no longer vouches for it.
pub fn chain_verifies(chain: &[CertificateDer<'static>], state: &State) -> bool {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return true;
    };
    let verifier = state
        .config
        .tls
        .as_ref()
        .and_then(|t| t.client_verifier.as_ref());
    verifier.is_some_and(|v| {
        v.verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    })
}

/// Resolves once a reload publishes a state in which `holds` is false;
/// never while it stays true (or when no more reloads can come).
pub async fn revoked(mut states: watch::Receiver<Arc<State>>, holds: impl Fn(&State) -> bool) {
    loop {
        if states.changed().await.is_err() {
            return std::future::pending().await;
        }
        let state = states.borrow_and_update().clone();
        if !holds(&state) {
            return;
        }
    }
}

/// An upgraded session's watch: its identity and the states to come.
pub struct SessionWatch {
    identity: Identity,
    chain: Arc<[CertificateDer<'static>]>,
    states: watch::Receiver<Arc<State>>,
}

impl SessionWatch {
    pub fn new(
        identity: Identity,
        chain: Arc<[CertificateDer<'static>]>,
        states: watch::Receiver<Arc<State>>,
    ) -> SessionWatch {
        SessionWatch {
            identity,
            chain,
            states,
        }
    }

    /// Resolves when a reload revokes the session's identity, or its
    /// client certificate stops verifying.
    pub async fn revoked(self) {
        let (identity, chain) = (self.identity, self.chain);
        revoked(self.states, move |s| {
            identity.holds(s) && chain_verifies(&chain, s)
        })
        .await
    }
}
