//! The pool over TLS: h2 shared connections (cold start, a dropped
//! connection, the stream limit) and upstreams that pick http/1.1.

use super::*;
use hyper_util::rt::TokioExecutor;
/// A TLS upstream on 127.0.0.1 offering `alpn` by ALPN (hyper's auto
/// server, h2 or HTTP/1.1 as picked), answering with the version and
/// target it got; each connection is served for at most `serve_for`.
/// Returns its authority, how many connections it accepted, and a
/// connector that trusts its certificate.
async fn tls_upstream(
    alpn: &[&[u8]],
    serve_for: Duration,
) -> (Authority, Arc<AtomicUsize>, Dialer) {
    tls_upstream_with(alpn, serve_for, None, None).await
}

/// `tls_upstream`, allowing at most `h2_streams` concurrent streams per h2
/// connection, and holding each answer to a path under `/held` until
/// `hold` lets all of them go together.
async fn tls_upstream_with(
    alpn: &[&[u8]],
    serve_for: Duration,
    h2_streams: Option<u32>,
    hold: Option<Arc<tokio::sync::Barrier>>,
) -> (Authority, Arc<AtomicUsize>, Dialer) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (authority, accepted) = accept_each(move |s| {
        let (acceptor, hold) = (acceptor.clone(), hold.clone());
        async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let svc = service_fn(move |req: Request<Incoming>| {
                let hold = hold.clone();
                async move {
                    if let Some(hold) = hold.filter(|_| req.uri().path().starts_with("/held")) {
                        hold.wait().await;
                    }
                    let seen = format!("{:?} {}", req.version(), req.uri());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(seen))))
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(h2_streams);
            let serve = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), svc);
            let _ = tokio::time::timeout(serve_for, serve).await;
        }
    })
    .await;
    let proxies = Arc::new(hyper_util::client::proxy::matcher::Matcher::builder().build());
    let connector = crate::proxy::client::https_connector(
        Some(&[cert]),
        Duration::from_secs(5),
        &proxies,
        crate::proxy::client::Protocol::Auto,
    );
    (authority, accepted, Dialer::Tls(connector))
}

fn tls_pool(authority: &Authority, dialer: Dialer) -> Arc<UpstreamPool<Full<Bytes>>> {
    Arc::new(UpstreamPool::new(
        dialer,
        Scheme::HTTPS,
        authority,
        Duration::from_secs(90),
        256,
        Duration::from_secs(5),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_upstream_carries_every_request_on_one_connection_from_a_cold_start() {
    let (authority, accepted, dialer) =
        tls_upstream(&[b"h2", b"http/1.1"], Duration::from_secs(60)).await;
    let pool = tls_pool(&authority, dialer);
    // Forty requests at once on a pool that has not connected yet: they
    // wait for one connect, not one each.
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (res, lent) = pool.send(get(&format!("/q?i={i}"))).await.unwrap();
                assert!(lent.is_h2(), "h2 connections are shared, not lent");
                body(res).await
            })
        })
        .collect();
    for (i, send) in sends.into_iter().enumerate() {
        assert_eq!(
            send.await.unwrap(),
            format!("HTTP/2.0 https://{authority}/q?i={i}")
        );
    }
    assert_eq!(accepted.load(SeqCst), 1);
    assert_eq!(pool.h2_count(), 1);
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn an_h2_connection_the_upstream_dropped_is_replaced_without_a_failed_request() {
    let (authority, accepted, dialer) = tls_upstream(&[b"h2"], Duration::from_millis(300)).await;
    let pool = tls_pool(&authority, dialer);
    let (res, _) = pool.send(get("/one")).await.unwrap();
    assert_eq!(body(res).await, format!("HTTP/2.0 https://{authority}/one"));
    // The upstream drops the connection (no GOAWAY); the pool notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.h2_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped connection still looks open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (res, _) = pool.send(get("/two")).await.unwrap();
    assert_eq!(body(res).await, format!("HTTP/2.0 https://{authority}/two"));
    assert_eq!(accepted.load(SeqCst), 2);
}

#[tokio::test]
async fn a_tls_upstream_that_picks_http1_gets_pooled_http1_connections() {
    let (authority, accepted, dialer) = tls_upstream(&[b"http/1.1"], Duration::from_secs(60)).await;
    let pool = tls_pool(&authority, dialer);
    for i in 0..20 {
        let (res, lent) = pool.send(get(&format!("/q?i={i}"))).await.unwrap();
        // Origin-form on HTTP/1.1, whatever the scheme.
        assert_eq!(body(res).await, format!("HTTP/1.1 /q?i={i}"));
        assert!(!lent.is_h2());
        lent.give_back();
        tokio::task::yield_now().await;
    }
    assert_eq!(accepted.load(SeqCst), 1);
    assert_eq!(pool.h2_count(), 0);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_an_h2_connections_stream_limit_open_another_connection() {
    // The upstream allows 2 streams per connection and answers none of 6
    // requests until all 6 are in flight: on one connection they would
    // wait for each other for ever.
    let hold = Arc::new(tokio::sync::Barrier::new(6));
    let (authority, accepted, dialer) =
        tls_upstream_with(&[b"h2"], Duration::from_secs(60), Some(2), Some(hold)).await;
    let pool = Arc::new(
        UpstreamPool::new(
            dialer,
            Scheme::HTTPS,
            &authority,
            Duration::from_secs(90),
            256,
            Duration::from_secs(5),
        )
        .with_h2_streams(2),
    );
    let sends: Vec<_> = (0..6)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (res, lent) = pool.send(get(&format!("/held?i={i}"))).await.unwrap();
                assert!(lent.is_h2());
                let seen = body(res).await;
                // The stream is let go once its exchange is over.
                drop(lent);
                seen
            })
        })
        .collect();
    for (i, send) in sends.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(20), send)
            .await
            .expect("requests past the stream limit waited on a full connection")
            .unwrap();
        assert_eq!(seen, format!("HTTP/2.0 https://{authority}/held?i={i}"));
    }
    assert_eq!(accepted.load(SeqCst), 3);
    assert_eq!(pool.h2_count(), 3);
    // With the streams let go, the next requests fit on the connections
    // there are.
    for i in 0..10 {
        let (res, _) = pool.send(get(&format!("/q?i={i}"))).await.unwrap();
        assert_eq!(
            body(res).await,
            format!("HTTP/2.0 https://{authority}/q?i={i}")
        );
    }
    assert_eq!(accepted.load(SeqCst), 3);
}
