//! One tenant's ruler: Mimir's ruler configuration API on its prometheus
//! upstream (`/api/prom/config/v1/rules[/{namespace}[/{group}]]`, YAML
//! bodies), reached with the upstream's own credentials, org ID, CA and
//! timeouts. Client and headers are built once per config.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use super::group::Group;
use crate::config::Upstream;
use crate::proxy::{basic_auth, own_client, root_cause, OwnClient};

/// The ruler API under the upstream's URL.
pub const RULES_PATH: &str = "/api/prom/config/v1/rules";
/// A ruler's whole rule set is read at once; beyond this it is refused.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;

pub struct Ruler {
    client: OwnClient<Full<Bytes>>,
    /// `<upstream URL>/api/prom/config/v1/rules`, for display and requests.
    base: String,
    headers: HeaderMap,
    timeout: Duration,
}

/// Every ruler namespace and its groups, as the ruler holds them.
pub type RuleSet = BTreeMap<String, Vec<Group>>;

impl Ruler {
    pub fn new(up: &Upstream) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(c) = &up.credentials {
            headers.insert(AUTHORIZATION, basic_auth(&c.user, &c.token));
        }
        if let Some(org) = up
            .tenant
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            headers.insert("x-scope-orgid", org);
        }
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("lgtm-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        Ruler {
            client: own_client(
                up.ca.as_ref().map(|c| c.certs.as_slice()),
                up.connect_timeout,
            ),
            base: format!("{}{RULES_PATH}", up.url()),
            headers,
            timeout: up.timeout,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Every namespace and group (a 404 is Mimir's "no rule groups").
    pub async fn list(&self) -> Result<RuleSet, String> {
        let (status, body) = self.call(Method::GET, self.base.clone(), None).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(RuleSet::new()),
            s if s.is_success() => {
                let set: RuleSet = serde_yaml_ng::from_slice(&body)
                    .map_err(|e| format!("GET {}: answer is not a rule set: {e}", self.base))?;
                Ok(set
                    .into_iter()
                    .map(|(ns, gs)| (ns, gs.into_iter().map(Group::normalized).collect()))
                    .collect())
            }
            s => Err(refused("GET", &self.base, s, &body)),
        }
    }

    /// Create or replace one group in `namespace`.
    pub async fn post(&self, namespace: &str, group: &Group) -> Result<(), String> {
        let url = format!("{}/{}", self.base, segment(namespace));
        let body = Bytes::from(group.to_yaml());
        match self.call(Method::POST, url.clone(), Some(body)).await? {
            (s, _) if s.is_success() => Ok(()),
            (s, body) => Err(refused("POST", &url, s, &body)),
        }
    }

    /// Delete one group (already gone counts as deleted).
    pub async fn delete(&self, namespace: &str, group: &str) -> Result<(), String> {
        let url = format!("{}/{}/{}", self.base, segment(namespace), segment(group));
        match self.call(Method::DELETE, url.clone(), None).await? {
            (s, _) if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            (s, body) => Err(refused("DELETE", &url, s, &body)),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        let what = format!("{method} {url}");
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .body(Full::new(body.clone().unwrap_or_default()))
            .map_err(|e| format!("{what}: {e}"))?;
        *req.headers_mut() = self.headers.clone();
        if body.is_some() {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
        }
        let exchange = async {
            let res = self.client.request(req).await.map_err(|e| root_cause(&e))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_LIST_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(format!("{what}: no answer within {:?}", self.timeout)),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

fn refused(method: &str, url: &str, status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    format!("{method} {url}: {status} {}", text.trim())
}

/// A path segment, percent-encoded except RFC 3986 unreserved characters
/// (as mimirtool's `url.PathEscape` leaves a namespace like `lgtm-a-b`).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_escaped() {
        assert_eq!(super::segment("lgtm-web-app_1.x"), "lgtm-web-app_1.x");
        assert_eq!(super::segment("my group/è"), "my%20group%2F%C3%A8");
    }
}
