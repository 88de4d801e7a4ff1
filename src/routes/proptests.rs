//! Property checks for the matcher and the rewrite: generated route tables
//! and paths (proptest, which shrinks a failing case to a small one), checked
//! against an oracle that reads the rule straight from its definition.

use proptest::prelude::*;

use super::RouteTable;
use crate::config::Route;

/// Segments that make prefixes overlap often, an encoded separator, and an
/// empty segment (a `//`).
const SEGMENTS: &[&str] = &["a", "ab", "abc", "b", "api", "prom", "x%2Fy", "", "v1"];

fn path(max_segments: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SEGMENTS), 1..=max_segments)
        .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect())
}

/// Up to five routes with distinct prefixes that config validation would
/// accept (no empty segment, no trailing `/`), rewriting to "" or "/r".
fn routes() -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec((path(3), any::<bool>()), 1..=5).prop_map(|drafts| {
        let mut routes: Vec<Route> = Vec::new();
        for (i, (prefix, rewrites)) in drafts.into_iter().enumerate() {
            if prefix.contains("//")
                || prefix.ends_with('/')
                || routes.iter().any(|r| r.prefix == prefix)
            {
                continue;
            }
            routes.push(Route {
                class: None,
                upgrade_idle_timeout: std::time::Duration::from_secs(3600),
                max_body_bytes: None,
                prefix,
                upstream: format!("u{i}"),
                rewrite: if rewrites { "/r".into() } else { String::new() },
            });
        }
        routes
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn match_is_the_longest_segment_prefix_and_rewrite_keeps_the_rest(
        routes in routes(),
        p in path(5),
    ) {
        let table = RouteTable::new(&routes);
        // The oracle: every route whose prefix is p or a segment-prefix of p.
        let best = routes
            .iter()
            .filter(|r| p == r.prefix || p.starts_with(&format!("{}/", r.prefix)))
            .max_by_key(|r| r.prefix.len());
        match (table.find(&p), best) {
            (None, None) => {}
            (Some(m), Some(r)) => {
                prop_assert_eq!(&*m.route.prefix, r.prefix.as_str(), "path {}", p);
                prop_assert_eq!(table.route(m.index).map(|r| &*r.prefix), Some(&*m.route.prefix));
                let mut out = String::new();
                m.write_upstream_target("", Some("q=%41+b"), &mut out);
                let expected_path = format!("{}{}", r.rewrite, &p[r.prefix.len()..]);
                let expected_path = if expected_path.is_empty() {
                    "/".to_string()
                } else {
                    expected_path
                };
                prop_assert_eq!(out, format!("{expected_path}?q=%41+b"));
            }
            (got, want) => prop_assert!(
                false,
                "path {}: got {:?}, want {:?}",
                p,
                got.map(|m| m.route.prefix.clone()),
                want.map(|r| r.prefix.clone())
            ),
        }
    }
}
