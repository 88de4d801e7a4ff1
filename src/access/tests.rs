//! The access table: what each path and method is classed as.

use super::*;
use AccessClass::Write;

fn class(m: &str, p: &str) -> AccessClass {
    classify(p, &Method::from_bytes(m.as_bytes()).unwrap())
}

#[test]
fn contract_table() {
    let cases = [
        ("POST", "/api/prom/push", Write),
        ("POST", "/api/v1/push", Write),
        ("POST", "/api/v1/write", Write),
        ("POST", "/api/prom/api/v1/write", Write),
        ("POST", "/prometheus/api/v1/push", Write),
        ("POST", "/api/v1/push/influx/write", Write),
        ("POST", "/graphite/metrics", Write),
        ("POST", "/datadog/api/v1/series", Write),
        ("POST", "/loki/api/v1/push", Write),
        ("POST", "/otlp/v1/traces", Write),
        ("POST", "/otlp/v1/metrics", Write),
        ("POST", "/otlp/v1/logs/", Write),
        (
            "POST",
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Write,
        ),
        ("POST", "/push.v1.PusherService/Push", Write),
        ("POST", "/ingest", Write),
        ("POST", "/alertmanager/api/v2/alerts", Write),
        ("POST", "/alertmanager/api/v1/alerts", Write),
        ("POST", "/alertmanager/api/v2/silences", Write),
        ("POST", "/alertmanager/api/v1/silences/", Write),
        ("DELETE", "/alertmanager/api/v2/silence/abc", Write),
        ("DELETE", "/alertmanager/api/v1/silence/abc", Write),
        ("POST", "/api/prom/config/v1/rules/ns", Admin),
        ("DELETE", "/api/prom/config/v1/rules/ns/group", Admin),
        ("POST", "/prometheus/config/v1/rules/ns", Admin),
        ("POST", "/config/v1/rules", Admin),
        ("PUT", "/loki/api/v1/rules/ns", Admin),
        ("POST", "/api/v1/alerts", Admin),
        ("DELETE", "/api/v1/alerts/", Admin),
        ("GET", "/api/prom/config/v1/rules", Read),
        ("GET", "/api/v1/alerts", Read),
        ("HEAD", "/api/prom/push", Read),
        ("OPTIONS", "/anything/at/all", Read),
        ("GET", "/api/prom/api/v1/query", Read),
        ("POST", "/api/prom/api/v1/query", Read),
        ("POST", "/api/prom/api/v1/query_range/", Read),
        ("POST", "/api/v1/label/job/values", Read),
        ("POST", "/prometheus/api/v1/series", Read),
        ("POST", "/loki/api/v1/query_range", Read),
        ("POST", "/loki/api/v1/index/volume_range", Read),
        ("POST", "/loki/api/v1/detected_fields", Read),
        ("POST", "/tempo/api/search", Read),
        ("POST", "/tempo/api/metrics/query_range", Read),
        (
            "POST",
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            Read,
        ),
    ];
    for (m, p, want) in cases {
        assert_eq!(class(m, p), want, "{m} {p}");
    }
}

/// Fail closed: what the table does not name is admin for every
/// non-safe method, however close it is to a named path.
#[test]
fn unlisted_non_safe_requests_are_admin() {
    for (m, p) in [
        ("POST", "/otlp/v1x"),
        ("POST", "/otlp/v1/traces/x"),
        ("POST", "/api/prom/config/v1/rulesx"),
        ("POST", "/api/prom/pushx"),
        ("POST", "/API/prom/push"),
        ("PUT", "/api/prom/push"),
        ("PATCH", "/api/v1/write"),
        ("DELETE", "/alertmanager/api/v2/alerts/groups"),
        ("POST", "/alertmanager/-/reload"),
        ("POST", "/api/v1/admin/tsdb/delete_series"),
        ("PUT", "/api/v1/admin/tsdb/snapshot"),
        ("POST", "/api/prom/api/v1/query/x"),
        ("POST", "/x/api/v1/query"),
        ("POST", "/"),
        ("DELETE", "/"),
        ("CONNECT", "/api/prom/push"),
        ("TRACE", "/loki/api/v1/push"),
        ("POST", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/api/v1/write"),
        ("POST", "/api/prom/config/v1/rules/api/v1/push"),
    ] {
        assert_eq!(class(m, p), Admin, "{m} {p}");
    }
}

#[test]
fn access_sets() {
    let s = AccessSet::of([Read]);
    assert!(s.allows(Read) && !s.allows(Write) && !s.allows(Admin));
    assert!(AccessSet::ALL.allows(Admin));
    assert_eq!(
        AccessSet::of([Write, Admin]).classes().collect::<Vec<_>>(),
        [Write, Admin]
    );
    assert_eq!(AccessClass::parse("write"), Some(Write));
    assert_eq!(AccessClass::parse("root"), None);
}
