//! Outbound clients, built at config load and never per request: one per
//! distinct transport need (extra CA, connect timeout), shared by every
//! upstream that has the same need, and one `UpstreamPool` per need and
//! upstream. rustls with webpki roots, ALPN h2/http1.1 for https, plain
//! HTTP/1.1 for http, pooled keep-alive.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::body::Metered;
use super::connect_deadline::{ConnectDeadline, Connector};
use super::egress::Egress;
use super::pool::{Dialer, UpstreamPool};
use crate::config::Upstream;

/// The pool of forwarded requests (their bodies are `Metered<Incoming>`).
pub type ProxyPool = UpstreamPool<Metered<Incoming>>;

/// An outbound client: rustls + egress proxy, pooled, for body type `B`.
pub type OwnClient<B> = Client<Connector, B>;
pub type HttpClient = OwnClient<Metered<Incoming>>;

/// A request body hyper-util's client can send.
pub trait OutBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static
{
}
impl<B> OutBody for B where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle pooled connection is kept. Below the 120-350 s idle
/// cut-offs of common cloud load balancers, so we close first.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone, PartialEq, Eq)]
struct TransportKey {
    /// The extra CA's certificates (not its path: a rotated CA file needs
    /// a new client).
    ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    connect_timeout: Duration,
}

/// The clients one transport need gets: hyper-util's pool keys on scheme
/// and authority, and the protocol choice is per client, so each protocol
/// need is its own client.
#[derive(Clone)]
pub struct Clients {
    /// HTTP/1.1, or h2 when an https upstream offers it by ALPN.
    pub auto: HttpClient,
    /// HTTP/1.1 only, for Upgrade requests (h2 has no `upgrade` header).
    pub http1: HttpClient,
    /// HTTP/2 with prior knowledge: gRPC to an `http://` upstream.
    pub h2c: HttpClient,
    /// The upstream's own pool, for every request but upgrades (and gRPC
    /// to `http://`): `https://` upstreams, and `http://` upstreams that no
    /// egress proxy intercepts. `None` for a plain-HTTP upstream behind an
    /// egress proxy (absolute-form targets), where `auto` serves.
    pub pool: Option<Arc<ProxyPool>>,
}

pub struct ClientSet {
    proxies: Arc<Matcher>,
    built: Vec<(TransportKey, Clients)>,
    /// One pool per transport need, scheme and authority, kept across
    /// reloads.
    pools: Vec<(TransportKey, Scheme, Authority, Arc<ProxyPool>)>,
}

impl ClientSet {
    /// Egress proxy settings are read from the environment here, once.
    pub fn new() -> Self {
        ClientSet {
            proxies: Arc::new(Matcher::from_env()),
            built: Vec::new(),
            pools: Vec::new(),
        }
    }

    /// The clients for an upstream's transport needs, built on first use.
    pub fn client_for(&mut self, up: &Upstream) -> Clients {
        let key = TransportKey {
            ca: up.ca.as_ref().map(|ca| ca.certs.clone()),
            connect_timeout: up.connect_timeout,
        };
        let mut clients = match self.built.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => c.clone(),
            None => {
                let ca = up.ca.as_ref().map(|c| c.certs.as_slice());
                let clients = Clients {
                    auto: build(ca, up.connect_timeout, &self.proxies, Protocol::Auto),
                    http1: build(ca, up.connect_timeout, &self.proxies, Protocol::Http1),
                    h2c: build(ca, up.connect_timeout, &self.proxies, Protocol::H2c),
                    pool: None,
                };
                self.built.push((key.clone(), clients.clone()));
                clients
            }
        };
        clients.pool = self.pool_for(key, up);
        clients
    }

    fn pool_for(&mut self, key: TransportKey, up: &Upstream) -> Option<Arc<ProxyPool>> {
        if up.scheme == Scheme::HTTP {
            let dst = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(up.authority.clone())
                .path_and_query("/")
                .build()
                .ok()?;
            if self.proxies.intercept(&dst).is_some() {
                return None;
            }
        }
        if let Some((_, _, _, pool)) = self.pools.iter().find(|(k, s, a, pool)| {
            *k == key
                && *s == up.scheme
                && *a == up.authority
                && pool.max_connections() == up.max_connections
        }) {
            return Some(pool.clone());
        }
        let dialer = if up.scheme == Scheme::HTTP {
            Dialer::Plain(http_connector(up.connect_timeout))
        } else {
            let ca = up.ca.as_ref().map(|c| c.certs.as_slice());
            Dialer::Tls(https_connector(
                ca,
                up.connect_timeout,
                &self.proxies,
                Protocol::Auto,
            ))
        };
        let pool = Arc::new(ProxyPool::new(
            dialer,
            up.scheme.clone(),
            &up.authority,
            POOL_IDLE_TIMEOUT,
            up.max_connections,
            up.connect_timeout,
        ));
        self.pools
            .push((key, up.scheme.clone(), up.authority.clone(), pool.clone()));
        Some(pool)
    }

    /// Forget pools no target holds any more (an upstream whose URL
    /// changed); their idle connections close with them.
    pub fn prune_pools(&mut self) {
        self.pools
            .retain(|(_, _, _, pool)| Arc::strong_count(pool) > 1);
    }

    /// How many pools exist (one per transport need, scheme and authority
    /// in use).
    pub fn pool_count(&self) -> usize {
        self.pools.len()
    }

    /// How many distinct clients exist (one per transport need).
    pub fn len(&self) -> usize {
        self.built.len()
    }

    pub fn is_empty(&self) -> bool {
        self.built.is_empty()
    }
}

impl Default for ClientSet {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Auto,
    Http1,
    H2c,
}

/// A client for the proxy's own requests (remote-write jobs): same TLS,
/// egress and pool settings as the forwarding clients, any body type.
pub fn own_client<B: OutBody>(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
) -> OwnClient<B> {
    build(
        ca,
        connect_timeout,
        &Arc::new(Matcher::from_env()),
        Protocol::Auto,
    )
}

/// TCP as every upstream connection gets it: resolved off the runtime,
/// `connect_timeout`, no Nagle delay, TCP keepalive.
fn http_connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http
}

fn build<B: OutBody>(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
    proxies: &Arc<Matcher>,
    protocol: Protocol,
) -> OwnClient<B> {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .http2_only(protocol == Protocol::H2c)
        .build(https_connector(ca, connect_timeout, proxies, protocol))
}

/// rustls (webpki roots and the extra CA) over TCP or an egress tunnel,
/// offering by ALPN what `protocol` allows, all of it within
/// `connect_timeout`; plain `http://` goes through as TCP.
pub(super) fn https_connector(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
    proxies: &Arc<Matcher>,
    protocol: Protocol,
) -> Connector {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = ca {
        // Certificates were parsed at config load; a cert rustls refuses
        // here was reported there too.
        roots.add_parsable_certificates(ca.iter().cloned());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();

    let mut http = http_connector(connect_timeout);
    http.enforce_http(false);

    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let egress = Egress::new(http, proxies.clone());
    let tls = match protocol {
        Protocol::Http1 => builder.enable_http1().wrap_connector(egress),
        Protocol::H2c => builder.enable_http2().wrap_connector(egress),
        Protocol::Auto => builder.enable_http1().enable_http2().wrap_connector(egress),
    };
    ConnectDeadline::new(tls, connect_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from;

    fn upstream(url: &str) -> Upstream {
        let cfg = load_from(
            None,
            [
                ("LGTM_PROMETHEUS_URL".to_string(), url.to_string()),
                ("LGTM_PROMETHEUS_USER".to_string(), "1".to_string()),
                ("LGTM_TOKEN".to_string(), "t".to_string()),
            ],
        )
        .unwrap();
        cfg.upstreams["prometheus"].clone()
    }

    #[test]
    fn upstreams_share_a_pool_per_scheme_and_authority_and_unused_pools_go() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        // No egress proxy, whatever this machine's environment says.
        let mut set = ClientSet {
            proxies: Arc::new(Matcher::builder().build()),
            built: Vec::new(),
            pools: Vec::new(),
        };
        let a = set.client_for(&upstream("http://mimir.monitoring:8080"));
        let b = set.client_for(&upstream("http://mimir.monitoring:8080/base"));
        let c = set.client_for(&upstream("http://other.monitoring:8080"));
        let https = set.client_for(&upstream("https://prometheus.grafana.net"));
        let https_too = set.client_for(&upstream("https://prometheus.grafana.net/base"));
        let https_port = set.client_for(&upstream("http://prometheus.grafana.net:443"));
        assert!(Arc::ptr_eq(
            a.pool.as_ref().unwrap(),
            b.pool.as_ref().unwrap()
        ));
        assert!(!Arc::ptr_eq(
            a.pool.as_ref().unwrap(),
            c.pool.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            https.pool.as_ref().unwrap(),
            https_too.pool.as_ref().unwrap()
        ));
        // The same host and port by another scheme is another pool.
        assert!(!Arc::ptr_eq(
            https.pool.as_ref().unwrap(),
            https_port.pool.as_ref().unwrap()
        ));
        assert_eq!(set.pool_count(), 4);
        // A reload that no longer has other.monitoring drops its pool.
        drop(c);
        set.prune_pools();
        assert_eq!(set.pool_count(), 3);
        drop((a, b, https, https_too, https_port));
        set.prune_pools();
        assert_eq!(set.pool_count(), 0);
    }
}
