//! One error type for everything that answers a request without an upstream
//! response, mapped to the contract's status codes and JSON bodies in one
//! place. Client faults are 4xx, upstream faults 502/504.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::access::{AccessClass, AccessSet};
use crate::routes::PathError;
use crate::tenant::AuthError;

/// Why an upstream exchange failed; the `kind` label of
/// `lgtm_proxy_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Tls,
    Reset,
    Other,
}

impl UpstreamErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Reset => "reset",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    BadTarget(#[from] PathError),
    #[error("request body is malformed or was cut short")]
    RequestBody,
    #[error("request body larger than max_body_bytes = {limit}")]
    BodyTooLarge { limit: u64 },
    #[error("no request body byte within idle_timeout = {}", humantime::format_duration(*after))]
    RequestIdle { after: Duration },
    #[error("overloaded: {limit} reached")]
    Overloaded { limit: &'static str },
    #[error("upstream {upstream}: all {max} connections stayed busy for connect_timeout (upstreams.{upstream}.max_connections)")]
    UpstreamBusy { upstream: Arc<str>, max: usize },
    #[error("request headers too large (limits: 200 fields, 64 KiB)")]
    HeadersTooLarge,
    #[error("transfer coding not supported: only 'chunked' alone is accepted")]
    TransferCoding,
    #[error("no route matches this path")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request loop: it already passed through this proxy (Via: {via_name})")]
    Loop { via_name: Arc<str> },
    #[error("upstream {upstream} is not configured for tenant {tenant}")]
    NotConfigured {
        upstream: Arc<str>,
        route: Arc<str>,
        tenant: Arc<str>,
    },
    #[error("{}", auth_message(*.0))]
    Auth(AuthError),
    #[error("client {client} may not {} (its access: {})", class.as_str(), access_list(*access))]
    ClassDenied {
        client: Arc<str>,
        class: AccessClass,
        access: AccessSet,
    },
    #[error("too many requests: {limit} reached")]
    TooManyRequests {
        limit: &'static str,
        retry_after: u64,
    },
    #[error("upstream {upstream} failed: {}", kind.as_str())]
    Upstream {
        upstream: Arc<str>,
        kind: UpstreamErrorKind,
    },
    #[error("upstream {upstream} timed out: {setting} = {} elapsed", humantime::format_duration(*after))]
    Timeout {
        upstream: Arc<str>,
        setting: &'static str,
        after: Duration,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadTarget(_) | Self::RequestBody => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NoRoute | Self::NotConfigured { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Loop { .. } => StatusCode::LOOP_DETECTED,
            Self::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::Auth(AuthError::Missing | AuthError::Unknown) => StatusCode::UNAUTHORIZED,
            Self::Auth(_) | Self::ClassDenied { .. } => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestIdle { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded { .. } | Self::UpstreamBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `kind` for upstream error metrics, if this is an upstream fault.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            Self::Upstream { kind, .. } => Some(*kind),
            Self::Timeout { .. } => Some(UpstreamErrorKind::Timeout),
            _ => None,
        }
    }

    /// The JSON error response (`.map(Body::Left)` makes it the proxy's
    /// response type). Bodies carry names from config and the request id,
    /// never a header value or a credential.
    pub fn to_response(&self, request_id: Option<&HeaderValue>) -> Response<Full<Bytes>> {
        let mut body =
            serde_json::json!({ "error": self.to_string(), "status": self.status().as_u16() });
        let obj = body.as_object_mut().expect("json object");
        match self {
            Self::NotConfigured {
                upstream,
                route,
                tenant,
            } => {
                obj.insert("upstream".into(), upstream.as_ref().into());
                obj.insert("route".into(), route.as_ref().into());
                obj.insert("tenant".into(), tenant.as_ref().into());
            }
            Self::Auth(e) => {
                obj.insert("reason".into(), e.reason().into());
            }
            Self::ClassDenied { client, class, .. } => {
                obj.insert("client".into(), client.as_ref().into());
                obj.insert("class".into(), class.as_str().into());
            }
            Self::BodyTooLarge { limit } => {
                obj.insert("setting".into(), "max_body_bytes".into());
                obj.insert("value".into(), (*limit).into());
            }
            Self::RequestIdle { after } => {
                obj.insert("setting".into(), "idle_timeout".into());
                obj.insert(
                    "value".into(),
                    humantime::format_duration(*after).to_string().into(),
                );
            }
            Self::Overloaded { limit } => {
                obj.insert("limit".into(), (*limit).into());
            }
            Self::UpstreamBusy { upstream, max } => {
                obj.insert("upstream".into(), upstream.as_ref().into());
                obj.insert("setting".into(), "max_connections".into());
                obj.insert("value".into(), (*max).into());
            }
            Self::TooManyRequests { limit, retry_after } => {
                obj.insert("limit".into(), (*limit).into());
                obj.insert("retry_after".into(), (*retry_after).into());
            }
            Self::Upstream { upstream, kind } => {
                obj.insert("upstream".into(), upstream.as_ref().into());
                obj.insert("kind".into(), kind.as_str().into());
            }
            Self::Timeout {
                upstream,
                setting,
                after,
            } => {
                obj.insert("upstream".into(), upstream.as_ref().into());
                obj.insert("setting".into(), (*setting).into());
                obj.insert(
                    "value".into(),
                    humantime::format_duration(*after).to_string().into(),
                );
            }
            _ => {}
        }
        if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
            obj.insert("request_id".into(), id.into());
        }
        let mut res = json_response(self.status(), body.to_string().into());
        match self {
            Self::Auth(AuthError::Missing | AuthError::Unknown) => {
                let h = res.headers_mut();
                h.append(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="lgtm-proxy""#),
                );
                h.append(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="lgtm-proxy""#),
                );
            }
            Self::TooManyRequests { retry_after, .. } => {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Overloaded { .. } | Self::UpstreamBusy { .. } => {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // Only the proxy's own endpoints answer 405; they take these.
            Self::MethodNotAllowed => {
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        res
    }
}

fn auth_message(e: AuthError) -> &'static str {
    match e {
        AuthError::Missing => "client credentials required: Authorization: Bearer <token> (or Basic with the token as password)",
        AuthError::Unknown => "client credentials not recognized",
        AuthError::TenantMismatch => "X-Scope-OrgID names a tenant other than the one these credentials belong to",
        AuthError::UnknownTenant => "X-Scope-OrgID names no configured tenant",
    }
}

fn access_list(a: AccessSet) -> String {
    a.classes()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON answer of the proxy's own.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
