//! A config with two tenants and three clients, and requests against it,
//! for the layers' unit tests.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;

use super::ctx::{Conn, Inbound, ProbesOnly, Refusal};
use crate::access::AccessClass;
use crate::app::App;
use crate::proxy::headers::ClientAddr;
use crate::proxy::Body;

pub const READER: &str = "Bearer reader-token";
pub const WRITER: &str = "Bearer writer-token";
pub const ADMIN: &str = "Bearer admin-token";

pub struct Fixture {
    pub app: Arc<App>,
    _dir: tempfile::TempDir,
}

/// Tenant `stage` (prometheus only; `max_in_flight = 1`) with clients
/// `reader` (read), `writer` (write, 1 request/s, so one at once) and
/// `admin` (all); the default tenant has prometheus and loki; global
/// `max_in_flight = 2`; route `/small` takes bodies up to 10 bytes.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let token = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{name}-token\n")).unwrap();
        p.display().to_string()
    };
    let (reader, writer, admin) = (token("reader"), token("writer"), token("admin"));
    let toml = format!(
        r#"
max_in_flight = 2
[[routes]]
prefix = "/small"
upstream = "prometheus"
rewrite = "/api/prom"
max_body_bytes = 10
[tenants.stage]
max_in_flight = 1
[tenants.stage.upstreams.prometheus]
user = "111"
[[tenants.stage.clients]]
name = "reader"
token_file = "{reader}"
access = ["read"]
[[tenants.stage.clients]]
name = "writer"
token_file = "{writer}"
access = ["write"]
rate = 1
[[tenants.stage.clients]]
name = "admin"
token_file = "{admin}"
"#
    );
    let path = dir.path().join("lgtm-proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let vars = [
        ("LGTM_PROMETHEUS_URL", "http://127.0.0.1:9/"),
        ("LGTM_PROMETHEUS_USER", "100"),
        ("LGTM_LOKI_URL", "http://127.0.0.1:9/"),
        ("LGTM_LOKI_USER", "200"),
        ("LGTM_TOKEN", "upstream-token"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = crate::config::load_from(Some(&path), vars).unwrap();
    Fixture {
        app: Arc::new(App::new(config, crate::role::Role::All)),
        _dir: dir,
    }
}

impl Fixture {
    pub fn conn(&self, probes_only: Option<ProbesOnly>) -> Arc<Conn> {
        Arc::new(Conn {
            app: self.app.clone(),
            peer: Arc::new(ClientAddr::new(([127, 0, 0, 1], 4000).into(), false)),
            peer_cn: None,
            seen: Arc::default(),
            probes_only,
        })
    }

    pub fn inbound(&self, req: Request<Empty<Bytes>>) -> Inbound<Empty<Bytes>> {
        Inbound::new(req, &self.conn(None))
    }

    /// The count of `lgtm_proxy_requests_total` with these labels.
    pub fn requests(&self, upstream: &str, tenant: &str, status: &str) -> u64 {
        let m = &self.app.metrics().requests;
        m.get_metric_with_label_values(&[upstream, tenant, "GET", status])
            .map_or(0, |c| c.get())
    }
}

/// A request with these headers.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Empty::new()).unwrap()
}

/// What reached the innermost service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub tenant: Option<usize>,
    pub client: Option<String>,
    pub path_and_query: String,
    pub class: AccessClass,
}

/// The innermost service of the stack's tests: answers 200 and keeps
/// what reached it.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Reached>>>);

impl tower::Service<Inbound<Empty<Bytes>>> for Recorder {
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = std::future::Ready<Result<Response<Body>, Refusal>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Inbound<Empty<Bytes>>) -> Self::Future {
        let ctx = &call.ctx;
        self.0.lock().unwrap().push(Reached {
            tenant: ctx.caller.map(|c| c.tenant),
            client: ctx.client().map(|c| c.name.to_string()),
            path_and_query: ctx.path_and_query.clone(),
            class: ctx.class,
        });
        let res = Response::new(Body::Left(http_body_util::Full::new(Bytes::new())));
        std::future::ready(Ok(res))
    }
}
