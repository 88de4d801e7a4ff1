//! Shared by the targets that feed YAML to the proxy: libFuzzer's panic
//! hook aborts at the first panic, before unwinding, so it would report
//! the serde_yaml_ng 0.10 panics that `lgtm_proxy::yaml_dir` catches and
//! turns into a named problem. This hook lets exactly those unwind to the
//! catch; every other panic still reaches libFuzzer's hook. A parser
//! panic that no guard catches still ends the run: libfuzzer-sys aborts
//! when a panic unwinds out of the target.

use std::panic;

/// Install the hook; call once, from `fuzz_target!`'s `init`.
pub fn let_guarded_yaml_panics_unwind() {
    let fuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let in_parser = info
            .location()
            .is_some_and(|l| l.file().contains("serde_yaml_ng"));
        if !in_parser {
            fuzzer_hook(info);
        }
    }));
}
