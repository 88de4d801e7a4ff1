//! Arbitrary bytes as one HTTP/1.1 connection into the whole service
//! (`server::serve_stream` over an in-memory duplex), in front of a
//! recording upstream on loopback. Never a panic and never a hang; the
//! upstream only ever sees the injected Authorization and X-Scope-OrgID of
//! the tenant whose base path it was sent to (never the client's), and
//! only requests of a class that tenant's one client holds.
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lgtm_proxy::access::AccessClass;
use lgtm_proxy::invariants::{class_of_view, upstream_view};
use lgtm_proxy::role::Role;
use lgtm_proxy::App;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UPSTREAMS: &[&str] = &[
    "prometheus",
    "loki",
    "tempo",
    "otlp",
    "alertmanager",
    "pyroscope",
];

/// A tenant: the base path its upstreams have, its credentials and the one
/// client that may act for it.
struct Tenant {
    name: &'static str,
    org: &'static str,
    user: &'static str,
    client_token: &'static str,
    access: &'static [AccessClass],
}

const TENANTS: &[Tenant] = &[
    Tenant {
        name: "ro",
        org: "org-ro",
        user: "100",
        client_token: "ro-client-token-0001",
        access: &[AccessClass::Read],
    },
    Tenant {
        name: "rw",
        org: "org-rw",
        user: "200",
        client_token: "rw-client-token-0002",
        access: &[AccessClass::Read, AccessClass::Write],
    },
];
const UPSTREAM_TOKEN: &str = "upstream-secret-token";

struct Seen {
    method: Method,
    path: String,
    authorization: Vec<Vec<u8>>,
    org: Vec<Vec<u8>>,
}

struct World {
    rt: tokio::runtime::Runtime,
    config: lgtm_proxy::config::Config,
    app: Arc<App>,
    seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let addr = rt.block_on(upstream(seen.clone()));
        let dir = tempfile::tempdir().unwrap();
        let mut toml = String::from("require_client_auth = true\n");
        for u in UPSTREAMS {
            toml += &format!(
                "[upstreams.{u}]\nurl = \"http://{addr}/none\"\nuser = \"1\"\ntoken = \"{UPSTREAM_TOKEN}\"\ntimeout = \"2s\"\n"
            );
        }
        for t in TENANTS {
            let file = dir.path().join(t.name);
            std::fs::write(&file, t.client_token).unwrap();
            let access: Vec<String> = t.access.iter().map(|a| format!("{:?}", a.as_str())).collect();
            toml += &format!(
                "[[tenants.{n}.clients]]\nname = \"{n}-client\"\ntoken_file = {file:?}\naccess = [{a}]\n",
                n = t.name,
                a = access.join(", ")
            );
            for u in UPSTREAMS {
                toml += &format!(
                    "[tenants.{n}.upstreams.{u}]\nurl = \"http://{addr}/{n}\"\nuser = \"{user}\"\ntenant = \"{org}\"\n",
                    n = t.name,
                    user = t.user,
                    org = t.org
                );
            }
        }
        let config = lgtm_proxy::config::load_text(Some(&toml), std::iter::empty())
            .unwrap_or_else(|e| panic!("the target's config: {:?}", e.0));
        let app = rt.block_on(async { Arc::new(App::new(config.clone(), Role::All)) });
        World {
            rt,
            config,
            app,
            seen,
            _dir: dir,
        }
    })
}

/// Records what it receives, drains the body, answers 200.
async fn upstream(seen: Arc<Mutex<Vec<Seen>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let all = |name: &str| {
                            req.headers()
                                .get_all(name)
                                .iter()
                                .map(|v| v.as_bytes().to_vec())
                                .collect::<Vec<_>>()
                        };
                        seen.lock().unwrap().push(Seen {
                            method: req.method().clone(),
                            path: req.uri().path().to_string(),
                            authorization: all("authorization"),
                            org: all("x-scope-orgid"),
                        });
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn check(s: &Seen) {
    let rest = s.path.strip_prefix('/').unwrap_or(&s.path);
    let (base, rel) = rest.split_once('/').map_or((rest, ""), |(b, r)| (b, r));
    let Some(t) = TENANTS.iter().find(|t| t.name == base) else {
        panic!(
            "the upstream got {} {:?}, which no client may reach",
            s.method, s.path
        );
    };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{UPSTREAM_TOKEN}", t.user))
    );
    assert_eq!(
        s.authorization,
        vec![basic.into_bytes()],
        "Authorization of {:?}",
        s.path
    );
    assert_eq!(
        s.org,
        vec![t.org.as_bytes().to_vec()],
        "X-Scope-OrgID of {:?}",
        s.path
    );
    let class = class_of_view(&upstream_view(&format!("/{rel}")), &s.method);
    assert!(
        t.access.contains(&class),
        "{} {:?} ({}) reached the upstream for a client with {:?}",
        s.method,
        s.path,
        class.as_str(),
        t.access
    );
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let exchange = async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serve = lgtm_proxy::server::serve_stream(&w.config, w.app.clone(), server, peer);
        let talk = async move {
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let send = async {
                let _ = wr.write_all(data).await;
                let _ = wr.shutdown().await;
            };
            let mut answer = Vec::new();
            let recv = rd.read_to_end(&mut answer);
            let _ = tokio::join!(send, recv);
        };
        tokio::join!(serve, talk);
    };
    w.rt.block_on(async {
        if tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .is_err()
        {
            panic!("the exchange did not end within 5 s");
        }
    });
    for s in w.seen.lock().unwrap().drain(..) {
        check(&s);
    }
});
