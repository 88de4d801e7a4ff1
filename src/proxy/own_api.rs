//! Requests the proxy makes on its own behalf to an upstream's API (the
//! ruler, the Alertmanager configuration API) with that upstream's
//! credentials, org ID, CA and timeouts. Client and headers are built
//! once, when the config is loaded.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use super::target::identity_headers;
use super::{root_cause, ClientSet, OwnClient};
use crate::config::Upstream;
use crate::tenant::X_SCOPE_ORGID;

/// Why a call to an upstream's API did not give the answer wanted. Each
/// names the method and URL (which never hold a secret).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: connect, TLS or I/O failed, or the answer's body was
    /// larger than the call allows.
    #[error("{method} {url}: {cause}")]
    Failed {
        method: Method,
        url: String,
        cause: String,
    },
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        method: Method,
        url: String,
        timeout: Duration,
    },
    /// An answer, not the one wanted: its status and the start of its body.
    #[error("{method} {url}: {status} {body}")]
    Refused {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    /// A success whose body is not what was asked for.
    #[error("{method} {url}: answer is not {expected}: {cause}")]
    Unreadable {
        method: Method,
        url: String,
        expected: &'static str,
        cause: String,
    },
}

impl ApiError {
    /// An answer with `status` and `body` that is not the one wanted.
    pub fn refused(method: Method, url: &str, status: StatusCode, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
        ApiError::Refused {
            method,
            url: url.to_string(),
            status,
            body: text.trim().to_string(),
        }
    }
}

pub struct UpstreamApi {
    client: OwnClient,
    /// `<upstream URL><path>`: shown in messages, never holds a secret.
    base: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl UpstreamApi {
    /// The API at `path` under the upstream's URL, called on the
    /// upstream's own pools.
    pub fn new(clients: &mut ClientSet, up: &Upstream, path: &str) -> Self {
        let mut headers = HeaderMap::new();
        let (authorization, org_id) = identity_headers(up);
        if let Some(v) = authorization {
            headers.insert(AUTHORIZATION, v);
        }
        if let Some(v) = org_id {
            headers.insert(X_SCOPE_ORGID.clone(), v);
        }
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("lgtm-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        UpstreamApi {
            client: OwnClient::to_upstream(clients, up),
            base: format!("{}{path}", up.url()),
            headers,
            timeout: up.timeout,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One exchange at `url` (the base or below it); the answer's body is
    /// read up to `max` bytes, the whole exchange within the timeout.
    /// `body` is sent as YAML.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        max: usize,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let failed = |cause: String| ApiError::Failed {
            method: method.clone(),
            url: url.to_string(),
            cause,
        };
        let yaml = body.is_some();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url)
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| failed(e.to_string()))?;
        *req.headers_mut() = self.headers.clone();
        if yaml {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
        }
        let exchange = async {
            let res = self.client.request(req).await.map_err(|e| root_cause(&e))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), max)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(ApiError::Timeout {
                method,
                url: url.to_string(),
                timeout: self.timeout,
            }),
            Ok(Err(cause)) => Err(failed(cause)),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// Everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment or query value: RFC 3986 unreserved characters kept, the
/// rest %XX (as Go's `url.PathEscape` leaves a namespace like `lgtm-a-b`).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            super::percent_encode("lgtm-web-app_1.x~"),
            "lgtm-web-app_1.x~"
        );
        assert_eq!(super::percent_encode("my group/è"), "my%20group%2F%C3%A8");
    }
}
