//! Arbitrary YAML as a rule file in `rules_sync.dir` (a PrometheusRule or
//! a plain Prometheus rule file) -> the config load that checks it and
//! assigns its groups to rulers. Never a panic; a ruler only ever holds
//! namespaces under the owned prefix, and no namespace is both applied and
//! kept back as a refused file's.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "parser_panics.rs"]
mod parser_panics;

#[path = "yaml_dir.rs"]
mod yaml_dir;

fuzz_target!(init: parser_panics::let_guarded_yaml_panics_unwind(), |data: &[u8]| {
    yaml_dir::write_only_file("rules.yaml", data);
    let toml = format!(
        "{}\n[rules_sync]\ndir = {:?}\n",
        yaml_dir::TENANTS,
        yaml_dir::dir()
    );
    let Ok(config) = lgtm_proxy::config::load_text(Some(&toml), std::iter::empty()) else {
        return;
    };
    let Some(rs) = config.dynamic.rules_sync else {
        return;
    };
    for ruler in &rs.rulers {
        for ns in ruler.namespaces.keys() {
            assert!(
                ns.starts_with(&rs.prefix),
                "ruler namespace {ns:?} outside the prefix"
            );
            assert!(
                !rs.keep.contains(ns),
                "{ns:?} is applied and held back at once"
            );
        }
    }
});
