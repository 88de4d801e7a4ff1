//! How targets reach their upstreams, built at config load and never per
//! request: `UpstreamPool`s per transport need (extra CA, connect timeout),
//! scheme, authority and protocol, shared by every target with the same
//! and kept across reloads: requests (ALPN h2/http1.1 for https, HTTP/1.1
//! for http), upgrades (HTTP/1.1 only) and gRPC to http:// (h2c). Only a
//! plain-HTTP upstream behind an egress proxy (absolute-form requests) goes
//! through hyper-util's client. The proxy's own calls (remote-write,
//! rules sync, Alertmanager) take the same clients (`OwnClient`).

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::body::OutBody;
use super::connect_deadline::{ConnectDeadline, Connector};
use super::egress::Egress;
use super::pool::{Dialer, UpstreamPool};
use crate::config::Upstream;

/// An upstream's pool: forwarded requests and the proxy's own calls.
pub type ProxyPool = UpstreamPool<OutBody>;

/// hyper-util's client (rustls + egress proxy, pooled), for plain-HTTP
/// upstreams behind an egress proxy.
pub type HttpClient = Client<Connector, OutBody>;

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

/// How a target's requests reach its upstream.
#[derive(Clone)]
pub enum Clients {
    /// The upstream's own pools (`https://` upstreams, and `http://` ones
    /// no egress proxy intercepts).
    Pooled {
        /// Every request but upgrades and gRPC to `http://`: HTTP/1.1, or
        /// h2 when an https upstream offers it by ALPN.
        pool: Arc<ProxyPool>,
        /// Upgrades: HTTP/1.1 only (h2 has no `upgrade` header; https
        /// offers only http/1.1 by ALPN), connections that can be upgraded.
        upgrades: Arc<ProxyPool>,
        /// gRPC to an `http://` upstream: h2 with prior knowledge. `None`
        /// for `https://` (ALPN decides on `pool`).
        h2c: Option<Arc<ProxyPool>>,
    },
    /// A plain-HTTP upstream an egress proxy intercepts: absolute-form
    /// requests to the proxy through hyper-util's client (boxed: rare, and
    /// every target holds a `Clients`).
    Proxied(Box<Proxied>),
}

/// hyper-util's clients for an egress-proxied plain-HTTP upstream.
#[derive(Clone)]
pub struct Proxied {
    /// HTTP/1.1, upgrades included.
    pub auto: HttpClient,
    /// HTTP/2 with prior knowledge, for gRPC.
    pub h2c: HttpClient,
}

pub struct ClientSet {
    proxies: Arc<Matcher>,
    /// hyper-util clients for egress-proxied plain-HTTP upstreams, one pair
    /// per transport need.
    built: Vec<(TransportKey, HttpClient, HttpClient)>,
    /// One pool per transport need, scheme, authority and protocol, kept
    /// across reloads.
    pools: Vec<(PoolKey, Arc<ProxyPool>)>,
}

/// Where connections go, and what they need.
pub(super) struct Dest<'a> {
    pub scheme: &'a Scheme,
    pub authority: &'a Authority,
    pub ca: Option<&'a [CertificateDer<'static>]>,
    pub connect_timeout: Duration,
    pub max_connections: usize,
}

/// What makes two upstreams share a pool.
#[derive(Clone, PartialEq, Eq)]
struct PoolKey {
    transport: TransportKey,
    scheme: Scheme,
    authority: Authority,
    protocol: Protocol,
    max_connections: usize,
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

    /// How an upstream is reached, built on first use and shared by every
    /// upstream with the same needs.
    pub fn client_for(&mut self, up: &Upstream) -> Clients {
        self.clients(&Dest {
            scheme: &up.scheme,
            authority: &up.authority,
            ca: up.ca.as_ref().map(|c| c.certs.as_slice()),
            connect_timeout: up.connect_timeout,
            max_connections: up.max_connections,
        })
    }

    /// The clients for `dest`, built on first use.
    pub(super) fn clients(&mut self, dest: &Dest<'_>) -> Clients {
        let key = TransportKey {
            ca: dest.ca.map(<[_]>::to_vec),
            connect_timeout: dest.connect_timeout,
        };
        if *dest.scheme == Scheme::HTTP && self.intercepted(dest.authority) {
            return self.proxied(key, dest);
        }
        Clients::Pooled {
            pool: self.pool_for(&key, dest, Protocol::Auto),
            upgrades: self.pool_for(&key, dest, Protocol::Http1),
            h2c: (*dest.scheme == Scheme::HTTP).then(|| self.pool_for(&key, dest, Protocol::H2c)),
        }
    }

    /// An egress proxy takes this plain-HTTP upstream's requests.
    fn intercepted(&self, authority: &Authority) -> bool {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .is_ok_and(|dst| self.proxies.intercept(&dst).is_some())
    }

    fn proxied(&mut self, key: TransportKey, dest: &Dest<'_>) -> Clients {
        if let Some((_, auto, h2c)) = self.built.iter().find(|(k, _, _)| *k == key) {
            return Clients::Proxied(Box::new(Proxied {
                auto: auto.clone(),
                h2c: h2c.clone(),
            }));
        }
        let auto = build(dest.ca, dest.connect_timeout, &self.proxies, Protocol::Auto);
        let h2c = build(dest.ca, dest.connect_timeout, &self.proxies, Protocol::H2c);
        self.built.push((key, auto.clone(), h2c.clone()));
        Clients::Proxied(Box::new(Proxied { auto, h2c }))
    }

    fn pool_for(
        &mut self,
        transport: &TransportKey,
        dest: &Dest<'_>,
        protocol: Protocol,
    ) -> Arc<ProxyPool> {
        let key = PoolKey {
            transport: transport.clone(),
            scheme: dest.scheme.clone(),
            authority: dest.authority.clone(),
            protocol,
            max_connections: dest.max_connections,
        };
        if let Some((_, pool)) = self.pools.iter().find(|(k, _)| *k == key) {
            return pool.clone();
        }
        let dialer = match (*dest.scheme == Scheme::HTTP, protocol) {
            (true, Protocol::H2c) => Dialer::H2c(http_connector(dest.connect_timeout)),
            (true, _) => Dialer::Plain(http_connector(dest.connect_timeout)),
            (false, protocol) => Dialer::Tls(https_connector(
                dest.ca,
                dest.connect_timeout,
                &self.proxies,
                protocol,
            )),
        };
        let pool = ProxyPool::new(
            dialer,
            dest.scheme.clone(),
            dest.authority,
            POOL_IDLE_TIMEOUT,
            dest.max_connections,
            dest.connect_timeout,
        );
        let pool = Arc::new(match protocol {
            Protocol::Http1 => pool.upgradable(),
            _ => pool,
        });
        self.pools.push((key, pool.clone()));
        pool
    }

    /// Forget pools no target holds any more (an upstream whose URL
    /// changed); their idle connections close with them.
    pub fn prune_pools(&mut self) {
        self.pools.retain(|(_, pool)| Arc::strong_count(pool) > 1);
    }

    /// How many pools exist (one per transport need, scheme and authority
    /// in use).
    pub fn pool_count(&self) -> usize {
        self.pools.len()
    }
}

/// The prometheus upstream of a config with `url` (user 1, token t).
#[cfg(test)]
pub(super) fn test_upstream(url: &str) -> Upstream {
    let cfg = crate::config::load_from(
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

#[cfg(test)]
impl ClientSet {
    /// No egress proxy, whatever the environment says.
    pub(super) fn direct() -> Self {
        ClientSet {
            proxies: Arc::new(Matcher::builder().build()),
            built: Vec::new(),
            pools: Vec::new(),
        }
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

/// TCP as every upstream connection gets it: resolved off the runtime,
/// `connect_timeout`, no Nagle delay, TCP keepalive.
fn http_connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http
}

fn build(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
    proxies: &Arc<Matcher>,
    protocol: Protocol,
) -> HttpClient {
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

    #[test]
    fn upstreams_share_a_pool_per_scheme_and_authority_and_unused_pools_go() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut set = ClientSet::direct();
        let a = set.client_for(&test_upstream("http://mimir.monitoring:8080"));
        let b = set.client_for(&test_upstream("http://mimir.monitoring:8080/base"));
        let c = set.client_for(&test_upstream("http://other.monitoring:8080"));
        let https = set.client_for(&test_upstream("https://prometheus.grafana.net"));
        let https_too = set.client_for(&test_upstream("https://prometheus.grafana.net/base"));
        let https_port = set.client_for(&test_upstream("http://prometheus.grafana.net:443"));
        let pool = |c: &Clients| match c {
            Clients::Pooled { pool, .. } => pool.clone(),
            Clients::Proxied(_) => panic!("no egress proxy here"),
        };
        assert!(Arc::ptr_eq(&pool(&a), &pool(&b)));
        assert!(!Arc::ptr_eq(&pool(&a), &pool(&c)));
        assert!(Arc::ptr_eq(&pool(&https), &pool(&https_too)));
        // The same host and port by another scheme is another pool.
        assert!(!Arc::ptr_eq(&pool(&https), &pool(&https_port)));
        // Upgrades go on a pool of their own (HTTP/1.1 only, connections
        // that can be upgraded), gRPC to http:// on an h2c pool.
        match (&a, &https) {
            (
                Clients::Pooled {
                    pool: p,
                    upgrades: u,
                    h2c: Some(h2c),
                },
                Clients::Pooled {
                    pool: tp,
                    upgrades: tu,
                    h2c: None,
                },
            ) => {
                assert!(!Arc::ptr_eq(p, u));
                assert!(!Arc::ptr_eq(p, h2c));
                assert!(!Arc::ptr_eq(tp, tu));
            }
            _ => panic!("plain and TLS upstreams are pooled"),
        }
        // Three pools per plain upstream (mimir, other, grafana.net:443
        // over http), two for grafana.net over https.
        assert_eq!(set.pool_count(), 11);
        // A reload that no longer has other.monitoring drops its pools.
        drop(c);
        set.prune_pools();
        assert_eq!(set.pool_count(), 8);
        drop((a, b, https, https_too, https_port));
        set.prune_pools();
        assert_eq!(set.pool_count(), 0);
    }
}
