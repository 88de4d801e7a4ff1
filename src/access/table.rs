//! The access allow-list: which (method, upstream path) pairs are `read`
//! or `write` (or explicitly `admin`), one row each, and how a row matches
//! a path's segments. First match wins.

use http::Method;

use super::class::AccessClass;

/// Which methods a table row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    Post,
    PostDelete,
    /// Everything but GET, HEAD and OPTIONS.
    Unsafe,
}

/// One segment of a row's path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// This segment, exactly.
    Lit(&'static str),
    /// Any one segment.
    Any,
    /// One segment starting with this (`detected_*`, `index/volume*`).
    Starts(&'static str),
    /// The segments that remain, none included; last in a pattern.
    Rest,
}

use Seg::{Any, Lit, Rest, Starts};

/// Where an API is mounted on its upstream: Prometheus' and Mimir's query
/// and write APIs answer at the root, under Grafana Cloud's `/api/prom` and
/// under Mimir's `/prometheus`; Tempo at the root and under `/tempo`.
const PROM_MOUNTS: &[&[&str]] = &[&[], &["api", "prom"], &["prometheus"]];
const TEMPO_MOUNTS: &[&[&str]] = &[&[], &["tempo"]];
const ROOT: &[&[&str]] = &[&[]];

/// One allow-list row: requests by `methods` to a path that is one of
/// `mounts` followed by `path` have `class`.
pub(super) struct Row {
    methods: Methods,
    mounts: &'static [&'static [&'static str]],
    path: &'static [Seg],
    pub(super) class: AccessClass,
}

const fn row(
    class: AccessClass,
    methods: Methods,
    mounts: &'static [&'static [&'static str]],
    path: &'static [Seg],
) -> Row {
    Row {
        methods,
        mounts,
        path,
        class,
    }
}

use AccessClass::{Admin, Read, Write};
use Methods::{Post, PostDelete, Unsafe};

/// The allow-list, first match wins. GET, HEAD and OPTIONS are `read`
/// everywhere and never reach it; every other method on a path no row
/// names is `admin`.
pub(super) static TABLE: &[Row] = &[
    // Rule and Alertmanager configuration: admin, named first so no
    // ingest or query row below can ever shadow them.
    row(
        Admin,
        Unsafe,
        PROM_MOUNTS,
        &[Lit("config"), Lit("v1"), Lit("rules"), Rest],
    ),
    row(
        Admin,
        Unsafe,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("rules"), Rest],
    ),
    row(Admin, Unsafe, ROOT, &[Lit("api"), Lit("v1"), Lit("alerts")]),
    // Prometheus remote write wherever Grafana Cloud, Mimir and
    // Prometheus accept it.
    row(Write, Post, ROOT, &[Lit("api"), Lit("prom"), Lit("push")]),
    row(
        Write,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("push")],
    ),
    row(
        Write,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("write")],
    ),
    // Grafana Cloud's other metric ingest formats.
    row(
        Write,
        Post,
        ROOT,
        &[
            Lit("api"),
            Lit("v1"),
            Lit("push"),
            Lit("influx"),
            Lit("write"),
        ],
    ),
    row(Write, Post, ROOT, &[Lit("graphite"), Lit("metrics")]),
    row(
        Write,
        Post,
        ROOT,
        &[Lit("datadog"), Lit("api"), Any, Lit("series")],
    ),
    // Logs, OTLP over HTTP and gRPC, profiles.
    row(
        Write,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("push")],
    ),
    row(Write, Post, ROOT, &[Lit("otlp"), Lit("v1"), Any]),
    row(
        Write,
        Post,
        ROOT,
        &[Starts("opentelemetry.proto.collector."), Lit("Export")],
    ),
    row(
        Write,
        Post,
        ROOT,
        &[Lit("push.v1.PusherService"), Lit("Push")],
    ),
    row(Write, Post, ROOT, &[Lit("ingest")]),
    // Alertmanager alerts and silences, both API versions.
    row(
        Write,
        PostDelete,
        ROOT,
        &[Lit("alertmanager"), Lit("api"), Any, Lit("alerts")],
    ),
    row(
        Write,
        PostDelete,
        ROOT,
        &[Lit("alertmanager"), Lit("api"), Any, Lit("silences")],
    ),
    row(
        Write,
        PostDelete,
        ROOT,
        &[Lit("alertmanager"), Lit("api"), Any, Lit("silence"), Any],
    ),
    // Queries sent as POST (long PromQL/LogQL in a form body).
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("query")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("query_range")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("query_exemplars")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("series")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("labels")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("label"), Any, Lit("values")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("read")],
    ),
    row(
        Read,
        Post,
        PROM_MOUNTS,
        &[Lit("api"), Lit("v1"), Lit("format_query")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("query")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("query_range")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("series")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("labels")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[
            Lit("loki"),
            Lit("api"),
            Lit("v1"),
            Lit("index"),
            Lit("stats"),
        ],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[
            Lit("loki"),
            Lit("api"),
            Lit("v1"),
            Lit("index"),
            Starts("volume"),
        ],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Starts("detected_")],
    ),
    row(
        Read,
        Post,
        ROOT,
        &[Lit("loki"), Lit("api"), Lit("v1"), Lit("patterns")],
    ),
    row(Read, Post, TEMPO_MOUNTS, &[Lit("api"), Lit("search"), Rest]),
    row(
        Read,
        Post,
        TEMPO_MOUNTS,
        &[Lit("api"), Lit("v2"), Lit("search"), Rest],
    ),
    row(
        Read,
        Post,
        TEMPO_MOUNTS,
        &[Lit("api"), Lit("metrics"), Rest],
    ),
    row(Read, Post, ROOT, &[Lit("querier.v1.QuerierService"), Any]),
];

impl Row {
    pub(super) fn covers(&self, method: &Method) -> bool {
        match self.methods {
            Post => *method == Method::POST,
            PostDelete => *method == Method::POST || *method == Method::DELETE,
            Unsafe => true,
        }
    }

    pub(super) fn matches(&self, segments: &[&str]) -> bool {
        self.mounts.iter().any(|mount| {
            segments.len() >= mount.len()
                && segments.iter().zip(mount.iter()).all(|(s, m)| s == m)
                && pattern_matches(self.path, &segments[mount.len()..])
        })
    }
}

fn pattern_matches(pattern: &[Seg], segments: &[&str]) -> bool {
    let mut segments = segments.iter();
    for p in pattern {
        let s = match (p, segments.next()) {
            (Rest, _) => return true,
            (_, None) => return false,
            (_, Some(s)) => *s,
        };
        let ok = match p {
            Lit(l) => s == *l,
            Starts(prefix) => s.starts_with(prefix),
            Any | Rest => true,
        };
        if !ok {
            return false;
        }
    }
    segments.next().is_none()
}
