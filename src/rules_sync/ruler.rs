//! One tenant's ruler: Mimir's ruler configuration API on its prometheus
//! upstream (`/api/prom/config/v1/rules[/{namespace}[/{group}]]`) or Loki's
//! on its loki upstream (`/loki/api/v1/rules[...]`), YAML bodies, reached
//! with the upstream's own credentials, org ID, CA and timeouts.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::group::Group;
use super::kind::RulerKind;
use crate::config::Upstream;
use crate::proxy::own_api::{percent_encode, ApiError, UpstreamApi};
use crate::proxy::ClientSet;

/// A ruler's whole rule set is read at once; beyond this it is refused.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// Answers to changes are a status line at most.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Every ruler namespace and its groups, as the ruler holds them.
pub type RuleSet = BTreeMap<String, Vec<Group>>;

pub struct Ruler {
    api: UpstreamApi,
}

impl Ruler {
    pub fn new(clients: &mut ClientSet, up: &Upstream, kind: RulerKind) -> Self {
        Ruler {
            api: UpstreamApi::new(clients, up, kind.rules_path()),
        }
    }

    pub fn url(&self) -> &str {
        self.api.url()
    }

    /// Every namespace and group (a 404 is the ruler's "no rule groups").
    pub async fn list(&self) -> Result<RuleSet, ApiError> {
        let url = self.api.url();
        let (status, body) = self
            .api
            .call(Method::GET, url, None, MAX_LIST_BYTES)
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(RuleSet::new()),
            s if s.is_success() => {
                let text = String::from_utf8_lossy(&body);
                let set: RuleSet =
                    crate::yaml_dir::from_str(&text).map_err(|e| ApiError::Unreadable {
                        method: Method::GET,
                        url: url.to_string(),
                        expected: "a rule set",
                        cause: e.to_string(),
                    })?;
                Ok(set
                    .into_iter()
                    .map(|(ns, gs)| (ns, gs.into_iter().map(Group::normalized).collect()))
                    .collect())
            }
            s => Err(ApiError::refused(Method::GET, url, s, &body)),
        }
    }

    /// Create or replace one group in `namespace`.
    pub async fn post(&self, namespace: &str, group: &Group) -> Result<(), ApiError> {
        let url = format!("{}/{}", self.api.url(), percent_encode(namespace));
        let body = Bytes::from(group.to_yaml());
        match self
            .api
            .call(Method::POST, &url, Some(body), MAX_ANSWER_BYTES)
            .await?
        {
            (s, _) if s.is_success() => Ok(()),
            (s, body) => Err(ApiError::refused(Method::POST, &url, s, &body)),
        }
    }

    /// Delete one group (already gone counts as deleted).
    pub async fn delete(&self, namespace: &str, group: &str) -> Result<(), ApiError> {
        let url = format!(
            "{}/{}/{}",
            self.api.url(),
            percent_encode(namespace),
            percent_encode(group)
        );
        match self
            .api
            .call(Method::DELETE, &url, None, MAX_ANSWER_BYTES)
            .await?
        {
            (s, _) if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            (s, body) => Err(ApiError::refused(Method::DELETE, &url, s, &body)),
        }
    }
}
