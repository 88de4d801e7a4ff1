//! Forward one routed request: rewrite the target, apply the header rules,
//! send it on the upstream's pooled client within its `timeout`, and stream
//! the response back. Bodies are never collected: `Incoming` goes through,
//! wrapped only to be counted.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Extensions, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;

use super::body::{Body, Metered};
use super::exchange::{Direction, Exchange};
use super::headers::{self, X_REQUEST_ID};
use super::request_id::RequestIds;
use super::target::Target;
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::telemetry::method_label;

/// What the router hands over: where to send it and how it got here.
pub struct Routed {
    pub target: Arc<Target>,
    pub route: Arc<str>,
    /// Upstream path and query, already rewritten.
    pub path_and_query: String,
    pub peer: SocketAddr,
    pub start: Instant,
    pub slot: Option<crate::tenant::InFlightGuard>,
}

pub async fn forward(routed: Routed, req: Request<Incoming>, ids: &RequestIds) -> Response<Body> {
    let Routed {
        target,
        route,
        path_and_query,
        peer,
        start,
        slot,
    } = routed;
    let (mut parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get(&X_REQUEST_ID)
        .filter(|v| RequestIds::accept(v))
        .cloned()
        .unwrap_or_else(|| ids.next());
    let exchange = Exchange::new(
        start,
        method_label(&parts.method),
        route,
        target.clone(),
        request_id.clone(),
        slot,
    );

    let uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(path_and_query)
        .build();
    let Ok(uri) = uri else {
        // The inbound target was a valid URI and the rewrite parts were
        // validated, so this is unreachable in practice; answer, never panic.
        exchange.set_status(400);
        return ProxyError::BadTarget(crate::routes::PathError::NotOriginForm)
            .to_response(Some(&request_id));
    };
    headers::prepare_request(&mut parts.headers, &target, peer.ip(), &request_id);
    parts.uri = uri;
    // The upstream connection decides its own protocol (ALPN); HTTP/1.1
    // here lets the client use either.
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
    let outbound = Request::from_parts(parts, Metered::new(body, exchange.clone(), Direction::In));

    let sent = tokio::time::timeout(target.timeout, target.client.request(outbound)).await;
    let result = match sent {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(_)) if exchange.request_body_failed() => Err(ProxyError::RequestBody),
        Ok(Err(e)) => Err(classify(&e, &target)),
        Err(_) => Err(ProxyError::Timeout {
            upstream: target.name.clone(),
            setting: "timeout",
            after: target.timeout,
        }),
    };
    match result {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            exchange.set_status(parts.status.as_u16());
            headers::prepare_response(&mut parts.headers);
            if body.is_end_stream() {
                exchange.response_has_no_body();
            }
            Response::from_parts(
                parts,
                Either::Right(Metered::new(body, exchange, Direction::Out)),
            )
        }
        Err(err) => {
            exchange.failed(err.status().as_u16(), err.upstream_kind());
            tracing::warn!(
                upstream = &*target.name,
                request_id = request_id.to_str().unwrap_or("-"),
                error = %err,
                "upstream request failed"
            );
            err.to_response(Some(&request_id))
        }
    }
}

/// Map a client error to the contract's kinds by walking its sources,
/// including errors wrapped inside `io::Error`s (hyper-rustls nests the
/// rustls error two `io::Error`s deep).
fn classify(err: &hyper_util::client::legacy::Error, target: &Target) -> ProxyError {
    let connect = err.is_connect();
    let mut kind = if connect {
        UpstreamErrorKind::Connect
    } else {
        UpstreamErrorKind::Other
    };
    let mut stack: Vec<&(dyn StdError + 'static)> = err.source().into_iter().collect();
    while let Some(e) = stack.pop() {
        if e.downcast_ref::<rustls::Error>().is_some() {
            kind = UpstreamErrorKind::Tls;
            break;
        }
        if let Some(ioe) = e.downcast_ref::<io::Error>() {
            match ioe.kind() {
                io::ErrorKind::TimedOut if connect => {
                    return ProxyError::Timeout {
                        upstream: target.name.clone(),
                        setting: "connect_timeout",
                        after: target.connect_timeout,
                    }
                }
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                    if !connect =>
                {
                    kind = UpstreamErrorKind::Reset
                }
                _ => {}
            }
            if let Some(inner) = ioe.get_ref() {
                stack.push(inner);
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if !connect && (h.is_incomplete_message() || h.is_canceled() || h.is_closed()) {
                kind = UpstreamErrorKind::Reset;
            }
        }
        if let Some(next) = e.source() {
            stack.push(next);
        }
    }
    ProxyError::Upstream {
        upstream: target.name.clone(),
        kind,
    }
}
