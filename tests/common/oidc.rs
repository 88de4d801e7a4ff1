//! A local HTTPS OIDC issuer as the Kubernetes API server serves it: its
//! own CA, `/.well-known/openid-configuration` naming the issuer and its
//! `jwks_uri`, and `/openid/v1/jwks` (`application/jwk-set+json`). The
//! JWKS can be replaced and the issuer taken down (connections closed
//! unanswered) while it runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::tls::TestCa;

pub struct Issuer {
    pub url: String,
    pub ca_pem: String,
    shared: Arc<Shared>,
}

struct Shared {
    jwks: Mutex<String>,
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    /// The Authorization headers discovery requests carried.
    authorizations: Mutex<Vec<String>>,
}

impl Issuer {
    pub async fn start(jwks: String) -> Issuer {
        let ca = TestCa::new("oidc-test-ca");
        let issued = ca.issue("kubernetes.default.svc");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            jwks: Mutex::new(jwks),
            down: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            authorizations: Mutex::new(Vec::new()),
        });
        let (s, issuer) = (shared.clone(), url.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if s.down.load(Ordering::SeqCst) {
                    drop(tcp);
                    continue;
                }
                let (acceptor, s, issuer) = (acceptor.clone(), s.clone(), issuer.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, issuer) = (s.clone(), issuer.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(&s, &issuer, &req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
            }
        });
        Issuer {
            url,
            ca_pem: ca.pem(),
            shared,
        }
    }

    pub fn set_jwks(&self, jwks: String) {
        *self.shared.jwks.lock().unwrap() = jwks;
    }

    /// While down, connections are closed unanswered.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn authorizations(&self) -> Vec<String> {
        self.shared.authorizations.lock().unwrap().clone()
    }
}

fn answer(s: &Shared, issuer: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if s.down.load(Ordering::SeqCst) {
        return Response::builder()
            .status(503)
            .body(Full::default())
            .unwrap();
    }
    if let Some(a) = req.headers().get("authorization") {
        s.authorizations
            .lock()
            .unwrap()
            .push(a.to_str().unwrap_or("").to_string());
    }
    let (ctype, body) = match req.uri().path() {
        "/.well-known/openid-configuration" => (
            "application/json",
            serde_json::json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/openid/v1/jwks"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            })
            .to_string(),
        ),
        "/openid/v1/jwks" => {
            s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            ("application/jwk-set+json", s.jwks.lock().unwrap().clone())
        }
        _ => {
            return Response::builder()
                .status(404)
                .body(Full::default())
                .unwrap()
        }
    };
    Response::builder()
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
