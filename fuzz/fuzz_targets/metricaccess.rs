//! Arbitrary YAML as a MetricAccess manifest in `manifests_dir` -> the
//! config load that validates it and builds its selectors. Never a panic;
//! every selector of every job built parses with promql-parser as a plain
//! series selector whose every `or` branch carries exactly one namespace
//! matcher, `namespace="<the job's namespace>"`, and that namespace is the
//! one a manifest's metadata gave.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};

#[path = "parser_panics.rs"]
mod parser_panics;
#[path = "yaml_dir.rs"]
mod yaml_dir;

/// `metadata.namespace` of every document of the file, read through the
/// same guarded parse as the proxy's.
fn manifest_namespaces(text: &str) -> Vec<String> {
    lgtm_proxy::yaml_dir::documents::<serde_yaml_ng::Value>(text)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|v| {
            v.get("metadata")?
                .get("namespace")?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fuzz_target!(init: parser_panics::let_guarded_yaml_panics_unwind(), |data: &[u8]| {
    yaml_dir::write_only_file("manifest.yaml", data);
    let toml = format!(
        "{}\n[remote_write]\nsources = [\"http://127.0.0.1:9\"]\nmanifests_dir = {:?}\n",
        yaml_dir::TENANTS,
        yaml_dir::dir()
    );
    let Ok(config) = lgtm_proxy::config::load_text(Some(&toml), std::iter::empty()) else {
        return;
    };
    let Some(rw) = config.dynamic.remote_write else {
        return;
    };
    if rw.jobs.is_empty() {
        return;
    }
    let text = std::str::from_utf8(data).expect("a manifest that built a job is text");
    let namespaces = manifest_namespaces(text);
    for job in &rw.jobs {
        assert!(
            namespaces.contains(&job.namespace),
            "job {} acts for a namespace no manifest names",
            job.key()
        );
        for sel in &job.selectors {
            let expr = parser::parse(sel).unwrap_or_else(|e| panic!("{sel:?} does not parse: {e}"));
            let Expr::VectorSelector(vs) = expr else {
                panic!("{sel:?} is not a series selector");
            };
            assert!(
                vs.offset.is_none() && vs.at.is_none(),
                "{sel:?} has a modifier"
            );
            let branches: Vec<_> = if vs.matchers.or_matchers.is_empty() {
                vec![vs.matchers.matchers.clone()]
            } else {
                vs.matchers.or_matchers.clone()
            };
            for branch in branches {
                let ns: Vec<_> = branch.iter().filter(|m| m.name == "namespace").collect();
                let equal: Vec<_> = ns.iter().filter(|m| m.op == MatchOp::Equal).collect();
                assert_eq!(equal.len(), 1, "{sel:?}: one namespace= matcher per branch");
                assert_eq!(equal[0].value, job.namespace, "{sel:?}: another namespace");
            }
        }
    }
});
