//! The per-request work that is ours, without sockets: target checks,
//! route lookup and rewrite, and the request/response header rules. The
//! end-to-end load comparison lives in benches/load/.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Uri, Version};
use lgtm_proxy::access::{classify, AccessSet};
use lgtm_proxy::config::load_from;
use lgtm_proxy::proxy::headers::{prepare_request, prepare_response, ClientAddr};
use lgtm_proxy::proxy::{ClientSet, Target};
use lgtm_proxy::routes::{canonical_target, RouteTable};
use lgtm_proxy::telemetry::Metrics;
use lgtm_proxy::tenant::{token_hash, ClientEntry, Resolver};

fn remote_write_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "lgtm-proxy.monitoring:8085"),
        ("user-agent", "Alloy/v1.5.0"),
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
        ("content-length", "65536"),
        ("authorization", "Bearer client"),
        ("connection", "keep-alive"),
        ("accept-encoding", "gzip"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn bench(c: &mut Criterion) {
    let cfg = load_from(
        None,
        [
            (
                "LGTM_PROMETHEUS_URL",
                "https://prometheus-prod-56-prod-us-east-2.grafana.net",
            ),
            ("LGTM_PROMETHEUS_USER", "2668285"),
            ("LGTM_TOKEN", "glc_bench"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect("bench config");
    let table = RouteTable::new(&cfg.routes);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let up = &cfg.upstreams["prometheus"];
    let target = Arc::new(Target::new(
        up,
        "default",
        ClientSet::new().client_for(up),
        Arc::new(Metrics::new()),
    ));

    let uri: Uri = "/prometheus/api/v1/query_range?query=sum(rate(container_cpu_usage_seconds_total%7Bnamespace%3D%22kubecost%22%7D%5B5m%5D))&start=1&end=2&step=60"
        .parse()
        .unwrap();
    c.bench_function("query_get/check_route_rewrite", |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            let path = canonical_target(black_box(&uri), Version::HTTP_11).unwrap();
            let m = table.find(black_box(&path)).unwrap();
            out.clear();
            m.write_upstream_target(&target.base_path, uri.query(), &mut out);
            black_box(&out);
        })
    });

    let headers = remote_write_headers();
    let id = HeaderValue::from_static("0000000000000001");
    let peer = ClientAddr::new(
        (IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 40000).into(),
        false,
    );
    c.bench_function("remote_write_push/request_headers", |b| {
        b.iter_batched_ref(
            || headers.clone(),
            |h| prepare_request(h, &target, &peer, &id),
            criterion::BatchSize::SmallInput,
        )
    });

    // Tenant resolution: SHA-256 of the bearer token, then a constant-time
    // scan of every client: 2 and 50 tenants of 2 clients each, the token
    // being the last client's (the scan never stops early anyway).
    for tenants in [2usize, 50] {
        let names: Vec<std::sync::Arc<str>> = std::iter::once("default".into())
            .chain((0..tenants).map(|i| format!("tenant-{i}").into()))
            .collect();
        let clients = (0..tenants * 2)
            .map(|i| {
                let token = format!("client-token-{i}");
                ClientEntry::new(
                    Some(token_hash(token.as_bytes())),
                    None,
                    1 + i / 2,
                    "c",
                    AccessSet::ALL,
                    None,
                )
            })
            .collect();
        let resolver = Resolver::new(names, clients, true);
        let mut auth = HeaderMap::new();
        let last = format!("Bearer client-token-{}", tenants * 2 - 1);
        auth.insert("authorization", HeaderValue::from_str(&last).unwrap());
        c.bench_function(
            &format!("remote_write_push/tenant_resolve_bearer_{tenants}_tenants"),
            |b| b.iter(|| black_box(resolver.resolve(black_box(&auth), None).is_ok())),
        );
    }
    c.bench_function("remote_write_push/access_class", |b| {
        b.iter(|| black_box(classify(black_box("/api/prom/push"), &http::Method::POST)))
    });

    // nginx's usual answer: Connection: keep-alive goes, the rest stays.
    let mut resp = HeaderMap::new();
    resp.insert("connection", HeaderValue::from_static("keep-alive"));
    resp.insert("content-type", HeaderValue::from_static("application/json"));
    resp.insert("content-length", HeaderValue::from_static("120"));
    resp.insert(
        "date",
        HeaderValue::from_static("Sun, 22 Nov 2026 05:00:00 GMT"),
    );
    c.bench_function("query_get/response_headers", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            prepare_response,
            criterion::BatchSize::SmallInput,
        )
    });
}

#[path = "../tests/common/jwt.rs"]
mod jwt;

/// ServiceAccount token resolution: a token seen before (its digest and a
/// cache lookup: every request after its first) and a new one (signature
/// and claims, once per token and key).
fn service_account_tokens(c: &mut Criterion) {
    use lgtm_proxy::kubernetes_auth::jwks::Jwks;
    use lgtm_proxy::kubernetes_auth::spec::{KeySource, KubernetesAuth};
    use lgtm_proxy::kubernetes_auth::Verifier;

    let issuer = "https://kubernetes.default.svc.cluster.local";
    let (rsa, ec) = (jwt::Signer::rsa("a", jwt::RSA_A), jwt::Signer::ec("e"));
    let jwks = Jwks::parse(jwt::jwks(&[&rsa, &ec]).as_bytes()).unwrap();
    let verifier = Verifier::new(
        KubernetesAuth {
            issuer: issuer.to_string(),
            audiences: vec!["lgtm-proxy".to_string()],
            keys: KeySource::File {
                path: "/dev/null".into(),
                jwks,
            },
        },
        prometheus::Gauge::new("g", "g").unwrap(),
    );
    let claims = jwt::claims(issuer, "lgtm-proxy", "monitoring", "alloy");
    let rs256 = rsa.sign(&claims);
    let es256 = ec.sign(&claims);
    c.bench_function("jwt/uncached_rs256", |b| {
        b.iter(|| verifier.verify_now(black_box(&rs256)).unwrap())
    });
    c.bench_function("jwt/uncached_es256", |b| {
        b.iter(|| verifier.verify_now(black_box(&es256)).unwrap())
    });
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(verifier.verify(&rs256, token_hash(rs256.as_bytes())))
        .unwrap();
    c.bench_function("jwt/cached", |b| {
        b.iter(|| {
            let digest = token_hash(black_box(rs256.as_bytes()));
            verifier.cached(&digest).unwrap()
        })
    });
}

criterion_group!(benches, bench, service_account_tokens);
criterion_main!(benches);
