//! The infrastructure Prometheus sources: `/-/healthy` checked every few
//! seconds by one background task (jobs read the answers, never wait on
//! them), and instant queries whose JSON answer is read with a
//! size cap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use super::series::Labels;
use super::spec::BasicAuth;
use crate::proxy::own_api::percent_encode;
use crate::proxy::{root_cause, ClientSet, OwnBody, OwnClient};
use crate::telemetry::{unix_now, Metrics};

/// Time between rounds of health checks.
const HEALTH_TTL: Duration = Duration::from_secs(5);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A query answer larger than this is refused (bounded memory).
pub const MAX_QUERY_BYTES: usize = 64 * 1024 * 1024;

pub struct Sources {
    urls: Vec<String>,
    auth: Option<HeaderValue>,
    /// Each source's client; `None` for a URL that cannot be called.
    clients: Vec<Option<OwnClient>>,
    health: Mutex<Vec<Health>>,
    /// Becomes true when the first round of checks has ended.
    first_round: tokio::sync::watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

#[derive(Clone, Default)]
struct Health {
    healthy: bool,
    checked: bool,
    checked_unix: f64,
    error: Option<String>,
}

/// One sample of an instant query's vector result.
#[derive(Debug)]
pub struct Sampled {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

impl Sources {
    pub fn new(
        urls: Vec<String>,
        auth: Option<&BasicAuth>,
        metrics: Arc<Metrics>,
        clients: &mut ClientSet,
    ) -> Self {
        let n = urls.len();
        let clients = urls
            .iter()
            .map(|u| {
                let uri = u.parse::<Uri>().ok()?;
                OwnClient::at(clients, &uri, None, CONNECT_TIMEOUT)
            })
            .collect();
        Sources {
            urls,
            auth: auth.map(|a| crate::proxy::basic_auth(&a.username, &a.password)),
            clients,
            health: Mutex::new(vec![Health::default(); n]),
            first_round: tokio::sync::watch::Sender::new(false),
            metrics,
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Check every source now and every `HEALTH_TTL` after, until the task
    /// is aborted (the controller runs one per set of sources). Jobs read
    /// the answers and never wait on a check, so a source that hangs costs
    /// them nothing.
    pub async fn check_forever(self: Arc<Self>) {
        loop {
            let mut checks = tokio::task::JoinSet::new();
            for i in 0..self.urls.len() {
                let me = self.clone();
                checks.spawn(async move { (i, me.check(i).await) });
            }
            while let Some(Ok((i, result))) = checks.join_next().await {
                let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
                h[i] = Health {
                    healthy: result.is_ok(),
                    checked: true,
                    checked_unix: unix_now(),
                    error: result.err().map(|e| e.to_string()),
                };
                self.metrics
                    .remote_write
                    .source_up
                    .with_label_values(&[&self.urls[i]])
                    .set(i64::from(h[i].healthy));
            }
            self.first_round.send_replace(true);
            tokio::time::sleep(HEALTH_TTL).await;
        }
    }

    /// The indices of the sources healthy now. Only before the first round
    /// of checks has ended does this wait (at most one check's timeout).
    pub async fn healthy(&self) -> Vec<usize> {
        let mut done = self.first_round.subscribe();
        let _ = tokio::time::timeout(HEALTH_TIMEOUT, done.wait_for(|d| *d)).await;
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        (0..self.urls.len()).filter(|&i| h[i].healthy).collect()
    }

    async fn check(&self, i: usize) -> Result<(), SourceError> {
        let url = format!("{}/-/healthy", self.urls[i]);
        let res = tokio::time::timeout(HEALTH_TIMEOUT, self.get(i, &url))
            .await
            .map_err(|_| SourceError::Timeout(HEALTH_TIMEOUT))??;
        if res.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(SourceError::Unhealthy(res.status().as_u16()))
        }
    }

    /// GET `url` on source `i`'s client.
    async fn get(&self, i: usize, url: &str) -> Result<http::Response<OwnBody>, SourceError> {
        let Some(client) = &self.clients[i] else {
            return Err(SourceError::Unreachable(format!(
                "{}: not an http:// or https:// URL",
                self.urls[i]
            )));
        };
        let uri = url
            .parse::<Uri>()
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        let mut req = Request::get(uri)
            .body(Full::default())
            .expect("a parsed URI makes a request");
        if let Some(a) = &self.auth {
            req.headers_mut().insert(AUTHORIZATION, a.clone());
        }
        client
            .request(req)
            .await
            .map_err(|e| SourceError::Unreachable(root_cause(&e)))
    }

    /// An instant query; the result must be a vector.
    pub async fn query(
        &self,
        i: usize,
        selector: &str,
        timeout: Duration,
    ) -> Result<Vec<Sampled>, SourceError> {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.urls[i],
            percent_encode(selector)
        );
        let work = async {
            let res = self.get(i, &url).await?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_QUERY_BYTES)
                .collect()
                .await
                .map_err(|e| SourceError::Body(e.to_string()))?
                .to_bytes();
            parse_query(status, &body)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| SourceError::Timeout(timeout))?
    }

    /// For /debug/targets: every source and its last health answer.
    pub fn describe(&self) -> serde_json::Value {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::Value::Array(
            self.urls
                .iter()
                .zip(h.iter())
                .map(|(url, h)| {
                    serde_json::json!({
                        "url": url,
                        "healthy": h.healthy,
                        "checked": h.checked,
                        "last_check_unix": h.checked_unix,
                        "error": h.error,
                    })
                })
                .collect(),
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryAnswer {
    status: String,
    data: Option<QueryData>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: Labels,
    value: (f64, String),
}

/// Why a source gave no samples (or failed its health check).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Unreachable(String),
    #[error("/-/healthy answered {0}")]
    Unhealthy(u16),
    #[error("reading the answer: {0}")]
    Body(String),
    #[error("answer {0} is not a Prometheus API response")]
    NotApi(u16),
    #[error("query failed ({status}): {error}")]
    QueryFailed { status: u16, error: String },
    #[error("answer has no data")]
    NoData,
    #[error("expected a vector, got {0}")]
    NotVector(String),
    #[error("malformed vector: {0}")]
    Malformed(String),
}

fn parse_query(status: StatusCode, body: &[u8]) -> Result<Vec<Sampled>, SourceError> {
    let answer: QueryAnswer =
        serde_json::from_slice(body).map_err(|_| SourceError::NotApi(status.as_u16()))?;
    if answer.status != "success" {
        return Err(SourceError::QueryFailed {
            status: status.as_u16(),
            error: answer.error.unwrap_or_default(),
        });
    }
    let data = answer.data.ok_or(SourceError::NoData)?;
    if data.result_type != "vector" {
        return Err(SourceError::NotVector(data.result_type));
    }
    let samples: Vec<VectorSample> =
        serde_json::from_value(data.result).map_err(|e| SourceError::Malformed(e.to_string()))?;
    samples
        .into_iter()
        .map(|s| {
            let value = s
                .value
                .1
                .parse::<f64>()
                .map_err(|_| SourceError::Malformed(format!("sample value {:?}", s.value.1)))?;
            Ok(Sampled {
                labels: s.metric,
                value,
                timestamp_ms: (s.value.0 * 1000.0).round() as i64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","namespace":"t"},"value":[1700000000.5,"1"]},
            {"metric":{"__name__":"x"},"value":[1700000000.5,"NaN"]},
            {"metric":{"__name__":"y"},"value":[1700000000.5,"+Inf"]}]}}"#;
        let s = parse_query(StatusCode::OK, body).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].timestamp_ms, 1_700_000_000_500);
        assert_eq!(s[0].labels["namespace"], "t");
        assert!(s[1].value.is_nan());
        assert_eq!(s[2].value, f64::INFINITY);
    }

    #[test]
    fn errors_are_reported() {
        let e = parse_query(
            StatusCode::BAD_REQUEST,
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SourceError::QueryFailed {
                status: 400,
                error: "parse error".into()
            }
        );
        assert_eq!(e.to_string(), "query failed (400): parse error");
        let e = parse_query(
            StatusCode::OK,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#,
        )
        .unwrap_err();
        assert_eq!(e, SourceError::NotVector("scalar".into()));
        assert_eq!(
            parse_query(StatusCode::BAD_GATEWAY, b"<html>").err(),
            Some(SourceError::NotApi(502))
        );
    }

    #[test]
    fn encodes_selectors() {
        assert_eq!(
            percent_encode(r#"up{job="a b",namespace="t"}"#),
            "up%7Bjob%3D%22a%20b%22%2Cnamespace%3D%22t%22%7D"
        );
    }
}
