//! Properties of canonicalization and the class table together, on paths
//! spelled the way an attacker would spell them: every character of a known
//! endpoint possibly percent-encoded (either hex case), doubled slashes,
//! dot segments, encoded separators, trailing slashes.
//!
//! The invariants themselves live in `crate::invariants` (the fuzz targets
//! check the same ones).

use http::Method;
use proptest::prelude::*;

use super::classify;
use crate::invariants::{check_forwarded, upstream_view};
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
        // Canonical, clean, and classified by a decoding upstream as by
        // the proxy.
        let class = classify(&canonical, &m);
        if let Err(broken) = check_forwarded(&canonical, 0, &m, class) {
            return Err(TestCaseError::fail(format!("raw {raw}: {broken}")));
        }
        // The upstream reads the forwarded path as it would have read the
        // raw one.
        prop_assert_eq!(upstream_view(&canonical), upstream_view(&raw), "raw {}", raw);
    }
}
