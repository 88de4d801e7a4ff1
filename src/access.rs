//! Access classes: what a request does to an upstream, decided from the
//! UPSTREAM path (after rewrite, without the upstream URL's base path) and
//! the method, in one table that later features extend. A `[[routes]]`
//! entry may set the class for all of its traffic instead.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessClass {
    Read,
    Write,
    Admin,
}

impl AccessClass {
    pub const ALL: [AccessClass; 3] = [AccessClass::Read, AccessClass::Write, AccessClass::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of classes (a client's `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessSet(u8);

impl AccessSet {
    pub const ALL: AccessSet = AccessSet(0b111);

    pub fn of(classes: impl IntoIterator<Item = AccessClass>) -> Self {
        AccessSet(classes.into_iter().fold(0, |acc, c| acc | c.bit()))
    }

    pub fn allows(self, c: AccessClass) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn classes(self) -> impl Iterator<Item = AccessClass> {
        AccessClass::ALL
            .into_iter()
            .filter(move |c| self.allows(*c))
    }
}

/// Remote-write and push endpoints: a POST to a path ending in one of
/// these writes (Mimir `/api/v1/push`, Prometheus `/api/v1/write`, Grafana
/// Cloud `/api/prom/push`, Loki `/loki/api/v1/push`).
const WRITE_SUFFIXES: &[&str] = &["/api/prom/push", "/api/v1/push", "/api/v1/write"];
/// Ruler configuration APIs: anything but a read changes rules.
const RULER_PREFIXES: &[&str] = &[
    "/api/prom/config/v1/rules",
    "/prometheus/config/v1/rules",
    "/loki/api/v1/rules",
];
/// The Mimir / Grafana Cloud Alertmanager configuration API.
const ALERTMANAGER_CONFIG: &str = "/api/v1/alerts";

/// The class of a request to `path` (upstream path, no query) by `method`.
pub fn classify(path: &str, method: &Method) -> AccessClass {
    let reads = *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS;
    if path.starts_with("/opentelemetry.proto.collector.") && path.ends_with("/Export") {
        return AccessClass::Write;
    }
    if *method == Method::POST
        && (WRITE_SUFFIXES.iter().any(|s| path.ends_with(s)) || under(path, "/otlp/v1"))
    {
        return AccessClass::Write;
    }
    if (*method == Method::POST || *method == Method::DELETE)
        && (path == "/alertmanager/api/v2/alerts"
            || under(path, "/alertmanager/api/v2/silences")
            || path.starts_with("/alertmanager/api/v2/silence/"))
    {
        return AccessClass::Write;
    }
    if !reads && (RULER_PREFIXES.iter().any(|p| under(path, p)) || under(path, ALERTMANAGER_CONFIG))
    {
        return AccessClass::Admin;
    }
    AccessClass::Read
}

/// `path` is `prefix` or below it on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::AccessClass::*;
    use super::*;

    #[test]
    fn contract_table() {
        let cases = [
            ("POST", "/api/prom/push", Write),
            ("POST", "/api/v1/push", Write),
            ("POST", "/api/prom/api/v1/write", Write),
            ("POST", "/loki/api/v1/push", Write),
            ("POST", "/otlp/v1/traces", Write),
            ("POST", "/otlp/v1/metrics", Write),
            (
                "POST",
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                Write,
            ),
            ("POST", "/alertmanager/api/v2/alerts", Write),
            ("POST", "/alertmanager/api/v2/silences", Write),
            ("DELETE", "/alertmanager/api/v2/silence/abc", Write),
            ("POST", "/api/prom/config/v1/rules/ns", Admin),
            ("DELETE", "/api/prom/config/v1/rules/ns/group", Admin),
            ("POST", "/prometheus/config/v1/rules/ns", Admin),
            ("PUT", "/loki/api/v1/rules/ns", Admin),
            ("POST", "/api/v1/alerts", Admin),
            ("DELETE", "/api/v1/alerts", Admin),
            ("GET", "/api/prom/config/v1/rules", Read),
            ("GET", "/api/v1/alerts", Read),
            ("GET", "/api/prom/api/v1/query", Read),
            ("POST", "/api/prom/api/v1/query", Read),
            ("POST", "/api/prom/api/v1/query_range", Read),
            ("POST", "/loki/api/v1/query_range", Read),
            ("GET", "/api/prom/push", Read),
            ("GET", "/otlp/v1/traces", Read),
            ("POST", "/otlp/v1x", Read),
            ("POST", "/api/prom/config/v1/rulesx", Read),
            ("GET", "/alertmanager/api/v2/alerts", Read),
            ("POST", "/tempo/api/search", Read),
        ];
        for (m, p, want) in cases {
            assert_eq!(
                classify(p, &Method::from_bytes(m.as_bytes()).unwrap()),
                want,
                "{m} {p}"
            );
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
}
