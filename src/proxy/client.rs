//! hyper-util clients, built at config load and never per request: one per
//! distinct transport need (extra CA, connect timeout), shared by every
//! upstream that has the same need. rustls with webpki roots, ALPN
//! h2/http1.1 for https, plain HTTP/1.1 for http, pooled keep-alive.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::body::Metered;
use super::egress::Egress;
use crate::config::Upstream;

/// An outbound client: rustls + egress proxy, pooled, for body type `B`.
pub type OwnClient<B> = Client<HttpsConnector<Egress>, B>;
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

#[derive(PartialEq, Eq)]
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
}

pub struct ClientSet {
    proxies: Arc<Matcher>,
    built: Vec<(TransportKey, Clients)>,
}

impl ClientSet {
    /// Egress proxy settings are read from the environment here, once.
    pub fn new() -> Self {
        ClientSet {
            proxies: Arc::new(Matcher::from_env()),
            built: Vec::new(),
        }
    }

    /// The clients for an upstream's transport needs, built on first use.
    pub fn client_for(&mut self, up: &Upstream) -> Clients {
        let key = TransportKey {
            ca: up.ca.as_ref().map(|ca| ca.certs.clone()),
            connect_timeout: up.connect_timeout,
        };
        if let Some((_, c)) = self.built.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let ca = up.ca.as_ref().map(|c| c.certs.as_slice());
        let clients = Clients {
            auto: build(ca, up.connect_timeout, &self.proxies, Protocol::Auto),
            http1: build(ca, up.connect_timeout, &self.proxies, Protocol::Http1),
            h2c: build(ca, up.connect_timeout, &self.proxies, Protocol::H2c),
        };
        self.built.push((key, clients.clone()));
        clients
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
enum Protocol {
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

fn build<B: OutBody>(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
    proxies: &Arc<Matcher>,
    protocol: Protocol,
) -> OwnClient<B> {
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

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match protocol {
        Protocol::Http1 => builder
            .enable_http1()
            .wrap_connector(Egress::new(http, proxies.clone())),
        Protocol::H2c => builder
            .enable_http2()
            .wrap_connector(Egress::new(http, proxies.clone())),
        Protocol::Auto => builder
            .enable_http1()
            .enable_http2()
            .wrap_connector(Egress::new(http, proxies.clone())),
    };
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .http2_only(protocol == Protocol::H2c)
        .build(https)
}
