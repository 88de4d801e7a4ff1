//! Release builds of the binary on x86_64 Linux lay out their code in the
//! order of `benches/load/link-order.txt`: the functions a running proxy
//! executes (start-up, the request path, /metrics), hottest first, written
//! by `benches/load/link-order.sh` from a callgrind run. Code the proxy
//! runs then sits on a few contiguous pages instead of being spread over
//! the whole `.text` (the kernel maps code 64 KiB around each first touch,
//! so scattered functions made most of `.text` resident), and the request
//! path shares fewer cache lines and TLB entries with code that never runs.
//!
//! A name the file lists that a build no longer has is skipped: a stale
//! file costs layout, never correctness. `LGTM_LINK_ORDER=off` turns it off
//! (e.g. for a linker without `--symbol-ordering-file`; lld, Rust's default
//! linker on x86_64 Linux, and mold have it).

use std::env;
use std::path::Path;

fn main() {
    let order = Path::new("benches/load/link-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=LGTM_LINK_ORDER");
    let wanted = env::var("PROFILE").as_deref() == Ok("release")
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("LGTM_LINK_ORDER").as_deref() != Ok("off");
    if !wanted || !order.exists() {
        return;
    }
    let path = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(order);
    println!(
        "cargo:rustc-link-arg-bin=lgtm-proxy=-Wl,--symbol-ordering-file={}",
        path.display()
    );
    println!("cargo:rustc-link-arg-bin=lgtm-proxy=-Wl,--no-warn-symbol-ordering");
}
