//! Bytes -> request target -> canonical path -> route -> upstream target
//! -> access class, the calls the `CanonicalTarget` and `Route` layers
//! make in that order. Beyond
//! "no panic": what is forwarded is canonical and clean, reads to a
//! decoding upstream as the raw target did, and has the class the proxy
//! decided.
#![no_main]

use std::sync::OnceLock;

use http::{Method, Uri, Version};
use lgtm_proxy::invariants::{check_forwarded, upstream_view};
use lgtm_proxy::routes::{canonical_target, RouteTable};
use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &[
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "PROPFIND",
];
/// Upstream base paths as validated URLs give them.
const BASES: &[&str] = &["", "/api/prom", "/a%20b/c"];

/// The built-in routes plus rewriting ones of an operator's TOML.
fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let toml = r#"
            [upstreams.mimir]
            url = "http://127.0.0.1:9/prometheus"
            basic_auth = false
            [[routes]]
            prefix = "/mimir"
            upstream = "mimir"
            rewrite = "/prometheus"
            [[routes]]
            prefix = "/drop"
            upstream = "mimir"
            rewrite = ""
            [[routes]]
            prefix = "/alerts/v2"
            upstream = "mimir"
            rewrite = "/alertmanager/api/v2"
        "#;
        let config = lgtm_proxy::config::load_text(Some(toml), std::iter::empty())
            .expect("the fuzz target's own config loads");
        RouteTable::new(&config.routes)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, target)) = data.split_first() else {
        return;
    };
    let method = Method::from_bytes(METHODS[pick as usize % METHODS.len()].as_bytes()).unwrap();
    let base = BASES[(pick as usize / METHODS.len()) % BASES.len()];
    let version = if pick & 0x80 == 0 {
        Version::HTTP_11
    } else {
        Version::HTTP_2
    };
    // What hyper would accept as a request target.
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let Ok(path) = canonical_target(&uri, version) else {
        return; // 400: nothing forwarded
    };
    assert_eq!(
        upstream_view(&path),
        upstream_view(uri.path()),
        "canonicalization changed what a decoding upstream reads"
    );
    let table = table();
    let Some(matched) = table.find(&path) else {
        return; // 404
    };
    let mut forwarded = String::new();
    matched.write_upstream_target(base, uri.query(), &mut forwarded);
    let class = matched.class(&forwarded, base.len(), &method);
    let forwarded_path = forwarded.split('?').next().unwrap_or(&forwarded);
    if let Err(broken) = check_forwarded(forwarded_path, base.len(), &method, class) {
        panic!(
            "{broken} (raw target {:?})",
            String::from_utf8_lossy(target)
        );
    }
});
