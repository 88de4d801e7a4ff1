//! One error type for everything that answers a request without an upstream
//! response, mapped to the contract's status codes and JSON bodies in one
//! place. Client faults are 4xx, upstream faults 502/504.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::proxy::Body;
use crate::routes::PathError;

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
    #[error("request headers too large (limits: 200 fields, 64 KiB)")]
    HeadersTooLarge,
    #[error("no route matches this path")]
    NoRoute,
    #[error("upstream {upstream} is not configured (set LGTM_{}_URL)", upstream.to_ascii_uppercase())]
    NotConfigured { upstream: Arc<str>, route: Arc<str> },
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

    /// The JSON error response. Bodies carry names from config and the
    /// request id, never a header value or a credential.
    pub fn to_response(&self, request_id: Option<&HeaderValue>) -> Response<Body> {
        let mut body =
            serde_json::json!({ "error": self.to_string(), "status": self.status().as_u16() });
        let obj = body.as_object_mut().expect("json object");
        match self {
            Self::NotConfigured { upstream, route } => {
                obj.insert("upstream".into(), upstream.as_ref().into());
                obj.insert("route".into(), route.as_ref().into());
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
        json_response(self.status(), body.to_string().into())
    }
}

pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Either::Left(Full::new(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
