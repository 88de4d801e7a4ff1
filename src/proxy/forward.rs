//! Forward one routed request: rewrite the target, apply the header rules,
//! send it on the upstream's pooled client within its `timeout`, and stream
//! the response back. Bodies are never collected: `Incoming` goes through,
//! wrapped only to be counted.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use http::uri::Scheme;
use http::{Extensions, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;

use super::body::{Body, Metered, OutBody};
use super::cause::root_cause;
use super::exchange::{BodyEnd, Direction, Exchange};
use super::headers;
use super::pool::SendError;
use super::target::Target;
use super::upgrade;
use super::via::{Need, SendFailed, Via};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::telemetry::metrics::method_index;

/// What the router hands over: where to send it and how it got here.
pub struct Routed {
    pub target: Arc<Target>,
    pub route: Arc<str>,
    /// Upstream path and query, already rewritten.
    pub path_and_query: String,
    /// The client's `X-Forwarded-For` and `X-Forwarded-Proto` entries.
    pub client: Arc<super::headers::ClientAddr>,
    pub start: Instant,
    /// Concurrency slots (global, tenant) held until the exchange ends.
    pub slots: [Option<crate::tenant::InFlightGuard>; 2],
    /// The route's `upgrade_idle_timeout` and `max_body_bytes`.
    pub upgrade_idle_timeout: Duration,
    pub max_body_bytes: Option<u64>,
    /// `1.1 <via_name>`, appended to the request's `Via`.
    pub via: http::HeaderValue,
    /// For an upgrade by a revocable identity: closes the session when a
    /// reload revokes it.
    pub session: Option<Box<crate::revocation::SessionWatch>>,
    /// The request's `X-Request-Id`: the client's, when acceptable
    /// (`RequestIds::accept`), else a new one.
    pub request_id: http::HeaderValue,
}

/// A request whose exchange failed: the exchange recorded it; the stack
/// answers it (`stack::Rescue`).
#[derive(Debug)]
pub struct Failed {
    pub error: ProxyError,
    pub request_id: http::HeaderValue,
    /// The request body was read to its end (or there was none).
    pub body_read: bool,
}

pub async fn forward(routed: Routed, mut req: Request<Incoming>) -> Result<Response<Body>, Failed> {
    let Routed {
        target,
        route,
        path_and_query,
        client,
        start,
        slots,
        upgrade_idle_timeout,
        max_body_bytes,
        via: via_entry,
        session,
        request_id,
    } = routed;
    let upgrade =
        upgrade::requested(req.headers(), req.version()).map(|p| (p, hyper::upgrade::on(&mut req)));
    let grpc = is_grpc(req.headers());
    let inbound_version = req.version();
    let (mut parts, body) = req.into_parts();
    let exchange = Exchange::new(
        start,
        method_index(&parts.method),
        route,
        target.meter.clone(),
        request_id.clone(),
        slots,
    );

    headers::prepare_request(&mut parts.headers, &target, &client, &request_id);
    headers::append_via(&mut parts.headers, &via_entry);
    parts.extensions = Extensions::new();
    // The protocol toward the upstream is chosen here, never copied from
    // the client: upgrades need HTTP/1.1, gRPC to http:// needs h2c, the
    // rest go on the upstream's pool (what ALPN gives for https).
    let h2c = grpc && target.scheme == Scheme::HTTP;
    parts.version = if h2c {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    if let Some((protocol, _)) = &upgrade {
        upgrade::restore(&mut parts.headers, protocol.clone());
    }
    let via = Via::of(
        &target.clients,
        match (upgrade.is_some(), h2c) {
            (true, _) => Need::Upgrade,
            (false, true) => Need::H2c,
            (false, false) => Need::Any,
        },
    );
    // The pool takes the target in origin-form (it adds scheme and
    // authority for h2); the clients take an absolute URI and pick the
    // connection by it.
    let uri = match via {
        Via::Pool(_) => Uri::builder().path_and_query(path_and_query).build(),
        Via::Client(_) => Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(path_and_query)
            .build(),
    };
    let Ok(uri) = uri else {
        // The inbound target was a valid URI and the rewrite parts were
        // validated, so this is unreachable in practice; answer, never panic.
        exchange.failed(400, None);
        return Err(Failed {
            error: ProxyError::BadTarget(crate::routes::PathError::NotOriginForm),
            request_id,
            body_read: false,
        });
    };
    parts.uri = uri;
    let body = Metered::new(
        body,
        exchange.clone(),
        Direction::In,
        target.idle_timeout,
        max_body_bytes,
    );
    if body.is_end_stream() {
        exchange.request_has_no_body();
    }
    let outbound = Request::from_parts(parts, OutBody::Forwarded(body));

    // Boxed: the send future (the larger of the pool's and the client's) is
    // moved once instead of three times into the timeout and this future's
    // state (callgrind: 50.8k -> 50.3k instructions per W1 request).
    let sent = tokio::time::timeout(target.timeout, Box::pin(via.send(outbound))).await;
    // The innermost error's text, for the log (connect, TLS, DNS and tunnel
    // errors name hosts and reasons, never header values).
    let cause = match &sent {
        Ok(Err(e)) => Some(root_cause(e.as_error())),
        _ => None,
    };
    let result = match sent {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(e)) => Err(match exchange.request_end() {
            BodyEnd::TooLarge => ProxyError::BodyTooLarge {
                limit: max_body_bytes.unwrap_or_default(),
            },
            BodyEnd::Idle => ProxyError::RequestIdle {
                after: target.idle_timeout,
            },
            BodyEnd::Failed => ProxyError::RequestBody,
            _ => match e {
                SendFailed::Pool(SendError::Busy { max }) => ProxyError::UpstreamBusy {
                    upstream: target.name.clone(),
                    max,
                },
                e => send_failure(e.is_connect(), e.as_error(), &target),
            },
        }),
        Err(_) => Err(ProxyError::Timeout {
            upstream: target.name.clone(),
            setting: "timeout",
            after: target.timeout,
        }),
    };
    match result {
        // A 101 never gives its connection back: it is the tunnel's now
        // (upgrades go on an unpooled HTTP/1.1 client), or, unasked for,
        // it is dropped with `_lease`.
        Ok((res, _lease)) if res.status() == StatusCode::SWITCHING_PROTOCOLS => match upgrade {
            Some((_, inbound)) => Ok(upgrade::switch(
                res,
                inbound,
                exchange,
                upgrade_idle_timeout,
                session,
            )),
            // A switch nobody asked for (the request's other upgrade
            // tokens were removed): never a tunnel.
            None => {
                let err = ProxyError::Upstream {
                    upstream: target.name.clone(),
                    kind: UpstreamErrorKind::Other,
                };
                exchange.failed(err.status().as_u16(), err.upstream_kind());
                tracing::warn!(
                    upstream = &*target.name,
                    request_id = request_id.to_str().unwrap_or("-"),
                    "upstream answered 101 to a request that asked for no upgrade"
                );
                let body_read = exchange.request_end() == BodyEnd::Complete;
                Err(Failed {
                    error: err,
                    request_id,
                    body_read,
                })
            }
        },
        Ok((res, lease)) => {
            let (mut parts, body) = res.into_parts();
            exchange.set_status(parts.status.as_u16());
            headers::prepare_response(&mut parts.headers);
            // A request body the proxy cut (or lost) is not read to its end:
            // the client must not reuse the connection.
            let cut = !matches!(exchange.request_end(), BodyEnd::Complete | BodyEnd::Open);
            headers::close_if_body_unread(&mut parts.headers, inbound_version, cut);
            if body.is_end_stream() {
                exchange.response_has_no_body();
            }
            let mut body = Metered::new(body, exchange, Direction::Out, target.idle_timeout, None);
            if let Some(lease) = lease {
                body = body.holding(lease);
            }
            if !grpc && !body.is_end_stream() {
                body.take_ready_frame().await;
            }
            Ok(Response::from_parts(parts, Either::Right(body)))
        }
        Err(err) => {
            exchange.failed(err.status().as_u16(), err.upstream_kind());
            tracing::warn!(
                upstream = &*target.name,
                request_id = request_id.to_str().unwrap_or("-"),
                error = %err,
                cause = cause.as_deref().unwrap_or("-"),
                "request failed"
            );
            let body_read = exchange.request_end() == BodyEnd::Complete;
            Err(Failed {
                error: err,
                request_id,
                body_read,
            })
        }
    }
}

/// gRPC, by its content type (`application/grpc`, `+proto`, `+json`...).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Map a client error to the contract's kinds by walking its sources,
/// including errors wrapped inside `io::Error`s (hyper-rustls nests the
/// rustls error two `io::Error`s deep).
fn send_failure(connect: bool, err: &(dyn StdError + 'static), target: &Target) -> ProxyError {
    let mut kind = if connect {
        UpstreamErrorKind::Connect
    } else {
        UpstreamErrorKind::Other
    };
    let mut stack: Vec<&(dyn StdError + 'static)> = vec![err];
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
