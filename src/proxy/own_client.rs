//! `OwnClient`: the proxy's own calls (rules sync, the Alertmanager
//! configuration push, remote-write delivery and source queries) on the
//! same `Clients` as forwarded traffic: one pool per transport need,
//! scheme and authority, shared with the upstream's forwarded requests when
//! the call goes to a configured upstream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use std::time::Duration;

use rustls::pki_types::CertificateDer;

use super::body::{Lease, OutBody};
use super::client::{ClientSet, Clients, Dest};
use super::via::{Need, SendFailed, Via};
use crate::config::{Upstream, DEFAULT_UPSTREAM_MAX_CONNECTIONS};

/// Calls to one scheme and authority.
#[derive(Clone)]
pub struct OwnClient {
    clients: Clients,
    scheme: Scheme,
    authority: Authority,
}

/// Why an own call was not sent, or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum OwnCallError {
    #[error("{0} is not on this client's {1}")]
    Elsewhere(Uri, Authority),
    #[error(transparent)]
    Send(#[from] SendFailed),
}

impl OwnClient {
    /// Calls to a configured upstream: on its own pools.
    pub fn to_upstream(set: &mut ClientSet, up: &Upstream) -> Self {
        OwnClient {
            clients: set.client_for(up),
            scheme: up.scheme.clone(),
            authority: up.authority.clone(),
        }
    }

    /// Calls to `url`'s scheme and authority (a remote-write target or
    /// source), with an extra CA and a connect timeout; `None` when the URL
    /// has no `http`/`https` scheme or no authority.
    pub fn at(
        set: &mut ClientSet,
        url: &Uri,
        ca: Option<&[CertificateDer<'static>]>,
        connect_timeout: Duration,
    ) -> Option<Self> {
        let scheme = url
            .scheme()
            .filter(|s| **s == Scheme::HTTP || **s == Scheme::HTTPS)?;
        let authority = url.authority()?;
        let clients = set.clients(&Dest {
            scheme,
            authority,
            ca,
            connect_timeout,
            max_connections: DEFAULT_UPSTREAM_MAX_CONNECTIONS,
        });
        Some(OwnClient {
            clients,
            scheme: scheme.clone(),
            authority: authority.clone(),
        })
    }

    /// Send `req` (an absolute target on this client's scheme and
    /// authority). Reading the answer's body to its end gives a pooled
    /// connection back; dropping it sooner closes the connection.
    pub async fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<OwnBody>, OwnCallError> {
        let (mut parts, body) = req.into_parts();
        if parts.uri.scheme() != Some(&self.scheme)
            || parts.uri.authority() != Some(&self.authority)
        {
            return Err(OwnCallError::Elsewhere(parts.uri, self.authority.clone()));
        }
        let via = Via::of(&self.clients, Need::Any);
        if let Via::Pool(_) = via {
            // The pool takes origin-form (it adds Host, or :scheme and
            // :authority for h2).
            let path = parts.uri.path_and_query().cloned();
            let mut origin = http::uri::Parts::default();
            origin.path_and_query = path.or_else(|| Some("/".parse().expect("/ is a path")));
            parts.uri = Uri::from_parts(origin).expect("a path is an origin-form target");
        }
        let (res, lease) = via
            .send(Request::from_parts(parts, OutBody::Own(body)))
            .await?;
        Ok(res.map(|inner| OwnBody { inner, lease }))
    }
}

pin_project! {
    /// An own call's answer: gives its pooled connection back when read to
    /// its end.
    pub struct OwnBody {
        #[pin]
        inner: Incoming,
        lease: Option<Lease>,
    }
}

impl HttpBody for OwnBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            if let Some(lease) = this.lease.take() {
                lease.give_back();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use http::header::HOST;
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;
    use crate::proxy::client::test_upstream as configured;

    /// A keep-alive upstream answering with the Host and target it got;
    /// counts the connections it accepted.
    async fn upstream() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let host = req.headers()[HOST].to_str().unwrap().to_string();
                        let text = format!("{host} {} {}", req.method(), req.uri());
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            text.repeat(100),
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    fn post(url: &str) -> Request<Full<Bytes>> {
        Request::post(url)
            .body(Full::new(Bytes::from_static(b"groups: []")))
            .unwrap()
    }

    #[tokio::test]
    async fn own_calls_share_the_upstreams_pool_and_reuse_its_connection() {
        let (addr, accepted) = upstream().await;
        let up = configured(&format!("http://{addr}/base"));
        let mut set = ClientSet::direct();
        let forwarded = set.client_for(&up);
        let own = OwnClient::to_upstream(&mut set, &up);
        match (
            Via::of(&forwarded, Need::Any),
            Via::of(&own.clients, Need::Any),
        ) {
            (Via::Pool(a), Via::Pool(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("a plain upstream with no egress proxy is pooled"),
        }
        for i in 0..3 {
            let url = format!("http://{addr}/base/api/v1/rules?i={i}");
            let res = own.request(post(&url)).await.unwrap();
            let text = res.into_body().collect().await.unwrap().to_bytes();
            // Origin-form on the wire, the Host the pool sets.
            let want = format!("{addr} POST /base/api/v1/rules?i={i}");
            assert!(text.starts_with(want.as_bytes()), "{text:?}");
        }
        assert_eq!(
            accepted.load(SeqCst),
            1,
            "read to its end, a call gives its connection back"
        );

        // An answer dropped before its end closes its connection.
        let res = own
            .request(post(&format!("http://{addr}/x")))
            .await
            .unwrap();
        drop(res);
        let res = own
            .request(post(&format!("http://{addr}/y")))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
        assert_eq!(accepted.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_call_elsewhere_is_refused_before_any_connect() {
        let (addr, accepted) = upstream().await;
        let mut set = ClientSet::direct();
        let own = OwnClient::to_upstream(&mut set, &configured(&format!("http://{addr}")));
        let port = addr.rsplit(':').next().unwrap();
        for url in [
            format!("http://localhost:{port}/"),
            format!("https://{addr}/"),
            "/relative".to_string(),
        ] {
            let Err(err) = own.request(post(&url)).await else {
                panic!("{url}: sent");
            };
            assert!(matches!(err, OwnCallError::Elsewhere(..)), "{url}: {err}");
        }
        assert_eq!(accepted.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn only_http_and_https_urls_with_an_authority_get_a_client() {
        let mut set = ClientSet::direct();
        let t = Duration::from_secs(1);
        for bad in ["ftp://h/x", "/relative", "h:8080"] {
            let url: Uri = bad.parse().unwrap();
            assert!(OwnClient::at(&mut set, &url, None, t).is_none(), "{bad}");
        }
        let url: Uri = "https://prometheus.example:443/api/v1/push"
            .parse()
            .unwrap();
        assert!(OwnClient::at(&mut set, &url, None, t).is_some());
    }
}
