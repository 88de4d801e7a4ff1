//! Properties of canonicalization and the class table together, on paths
//! spelled the way an attacker would spell them: every character of a known
//! endpoint possibly percent-encoded (either hex case), doubled slashes,
//! dot segments, encoded separators, trailing slashes.
//!
//! The oracle is a decoding upstream (Go's `net/http` gives handlers the
//! decoded path; the Prometheus and Alertmanager routers clean runs of `/`):
//! whatever the proxy forwards, the upstream must read as the same class the
//! proxy decided, and as the same path it would have read from the raw one.

use http::Method;
use proptest::prelude::*;

use super::{classify, AccessClass};
use crate::routes::canonicalize;

/// Words of the class table, and a few that are not.
const WORDS: &[&str] = &[
    "api",
    "prom",
    "push",
    "v1",
    "v2",
    "write",
    "query",
    "query_range",
    "series",
    "label",
    "job",
    "values",
    "config",
    "rules",
    "ns",
    "loki",
    "otlp",
    "traces",
    "alertmanager",
    "alerts",
    "silences",
    "silence",
    "prometheus",
    "tempo",
    "search",
    "metrics",
    "admin",
    "tsdb",
    "influx",
    "graphite",
    "ingest",
    "Export",
    "opentelemetry.proto.collector.trace.v1.TraceService",
    "x",
    "",
];

/// One path piece: a word with some characters encoded, or a separator or
/// dot spelling.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (prop::sample::select(WORDS), any::<u64>(), any::<bool>()).prop_map(
            |(w, mask, upper)| {
                w.bytes()
                    .enumerate()
                    .map(|(i, b)| {
                        if mask >> (i % 64) & 1 == 1 && mask % 3 == 0 {
                            if upper {
                                format!("%{b:02X}")
                            } else {
                                format!("%{b:02x}")
                            }
                        } else {
                            (b as char).to_string()
                        }
                    })
                    .collect::<String>()
            }
        ),
        1 => prop::sample::select(&[
            "/", "//", "%2F", "%2f", "%5C", "\\", ".", "..", "%2e", "%2E%2e", ".%2e",
            "%00", "%20", "%3F", "%25", "%zz", "%",
        ][..])
        .prop_map(str::to_string),
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(piece(), 0..8), any::<bool>()).prop_map(|(pieces, trailing)| {
        let mut p: String = pieces.iter().map(|s| format!("/{s}")).collect();
        if p.is_empty() || trailing {
            p.push('/');
        }
        p
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(&["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"][..])
        .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap())
}

/// What a decoding upstream sees: every escape decoded once (as bytes),
/// then runs of `/` merged.
fn upstream_view(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut merged: Vec<u8> = Vec::with_capacity(decoded.len());
    for c in decoded {
        if !(c == b'/' && merged.last() == Some(&b'/')) {
            merged.push(c);
        }
    }
    merged
}

/// The class an upstream's view of the path has: when the view is not text
/// (a decoded byte that is not UTF-8), no row can match it, so a non-safe
/// request to it is admin.
fn class_of_view(view: &[u8], method: &Method) -> AccessClass {
    match std::str::from_utf8(view) {
        Ok(s) => classify(s, method),
        Err(_) => classify("/\u{fffd}", method),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn the_forwarded_path_is_what_a_decoding_upstream_classifies_the_same(
        raw in raw_path(),
        m in method(),
    ) {
        let Ok(canonical) = canonicalize(&raw) else {
            // Refused with 400: nothing is forwarded.
            return Ok(());
        };
        // Canonical is a fixed point.
        let again = canonicalize(&canonical).map(|c| c.into_owned());
        prop_assert_eq!(again.as_deref(), Ok(&*canonical));
        // No dot segment, encoded separator, backslash or empty segment.
        let lower = canonical.to_ascii_lowercase();
        prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%00"));
        prop_assert!(!canonical.contains('\\') && !canonical.contains("//"));
        prop_assert!(canonical.split('/').all(|s| s != "." && s != ".."));
        // The upstream reads the forwarded path as it would have read the
        // raw one, and classifies it as the proxy did.
        let view = upstream_view(&canonical);
        prop_assert_eq!(&view, &upstream_view(&raw), "raw {}", raw);
        prop_assert_eq!(class_of_view(&view, &m), classify(&canonical, &m), "raw {} canonical {}", raw, canonical);
    }
}
