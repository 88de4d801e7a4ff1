//! An in-process Mimir configuration API, as documented: the ruler's
//! `GET/POST/DELETE /api/prom/config/v1/rules[/{namespace}[/{group}]]` and
//! the Alertmanager's `GET/POST/DELETE /api/v1/alerts`, YAML bodies, state
//! kept per `X-Scope-OrgID`. Loki's ruler API (`/loki/api/v1/rules[...]`,
//! the same shape) is served beside it with its own rule store; like Loki,
//! it refuses a group with an expression that has no stream selector
//! (`{...}`), as a LogQL parse error. Each org may require one Authorization value
//! (401 otherwise). Every call is recorded.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const RULES: &str = "/api/prom/config/v1/rules";
const LOKI_RULES: &str = "/loki/api/v1/rules";
const ALERTS: &str = "/api/v1/alerts";

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub org: String,
    pub authorization: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Default)]
struct Org {
    /// namespace -> group name -> the group's YAML as posted.
    rules: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>>,
    /// The same for Loki's ruler.
    loki_rules: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>>,
    alertmanager: Option<String>,
}

#[derive(Default)]
struct Inner {
    orgs: BTreeMap<String, Org>,
    auth: BTreeMap<String, String>,
    calls: Vec<Call>,
}

#[derive(Clone)]
pub struct Mimir {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Mimir {
    pub async fn start() -> Mimir {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Mimir { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for `org` must carry exactly this Authorization value.
    pub fn require_auth(&self, org: &str, authorization: &str) {
        let mut i = self.inner.lock().unwrap();
        i.auth.insert(org.into(), authorization.into());
    }

    /// Put a group in place as if someone else had (no call recorded).
    pub fn seed_group(&self, org: &str, namespace: &str, yaml: &str) {
        self.seed(false, org, namespace, yaml)
    }

    /// The same in Loki's ruler.
    pub fn seed_loki_group(&self, org: &str, namespace: &str, yaml: &str) {
        self.seed(true, org, namespace, yaml)
    }

    fn seed(&self, loki: bool, org: &str, namespace: &str, yaml: &str) {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        let name = v["name"].as_str().unwrap().to_string();
        let mut i = self.inner.lock().unwrap();
        let o = i.orgs.entry(org.into()).or_default();
        let rules = if loki {
            &mut o.loki_rules
        } else {
            &mut o.rules
        };
        rules.entry(namespace.into()).or_default().insert(name, v);
    }

    /// `namespace -> group names` held for `org`.
    pub fn groups(&self, org: &str) -> BTreeMap<String, Vec<String>> {
        self.names(false, org)
    }

    /// The same in Loki's ruler.
    pub fn loki_groups(&self, org: &str) -> BTreeMap<String, Vec<String>> {
        self.names(true, org)
    }

    fn names(&self, loki: bool, org: &str) -> BTreeMap<String, Vec<String>> {
        let i = self.inner.lock().unwrap();
        i.orgs
            .get(org)
            .map(|o| {
                let rules = if loki { &o.loki_rules } else { &o.rules };
                rules
                    .iter()
                    .map(|(ns, gs)| (ns.clone(), gs.keys().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One group as held, or `None`.
    pub fn group(&self, org: &str, namespace: &str, name: &str) -> Option<serde_yaml_ng::Value> {
        let i = self.inner.lock().unwrap();
        i.orgs.get(org)?.rules.get(namespace)?.get(name).cloned()
    }

    /// One group as Loki's ruler holds it, or `None`.
    pub fn loki_group(
        &self,
        org: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_yaml_ng::Value> {
        let i = self.inner.lock().unwrap();
        i.orgs
            .get(org)?
            .loki_rules
            .get(namespace)?
            .get(name)
            .cloned()
    }

    /// Remove a group behind the proxy's back (drift).
    pub fn remove_group(&self, org: &str, namespace: &str, name: &str) {
        let mut i = self.inner.lock().unwrap();
        if let Some(gs) = i.orgs.get_mut(org).and_then(|o| o.rules.get_mut(namespace)) {
            gs.remove(name);
        }
    }

    pub fn alertmanager_config(&self, org: &str) -> Option<String> {
        let i = self.inner.lock().unwrap();
        i.orgs.get(org)?.alertmanager.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every rule's expression has a stream selector: the least LogQL needs.
fn logql_like(group: &serde_yaml_ng::Value) -> bool {
    group["rules"].as_sequence().is_some_and(|rs| {
        rs.iter()
            .all(|r| r["expr"].as_str().is_some_and(|e| e.contains('{')))
    })
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/yaml")
        .body(Full::new(body.into()))
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<Inner>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (org, authorization, content_type) = (
        header("x-scope-orgid"),
        header("authorization"),
        header("content-type"),
    );
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut i = state.lock().unwrap();
    i.calls.push(Call {
        method: method.to_string(),
        path: path.clone(),
        org: org.clone(),
        authorization: authorization.clone(),
        content_type,
        body: body.clone(),
    });
    if org.is_empty() {
        return Ok(answer(StatusCode::UNAUTHORIZED, "no org id"));
    }
    if i.auth.get(&org).is_some_and(|want| *want != authorization) {
        return Ok(answer(StatusCode::UNAUTHORIZED, "invalid credentials"));
    }
    let o = i.orgs.entry(org).or_default();
    if path == ALERTS {
        return Ok(match method {
            Method::GET => match &o.alertmanager {
                Some(c) => answer(StatusCode::OK, c.clone()),
                None => answer(StatusCode::NOT_FOUND, "alertmanager config not found"),
            },
            Method::POST => {
                let v: Result<serde_yaml_ng::Value, _> = serde_yaml_ng::from_str(&body);
                match v {
                    Ok(v) if v["alertmanager_config"].is_string() => {
                        o.alertmanager = Some(body);
                        answer(StatusCode::CREATED, "")
                    }
                    _ => answer(
                        StatusCode::BAD_REQUEST,
                        "error validating Alertmanager config",
                    ),
                }
            }
            Method::DELETE => {
                o.alertmanager = None;
                answer(StatusCode::OK, "")
            }
            _ => answer(StatusCode::METHOD_NOT_ALLOWED, ""),
        });
    }
    let (rest, loki) = match (path.strip_prefix(RULES), path.strip_prefix(LOKI_RULES)) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Ok(answer(StatusCode::NOT_FOUND, "404 page not found")),
    };
    let rules = if loki {
        &mut o.loki_rules
    } else {
        &mut o.rules
    };
    let parts: Vec<String> = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(decode)
        .collect();
    let listing = |rules: &BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>>| {
        let map: BTreeMap<&String, Vec<&serde_yaml_ng::Value>> = rules
            .iter()
            .filter(|(_, gs)| !gs.is_empty())
            .map(|(ns, gs)| (ns, gs.values().collect()))
            .collect();
        serde_yaml_ng::to_string(&map).unwrap()
    };
    Ok(match (method, parts.as_slice()) {
        (Method::GET, []) => {
            if rules.values().all(|g| g.is_empty()) {
                answer(StatusCode::NOT_FOUND, "no rule groups found")
            } else {
                answer(StatusCode::OK, listing(rules))
            }
        }
        (Method::GET, [ns]) => match rules.get(ns) {
            Some(gs) if !gs.is_empty() => {
                let one: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>> =
                    [(ns.clone(), gs.clone())].into();
                answer(StatusCode::OK, listing(&one))
            }
            _ => answer(StatusCode::NOT_FOUND, "no rule groups found"),
        },
        (Method::GET, [ns, g]) => match rules.get(ns).and_then(|gs| gs.get(g)) {
            Some(v) => answer(StatusCode::OK, serde_yaml_ng::to_string(v).unwrap()),
            None => answer(StatusCode::NOT_FOUND, "group does not exist"),
        },
        (Method::POST, [ns]) => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&body) {
            Ok(v) if loki && !logql_like(&v) => answer(
                StatusCode::BAD_REQUEST,
                "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
            ),
            Ok(v) if v["name"].is_string() => {
                let name = v["name"].as_str().unwrap().to_string();
                rules.entry(ns.clone()).or_default().insert(name, v);
                answer(StatusCode::ACCEPTED, "{\"status\":\"success\"}")
            }
            _ => answer(StatusCode::BAD_REQUEST, "unable to decode rule group"),
        },
        (Method::DELETE, [ns]) => match rules.remove(ns) {
            Some(_) => answer(StatusCode::ACCEPTED, ""),
            None => answer(StatusCode::NOT_FOUND, "no rule groups found"),
        },
        (Method::DELETE, [ns, g]) => match rules.get_mut(ns).and_then(|gs| gs.remove(g)) {
            Some(_) => {
                if rules.get(ns).is_some_and(|gs| gs.is_empty()) {
                    rules.remove(ns);
                }
                answer(StatusCode::ACCEPTED, "")
            }
            None => answer(StatusCode::NOT_FOUND, "group does not exist"),
        },
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, ""),
    })
}
