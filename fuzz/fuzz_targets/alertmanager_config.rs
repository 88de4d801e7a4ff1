//! Arbitrary text as the file `alertmanager-config push` reads: plain
//! Alertmanager YAML or Mimir's body with `template_files`. Never a panic;
//! a refusal always says why.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

#[path = "parser_panics.rs"]
mod parser_panics;

fuzz_target!(init: parser_panics::let_guarded_yaml_panics_unwind(), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = lgtm_proxy::alertmanager_config::prepare(text, BTreeMap::new()) {
        assert!(!problems.is_empty(), "refused without a reason");
        assert!(
            problems.iter().all(|p| !p.trim().is_empty()),
            "an empty reason"
        );
    }
});
