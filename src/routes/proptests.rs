//! Property checks for the matcher and the rewrite, with a small hand-rolled
//! generator (deterministic, no extra dependency).

use super::RouteTable;
use crate::config::Route;

/// xorshift: deterministic pseudo-random numbers for reproducible cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SEGMENTS: &[&str] = &["a", "ab", "abc", "b", "api", "prom", "x%2Fy", "", "v1"];

fn path(rng: &mut Rng, max: u64) -> String {
    let n = 1 + rng.next() % max;
    (0..n).map(|_| format!("/{}", rng.pick(SEGMENTS))).collect()
}

#[test]
fn match_is_the_longest_segment_prefix_and_rewrite_keeps_the_rest() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut routes: Vec<Route> = Vec::new();
        for i in 0..(1 + rng.next() % 5) {
            let prefix = path(&mut rng, 3);
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
                rewrite: if rng.next() % 2 == 0 {
                    String::new()
                } else {
                    "/r".to_string()
                },
            });
        }
        let table = RouteTable::new(&routes);
        let p = path(&mut rng, 5);
        // The oracle: every route whose prefix is p or a segment-prefix of p.
        let best = routes
            .iter()
            .filter(|r| p == r.prefix || p.starts_with(&format!("{}/", r.prefix)))
            .max_by_key(|r| r.prefix.len());
        match (table.find(&p), best) {
            (None, None) => {}
            (Some(m), Some(r)) => {
                assert_eq!(&*m.route.prefix, r.prefix, "path {p}");
                let mut out = String::new();
                m.write_upstream_target("", Some("q=%41+b"), &mut out);
                let expected_path = format!("{}{}", r.rewrite, &p[r.prefix.len()..]);
                let expected_path = if expected_path.is_empty() {
                    "/".to_string()
                } else {
                    expected_path
                };
                assert_eq!(out, format!("{expected_path}?q=%41+b"));
            }
            (got, want) => panic!(
                "path {p}: got {:?}, want {:?}",
                got.map(|m| m.route.prefix.clone()),
                want
            ),
        }
    }
}
