//! `App`: the whole service without a socket. It answers the proxy's own
//! endpoints (/health, /ready, /metrics), checks the request target, finds
//! the route and hands the request to `proxy::forward`. Everything it
//! looks up was built at config load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Config;
use crate::error::{json_response, ProxyError};
use crate::proxy::{forward, Body, ClientSet, RequestIds, Routed, Target};
use crate::routes::{check_target, RouteTable};
use crate::telemetry::metrics::NO_UPSTREAM;
use crate::telemetry::{method_label, Metrics};

/// The contract's request-header limits, enforced on HTTP/1.1 and h2 alike.
pub const MAX_HEADER_FIELDS: usize = 200;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Tenant label of the top-level configuration.
pub const DEFAULT_TENANT: &str = "default";

pub struct App {
    table: RouteTable,
    /// Indexed like `table.upstreams()`; `None` for an upstream without URL.
    targets: Vec<Option<Arc<Target>>>,
    metrics: Arc<Metrics>,
    ids: RequestIds,
    draining: AtomicBool,
    clients: usize,
}

impl App {
    /// Build every client, header value and route once.
    pub fn new(config: &Config) -> Self {
        let metrics = Arc::new(Metrics::new());
        let table = RouteTable::new(&config.routes);
        let mut clients = ClientSet::new();
        let targets = table
            .upstreams()
            .iter()
            .map(|name| {
                config.upstreams.get(name).map(|up| {
                    let client = clients.client_for(up);
                    Arc::new(Target::new(up, DEFAULT_TENANT, client, metrics.clone()))
                })
            })
            .collect();
        App {
            table,
            targets,
            metrics,
            ids: RequestIds::new(),
            draining: AtomicBool::new(false),
            clients: clients.len(),
        }
    }

    /// Number of distinct outbound clients (one per transport need).
    pub fn client_count(&self) -> usize {
        self.clients
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// From now on /ready answers 503 (shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let start = Instant::now();
        if let Some(res) = self.own_endpoint(&req) {
            return res;
        }
        let method = method_label(req.method());
        if let Err(e) = check_target(req.uri(), req.version()) {
            return self.local_error(ProxyError::from(e), method, "none", NO_UPSTREAM, start);
        }
        if !headers_within_limits(&req) {
            return self.local_error(
                ProxyError::HeadersTooLarge,
                method,
                "none",
                NO_UPSTREAM,
                start,
            );
        }
        let path = req.uri().path();
        let Some(matched) = self.table.find(path) else {
            return self.local_error(ProxyError::NoRoute, method, "none", NO_UPSTREAM, start);
        };
        let route = matched.route.prefix.clone();
        let upstream_name = &self.table.upstreams()[matched.route.upstream];
        let Some(target) = &self.targets[matched.route.upstream] else {
            let e = ProxyError::NotConfigured {
                upstream: upstream_name.as_str().into(),
                route: route.clone(),
            };
            return self.local_error(e, method, &route, upstream_name, start);
        };
        let mut path_and_query = String::with_capacity(target.base_path.len() + path.len() + 64);
        matched.write_upstream_target(&target.base_path, req.uri().query(), &mut path_and_query);
        let routed = Routed {
            target: target.clone(),
            route,
            path_and_query,
            peer,
            start,
        };
        forward(routed, req, &self.ids).await
    }

    fn own_endpoint(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        let path = req.uri().path();
        if !crate::routes::RESERVED_PATHS.contains(&path) {
            return None;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = ProxyError::NoRoute.to_response(None);
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            *res.body_mut() = http_body_util::Either::Left(http_body_util::Full::new(
                Bytes::from_static(br#"{"error":"method not allowed","status":405}"#),
            ));
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(res);
        }
        Some(match path {
            "/health" => json_response(
                StatusCode::OK,
                Bytes::from(format!(
                    r#"{{"status":"ok","version":"{}"}}"#,
                    env!("CARGO_PKG_VERSION")
                )),
            ),
            "/ready" if self.draining.load(Ordering::SeqCst) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(br#"{"status":"draining"}"#),
            ),
            "/ready" => json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#)),
            _ => {
                let mut res = json_response(StatusCode::OK, Bytes::from(self.metrics.render()));
                res.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                res
            }
        })
    }

    /// Answer a request that never reached an upstream; count and log it.
    fn local_error(
        &self,
        err: ProxyError,
        method: &'static str,
        route: &str,
        upstream: &str,
        start: Instant,
    ) -> Response<Body> {
        let status = err.status();
        let id = self.ids.next();
        self.metrics
            .requests
            .with_label_values(&[upstream, DEFAULT_TENANT, method, status.as_str()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[upstream, DEFAULT_TENANT, method])
            .observe(start.elapsed().as_secs_f64());
        tracing::info!(
            target: "access",
            method,
            route,
            upstream,
            tenant = DEFAULT_TENANT,
            status = status.as_u16(),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
            bytes_in = 0u64,
            bytes_out = 0u64,
            outcome = "rejected",
            request_id = id.to_str().unwrap_or("-"),
            error = %err,
        );
        err.to_response(Some(&id))
    }
}

/// At most 200 fields and 64 KiB of names and values. HTTP/1 is also
/// capped by hyper's parser; h2 only by HPACK's list size, so this check is
/// what makes both protocols agree.
fn headers_within_limits<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    if h.len() > MAX_HEADER_FIELDS {
        return false;
    }
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    bytes <= MAX_HEADER_BYTES
}
