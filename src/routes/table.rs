//! The compiled route table. Routes are sorted longest prefix first, so the
//! first segment-boundary match is the longest one. Upstreams are referred
//! to by index: the per-request work is a few `starts_with` and no hashing.

use crate::config::Route;

#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub prefix: std::sync::Arc<str>,
    pub rewrite: Box<str>,
    /// Index into `RouteTable::upstreams`.
    pub upstream: usize,
    /// The route's own access class, overriding path-and-method rules.
    pub class: Option<crate::access::AccessClass>,
    pub upgrade_idle_timeout: std::time::Duration,
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    upstreams: Vec<String>,
}

/// A match: the route and the rest of the path after its prefix (`""` or
/// starting with `/`).
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// Its index for `RouteTable::route`.
    pub index: usize,
    pub route: &'a CompiledRoute,
    pub rest: &'a str,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> Self {
        let mut upstreams: Vec<String> = Vec::new();
        let mut compiled: Vec<CompiledRoute> = routes
            .iter()
            .map(|r| {
                let upstream = match upstreams.iter().position(|u| *u == r.upstream) {
                    Some(i) => i,
                    None => {
                        upstreams.push(r.upstream.clone());
                        upstreams.len() - 1
                    }
                };
                CompiledRoute {
                    prefix: r.prefix.as_str().into(),
                    rewrite: r.rewrite.as_str().into(),
                    upstream,
                    class: r.class,
                    upgrade_idle_timeout: r.upgrade_idle_timeout,
                    max_body_bytes: r.max_body_bytes,
                }
            })
            .collect();
        compiled.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        RouteTable {
            routes: compiled,
            upstreams,
        }
    }

    /// Upstream names, indexed as `CompiledRoute::upstream`.
    pub fn upstreams(&self) -> &[String] {
        &self.upstreams
    }

    /// Longest prefix that matches `path` on a segment boundary.
    pub fn find<'a>(&'a self, path: &'a str) -> Option<Matched<'a>> {
        self.routes.iter().enumerate().find_map(|(index, route)| {
            let prefix = &*route.prefix;
            if prefix == "/" {
                return Some(Matched {
                    index,
                    route,
                    rest: path,
                });
            }
            let rest = path.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some(Matched { index, route, rest })
        })
    }

    /// The route at `index` (`Matched::index`).
    pub fn route(&self, index: usize) -> Option<&CompiledRoute> {
        self.routes.get(index)
    }
}

impl Matched<'_> {
    /// Write the upstream path and query into `out`: the upstream's base
    /// path, the route's rewrite, the rest of the path, then the query
    /// exactly as received (no decoding, no re-encoding).
    pub fn write_upstream_target(&self, base_path: &str, query: Option<&str>, out: &mut String) {
        out.push_str(base_path);
        out.push_str(&self.route.rewrite);
        out.push_str(self.rest);
        if out.is_empty() {
            out.push('/');
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
    }

    /// The access class of the request as forwarded: the route's own, or
    /// the class table's for `upstream_target` (written by
    /// `write_upstream_target`) after the upstream's `base_len` bytes of
    /// base path, without its query.
    pub fn class(
        &self,
        upstream_target: &str,
        base_len: usize,
        method: &http::Method,
    ) -> crate::access::AccessClass {
        self.route.class.unwrap_or_else(|| {
            let rel = &upstream_target[base_len..];
            crate::access::classify(rel.split('?').next().unwrap_or(rel), method)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BUILTIN_ROUTES;

    fn table(extra: &[(&str, &str, &str)]) -> RouteTable {
        let routes: Vec<Route> = BUILTIN_ROUTES
            .iter()
            .chain(extra)
            .map(|(p, u, r)| Route {
                prefix: p.to_string(),
                upstream: u.to_string(),
                rewrite: r.to_string(),
                class: None,
                upgrade_idle_timeout: std::time::Duration::from_secs(3600),
                max_body_bytes: None,
            })
            .collect();
        RouteTable::new(&routes)
    }

    fn target(
        t: &RouteTable,
        path: &str,
        query: Option<&str>,
        base: &str,
    ) -> Option<(String, String)> {
        let m = t.find(path)?;
        let mut out = String::new();
        m.write_upstream_target(base, query, &mut out);
        Some((t.upstreams()[m.route.upstream].clone(), out))
    }

    #[test]
    fn matches_on_segment_boundaries_only() {
        let t = table(&[]);
        assert!(t.find("/prometheus").is_some());
        assert!(t.find("/prometheus/").is_some());
        assert!(t.find("/prometheus/api/v1/query").is_some());
        assert!(t.find("/prometheusx").is_none());
        assert!(t.find("/prometheusx/api").is_none());
        assert!(t.find("/lokii").is_none());
        assert!(t.find("/").is_none());
        assert!(t.find("/unknown/x").is_none());
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let t = table(&[
            ("/loki/api/v1/push", "ingest", "/push"),
            ("/lo", "other", ""),
        ]);
        assert_eq!(
            target(&t, "/loki/api/v1/push", None, "").unwrap(),
            ("ingest".into(), "/push".into())
        );
        assert_eq!(
            target(&t, "/loki/api/v1/query", None, "").unwrap(),
            ("loki".into(), "/loki/api/v1/query".into())
        );
        assert_eq!(
            target(&t, "/lo/x", None, "").unwrap(),
            ("other".into(), "/x".into())
        );
        assert_eq!(
            target(&t, "/api/v1/alerts", None, "").unwrap().0,
            "alertmanager".to_string()
        );
    }

    #[test]
    fn builtin_rewrites_follow_the_seed_table() {
        let t = table(&[]);
        let cases = [
            ("/api/prom/push", "prometheus", "/api/prom/push"),
            (
                "/prometheus/api/v1/query",
                "prometheus",
                "/api/prom/api/v1/query",
            ),
            ("/prometheus", "prometheus", "/api/prom"),
            ("/loki/api/v1/push", "loki", "/loki/api/v1/push"),
            ("/tempo/api/search", "tempo", "/tempo/api/search"),
            ("/otlp/v1/traces", "otlp", "/otlp/v1/traces"),
            ("/pyroscope/ingest", "pyroscope", "/ingest"),
            ("/pyroscope", "pyroscope", "/"),
            (
                "/pyroscope/push.v1.PusherService/Push",
                "pyroscope",
                "/push.v1.PusherService/Push",
            ),
            (
                "/push.v1.PusherService/Push",
                "pyroscope",
                "/push.v1.PusherService/Push",
            ),
            (
                "/querier.v1.QuerierService/SelectMergeStacktraces",
                "pyroscope",
                "/querier.v1.QuerierService/SelectMergeStacktraces",
            ),
        ];
        for (path, up, out) in cases {
            assert_eq!(
                target(&t, path, None, "").unwrap(),
                (up.to_string(), out.to_string()),
                "{path}"
            );
        }
    }

    #[test]
    fn query_passes_byte_for_byte_and_base_path_is_prepended() {
        let t = table(&[]);
        let q = "query=sum(rate(x%7Bjob%3D%22a%22%7D[5m]))&time=1%2B2&empty=&a=%zz&b=+";
        let (_, out) = target(&t, "/prometheus/api/v1/query", Some(q), "/base/path").unwrap();
        assert_eq!(out, format!("/base/path/api/prom/api/v1/query?{q}"));
        let (_, out) = target(&t, "/loki/x", Some(""), "").unwrap();
        assert_eq!(out, "/loki/x?");
    }

    #[test]
    fn empty_rewrite_and_root_prefix() {
        let t = table(&[("/strip", "loki", ""), ("/", "tempo", "")]);
        assert_eq!(target(&t, "/strip", None, "").unwrap().1, "/");
        assert_eq!(target(&t, "/strip/a/b", None, "").unwrap().1, "/a/b");
        assert_eq!(
            target(&t, "/anything/else", None, "/b").unwrap(),
            ("tempo".into(), "/b/anything/else".into())
        );
        assert_eq!(
            target(&t, "/prometheus/x", None, "").unwrap().0,
            "prometheus"
        );
    }
}
