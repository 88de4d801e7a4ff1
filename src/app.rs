//! `App`: the whole service without a socket. It answers the proxy's own
//! endpoints (/health, /ready, /metrics), then for every other request:
//! target checks, tenant resolution, route, access class, limits, and
//! `proxy::forward`. The config-derived part is a `State` behind an
//! `ArcSwap`, replaced whole on reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::access::AccessClass;
use crate::config::Config;
use crate::error::{json_response, ProxyError};
use crate::proxy::headers::{close_if_body_unread, ClientAddr};
use crate::proxy::{forward, Body, ClientSet, RequestIds, Routed};
use crate::remote_write::Controller;
use crate::revocation::{Identity, Seen, SessionWatch};
use crate::routes::{canonical_target, DEBUG_COLLECTED, DEBUG_TARGETS, RESERVED_PATHS};
use crate::rules_sync::Syncer;
use crate::state::State;
use crate::telemetry::metrics::NO_UPSTREAM;
use crate::telemetry::{method_label, unix_now, Metrics};
use crate::tenant::{acquire, AuthError};

/// The contract's request-header limits, enforced on HTTP/1.1 and h2 alike.
pub const MAX_HEADER_FIELDS: usize = 200;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What the admin listener and the probe reserve answer.
const PROBE_PATHS: &[&str] = &["/health", "/ready", "/metrics"];

/// Tenant label of requests refused before a tenant was known.
const NO_TENANT: &str = "none";

pub struct App {
    state: ArcSwap<State>,
    /// Every swapped-in state, for open connections and sessions to check
    /// their identities against (`revocation`).
    states: tokio::sync::watch::Sender<Arc<State>>,
    metrics: Arc<Metrics>,
    ids: RequestIds,
    draining: AtomicBool,
    /// Clients live across reloads: unchanged transports keep their pools.
    clients: Mutex<ClientSet>,
    /// The config the process started with: what the start-only keys
    /// still run with, whatever reloads came since.
    started_with: Arc<Config>,
    /// Remote-write jobs, reconciled with every config.
    jobs: Controller,
    /// The rules sync task, reconciled with every config.
    rules: Syncer,
}

impl App {
    /// Build every client, header value and route once.
    pub fn new(config: Config) -> Self {
        let metrics = Arc::new(Metrics::new());
        let mut clients = ClientSet::new();
        let jobs = Controller::new(metrics.clone());
        jobs.reconcile(config.remote_write.as_ref());
        let rules = Syncer::new(metrics.clone());
        rules.reconcile(config.rules_sync.as_ref());
        let state = Arc::new(State::build(config, &metrics, &mut clients, None));
        let started_with = state.config.clone();
        metrics.config_last_success.set(unix_now());
        App {
            state: ArcSwap::new(state.clone()),
            states: tokio::sync::watch::Sender::new(state),
            metrics,
            ids: RequestIds::new(),
            draining: AtomicBool::new(false),
            clients: Mutex::new(clients),
            started_with,
            jobs,
            rules,
        }
    }

    /// Swap in a new validated config; requests in flight keep the old one.
    pub fn swap(&self, config: Config) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.state.load_full();
        let start_only = crate::config::start_only_changes(&self.started_with, &config);
        if !start_only.is_empty() {
            tracing::warn!(
                keys = %start_only.join(", "),
                "reload: these keys take effect at the next start only; the running values stay"
            );
        }
        self.jobs.reconcile(config.remote_write.as_ref());
        self.rules.reconcile(config.rules_sync.as_ref());
        let state = Arc::new(State::build(
            config,
            &self.metrics,
            &mut clients,
            Some(&old),
        ));
        self.state.store(state.clone());
        // Open connections and sessions re-check their identities.
        self.states.send_replace(state);
        // Pools the new state no longer uses go now, unless requests still
        // running on the replaced state hold them (then at a later reload).
        drop(old);
        clients.prune_pools();
        self.metrics.config_last_success.set(unix_now());
    }

    /// The states to come (the current one marked seen).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<State>> {
        self.states.subscribe()
    }

    pub fn current(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Number of distinct outbound clients (one per transport need).
    pub fn client_count(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// From now on /ready answers 503 (shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `peer_cn`: the subject CN of the connection's verified client
    /// certificate, when mTLS is on.
    /// `seen`: the identities this request's connection was used with.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: &Arc<ClientAddr>,
        peer_cn: Option<&str>,
        seen: &Seen,
    ) -> Response<Body> {
        let start = Instant::now();
        let state = self.state.load_full();
        if let Some(res) = self.own_endpoint(&req, &state, peer_cn) {
            return res;
        }
        let method = method_label(req.method());
        // A refusal leaves the request body, if any, unread.
        let (version, has_body) = (req.version(), !req.body().is_end_stream());
        let reject = |e: ProxyError, tenant: &str, route: &str, upstream: &str| {
            let mut res = self.local_error(e, method, tenant, route, upstream, start);
            close_if_body_unread(res.headers_mut(), version, has_body);
            res
        };
        // Global overload guard: answer 503 at once rather than queue.
        let Ok(global_slot) = acquire(state.in_flight.as_ref()) else {
            let e = ProxyError::Overloaded {
                limit: "max_in_flight",
            };
            return reject(e, NO_TENANT, "none", NO_UPSTREAM);
        };
        // Routed, classified and forwarded: this one spelling of the path.
        let path = match canonical_target(req.uri(), req.version()) {
            Ok(p) => p,
            Err(e) => return reject(e.into(), NO_TENANT, "none", NO_UPSTREAM),
        };
        if !headers_within_limits(&req) {
            return reject(ProxyError::HeadersTooLarge, NO_TENANT, "none", NO_UPSTREAM);
        }
        if !transfer_coding_supported(req.headers()) {
            return reject(ProxyError::TransferCoding, NO_TENANT, "none", NO_UPSTREAM);
        }
        if state.is_loop(req.headers()) {
            let e = ProxyError::Loop {
                via_name: state.config.via_name.as_str().into(),
            };
            return reject(e, NO_TENANT, "none", NO_UPSTREAM);
        }
        let (tenant_idx, client) = match state.resolver.resolve(req.headers(), peer_cn) {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .auth_failures
                    .with_label_values(&[e.reason()])
                    .inc();
                return reject(ProxyError::Auth(e), NO_TENANT, "none", NO_UPSTREAM);
            }
        };
        let tenant = &state.tenants[tenant_idx];
        // An identity a reload could revoke (a client, or a named tenant):
        // the connection remembers it, and an upgrade's session watches it.
        let mut session = None;
        if client.is_some() || tenant_idx != 0 {
            let client_name = client.map(|c| &c.name);
            seen.note(req.headers(), peer_cn, &tenant.name, client_name);
            if upgrade_requested(&req) {
                let identity = Identity::new(req.headers(), peer_cn, &tenant.name, client_name);
                session = Some(SessionWatch::new(identity, seen.chain(), self.subscribe()));
            }
        }
        let Some(matched) = state.table.find(&path) else {
            return reject(ProxyError::NoRoute, &tenant.name, "none", NO_UPSTREAM);
        };
        let route = matched.route.prefix.clone();
        let upstream_name = &state.table.upstreams()[matched.route.upstream];
        let Some(target) = &tenant.targets[matched.route.upstream] else {
            let e = ProxyError::NotConfigured {
                upstream: upstream_name.as_str().into(),
                route: route.clone(),
                tenant: tenant.name.clone(),
            };
            return reject(e, &tenant.name, &route, upstream_name);
        };
        let mut path_and_query = String::with_capacity(target.base_path.len() + path.len() + 64);
        matched.write_upstream_target(&target.base_path, req.uri().query(), &mut path_and_query);
        let class = matched.class(&path_and_query, target.base_path.len(), req.method());
        if let Some(c) = client {
            if !c.access.allows(class) {
                self.metrics
                    .auth_failures
                    .with_label_values(&["forbidden_class"])
                    .inc();
                let e = ProxyError::ClassDenied {
                    client: c.name.clone(),
                    class,
                    access: c.access,
                };
                return reject(e, &tenant.name, &route, upstream_name);
            }
            if let Some(rate) = &c.rate {
                let bucket = if class == AccessClass::Write {
                    &rate.write
                } else {
                    &rate.read
                };
                if let Err(wait) = bucket.try_take() {
                    let e = ProxyError::TooManyRequests {
                        limit: "client rate",
                        retry_after: wait.as_secs().max(1),
                    };
                    return reject(e, &tenant.name, &route, upstream_name);
                }
            }
        }
        if let Some(limit) = matched.route.max_body_bytes {
            let declared = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return reject(
                    ProxyError::BodyTooLarge { limit },
                    &tenant.name,
                    &route,
                    upstream_name,
                );
            }
        }
        let slots = if class == AccessClass::Write {
            &tenant.write_slots
        } else {
            &tenant.read_slots
        };
        let Ok(slot) = acquire(slots.as_ref()) else {
            let e = ProxyError::TooManyRequests {
                limit: "tenant max_in_flight",
                retry_after: 1,
            };
            return reject(e, &tenant.name, &route, upstream_name);
        };
        let routed = Routed {
            target: target.clone(),
            route,
            path_and_query,
            client: peer.clone(),
            start,
            slots: [global_slot, slot],
            upgrade_idle_timeout: matched.route.upgrade_idle_timeout,
            max_body_bytes: matched.route.max_body_bytes,
            via: state.via.clone(),
            session,
        };
        forward(routed, req, &self.ids).await
    }

    /// Serve only `/health`, `/ready` and `/metrics` (the admin listener,
    /// and connections admitted to the probe reserve beyond
    /// `max_connections`); anything else gets `otherwise`.
    pub fn probes_only(&self, req: &Request<Incoming>, otherwise: ProxyError) -> Response<Body> {
        let state = self.state.load_full();
        if PROBE_PATHS.contains(&req.uri().path()) {
            if let Some(res) = self.own_endpoint(req, &state, None) {
                return res;
            }
        }
        let method = method_label(req.method());
        let mut res = self.local_error(
            otherwise,
            method,
            NO_TENANT,
            "none",
            NO_UPSTREAM,
            Instant::now(),
        );
        close_if_body_unread(
            res.headers_mut(),
            req.version(),
            !req.body().is_end_stream(),
        );
        res
    }

    fn own_endpoint(
        &self,
        req: &Request<Incoming>,
        state: &State,
        peer_cn: Option<&str>,
    ) -> Option<Response<Body>> {
        let path = req.uri().path();
        if !RESERVED_PATHS.contains(&path) {
            return None;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"error":"method not allowed","status":405}"#),
            )
            .map(Body::Left);
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(res);
        }
        Some(match path {
            "/health" => self.health(),
            "/ready" => self.ready(req, state),
            DEBUG_COLLECTED | DEBUG_TARGETS => {
                if let Err(e) = debug_access(req, state, peer_cn) {
                    return Some(e.to_response(None).map(Body::Left));
                }
                let body = if path == DEBUG_COLLECTED {
                    self.jobs.collected_json()
                } else {
                    self.jobs.targets_json()
                };
                json_response(StatusCode::OK, Bytes::from(body.to_string())).map(Body::Left)
            }
            _ => {
                state.export_credentials_age(&self.metrics);
                let mut res = json_response(StatusCode::OK, Bytes::from(self.metrics.render()))
                    .map(Body::Left);
                res.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                res
            }
        })
    }

    /// /health: 200 whenever the process serves; the body carries each
    /// remote-write job's state, which never fails it.
    fn health(&self) -> Response<Body> {
        let mut body = serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
        });
        if let Some(jobs) = self.jobs.health_summary() {
            body["remote_write_jobs"] = jobs;
        }
        if let Some(rules) = self.rules.health_summary() {
            body["rules_sync"] = rules;
        }
        json_response(StatusCode::OK, Bytes::from(body.to_string())).map(Body::Left)
    }

    /// /ready: 503 while draining. `?verbose` lists tenants and their
    /// upstreams by name (never a secret).
    fn ready(&self, req: &Request<Incoming>, state: &State) -> Response<Body> {
        let draining = self.draining.load(Ordering::SeqCst);
        let (status, word) = if draining {
            (StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else {
            (StatusCode::OK, "ready")
        };
        let verbose = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv == "verbose" || kv.starts_with("verbose="))
        });
        if !verbose {
            return json_response(status, Bytes::from(format!(r#"{{"status":"{word}"}}"#)))
                .map(Body::Left);
        }
        let tenants: serde_json::Map<String, serde_json::Value> = state
            .tenants
            .iter()
            .map(|t| {
                let ups: Vec<&str> = state
                    .table
                    .upstreams()
                    .iter()
                    .zip(&t.targets)
                    .filter(|(_, target)| target.is_some())
                    .map(|(n, _)| n.as_str())
                    .collect();
                (t.name.to_string(), serde_json::json!(ups))
            })
            .collect();
        let body = serde_json::json!({
            "status": word,
            "require_client_auth": state.config.require_client_auth,
            "tenants": tenants,
        });
        json_response(status, Bytes::from(body.to_string())).map(Body::Left)
    }

    /// Answer a request that never reached an upstream; count and log it.
    fn local_error(
        &self,
        err: ProxyError,
        method: &'static str,
        tenant: &str,
        route: &str,
        upstream: &str,
        start: Instant,
    ) -> Response<Body> {
        let status = err.status();
        let id = self.ids.next();
        self.metrics
            .requests
            .with_label_values(&[upstream, tenant, method, status.as_str()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[upstream, tenant, method])
            .observe(start.elapsed().as_secs_f64());
        tracing::info!(
            target: "access",
            method,
            route,
            upstream,
            tenant,
            status = status.as_u16(),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
            bytes_in = 0u64,
            bytes_out = 0u64,
            outcome = "rejected",
            request_id = id.to_str().unwrap_or("-"),
            error = %err,
        );
        err.to_response(Some(&id)).map(Body::Left)
    }
}

/// The debug endpoints show every tenant's series: when client auth is on
/// they need a client with the `admin` class.
fn debug_access(
    req: &Request<Incoming>,
    state: &State,
    peer_cn: Option<&str>,
) -> Result<(), ProxyError> {
    let config = &state.config;
    let client_auth =
        config.require_client_auth || config.tenants.values().any(|t| !t.clients.is_empty());
    if !client_auth {
        return Ok(());
    }
    match state.resolver.resolve(req.headers(), peer_cn) {
        Err(e) => Err(ProxyError::Auth(e)),
        Ok((_, None)) => Err(ProxyError::Auth(AuthError::Missing)),
        Ok((_, Some(c))) if c.access.allows(AccessClass::Admin) => Ok(()),
        Ok((_, Some(c))) => Err(ProxyError::ClassDenied {
            client: c.name.clone(),
            class: AccessClass::Admin,
            access: c.access,
        }),
    }
}

/// An HTTP/1.1 WebSocket upgrade (the only kind passed).
fn upgrade_requested<B>(req: &Request<B>) -> bool {
    crate::proxy::upgrade_requested(req.headers(), req.version()).is_some()
}

/// `Transfer-Encoding`, when present, is `chunked` alone. hyper has
/// decoded the chunks already (and answers 400 when chunked is not last);
/// forwarding a body that was also gzip-coded with that coding silently
/// dropped would change it, so any other coding is 501. (Content-Length
/// beside Transfer-Encoding is handled by hyper as RFC 9112 6.3 says for an
/// intermediary: Content-Length removed, chunked processed, the connection
/// closed after the response.)
fn transfer_coding_supported(headers: &http::HeaderMap) -> bool {
    let mut codings = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(only), None) => only.eq_ignore_ascii_case(b"chunked"),
        _ => false,
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
