//! `OwnEndpoints`: /health, /ready, /metrics and the debug endpoints,
//! answered here and never forwarded. On a probes-only connection (the
//! reserve beyond `max_connections`, the admin listener) nothing else
//! passes.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Response, StatusCode};
use tower::{Layer, Service};

use super::ctx::{Ctx, Inbound, Refusal};
use super::gate::Flow;
use crate::access::AccessClass;
use crate::error::{json_response, ProxyError};
use crate::proxy::Body;
use crate::routes::{DEBUG_COLLECTED, DEBUG_TARGETS, RESERVED_PATHS};
use crate::tenant::AuthError;

/// What the admin listener and the probe reserve answer.
const PROBE_PATHS: &[&str] = &["/health", "/ready", "/metrics"];

#[derive(Debug, Clone, Copy)]
pub struct OwnEndpoints;

impl<S> Layer<S> for OwnEndpoints {
    type Service = OwnEndpointsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OwnEndpointsService { inner }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct OwnEndpointsService<S> {
    inner: S,
}

impl<S, B> Service<Inbound<B>> for OwnEndpointsService<S>
where
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal>,
{
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = Flow<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, call: Inbound<B>) -> Self::Future {
        let path = call.req.uri().path();
        let probes_only = call.ctx.conn.probes_only;
        let own = match probes_only {
            None => RESERVED_PATHS.contains(&path),
            Some(_) => PROBE_PATHS.contains(&path),
        };
        if !own {
            return match probes_only {
                None => Flow::Next {
                    next: self.inner.call(call),
                },
                Some(p) => Flow::done(Err(Refusal::local(p.refusal(), call.ctx))),
            };
        }
        Flow::done(answer(&call.req, path, &call.ctx).map_err(|e| Refusal::local(e, call.ctx)))
    }
}

fn answer<B>(req: &http::Request<B>, path: &str, ctx: &Ctx) -> Result<Response<Body>, ProxyError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ProxyError::MethodNotAllowed);
    }
    let app = &ctx.conn.app;
    Ok(match path {
        "/health" => health(ctx),
        "/ready" => ready(req, ctx),
        DEBUG_COLLECTED | DEBUG_TARGETS => {
            debug_access(req, ctx)?;
            let body = if path == DEBUG_COLLECTED {
                app.jobs().collected_json()
            } else {
                app.jobs().targets_json()
            };
            json_response(StatusCode::OK, Bytes::from(body.to_string())).map(Body::Left)
        }
        _ => {
            ctx.state.export_credentials_age(app.metrics());
            let mut res =
                json_response(StatusCode::OK, Bytes::from(app.metrics().render())).map(Body::Left);
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
fn health(ctx: &Ctx) -> Response<Body> {
    let app = &ctx.conn.app;
    let mut body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(jobs) = app.jobs().health_summary() {
        body["remote_write_jobs"] = jobs;
    }
    if let Some(rules) = app.rules().health_summary() {
        body["rules_sync"] = rules;
    }
    json_response(StatusCode::OK, Bytes::from(body.to_string())).map(Body::Left)
}

/// /ready: 503 while draining. `?verbose` lists tenants and their
/// upstreams by name (never a secret).
fn ready<B>(req: &http::Request<B>, ctx: &Ctx) -> Response<Body> {
    let state = &ctx.state;
    let draining = ctx.conn.app.draining().load(Ordering::SeqCst);
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
    let mut body = serde_json::json!({
        "status": word,
        "require_client_auth": state.config.require_client_auth,
        "tenants": tenants,
    });
    // ServiceAccount token keys: whether JWT clients can be verified (the
    // proxy is ready either way: static-token clients are served).
    if let Some(v) = &state.verifier {
        let k = v.status();
        body["kubernetes_auth"] = serde_json::json!({
            "issuer": v.config().issuer,
            "keys": k.keys,
            "last_refresh": k.last_refresh,
            "last_error": k.last_error,
        });
    }
    json_response(status, Bytes::from(body.to_string())).map(Body::Left)
}

/// The debug endpoints show every tenant's series: when client auth is on
/// they need a client with the `admin` class.
fn debug_access<B>(req: &http::Request<B>, ctx: &Ctx) -> Result<(), ProxyError> {
    let state = &ctx.state;
    let config = &state.config;
    let client_auth =
        config.require_client_auth || config.tenants.values().any(|t| !t.clients.is_empty());
    if !client_auth {
        return Ok(());
    }
    match state
        .resolver
        .resolve(req.headers(), ctx.conn.peer_cn.as_deref())
    {
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
