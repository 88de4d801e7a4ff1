//! Delivery to a job's target: a bounded queue (oldest samples dropped and
//! counted when the target falls behind), batches of bounded size, and
//! retries with exponential backoff and jitter on network errors, 5xx and
//! 429 (honouring Retry-After), never on other 4xx.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};

use super::encode::{exposition_text, remote_write_body, REMOTE_WRITE_HEADERS, TEXT_CONTENT_TYPE};
use super::series::Series;
use super::spec::{Delivery, TargetKind};
use crate::proxy::{basic_auth, root_cause, ClientSet, OwnClient};

/// Series per remote-write request (Prometheus' own default is 2000).
pub const MAX_BATCH: usize = 2000;
/// Series a job holds at most, queued and not yet delivered.
pub const QUEUE_CAP: usize = 100_000;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Pending series, oldest first, at most `cap`.
pub struct Queue {
    items: VecDeque<Series>,
    cap: usize,
    /// Pushgateway: a push replaces the group, so only the newest
    /// collection matters.
    replace: bool,
}

impl Queue {
    pub fn new(cap: usize, replace: bool) -> Self {
        Queue {
            items: VecDeque::new(),
            cap,
            replace,
        }
    }

    /// Add a collection; returns how many series were dropped to stay
    /// within the cap (oldest first).
    pub fn push(&mut self, series: Vec<Series>) -> usize {
        if self.replace {
            self.items.clear();
        }
        self.items.extend(series);
        let over = self.items.len().saturating_sub(self.cap);
        self.items.drain(..over);
        over
    }

    /// The next batch to send (everything, for a replace queue).
    pub fn take(&mut self) -> Vec<Series> {
        let n = if self.replace {
            self.items.len()
        } else {
            self.items.len().min(MAX_BATCH)
        };
        self.items.drain(..n).collect()
    }

    /// Put back a batch that could not be sent yet, ahead of the rest,
    /// unless newer data replaced it or the cap is reached.
    pub fn put_back(&mut self, batch: Vec<Series>) -> usize {
        if self.replace && !self.items.is_empty() {
            return 0;
        }
        let room = self.cap.saturating_sub(self.items.len());
        let dropped = batch.len().saturating_sub(room);
        for s in batch.into_iter().skip(dropped).rev() {
            self.items.push_front(s);
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What one delivery attempt came to.
#[derive(Debug, PartialEq)]
pub enum DeliveryOutcome {
    Delivered(StatusCode),
    /// Network error, timeout, 5xx or 429: try again (after `after`, when
    /// the target said).
    Retry {
        status: Option<StatusCode>,
        after: Option<Duration>,
        error: String,
    },
    /// Any other 4xx: the batch is refused for good.
    Refused(StatusCode, String),
}

impl DeliveryOutcome {
    /// The `status` label: the code, or `error` when no response came.
    pub fn status_label(&self) -> String {
        match self {
            DeliveryOutcome::Delivered(s) | DeliveryOutcome::Refused(s, _) => {
                s.as_u16().to_string()
            }
            DeliveryOutcome::Retry {
                status: Some(s), ..
            } => s.as_u16().to_string(),
            DeliveryOutcome::Retry { status: None, .. } => "error".to_string(),
        }
    }
}

/// Sends batches to one target; headers computed once, at job start.
pub struct Pusher {
    client: OwnClient,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    kind: TargetKind,
    timeout: Duration,
}

/// A delivery the pusher cannot be built for (validation refuses these
/// first; this names what slipped through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PusherError {
    #[error("invalid target URL")]
    Url,
    #[error("header {0:?}: not a valid header name or value")]
    Header(String),
}

impl Pusher {
    pub fn new(d: &Delivery, clients: &mut ClientSet) -> Result<Self, PusherError> {
        let uri: Uri = d.url.parse().map_err(|_| PusherError::Url)?;
        let client = OwnClient::at(clients, &uri, d.ca.as_deref(), d.connect_timeout)
            .ok_or(PusherError::Url)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &d.headers {
            let bad = || PusherError::Header(k.clone());
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?,
                HeaderValue::from_str(v).map_err(|_| bad())?,
            );
        }
        if d.kind.is_remote_write() {
            for (k, v) in REMOTE_WRITE_HEADERS {
                headers.insert(*k, HeaderValue::from_static(v));
            }
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
        }
        if let Some(a) = &d.basic_auth {
            headers.insert(AUTHORIZATION, basic_auth(&a.username, &a.password));
        }
        if let Some(org) = &d.org_id {
            headers.insert(
                "x-scope-orgid",
                HeaderValue::from_str(org)
                    .map_err(|_| PusherError::Header("x-scope-orgid".into()))?,
            );
        }
        Ok(Pusher {
            client,
            uri,
            method: if d.kind.is_remote_write() {
                Method::POST
            } else {
                Method::PUT
            },
            headers,
            kind: d.kind,
            timeout: d.timeout,
        })
    }

    pub fn encode(&self, batch: &[Series]) -> Bytes {
        if self.kind.is_remote_write() {
            Bytes::from(remote_write_body(batch))
        } else {
            Bytes::from(exposition_text(batch))
        }
    }

    pub async fn send(&self, body: Bytes) -> DeliveryOutcome {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .body(Full::new(body))
            .expect("a parsed URI makes a request");
        *req.headers_mut() = self.headers.clone();
        let exchange = async {
            let res = self.client.request(req).await.map_err(|e| root_cause(&e))?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // The answer is small (an error text at most); read a bounded
            // prefix of it for the log and let the rest go.
            let text = http_body_util::Limited::new(res.into_body(), 4096)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
                .unwrap_or_default();
            Ok::<_, String>((status, retry_after, text))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => DeliveryOutcome::Retry {
                status: None,
                after: None,
                error: format!("no answer within {:?}", self.timeout),
            },
            Ok(Err(error)) => DeliveryOutcome::Retry {
                status: None,
                after: None,
                error,
            },
            Ok(Ok((status, _, _))) if status.is_success() => DeliveryOutcome::Delivered(status),
            Ok(Ok((status, after, text)))
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                DeliveryOutcome::Retry {
                    status: Some(status),
                    after,
                    error: text,
                }
            }
            Ok(Ok((status, _, text))) => DeliveryOutcome::Refused(status, text),
        }
    }
}

/// The wait before retry number `n` (0-based): doubling from 250 ms up to
/// 30 s, with full jitter in its upper half; Retry-After when given.
pub fn backoff(n: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(after) = retry_after {
        return after.min(BACKOFF_MAX * 4);
    }
    let base = BACKOFF_START
        .saturating_mul(1u32 << n.min(16))
        .min(BACKOFF_MAX);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::series::Labels;

    fn series(i: usize) -> Series {
        let mut labels = Labels::new();
        labels.insert("i".into(), i.to_string());
        Series {
            labels,
            value: i as f64,
            timestamp_ms: i as i64,
        }
    }

    fn ids(q: &mut Queue) -> Vec<String> {
        let mut out = Vec::new();
        while !q.is_empty() {
            out.extend(q.take().into_iter().map(|s| s.labels["i"].clone()));
        }
        out
    }

    #[test]
    fn queue_drops_the_oldest_beyond_its_cap() {
        let mut q = Queue::new(3, false);
        assert_eq!(q.push((0..2).map(series).collect()), 0);
        assert_eq!(q.push((2..5).map(series).collect()), 2);
        assert_eq!(q.len(), 3);
        assert_eq!(ids(&mut q), vec!["2", "3", "4"]);
    }

    #[test]
    fn batches_are_bounded_and_put_back_first() {
        let mut q = Queue::new(QUEUE_CAP, false);
        q.push((0..MAX_BATCH + 5).map(series).collect());
        let first = q.take();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(q.len(), 5);
        assert_eq!(q.put_back(first), 0);
        assert_eq!(q.take()[0].labels["i"], "0");
    }

    #[test]
    fn put_back_respects_the_cap() {
        let mut q = Queue::new(4, false);
        q.push((0..4).map(series).collect());
        let batch = q.take();
        q.push((10..13).map(series).collect());
        // Room for one: the newest of the put-back batch is kept.
        assert_eq!(q.put_back(batch), 3);
        assert_eq!(ids(&mut q), vec!["3", "10", "11", "12"]);
    }

    #[test]
    fn replace_queue_keeps_only_the_newest_collection() {
        let mut q = Queue::new(10, true);
        q.push((0..3).map(series).collect());
        let old = q.take();
        q.push((5..7).map(series).collect());
        assert_eq!(q.put_back(old), 0);
        assert_eq!(ids(&mut q), vec!["5", "6"]);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_honours_retry_after() {
        assert_eq!(backoff(0, None, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(0, None, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(3, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(30, None, 1.0), BACKOFF_MAX);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn status_labels() {
        assert_eq!(
            DeliveryOutcome::Delivered(StatusCode::NO_CONTENT).status_label(),
            "204"
        );
        let r = DeliveryOutcome::Retry {
            status: None,
            after: None,
            error: String::new(),
        };
        assert_eq!(r.status_label(), "error");
    }
}
