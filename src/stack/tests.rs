//! The composed stack (`layers`) with a recorder where `Forward` goes:
//! what reaches it, what is refused first, and what is counted.

use tower::ServiceExt;

use super::test_support::{fixture, request, Fixture, Recorder, ADMIN, READER, WRITER};
use super::{layers, ProbesOnly};
use crate::access::AccessClass;

async fn send(
    f: &Fixture,
    probes_only: Option<ProbesOnly>,
    recorder: &Recorder,
    req: http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> http::Response<crate::proxy::Body> {
    let stack = layers(f.conn(probes_only), recorder.clone());
    stack.oneshot(req).await.unwrap()
}

async fn status(f: &Fixture, recorder: &Recorder, method: &str, path: &str, auth: &str) -> u16 {
    let req = request(method, path, &[("authorization", auth)]);
    send(f, None, recorder, req).await.status().as_u16()
}

#[tokio::test]
async fn a_read_client_reaches_the_upstream_for_reads_only_however_a_write_is_spelled() {
    let f = fixture();
    let rec = Recorder::default();
    assert_eq!(
        status(&f, &rec, "GET", "/prometheus/api/v1/query?query=up", READER).await,
        200
    );
    let reached = rec.0.lock().unwrap().clone();
    assert_eq!(reached.len(), 1);
    assert_eq!(reached[0].client.as_deref(), Some("reader"));
    assert_eq!(reached[0].class, AccessClass::Read);
    assert!(
        reached[0]
            .path_and_query
            .ends_with("/api/prom/api/v1/query?query=up"),
        "{reached:?}"
    );
    for path in [
        "/api/prom/push",
        "/api/prom//push",
        "/api/prom/%70ush",
        "/prometheus/api/v1/push",
    ] {
        assert_eq!(status(&f, &rec, "POST", path, READER).await, 403, "{path}");
    }
    // Spellings with no canonical form are refused before any routing.
    for path in [
        "/api/prom/./push",
        "/api/prom/x/../push",
        "/api/prom/%2e%2e/push",
        "/api/prom%2Fpush",
        "/api/prom/%zz",
    ] {
        assert_eq!(status(&f, &rec, "POST", path, READER).await, 400, "{path}");
    }
    assert_eq!(
        rec.0.lock().unwrap().len(),
        1,
        "no write reached the upstream"
    );
}

#[tokio::test]
async fn refusals_are_counted_once_with_the_labels_known_when_refused() {
    let f = fixture();
    let rec = Recorder::default();
    assert_eq!(
        status(&f, &rec, "GET", "/prometheus/api/v1/query", "Bearer nobody").await,
        401
    );
    assert_eq!(f.requests("none", "none", "401"), 1);
    let failures = &f.app.metrics().auth_failures;
    assert_eq!(
        failures.with_label_values(&["unknown_credentials"]).get(),
        1
    );
    // Known tenant and route, no target for it: labelled with both.
    assert_eq!(
        status(&f, &rec, "GET", "/loki/api/v1/labels", ADMIN).await,
        404
    );
    assert_eq!(f.requests("loki", "stage", "404"), 1);
    // A class refusal is an auth failure too.
    assert_eq!(
        status(&f, &rec, "GET", "/prometheus/api/v1/query", WRITER).await,
        403
    );
    assert_eq!(f.requests("prometheus", "stage", "403"), 1);
    assert_eq!(failures.with_label_values(&["forbidden_class"]).get(), 1);
    assert!(rec.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_debug_endpoints_need_an_admin_client_and_their_refusals_are_counted() {
    let f = fixture();
    let rec = Recorder::default();
    assert_eq!(status(&f, &rec, "GET", "/debug/targets", READER).await, 403);
    assert_eq!(f.requests("none", "none", "403"), 1);
    assert_eq!(status(&f, &rec, "GET", "/debug/targets", ADMIN).await, 200);
    let res = send(&f, None, &rec, request("POST", "/health", &[])).await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert!(rec.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn probes_only_connections_answer_the_probe_paths_and_refuse_the_rest() {
    let f = fixture();
    let rec = Recorder::default();
    for (probes, refused) in [(ProbesOnly::Reserve, 503), (ProbesOnly::Admin, 404)] {
        for path in ["/health", "/ready", "/metrics"] {
            let res = send(&f, Some(probes), &rec, request("GET", path, &[])).await;
            assert_eq!(res.status(), 200, "{probes:?} {path}");
        }
        for path in ["/prometheus/api/v1/query", "/debug/targets", "/"] {
            let req = request("GET", path, &[("authorization", ADMIN)]);
            let res = send(&f, Some(probes), &rec, req).await;
            assert_eq!(res.status(), refused, "{probes:?} {path}");
        }
    }
    assert!(rec.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn own_endpoints_pass_before_admission_and_authentication() {
    let f = fixture();
    let rec = Recorder::default();
    // Hold both global slots, as two requests in flight would.
    let conn = f.conn(None);
    let slots = f.app.current().in_flight.clone().unwrap();
    let held = [slots.try_acquire().unwrap(), slots.try_acquire().unwrap()];
    let res = send(&f, None, &rec, request("GET", "/health", &[])).await;
    assert_eq!(res.status(), 200);
    let req = request(
        "GET",
        "/prometheus/api/v1/query",
        &[("authorization", ADMIN)],
    );
    let res = layers(conn, rec.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    drop(held);
    assert_eq!(
        status(&f, &rec, "GET", "/prometheus/api/v1/query", ADMIN).await,
        200
    );
}
