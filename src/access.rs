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
struct Row {
    methods: Methods,
    mounts: &'static [&'static [&'static str]],
    path: &'static [Seg],
    class: AccessClass,
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
static TABLE: &[Row] = &[
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

/// Paths deeper than this are matched by no row (the deepest row has 7
/// segments): their non-safe requests are admin.
const MAX_SEGMENTS: usize = 16;

/// The class of a request to `path` (the canonical upstream path, no query)
/// by `method`. Segments match exactly; one trailing slash is ignored.
pub fn classify(path: &str, method: &Method) -> AccessClass {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return Read;
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let mut segments = [""; MAX_SEGMENTS];
    let mut n = 0;
    if !trimmed.is_empty() {
        for s in trimmed.split('/') {
            if n == MAX_SEGMENTS {
                return Admin;
            }
            segments[n] = s;
            n += 1;
        }
    }
    let segments = &segments[..n];
    TABLE
        .iter()
        .find(|r| r.covers(method) && r.matches(segments))
        .map_or(Admin, |r| r.class)
}

impl Row {
    fn covers(&self, method: &Method) -> bool {
        match self.methods {
            Post => *method == Method::POST,
            PostDelete => *method == Method::POST || *method == Method::DELETE,
            Unsafe => true,
        }
    }

    fn matches(&self, segments: &[&str]) -> bool {
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

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "access_proptests.rs"]
mod proptests;
